"""Benchmark the annotation window: image switch time and start-up time to the first face.

Usage: python bench/bench_gui.py [--sizes 700 10000] [--switches 400] [--starts 5]

Projects are built in a temporary folder from the committed real low-resolution faces
(tests/fixtures/lowres_faces). Importing 10,000 images one by one through the store would
take minutes, so the image rows are inserted directly. The 40 real faces are hard-linked
under distinct names. Every image gets the five reference points of its face for annotator
"bench" through :meth:`Project.import_labels`, so each switch draws five points.

Switch time is measured in-process on the offscreen platform: from pressing N (the "next
image" action) until ``processEvents`` has painted the canvas, legend, thumbnails, list and
status bar. The process's CPU time is reported beside the wall time, because other work on a
shared machine stretches the wall time. Start-up time is the wall-clock time from launching a
new Python process until the canvas has painted its first face, including interpreter start
and all imports.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FACES = REPO / "tests" / "fixtures" / "lowres_faces"
ANNOTATOR = "bench"


def build_project(root: Path, n_images: int) -> None:
    import numpy as np

    from s2ld_core.schema import LANDMARK_NAMES, PointState
    from s2ld_core.store import DB_NAME, IMAGES_DIR, Project

    with open(FACES / "points.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    Project.create(root).close()

    records, labels = [], {}
    stamp = "2024-01-01T00:00:00.000+00:00"
    for n in range(n_images):
        row = rows[n % len(rows)]
        source = FACES / row["image"]
        rel = f"{IMAGES_DIR}/{n + 1:07d}.png"
        os.link(source, root / rel)
        digest = hashlib.sha256(f"{row['image']}:{n}".encode()).hexdigest()
        identity = f"{Path(row['image']).stem.split('_')[0]}_{n // len(rows)}"
        records.append((n + 1, rel, f"synthetic/{identity}/{row['image']}", digest, int(row["width"]), int(row["height"]), identity, "bench", stamp))
        xy = np.array([[float(row[f"{name}_x"]), float(row[f"{name}_y"])] for name in LANDMARK_NAMES])
        labels[n + 1] = (xy, np.full(len(LANDMARK_NAMES), PointState.VISIBLE, dtype=np.int8))
    with sqlite3.connect(root / DB_NAME) as conn:
        conn.executemany("INSERT INTO images VALUES (?,?,?,?,?,?,?,?,?)", records)
    with Project.open(root) as project:
        project.import_labels(ANNOTATOR, labels)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[index]


def measure_switch(root: Path, switches: int) -> dict[str, float]:
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtTest import QTest

    from alrf_studio.app import ensure_application
    from alrf_studio.main_window import MainWindow
    from s2ld_core.store import Project

    app = ensure_application()
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(root / "bench-settings"))
    project = Project.open(root)
    window = MainWindow(project, ANNOTATOR)
    window.resize(1280, 800)
    window.show()
    window.activateWindow()
    window.canvas.setFocus()
    app.processEvents()
    first = project.image_ids()[0]
    window.show_image(first)
    app.processEvents()

    times, cpu_times = [], []
    n = 0
    while len(times) < switches:
        before = window.current_image_id
        if window.image_list.neighbour(before, 1) is None:
            # At the last image: start again from the first, untimed.
            window.show_image(first)
            app.processEvents()
            continue
        t0, c0 = time.perf_counter(), time.process_time()
        QTest.keyClick(window.canvas, Qt.Key.Key_N)
        app.processEvents()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        if window.current_image_id != before + 1:
            raise SystemExit(f"the N key did not switch from image {before}")
        n += 1
        if n > 20:  # the first switches warm up caches in Qt and SQLite
            times.append(elapsed * 1000.0)
            cpu_times.append(cpu * 1000.0)
    window.close()
    project.close()
    return {
        "median": statistics.median(times),
        "p95": percentile(times, 95),
        "max": max(times),
        "cpu_median": statistics.median(cpu_times),
        "cpu_p95": percentile(cpu_times, 95),
    }


def start_child(root: str) -> None:
    """Run in a fresh process: start the app on ``root`` and print the wall-clock time of the first painted face."""
    from PySide6.QtCore import QSettings, QTimer

    from alrf_studio.app import create_main_window, ensure_application
    from s2ld_core.store import Project

    app = ensure_application()
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(Path(root) / "bench-settings"))
    window = create_main_window(Project.open(root), ANNOTATOR)

    def on_paint() -> None:
        print(f"FIRST_FACE {time.time():.6f} torch={'torch' in sys.modules}", flush=True)
        QTimer.singleShot(0, app.quit)

    window.canvas.painted.connect(on_paint)
    window.show()
    app.exec()


def measure_start(root: Path, starts: int) -> dict[str, float]:
    """Launch the app ``starts`` times; return seconds from launch to the first painted face."""
    walls = []
    for _ in range(starts):
        # Wall-clock time in both processes, so the interval includes interpreter start-up.
        t0 = time.time()
        out = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--start-child", str(root)],
            capture_output=True, text=True, check=True, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
        )
        line = next(x for x in out.stdout.splitlines() if x.startswith("FIRST_FACE"))
        _, painted_at, torch_flag = line.split()
        if torch_flag != "torch=False":
            raise SystemExit("torch was imported on the start-up path")
        walls.append(float(painted_at) - t0)
    return {"median": statistics.median(walls), "max": max(walls)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[700, 10000], help="project sizes in images")
    parser.add_argument("--switches", type=int, default=400, help="image switches measured per project")
    parser.add_argument("--starts", type=int, default=5, help="app starts measured on the largest project")
    parser.add_argument("--start-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.start_child:
        start_child(args.start_child)
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench_gui_"))
    try:
        for size in args.sizes:
            root = tmp / f"p{size}"
            t0 = time.perf_counter()
            build_project(root, size)
            built = time.perf_counter() - t0
            switch = measure_switch(root, args.switches)
            print(
                f"{size:>6} images (built in {built:.1f} s): next-image switch median {switch['median']:.2f} ms, "
                f"p95 {switch['p95']:.2f} ms, max {switch['max']:.2f} ms over {args.switches} switches "
                f"(CPU time of this process: median {switch['cpu_median']:.2f} ms, p95 {switch['cpu_p95']:.2f} ms)",
                flush=True,
            )
        largest = tmp / f"p{max(args.sizes)}"
        start = measure_start(largest, args.starts)
        print(
            f"{max(args.sizes):>6} images: start to first face (process launch to first paint) "
            f"median {start['median']:.3f} s, max {start['max']:.3f} s over {args.starts} starts",
            flush=True,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
