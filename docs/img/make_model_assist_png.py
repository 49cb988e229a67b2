"""Render docs/img/model_assist.png: the default model's predictions on a real crowd face and a finished fine-tune.

Usage: python docs/img/make_model_assist_png.py

Offscreen, on a fresh demo project (see screenshot_demo.py) pre-labelled by the shipped default
model. The known landmarks of the 100 cnn_facepoint demo faces are imported as the labels of
the annotator ``ann``. The Training panel fine-tunes the default model on ann's labels for
three epochs in its own worker process (CPU, one thread) and shows the comparison of the
default model and the fine-tuned one on the project's validation faces, so every number in the
picture comes from that run. The canvas shows a crowd face without labels, where the
predictions are hollow markers with their confidence.
"""

from __future__ import annotations

from pathlib import Path

from screenshot_demo import fit_canvas, import_as_annotator, known_landmarks, open_demo_window, save_and_close, widen_image_list

OUT = Path(__file__).resolve().with_name("model_assist.png")
#: A crowd face of 20 x 24 px that reads well at this size.
FACE = "crowd_ulfd_8_20"
EPOCHS = 3


def main() -> None:
    from PySide6.QtCore import QEventLoop, Qt
    from PySide6.QtWidgets import QDockWidget, QScrollArea

    images, xy, state = known_landmarks()
    demo = open_demo_window("ann", 1520, 1000, lambda d: import_as_annotator(d, "ann", images, xy, state))
    window = demo.window
    widen_image_list(demo, 560)
    window.show_image(demo.ids[FACE])

    panel = window.model_assist.training_panel
    window.model_assist.show_training.trigger()
    panel.set_option("source", "annotator")
    panel.annotator_combo.setCurrentText("ann")
    panel.set_option("init", "active")
    panel.set_option("device", "cpu")
    panel.epochs.setValue(EPOCHS)
    panel.batch_size.setValue(16)
    panel.threads = 1
    loop = QEventLoop()
    panel.run_finished.connect(lambda _kind: loop.quit())
    panel.start()
    loop.exec()

    points = window.findChild(QDockWidget, "dock:Points")
    training = window.findChild(QDockWidget, "dock:Training")
    window.resizeDocks([points, training], [250, 700], Qt.Orientation.Vertical)
    window.resizeDocks([training], [510], Qt.Orientation.Horizontal)
    fit_canvas(demo)
    scroll = training.findChild(QScrollArea)
    scroll.verticalScrollBar().setValue(scroll.verticalScrollBar().maximum())
    save_and_close(demo, OUT)
    models = (panel.comparison or {}).get("models", {})
    scores = ", ".join(f"{version} mean NME {metrics['nme']:.4f}" for version, metrics in models.items())
    print(f"wrote {OUT} (training ended with {panel.final_event}: {scores})")


if __name__ == "__main__":
    main()
