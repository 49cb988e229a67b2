"""CLI command ``demo``: build the demo project of real tiny faces, open it, or run the main job headless."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import paths


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="build the demo project of real tiny faces and open it (or run the main job with --headless)",
        description="Without --headless: build the demo project (300 real low-resolution faces pre-labelled by the "
        "default model) when it does not exist yet, then open it in the app. With --headless: build it, simulate three "
        "annotators on the 100 faces with known landmarks, compute the consensus, write ALRF, CSV and COCO exports and "
        "the agreement report, score the model against the known landmarks and print a summary.",
    )
    p.add_argument("--headless", action="store_true", help="run the whole main job without a display and print a summary")
    p.add_argument(
        "--project",
        help=f"demo project folder (default: {paths.demo_project_dir()} for the app, "
        f"{headless_project_dir()} with --headless)",
    )
    p.add_argument("--out", help="folder for the headless run's exports, report and summary (default: PROJECT/demo-output)")
    p.add_argument("--model", help="checkpoint folder to pre-label with (default: the shipped model in assets/models/default)")
    p.add_argument("--overwrite", action="store_true", help="delete the project already in the folder and build the demo again")
    p.set_defaults(func=cmd_demo)


def headless_project_dir() -> Path:
    """Default project folder of the headless run, apart from the demo project people label in."""
    return paths.user_data_dir() / "demo-headless"


class _ProgressPrinter:
    """Print one line per build stage when it finishes, so CI logs stay short."""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if done == total:
            print(f"  {stage}: {done}/{total}", flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    from s2ld_core.demo import build_demo_project, ensure_demo_project

    if args.headless:
        return _run_headless(args)
    target = Path(args.project) if args.project else paths.demo_project_dir()
    if args.overwrite:
        print(f"building the demo project at {target}", flush=True)
        build_demo_project(target, args.model, overwrite=True, progress=_ProgressPrinter())
    else:
        print(f"demo project: {target}", flush=True)
        ensure_demo_project(target, args.model, progress=_ProgressPrinter())
    from .app import run_gui

    return run_gui(str(target))


def _run_headless(args: argparse.Namespace) -> int:
    from s2ld_core.demo import run_headless_demo

    # The default headless folder holds only this run's output, so each run rebuilds it.
    overwrite = args.overwrite or not args.project
    target = Path(args.project) if args.project else headless_project_dir()
    print(f"building the demo project at {target}", flush=True)
    summary = run_headless_demo(target, args.out, model_dir=args.model, overwrite=overwrite, progress=_ProgressPrinter())
    print_summary(summary)
    return 0


def _percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def print_summary(summary: dict, stream=None) -> None:
    """Print the headless run's summary: counts, the model's error and every file written."""
    out = stream or sys.stdout
    faces = summary["faces"]
    model = summary["model_vs_known"]
    consensus = summary["consensus_vs_known"]
    lines = [
        f"project: {summary['project']}",
        f"faces: {faces['total']} ({faces['without_landmarks']} real crowd faces, {faces['known_landmarks']} with known landmarks), "
        f"{faces['identities']} identities",
        f"model: {summary['model']['version']} ({summary['model']['folder']})",
        "annotators: "
        + ", ".join(f"{name} (noise {a['noise_px']} px, {a['invisible_marks']} invisible marks)" for name, a in summary["annotators"].items()),
        f"consensus: {summary['consensus']['images']} images, {summary['consensus']['invisible_points']} invisible points",
        f"model NME vs known landmarks: mean {_percent(model['mean'])}, median {_percent(model['median'])}, "
        f"failure rate @10% {_percent(model['failure_rate'])} on {model['n']} faces (inter-ocular normalisation)",
    ]
    for group, values in model["by_size"].items():
        lines.append(f"  {group}: mean {_percent(values['mean'])}, failure rate {_percent(values['failure_rate'])} ({values['n']} faces)")
    lines.append(f"consensus NME vs known landmarks: mean {_percent(consensus['mean'])} on {consensus['n']} faces")
    lines.append(f"time: {summary['seconds']['total']:.1f} s")
    lines.append(f"files written under {summary['out_dir']}:")
    lines += [f"  {key}: {path}" for key, path in summary["files"].items()]
    print("\n".join(lines), file=out)
