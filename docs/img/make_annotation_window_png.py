"""Render docs/img/annotation_window.png: the annotation window labelling a real 23 px demo face.

Usage: python docs/img/make_annotation_window_png.py

The window is rendered offscreen from a fresh demo project (see screenshot_demo.py), whose
faces carry the shipped default model's predictions. The annotator places points with real
mouse clicks at the faces' known landmarks: four faces before the shown one are finished and
one is half done. On the shown face the eyes and the nose are placed, so the legend shows the
left mouth corner next and the model's predictions for both mouth corners are drawn as hollow
markers with their confidence.
"""

from __future__ import annotations

from pathlib import Path

from screenshot_demo import click_image_point, identity_of, known_landmarks, open_demo_window, save_and_close, widen_image_list

OUT = Path(__file__).resolve().with_name("annotation_window.png")
#: A frontal 23 x 23 px face with known landmarks, and the faces above it in the image list.
FACE = "cfp_6081_0_0"
FINISHED = ("cfp_5495_1_0", "cfp_5509_0_0", "cfp_5618_0_0", "cfp_5855_0_0")
PARTIAL = "cfp_6010_2_0"


def main() -> None:
    from PySide6.QtCore import QPoint
    from PySide6.QtTest import QTest

    demo = open_demo_window("ann", 1440, 820)
    images, xy, _state = known_landmarks()
    truth = {identity_of(image): points for image, points in zip(images, xy)}
    window = demo.window
    widen_image_list(demo, 560)

    def label(identity: str, count: int) -> None:
        window.show_image(demo.ids[identity])
        demo.app.processEvents()
        for x, y in truth[identity][:count]:
            click_image_point(demo, x, y)

    for identity in FINISHED:
        label(identity, 5)
    label(PARTIAL, 2)
    label(FACE, 3)

    # The pointer rests near the predicted left mouth corner, where the next click goes.
    prediction = demo.project.get_prediction(demo.ids[FACE])
    mouth = prediction.xy[3]
    cursor = window.canvas.map_from_image(mouth[0] + 0.4, mouth[1] + 0.6)
    QTest.mouseMove(window.canvas, QPoint(round(cursor.x()), round(cursor.y())))
    save_and_close(demo, OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
