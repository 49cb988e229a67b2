"""Render docs/img/review_mode.png: review mode on a real face where one annotator swapped the eyes.

Usage: python docs/img/make_review_mode_png.py

The window is rendered offscreen from a temporary project of the committed fixture faces
(tests/fixtures/lowres_faces). Three simulated annotators label twelve faces: ann and bob
add Gaussian noise of 0.25 px to the fixture's reference landmarks, cat adds the same noise but
exchanges the eyes on two faces and misses the nose on one. The picture shows the first face
with cat's swap.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
FACES = REPO / "tests" / "fixtures" / "lowres_faces"
OUT = Path(__file__).resolve().with_name("review_mode.png")
NOISE_PX = 0.25
SWAPPED = (3, 8)
MISSED_NOSE = 5


def main() -> None:
    import numpy as np
    from PySide6.QtCore import QSettings

    from alrf_studio.app import ensure_application
    from alrf_studio.main_window import MainWindow
    from s2ld_core.schema import LANDMARK_NAMES, N_POINTS, PointState
    from s2ld_core.store import Project

    with open(FACES / "points.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:12]
    truth = np.stack([[[float(r[f"{n}_x"]), float(r[f"{n}_y"])] for n in LANDMARK_NAMES] for r in rows])

    app = ensure_application()
    tmp = Path(tempfile.mkdtemp(prefix="alrf_screenshot_"))
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp / "settings"))
    project = Project.create(tmp / "project", name="ALRF demo faces")
    project.add_images([FACES / r["image"] for r in rows], identity=lambda p: p.stem.split("_")[0])
    ids = project.image_ids()

    rng = np.random.default_rng(1)
    visible = np.full(N_POINTS, PointState.VISIBLE, dtype=np.int8)
    for name in ("ann", "bob", "cat"):
        xy = truth + rng.normal(0.0, NOISE_PX, truth.shape)
        if name == "cat":
            for i in SWAPPED:
                xy[i, [0, 1]] = xy[i, [1, 0]]
            xy[MISSED_NOSE, 2, 1] += 3.0
        project.import_labels(name, {image_id: (xy[i], visible) for i, image_id in enumerate(ids)})

    window = MainWindow(project, "reviewer")
    window.actions.navigate.auto_advance.setChecked(False)
    window.resize(1400, 860)
    window.show()
    app.processEvents()
    window.review.actions.review_mode.trigger()
    window.review.go_flagged(+1)
    while window.current_image_id != ids[SWAPPED[0]]:
        window.review.go_flagged(+1)
    app.processEvents()
    window.grab().save(str(OUT))
    window.close()
    project.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
