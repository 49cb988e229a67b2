"""Child process for the crash test: labels faces with real clicks until it is killed.

Usage: python crash_child.py PROJECT ANNOTATOR

After each click it prints ``PLACED <image id> <point index> <x> <y>`` with the values the
window shows for that point, using repr so the parent can compare them exactly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from PySide6.QtCore import QPoint, QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from alrf_studio.app import ensure_application  # noqa: E402
from alrf_studio.main_window import MainWindow  # noqa: E402
from s2ld_core.schema import PointState  # noqa: E402
from s2ld_core.store import Project  # noqa: E402


def main(root: str, annotator: str) -> None:
    app = ensure_application()
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(Path(root) / "child-settings"))
    project = Project.open(root)
    window = MainWindow(project, annotator)
    window.actions.navigate.auto_advance.setChecked(True)
    window.resize(900, 700)
    window.show()
    step = [0]

    def click_next() -> None:
        canvas = window.canvas
        w, h = canvas.image_size()
        k = window.session.next_index()
        if k is None:
            window.go_next_unfinished()
            QTimer.singleShot(1, click_next)
            return
        # Spread the points over the face so that each image gets distinct positions.
        x = (0.2 + 0.15 * k) * w + 0.37 * (step[0] % 3)
        y = (0.3 + 0.1 * k) * h
        p = canvas.map_from_image(x, y)
        image_id = window.current_image_id
        QTest.mouseClick(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(round(p.x()), round(p.y())))
        label = window.session.label if window.current_image_id == image_id else project.get_label(image_id, annotator)
        if label.state[k] == PointState.VISIBLE:
            print(f"PLACED {image_id} {k} {float(label.xy[k, 0])!r} {float(label.xy[k, 1])!r}", flush=True)
        step[0] += 1
        QTimer.singleShot(1, click_next)

    QTimer.singleShot(0, click_next)
    app.exec()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
