"""The main job on the demo project, without a display: what ``alrf-studio demo --headless`` runs.

Steps, each through the same core functions that the GUI and the CLI use:

1. Build the demo project and pre-label every face (:func:`s2ld_core.demo.build_demo_project`).
2. Simulate three annotators on the 100 faces with known landmarks: each adds Gaussian noise
   of a known standard deviation to the known points and marks a few points invisible. Their
   labels are written as label CSV files and imported from there, as real annotators' files
   would be.
3. Compute the consensus and export it, and each annotator's labels, as ALRF, CSV and COCO.
4. Write the agreement report.
5. Score the model's stored predictions, and the consensus, against the known landmarks.

Everything written is listed in the returned summary and in ``summary.json``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import formats
from .atomic import write_text_atomic
from .formats_common import stack_records
from .demo import DEMO_ASSETS_DIR, KNOWN_PREFIX, DemoError, ProgressCallback, build_demo_project
from .metrics import nme, summarise, summarise_by_group, visibility_accuracy
from .project_io import export_annotator_files, export_consensus, import_label_file, project_consensus, write_project_report
from .schema import N_POINTS, PointState
from .store import Project

log = logging.getLogger(__name__)

#: Simulated annotators and the standard deviation of their noise per coordinate, in crop pixels.
ANNOTATOR_NOISE_PX: dict[str, float] = {"sim_0.3px": 0.3, "sim_0.4px": 0.4, "sim_0.6px": 0.6}

#: Chance that a simulated annotator marks a point invisible on its own.
INVISIBLE_RATE = 0.02

#: Faces on which the two noisier annotators both mark the same mouth corner invisible, so the
#: consensus point becomes invisible (1 visible mark of 3 is below the majority quorum).
HIDDEN_POINT_FACES = 4

SEED = 0

#: Face-size groups for the evaluation, by crop side in pixels (inclusive).
SIZE_GROUPS: tuple[tuple[int, int], ...] = ((15, 19), (20, 23), (24, 27), (28, 32))

FAILURE_THRESHOLD = 0.10


def simulate_annotators(
    truth_xy: np.ndarray, sizes: np.ndarray, seed: int = SEED
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Return noisy copies of known points, one per simulated annotator.

    Args:
        truth_xy: float (N, 5, 2) known points in crop pixels.
        sizes: int (N, 2) crop width and height; noisy points are clipped into the crop.

    Returns:
        annotator name -> (xy float64 (N, 5, 2), NaN where invisible; state int8 (N, 5)).
    """
    rng = np.random.default_rng(seed)
    n = len(truth_xy)
    low = np.full((n, 1), -0.5)
    high = sizes[:, None, :].astype(np.float64) - 0.5
    hidden = rng.choice(n, size=min(HIDDEN_POINT_FACES, n), replace=False)
    hidden_point = rng.integers(3, N_POINTS, size=len(hidden))

    out = {}
    for a, (name, sigma) in enumerate(ANNOTATOR_NOISE_PX.items()):
        xy = np.clip(truth_xy + rng.normal(0.0, sigma, truth_xy.shape), low[..., None], high)
        state = np.full((n, N_POINTS), PointState.VISIBLE, dtype=np.int8)
        state[rng.random((n, N_POINTS)) < INVISIBLE_RATE] = PointState.INVISIBLE
        if a > 0:
            state[hidden, hidden_point] = PointState.INVISIBLE
        xy[state != PointState.VISIBLE] = np.nan
        out[name] = (xy, state)
    return out


def _size_group(side: int) -> str:
    for low, high in SIZE_GROUPS:
        if low <= side <= high:
            return f"{low}-{high} px"
    return f"{side} px"


def _summary_dict(per_face: np.ndarray, groups: np.ndarray) -> dict:
    summary = summarise(per_face, FAILURE_THRESHOLD).to_dict()
    summary["by_size"] = {str(k): v.to_dict() for k, v in summarise_by_group(per_face, groups, FAILURE_THRESHOLD).items()}
    return summary


def _known_faces(project: Project, assets_dir: Path) -> tuple[list[formats.LabelRecord], np.ndarray]:
    """Return the known-landmark records and the project image id of each."""
    result = formats.read_labels_csv(assets_dir / "landmarks.csv")
    originals = {info.id: info.original_path for info in project.list_images()}
    matches, unmatched, ambiguous = formats.match_image_paths([r.image for r in result.records], originals)
    if unmatched or ambiguous:
        raise DemoError(
            f"{assets_dir / 'landmarks.csv'}: {len(unmatched)} image(s) missing from the demo project and "
            f"{len(ambiguous)} ambiguous; regenerate the demo assets with assets/demo/make_demo_assets.py"
        )
    return result.records, np.array([matches[r.image] for r in result.records], dtype=np.int64)


