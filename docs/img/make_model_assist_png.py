"""Render docs/img/model_assist.png: predictions on a real face and a finished retraining run.

Usage: python docs/img/make_model_assist_png.py

Offscreen, in a temporary project of the 40 committed fixture faces (tests/fixtures/lowres_faces)
whose reference points are one annotator's labels. The model is the shipped default model when
assets/ has it, else a small G2 trained here on the same faces. The window pre-labels every face,
the annotator accepts two predicted points with clicks, and the training dock fine-tunes the
model for a few epochs in its worker process and shows the comparison.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
OUT = Path(__file__).resolve().with_name("model_assist.png")


def main() -> None:
    from PySide6.QtCore import QEventLoop, QPoint, QSettings, Qt
    from PySide6.QtTest import QTest

    from alrf_studio.app import ensure_application
    from alrf_studio.main_window import MainWindow
    from alrf_studio.paths import default_model_dir
    from bench_training_gui import build_project, small_model

    app = ensure_application()
    tmp = Path(tempfile.mkdtemp(prefix="alrf_screenshot_"))
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp / "settings"))
    model = default_model_dir() if (default_model_dir() / "card.json").is_file() else small_model(tmp / "small-g2")
    project = build_project(tmp / "project", model)

    window = MainWindow(project, "alice")
    window.actions.navigate.auto_advance.setChecked(False)
    window.resize(1400, 1000)
    window.show()
    assist = window.model_assist
    loop = QEventLoop()
    assist.prelabel_finished.connect(lambda _result: loop.quit())
    assist.start_prelabel("all")
    loop.exec()

    window.show_image(project.image_ids()[6])
    prediction = project.get_prediction(window.current_image_id)
    for k in (0, 1):
        p = window.canvas.map_from_image(*prediction.xy[k])
        QTest.mouseClick(window.canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(round(p.x()), round(p.y())))
    QTest.keyClick(window.canvas, Qt.Key.Key_3)

    panel = assist.training_panel
    assist.show_training.trigger()
    panel.set_option("source", "annotator")
    panel.annotator_combo.setCurrentText("bench")
    panel.set_option("device", "cpu")
    panel.epochs.setValue(8)
    panel.batch_size.setValue(16)
    panel.threads = 1
    panel.run_finished.connect(lambda _kind: loop.quit())
    panel.start()
    loop.exec()
    assist.set_order("confidence")
    window.show_image(window.current_image_id)
    from PySide6.QtWidgets import QDockWidget, QScrollArea

    points = window.findChild(QDockWidget, "dock:Points")
    training = window.findChild(QDockWidget, "dock:Training")
    window.resizeDocks([points, training], [250, 700], Qt.Orientation.Vertical)
    window.resizeDocks([training], [440], Qt.Orientation.Horizontal)
    app.processEvents()
    scroll = training.findChild(QScrollArea)
    scroll.verticalScrollBar().setValue(scroll.verticalScrollBar().maximum())
    app.processEvents()
    window.grab().save(str(OUT))
    window.close()
    project.close()
    print(f"wrote {OUT} (training ended with {panel.final_event})")


if __name__ == "__main__":
    main()
