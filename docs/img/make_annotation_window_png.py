"""Render docs/img/annotation_window.png: the annotation window labelling a real 24 px face.

Usage: python docs/img/make_annotation_window_png.py

The window is rendered offscreen from a temporary project of the committed fixture faces
(tests/fixtures/lowres_faces). The points are the fixture's reference landmarks, placed with
real mouse clicks.
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
OUT = Path(__file__).resolve().with_name("annotation_window.png")


def main() -> None:
    import numpy as np
    from PySide6.QtCore import QPoint, QSettings, Qt
    from PySide6.QtTest import QTest

    from alrf_studio.app import ensure_application
    from alrf_studio.main_window import MainWindow
    from s2ld_core.schema import LANDMARK_NAMES
    from s2ld_core.store import Project

    with open(FACES / "points.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    points = {r["image"]: np.array([[float(r[f"{n}_x"]), float(r[f"{n}_y"])] for n in LANDMARK_NAMES]) for r in rows}

    app = ensure_application()
    tmp = Path(tempfile.mkdtemp(prefix="alrf_screenshot_"))
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp / "settings"))
    project = Project.create(tmp / "project", name="ALRF demo faces")
    files = [FACES / r["image"] for r in rows[:14]]
    project.add_images(files, identity=lambda p: p.stem.split("_")[0])
    by_name = {Path(info.original_path).name: info.id for info in project.list_images()}

    window = MainWindow(project, "alice")
    window.actions.navigate.auto_advance.setChecked(False)
    window.resize(1280, 800)
    window.show()
    app.processEvents()

    def label(name: str, count: int) -> None:
        window.show_image(by_name[name])
        app.processEvents()
        for x, y in points[name][:count]:
            p = window.canvas.map_from_image(x, y)
            QTest.mouseClick(window.canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(round(p.x()), round(p.y())))

    # A few finished and partial faces so the list shows every status.
    for name in ("face00_0.png", "face01_0.png", "face02_0.png", "face04_0.png"):
        label(name, 5)
    label("face05_0.png", 2)
    window.show_image(by_name["face03_0.png"])
    QTest.keyClick(window.canvas, Qt.Key.Key_V)
    for _ in range(4):
        QTest.keyClick(window.canvas, Qt.Key.Key_V)

    # The face being labelled: 24 x 24 pixels, eyes and nose placed, the mouth corners next.
    face = "face06_0.png"
    label(face, 3)
    mouth = points[face][3]
    cursor = window.canvas.map_from_image(mouth[0] + 0.3, mouth[1] - 0.2)
    QTest.mouseMove(window.canvas, QPoint(round(cursor.x()), round(cursor.y())))
    app.processEvents()
    window.grab().save(str(OUT))
    window.close()
    project.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
