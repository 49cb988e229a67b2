"""Benchmark the event loop of the window while the training dock runs a training process.

Usage: python bench/bench_training_gui.py [--epochs 5] [--threads 1] [--model DIR]

A project is built in a temporary folder from the 40 committed real low-resolution faces
(tests/fixtures/lowres_faces), with the reference points of every face as one annotator's
labels. The active model is ``--model``, else the shipped default model, else (when that is
not in assets/ yet) a small G2 with widths 8, 8, 16, 16 trained here on the same faces. The window is shown
on the offscreen platform, the training dock starts a fine-tuning run in its worker process,
and a QTimer with a 10 ms interval records the gap between consecutive ticks from the start
until the run ends. The longest gap is the longest time the window could not react.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FACES = REPO / "tests" / "fixtures" / "lowres_faces"

from tests.core.fixture_faces import train_tiny_checkpoint  # noqa: E402  (needs REPO on sys.path)
TICK_MS = 10


def build_project(root: Path, model: Path):
    from s2ld_core.store import Project
    from s2ld_core.training_data import load_points_csv

    faces = load_points_csv(FACES / "points.csv")
    project = Project.create(root)
    added = project.add_images([FACES / key for key in faces.keys]).added
    labels = {image_id: (faces.xy[n], faces.state[n]) for n, image_id in enumerate(added)}
    project.import_labels("bench", labels, allow_outside=True)
    card = json.loads((model / "card.json").read_text())
    project.register_model(card.get("model_id", "default"), model, card, activate=True)
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="training epochs (default: 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training process (default: 1)")
    parser.add_argument("--model", type=Path, help="checkpoint folder of the active model (default: the shipped model)")
    args = parser.parse_args()

    from PySide6.QtCore import QTimer

    from alrf_studio.app import ensure_application
    from alrf_studio.main_window import MainWindow
    from alrf_studio.paths import default_model_dir

    app = ensure_application()
    tmp = Path(tempfile.mkdtemp(prefix="alrf_bench_training_"))
    model = args.model or default_model_dir()
    if not (model / "card.json").is_file():
        model = train_tiny_checkpoint(tmp / "bench-small", model_id="bench-small")
    print(f"active model: {model}")
    project = build_project(tmp / "project", model)
    window = MainWindow(project, "bench")
    window.resize(1280, 800)
    window.show()
    panel = window.model_assist.training_panel
    window.model_assist.show_training.trigger()
    panel.set_option("source", "annotator")
    panel.annotator_combo.setCurrentText("bench")
    panel.set_option("device", "cpu")
    panel.epochs.setValue(args.epochs)
    panel.batch_size.setValue(32)
    panel.threads = args.threads
    app.processEvents()

    gaps: list[float] = []
    long_gaps: list[tuple[float, str]] = []
    last = [time.perf_counter()]
    events: list[str] = []

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000.0)
        if gaps[-1] > 100:
            long_gaps.append((gaps[-1], events[-1] if events else "before the first event"))
        last[0] = now

    timer = QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(tick)
    panel.event_received.connect(lambda e: events.append(e["event"]))
    panel.run_finished.connect(lambda _kind: app.quit())
    started = time.perf_counter()
    last[0] = started
    timer.start()
    panel.start()
    app.exec()
    timer.stop()
    wall = time.perf_counter() - started

    gaps_sorted = sorted(gaps)
    p99 = gaps_sorted[int(0.99 * (len(gaps_sorted) - 1))]
    print(f"run: {panel.final_event}, {events.count('batch')} batch and {events.count('epoch')} epoch events, {wall:.1f} s")
    print(f"timer ticks: {len(gaps)} at {TICK_MS} ms; gap median {statistics.median(gaps):.1f} ms, "
          f"p99 {p99:.1f} ms, max {max(gaps):.1f} ms; gaps over 100 ms: {len(long_gaps)}")
    for gap, event in long_gaps:
        print(f"  {gap:.0f} ms after the event {event!r}")
    window.close()
    project.close()


if __name__ == "__main__":
    main()
