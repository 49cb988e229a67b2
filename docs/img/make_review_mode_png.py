"""Render docs/img/review_mode.png: review mode on a real demo face where one annotator swapped the eyes.

Usage: python docs/img/make_review_mode_png.py

Offscreen, on a fresh demo project (see screenshot_demo.py). The three simulated annotators of
the headless demo (:func:`s2ld_core.demo_run.simulate_annotators`: the known landmarks of the 100
cnn_facepoint faces plus Gaussian noise, and a few points marked invisible) label those faces,
and the second of them exchanges the left and the right eye on one 27 px face. Each
annotator's labels are written to a label CSV and imported from it. The reviewer turns review
mode on, hides the model's predictions (M) and steps with "next flagged image" to that face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from screenshot_demo import identity_of, import_as_annotator, known_landmarks, open_demo_window, save_and_close, widen_image_list

OUT = Path(__file__).resolve().with_name("review_mode.png")
#: A frontal 27 x 27 px face in colour.
FACE = "cfp_830_0_0"
#: Index of the simulated annotator who swaps the eyes on FACE.
SWAPPER = 1


def label_known_faces(demo) -> None:
    """Import the three simulated annotators' labels, with SWAPPER's eyes exchanged on FACE."""
    from s2ld_core.demo_run import simulate_annotators

    images, truth_xy, _state = known_landmarks()
    infos = {info.id: info for info in demo.project.list_images()}
    sizes = np.array([(infos[demo.ids[identity_of(image)]].width, infos[demo.ids[identity_of(image)]].height) for image in images])
    row = [identity_of(image) for image in images].index(FACE)
    for index, (name, (xy, state)) in enumerate(simulate_annotators(truth_xy, sizes).items()):
        if index == SWAPPER:
            xy[row, [0, 1]] = xy[row, [1, 0]]
            state[row, [0, 1]] = state[row, [1, 0]]
        import_as_annotator(demo, name, images, xy, state)


def main() -> None:
    demo = open_demo_window("reviewer", 1440, 940, label_known_faces)
    window = demo.window
    widen_image_list(demo, 500)
    window.model_assist.show_predictions.setChecked(False)
    window.review.actions.review_mode.trigger()

    target = demo.ids[FACE]
    for _ in range(len(demo.ids)):
        window.review.go_flagged(+1)
        if window.current_image_id == target:
            break
    if window.current_image_id != target:
        raise SystemExit(f"{FACE} (image {target}) was not among the flagged images; choose another face")
    save_and_close(demo, OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