def run_headless_demo(
    target: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    model_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    assets_dir: str | os.PathLike | None = None,
    plots: bool = True,
    device: str = "auto",
) -> dict:
    """Build the demo project at ``target`` and run the main job on it; returns the summary.

    Args:
        target: project folder, as for :func:`s2ld_core.demo.build_demo_project`.
        out_dir: folder for the simulated label files, exports, report and evaluation
            (default: ``<target>/demo-output``).
        model_dir, overwrite, progress, assets_dir, device: passed to the build.
        plots: draw the report's PNG plots.

    Returns:
        A JSON-ready dict: project, model, face counts, simulated annotators, consensus counts,
        ``model_vs_known`` and ``consensus_vs_known`` (NME as a fraction of the inter-ocular
        distance: n, mean, median, failure_rate, auc, by_size), ``files`` (every path written,
        by key) and ``seconds`` per step. It is also written to ``<out_dir>/summary.json``.
    """
    timings: dict[str, float] = {}
    start = time.perf_counter()
    target = Path(target)
    assets_dir = Path(assets_dir or DEMO_ASSETS_DIR)
    build_demo_project(target, model_dir, overwrite=overwrite, progress=progress, assets_dir=assets_dir, device=device)
    timings["build_and_prelabel"] = time.perf_counter() - start

    out = Path(out_dir) if out_dir is not None else target / "demo-output"
    files: dict[str, str] = {}
    with Project.open(target) as project:
        step = time.perf_counter()
        records, known_ids = _known_faces(project, assets_dir)
        infos = {info.id: info for info in project.list_images()}
        sizes = np.array([(infos[i].width, infos[i].height) for i in known_ids], dtype=np.int64)
        truth_xy, truth_state = stack_records(records)
        simulated = simulate_annotators(truth_xy, sizes)
        (out / "simulated").mkdir(parents=True, exist_ok=True)
        for name, (xy, state) in simulated.items():
            path = out / "simulated" / formats.annotator_file_name(name)
            formats.write_labels_csv(
                path,
                formats.records_from_arrays([r.image for r in records], xy, state, annotator=name),
                header_lines=[f"simulated annotator {name}: known points plus Gaussian noise of {ANNOTATOR_NOISE_PX[name]} px per coordinate"],
            )
            import_label_file(project, path, fmt="csv")
            files[f"simulated_{name}"] = str(path)
        timings["annotators"] = time.perf_counter() - step

        step = time.perf_counter()
        exports = out / "exports"
        for fmt, suffix in (("alrf", "consensus.txt"), ("csv", "consensus.csv"), ("coco", "consensus_coco.json")):
            written_consensus, _ = export_consensus(project, exports / suffix, fmt)
            files[f"consensus_{fmt}"] = str(written_consensus.path)
            files[f"consensus_{fmt}_provenance"] = str(written_consensus.path) + ".json"
            for written in export_annotator_files(project, exports / "annotators", fmt):
                annotator = written.path.stem.removeprefix("labels_")
                files[f"annotator_{fmt}_{annotator}"] = str(written.path)
        timings["consensus_and_exports"] = time.perf_counter() - step

        step = time.perf_counter()
        files["report"] = str(write_project_report(project, out / "report", plots=plots))
        timings["report"] = time.perf_counter() - step

        step = time.perf_counter()
        version = project.active_model()
        predicted = np.stack([project.get_prediction(int(i), version).xy for i in known_ids])
        predicted_visible = np.stack([project.get_prediction(int(i), version).visible for i in known_ids])
        model_nme = nme(predicted, truth_xy, truth_state)
        ids, names, result = project_consensus(project)
        row = {int(i): r for r, i in enumerate(ids)}
        rows = [row[int(i)] for i in known_ids]
        consensus_nme = nme(result.xy[rows], truth_xy, np.where(result.state[rows] == PointState.VISIBLE, truth_state, PointState.INVISIBLE))
        groups = np.array([_size_group(int(max(w, h))) for w, h in sizes])
        table = pd.DataFrame(
            {
                "image_id": known_ids,
                "image": [r.image for r in records],
                "size_px": sizes.max(axis=1),
                "model_nme": model_nme,
                "consensus_nme": consensus_nme,
            }
        )
        evaluation = out / "evaluation.csv"
        write_text_atomic(evaluation, table.to_csv(index=False, float_format="%.6f", lineterminator="\n"))
        files["evaluation_csv"] = str(evaluation)
        timings["evaluation"] = time.perf_counter() - step

        models = {m["version"]: m for m in project.models()}
        faces = {
            "total": project.image_count(),
            "known_landmarks": len(known_ids),
            "without_landmarks": sum(1 for info in infos.values() if not info.identity.startswith(KNOWN_PREFIX)),
            "identities": len({info.identity for info in infos.values()}),
        }
        n_included = int(result.included.sum())
        invisible_points = int(np.count_nonzero(result.state[result.included] == PointState.INVISIBLE))

    timings["total"] = time.perf_counter() - start
    summary_path = out / "summary.json"
    files["summary_json"] = str(summary_path)
    summary = {
        "project": str(target),
        "out_dir": str(out),
        "model": {"version": version, "folder": str(models[version]["path"])},
        "faces": faces,
        "annotators": {
            name: {"noise_px": sigma, "invisible_marks": int(np.count_nonzero(simulated[name][1] == PointState.INVISIBLE))}
            for name, sigma in ANNOTATOR_NOISE_PX.items()
        },
        "consensus": {"rule": result.rule.describe(), "images": n_included, "invisible_points": invisible_points},
        "model_vs_known": _summary_dict(model_nme, groups)
        | {"normaliser": "interocular", "visibility_accuracy": visibility_accuracy(predicted_visible, truth_state)},
        "consensus_vs_known": _summary_dict(consensus_nme, groups) | {"normaliser": "interocular"},
        "files": files,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }
    write_text_atomic(summary_path, json.dumps(summary, indent=2) + "\n")
    log.info("Headless demo done in %.1f s: model NME %.4f on %d faces", timings["total"], summary["model_vs_known"]["mean"], len(known_ids))
    return summary

