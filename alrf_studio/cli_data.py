"""CLI commands for projects and data: new, import, export, build-dataset, consensus, report, status."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

_FORMAT_HELP = (
    "alrf (path then x1 y1 ... x5 y5), mtcnn (path then x1..x5 y1..y5), csv (named columns) "
    "or coco (keypoints JSON); default: from the suffix (.json coco, .csv csv, else alrf)"
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("new", help="create an empty project folder")
    p.add_argument("project", help="folder to create (it must not hold a project yet)")
    p.add_argument("--name", help="project name (default: the folder name)")
    p.add_argument("--annotator", action="append", default=[], help="add an annotator (repeatable)")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser(
        "build-dataset",
        help="choose N identities with one small image each from a TinyFace-like tree",
        description="Scan a TinyFace-like tree (identity folders, or <identity>_<k>.jpg files), keep images whose "
        "width and height are both above --min-size and below --max-size pixels, choose --identities identities at "
        "random (seeded) with one image each, and write manifest.csv and the exclusion lists.",
    )
    p.add_argument("source", help="folder with identity folders or <identity>_<k> image files")
    p.add_argument("--out", required=True, help="folder for manifest.csv, excluded_identities.txt, excluded_images.txt, dataset.json")
    p.add_argument("--identities", type=int, default=700, help="number of identities to choose (default: 700)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed and files give the same choice (default: 0)")
    p.add_argument("--min-size", type=int, default=15, help="keep images wider and taller than this, in pixels (default: 15)")
    p.add_argument("--max-size", type=int, default=32, help="keep images narrower and shorter than this, in pixels (default: 32)")
    p.add_argument("--allow-fewer", action="store_true", help="choose all eligible identities when fewer than --identities exist")
    p.add_argument("--copy-images", action="store_true", help="also copy the chosen images to OUT/images/")
    p.add_argument("--project", help="import the chosen images into this project (created when missing)")
    p.set_defaults(func=cmd_build_dataset)

    p = sub.add_parser("import", help="import images or a label file into a project")
    p.add_argument("project", help="project folder")
    p.add_argument("--images", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    p.add_argument("--labels", metavar="FILE", help="label file to import")
    p.add_argument("--annotator", help="annotator the labels belong to (needed unless the file names annotators)")
    p.add_argument("--format", choices=("alrf", "mtcnn", "csv", "coco"), help=_FORMAT_HELP)
    p.add_argument(
        "--columns",
        help="CSV column mapping NAME=COLUMN,... (names: image, annotator, left_eye_x, left_eye_y, ...); "
        "'numbered' maps image_path, x1, y1, ..., x5, y5 as in cnn_facepoint's landmarks.csv",
    )
    base = p.add_mutually_exclusive_group()
    base.add_argument("--one-based", dest="one_based", action="store_true", default=None, help="coordinates in the file are 1-based (MATLAB)")
    base.add_argument("--zero-based", dest="one_based", action="store_false", help="coordinates in the file are 0-based (default, or the file's header)")
    p.add_argument("--allow-outside", action="store_true", help="keep points outside the image, flagged (faces cropped tighter than their landmarks)")
    p.add_argument("--skip-unknown", action="store_true", help="skip labels of images that are not in the project instead of failing")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="export labels or the consensus")
    p.add_argument("project", help="project folder")
    p.add_argument("--out", required=True, help="output file (or folder with --per-annotator)")
    p.add_argument("--format", choices=("alrf", "mtcnn", "csv", "coco"), default="alrf", help="file format (default: alrf)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--annotator", action="append", help="export this annotator's labels (repeatable for csv and coco)")
    source.add_argument("--consensus", action="store_true", help="export the consensus (rule options as for 'consensus')")
    source.add_argument("--per-annotator", action="store_true", help="write one file per annotator into --out")
    _add_rule_options(p)
    p.add_argument("--paths", choices=("original", "project"), default="original", help="image paths written: original (relative to their common folder) or project files (default: original)")
    p.add_argument("--one-based", action="store_true", help="write 1-based coordinates (alrf, mtcnn)")
    p.add_argument("--include-incomplete", action="store_true", help="also write images with points not labelled yet (as nan)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("consensus", help="compute the consensus of the annotators and print a summary")
    p.add_argument("project", help="project folder")
    _add_rule_options(p)
    p.add_argument("--out", help="also write the consensus to this file (format from --format)")
    p.add_argument("--format", choices=("alrf", "mtcnn", "csv", "coco"), default="alrf", help="format of --out (default: alrf)")
    p.set_defaults(func=cmd_consensus)

    p = sub.add_parser("report", help="write the annotator agreement report (HTML with PNG plots and CSV tables)")
    p.add_argument("project", help="project folder")
    p.add_argument("--out", required=True, help="folder for report.html, its plots and tables")
    p.add_argument("--no-plots", action="store_true", help="write the tables and HTML without plots (faster)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("status", help="print images, annotators and per-annotator progress")
    p.add_argument("project", help="project folder")
    p.set_defaults(func=cmd_status)


def _add_rule_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--method",
        choices=("visible_mean", "strict_mean"),
        default="visible_mean",
        help="visible_mean: mean over annotators who marked the point visible, invisible below the quorum; "
        "strict_mean: any -1 makes the point invisible (default: visible_mean)",
    )
    p.add_argument("--quorum", type=int, help="annotators who must mark a point visible (default: a majority of those who finished)")
    p.add_argument("--min-annotators", type=int, default=3, help="annotators who must finish an image for it to enter the consensus (default: 3)")


def _rule(args: argparse.Namespace):
    from s2ld_core.consensus import ConsensusRule

    return ConsensusRule(method=args.method, quorum=args.quorum, min_annotators=args.min_annotators)


def _open(path: str):
    from s2ld_core.store import Project

    return Project.open(path)


def cmd_new(args: argparse.Namespace) -> int:
    from s2ld_core.store import Project

    with Project.create(args.project, name=args.name) as project:
        for name in args.annotator:
            project.add_annotator(name)
        print(f"created project {project.name} at {project.root}")
    return 0


def cmd_build_dataset(args: argparse.Namespace) -> int:
    from s2ld_core.dataset import build_dataset

    summary = build_dataset(
        args.source,
        n_identities=args.identities,
        seed=args.seed,
        min_size=args.min_size,
        max_size=args.max_size,
        output_dir=args.out,
        copy_images=args.copy_images,
        allow_fewer=args.allow_fewer,
    )
    print(summary.describe())
    for path, message in summary.problems[:20]:
        print(f"  skipped {path}: {message}")
    if args.project:
        from s2ld_core.store import Project, ProjectNotFoundError

        try:
            project = Project.open(args.project)
        except ProjectNotFoundError:
            project = Project.create(args.project)
        with project:
            root = Path(args.source)
            files = [root / image.relative_path for image in summary.chosen]
            identity = {root / image.relative_path: image.identity for image in summary.chosen}
            result = project.add_images(files, identity=lambda p: identity.get(p, ""), source=f"build-dataset seed {args.seed}")
            print(f"project {project.root}: {result.describe()}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from s2ld_core.project_io import import_images, import_label_file

    from .cli import CommandError

    if not args.images and not args.labels:
        raise CommandError("nothing to import: pass --images PATH... and/or --labels FILE")
    status = 0
    with _open(args.project) as project:
        if args.images:
            summary = import_images(project, args.images, source_name="cli import")
            for path, existing in summary.duplicates[:20]:
                print(f"  duplicate of image {existing}: {path}")
            for path, message in summary.errors:
                print(f"  failed: {message}")
            for path in summary.ignored[:20]:
                print(f"  ignored (not an image type): {path}")
            # The summary comes last, so it stays in view after a long list of failures.
            print(f"images: {summary.describe()}")
            if summary.errors:
                status = 1
        if args.labels:
            result = import_label_file(
                project,
                args.labels,
                annotator=args.annotator,
                fmt=args.format,
                columns=args.columns,
                one_based=args.one_based,
                allow_outside=args.allow_outside,
                skip_unknown=args.skip_unknown,
            )
            print(result.describe())
    return status


def cmd_export(args: argparse.Namespace) -> int:
    from s2ld_core.project_io import export_annotator_files, export_consensus, export_labels

    with _open(args.project) as project:
        if args.consensus:
            summary, result = export_consensus(project, args.out, args.format, _rule(args), paths=args.paths, one_based=args.one_based)
            print(f"wrote consensus of {summary.written} images to {summary.path} ({result.rule.describe()}); provenance in {summary.path}.json")
        elif args.per_annotator:
            for summary in export_annotator_files(project, args.out, args.format, args.paths, args.include_incomplete):
                print(f"wrote {summary.written} labels to {summary.path}")
        else:
            summary = export_labels(
                project, args.out, args.format, args.annotator, args.paths, include_incomplete=args.include_incomplete, one_based=args.one_based
            )
            extra = f" ({summary.skipped_incomplete} incomplete left out)" if summary.skipped_incomplete else ""
            print(f"wrote {summary.written} labels to {summary.path}{extra}")
    return 0


def cmd_consensus(args: argparse.Namespace) -> int:
    import numpy as np

    from s2ld_core.project_io import export_consensus, project_consensus

    with _open(args.project) as project:
        ids, names, result = project_consensus(project, _rule(args))
        print(f"rule: {result.rule.describe()}")
        print(f"annotators: {', '.join(names)}")
        print(f"images: {result.n_images}, in the consensus: {result.n_included}, too few finished annotators: {result.n_images - result.n_included}")
        if result.n_included:
            inc = result.included
            with np.errstate(invalid="ignore"):
                spread = np.nanmedian(result.spread_std_iod[inc]) * 100
            print(f"invisible consensus points: {int(np.count_nonzero(result.state[inc] == 2))}")
            print(f"median annotator spread: {spread:.2f}% of the inter-ocular distance")
        if args.out:
            summary, _ = export_consensus(project, args.out, args.format, _rule(args))
            print(f"wrote {summary.written} images to {summary.path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from s2ld_core.project_io import write_project_report

    with _open(args.project) as project:
        page = write_project_report(project, args.out, plots=not args.no_plots)
    print(f"wrote {page}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with _open(args.project) as project:
        print(f"project {project.name} at {project.root}: {project.image_count()} images")
        if project.read_only:
            print(f"read-only: {project.read_only_reason}")
        active = project.active_model()
        print(f"active model: {active or 'none'}")
        counts = project.counts()
        if not counts:
            print("no annotators yet")
        for name, c in counts.items():
            print(f"  {name:<20} done {c['done']:>6}  partial {c['partial']:>6}  not started {c['not_started']:>6}")
    return 0
