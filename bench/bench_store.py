"""Time the project store: image import, opening a large project, consensus and export.

Usage: python bench/bench_store.py [--images 10000] [--annotators 3] [--repeat 5] [--no-docs]

The images are distinct small PNGs made from the 40 committed fixture faces
(tests/fixtures/lowres_faces): each face is area-resized to a side of 16-31 px and one
pixel encodes the image number, so every file has its own SHA-256. Each annotator's labels
are the fixture landmarks scaled to the new size plus 0.4 px Gaussian noise, with 2% of the
points marked invisible. The labels of all annotators are stored in one transaction.

Stages:
- import: ``Project.add_images`` on all files (hash, decode, PNG re-encode, copy, insert), once.
- open and list: ``Project.open`` + ``list_images()`` + ``status(annotator)`` for every annotator.
- consensus + ALRF export: ``export_consensus(project, out, "alrf")``, which reads the labels,
  computes the consensus and writes the ALRF file and its JSON sidecar.
- CSV and COCO consensus exports, for comparison.

The timed stages other than the import run ``--repeat`` times; the median and the best are
reported. The results replace the "Project store" section of docs/benchmarks.md unless
``--no-docs`` is given.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from s2ld_core.project_io import export_consensus  # noqa: E402
from s2ld_core.schema import LANDMARK_NAMES, PointState  # noqa: E402
from s2ld_core.store import Project  # noqa: E402

from bench_common import cpu_name, time_stage, update_docs  # noqa: E402

SECTION = "## Project store"
FACES_DIR = REPO / "tests" / "fixtures" / "lowres_faces"


def make_images(folder: Path, n_images: int) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Write ``n_images`` distinct PNG faces; return their paths, points (N, 5, 2) and sides (N,)."""
    table = pd.read_csv(FACES_DIR / "points.csv")
    faces = [cv2.imread(str(FACES_DIR / name), cv2.IMREAD_COLOR) for name in table["image"]]
    columns = [f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy"]
    points = table[columns].to_numpy(float).reshape(-1, 5, 2)

    paths, xy, sides = [], np.empty((n_images, 5, 2)), np.empty(n_images, dtype=np.int64)
    for i in range(n_images):
        source = i % len(faces)
        side = 16 + (i // len(faces)) % 16
        face = cv2.resize(faces[source], (side, side), interpolation=cv2.INTER_AREA)
        face[0, 0] = (i & 255, (i >> 8) & 255, (i >> 16) & 255)  # makes every file's SHA-256 distinct
        scale = side / faces[source].shape[1]
        xy[i] = (points[source] + 0.5) * scale - 0.5
        sides[i] = side
        path = folder / f"person{i:05d}" / f"person{i:05d}_0.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, data = cv2.imencode(".png", face)
        assert ok
        path.write_bytes(data.tobytes())
        paths.append(path)
    return paths, xy, sides


def make_labels(truth: np.ndarray, sides: np.ndarray, n_annotators: int, seed: int = 0):
    """Return xy (N, A, 5, 2) and state (N, A, 5): truth plus 0.4 px noise, 2% invisible, inside the image."""
    rng = np.random.default_rng(seed)
    xy = truth[:, None] + rng.normal(0.0, 0.4, (len(truth), n_annotators, 5, 2))
    xy = np.clip(xy, -0.5, (sides - 0.5)[:, None, None, None])
    state = np.where(rng.random(xy.shape[:3]) < 0.02, PointState.INVISIBLE, PointState.VISIBLE).astype(np.int8)
    xy[state != PointState.VISIBLE] = np.nan
    return xy, state


def open_and_list(folder: Path, annotators: list[str]) -> int:
    with Project.open(folder) as project:
        infos = project.list_images()
        statuses = [project.status(name) for name in annotators]
    return len(infos) + sum(len(s) for s in statuses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="number of images (default: 10000)")
    parser.add_argument("--annotators", type=int, default=3, help="number of annotators (default: 3)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each stage after the import (default: 5)")
    parser.add_argument("--no-docs", action="store_true", help="print the results without editing docs/benchmarks.md")
    args = parser.parse_args()
    names = [f"annotator_{a + 1}" for a in range(args.annotators)]
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        start = time.perf_counter()
        paths, truth, sides = make_images(temp / "faces", args.images)
        make_seconds = time.perf_counter() - start
        print(f"wrote {len(paths)} source PNGs in {make_seconds:.1f} s", flush=True)

        folder = temp / "project"
        with Project.create(folder) as project:
            start = time.perf_counter()
            summary = project.add_images(paths, identity=lambda path: path.parent.name, source="bench")
            import_seconds = time.perf_counter() - start
            assert len(summary.added) == args.images, summary.describe()
            print(f"imported {args.images} images in {import_seconds:.1f} s", flush=True)

            xy, state = make_labels(truth, sides, args.annotators)
            ids = summary.added
            sets = {name: {image_id: (xy[n, a], state[n, a]) for n, image_id in enumerate(ids)} for a, name in enumerate(names)}
            start = time.perf_counter()
            project.import_label_sets(sets, action="bench")
            labels_seconds = time.perf_counter() - start
        db_mb = (folder / "project.sqlite").stat().st_size / 1e6

        open_median, open_best, _ = time_stage(lambda: open_and_list(folder, names), args.repeat)
        results = {}
        for fmt, suffix in (("alrf", "txt"), ("csv", "csv"), ("coco", "json")):
            def export(fmt=fmt, suffix=suffix):
                with Project.open(folder) as project:
                    return export_consensus(project, temp / f"consensus.{suffix}", fmt)
            results[fmt] = time_stage(export, args.repeat)
        written = results["alrf"][2][0].written

    load_after = os.getloadavg()[0]
    n_labels = args.images * args.annotators
    alrf_median, alrf_best, _ = results["alrf"]
    body = f"""Command: `python bench/bench_store.py --images {args.images} --annotators {args.annotators} --repeat {args.repeat}`

Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()}, Python {platform.python_version()},
SQLite {sqlite3.sqlite_version}, numpy {np.__version__}; single process; local disk. The machine was shared
with other jobs (1-minute load average {load_before:.1f} at the start, {load_after:.1f} at the end), so times
vary between runs: up to about 2x for the timed stages and 3x for the image import. Images: {args.images} distinct PNGs of
16-31 px made from the committed fixture faces; labels: {args.annotators} annotators, 0.4 px noise,
2% invisible points. Database after import: {db_mb:.1f} MB.

| stage | median (s) | best (s) | rate |
|---|---|---|---|
| image import (`Project.add_images`: hash, decode, PNG re-encode, copy, insert), one run | {import_seconds:.2f} | | {args.images / import_seconds:.0f} images/s |
| label import, {args.annotators} annotators in one transaction (`import_label_sets`), one run | {labels_seconds:.2f} | | {n_labels / labels_seconds:.0f} labels/s |
| **open and list** (`Project.open` + `list_images()` + `status()` per annotator; target: under 0.5 s) | **{open_median:.3f}** | {open_best:.3f} | |
| **consensus + ALRF export** (`export_consensus`, ALRF + JSON sidecar; target: under 1 s) | **{alrf_median:.3f}** | {alrf_best:.3f} | |
| consensus + CSV export | {results['csv'][0]:.3f} | {results['csv'][1]:.3f} | |
| consensus + COCO export | {results['coco'][0]:.3f} | {results['coco'][1]:.3f} | |

Result: {written} of {args.images} images in the consensus.
"""
    print(body)
    if not args.no_docs:
        update_docs(REPO / "docs" / "benchmarks.md", SECTION, body)


if __name__ == "__main__":
    main()
