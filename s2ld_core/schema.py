"""The five MTCNN-order landmarks and the label types built on them.

Arrays follow the package convention: ``xy`` is float64 of shape (5, 2) in stored-image
pixels (centre of pixel (i, j) is (i, j)); ``state`` is int8 of shape (5,) holding
:class:`PointState` values. Coordinates of points that are not visible are NaN.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

N_POINTS = 5

#: Machine names in MTCNN order; the keys used in the store and in every file format.
LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

#: Names shown to people. "Left" is image-left, the subject's right side.
DISPLAY_NAMES: tuple[str, ...] = ("Left eye", "Right eye", "Nose tip", "Left mouth corner", "Right mouth corner")

#: Display colours as RGB tuples, distinguishable for common colour-vision deficiencies.
COLOURS: tuple[tuple[int, int, int], ...] = (
    (0, 114, 178),  # blue
    (230, 159, 0),  # orange
    (0, 158, 115),  # green
    (204, 121, 167),  # pink
    (240, 228, 66),  # yellow
)

#: Index pairs that trade places under a horizontal flip.
SWAP_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (3, 4))

#: Index permutation that applies all swap pairs at once.
FLIP_PERMUTATION: tuple[int, ...] = (1, 0, 2, 4, 3)


class PointState(enum.IntEnum):
    """State of one landmark in one label."""

    UNLABELLED = 0
    VISIBLE = 1
    INVISIBLE = 2


def empty_xy() -> np.ndarray:
    """Return a (5, 2) float64 array of NaN."""
    return np.full((N_POINTS, 2), np.nan, dtype=np.float64)


def empty_state() -> np.ndarray:
    """Return a (5,) int8 array with every point unlabelled."""
    return np.zeros(N_POINTS, dtype=np.int8)


@dataclass
class Label:
    """One annotator's points on one image.

    Attributes:
        xy: float64 (5, 2); NaN where the point is not visible.
        state: int8 (5,) of :class:`PointState`.
        from_prediction: bool (5,); True where the point was accepted from a model prediction.
        moved: bool (5,); True where such a point was then moved by a person.
        outside: bool (5,); True for a visible point outside the image that an import kept on request.
    """

    xy: np.ndarray = field(default_factory=empty_xy)
    state: np.ndarray = field(default_factory=empty_state)
    from_prediction: np.ndarray = field(default_factory=lambda: np.zeros(N_POINTS, dtype=bool))
    moved: np.ndarray = field(default_factory=lambda: np.zeros(N_POINTS, dtype=bool))
    outside: np.ndarray = field(default_factory=lambda: np.zeros(N_POINTS, dtype=bool))

    @property
    def visible(self) -> np.ndarray:
        """Boolean (5,) mask of visible points."""
        return self.state == PointState.VISIBLE

    @property
    def is_done(self) -> bool:
        """True when every point is visible or invisible."""
        return bool(np.all(self.state != PointState.UNLABELLED))

    @property
    def n_labelled(self) -> int:
        return int(np.count_nonzero(self.state != PointState.UNLABELLED))


@dataclass
class Prediction:
    """A model's points on one image, stored apart from human labels.

    Attributes:
        xy: float64 (5, 2) in stored-image pixels; set even where the model judges the point invisible.
        confidence: float32 (5,) in [0, 1].
        visible: bool (5,); the model's visibility decision.
        model_version: registry id of the model that made it.
    """

    xy: np.ndarray
    confidence: np.ndarray
    visible: np.ndarray
    model_version: str


def flip_points(xy: np.ndarray, width: int) -> np.ndarray:
    """Mirror points of shape (..., 5, 2) horizontally and swap left/right names.

    With pixel centres at integers, the mirror of x in an image of width W is W - 1 - x.
    """
    out = np.array(xy, dtype=np.float64, copy=True)
    out[..., 0] = (width - 1) - out[..., 0]
    return out[..., list(FLIP_PERMUTATION), :]


def validate_xy(xy: np.ndarray, width: int, height: int, names: tuple[str, ...] = LANDMARK_NAMES) -> list[str]:
    """Return problems with visible points of shape (K, 2): NaN, infinities or outside the image.

    A point is inside the image when -0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5.
    ``names`` labels the K points in the messages.
    """
    problems = []
    for k, (x, y) in enumerate(np.asarray(xy, dtype=np.float64)):
        name = names[k]
        if not (np.isfinite(x) and np.isfinite(y)):
            problems.append(f"{name}: coordinate ({x}, {y}) is not a finite number")
        elif not (-0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5):
            problems.append(
                f"{name}: ({x:g}, {y:g}) lies outside the {width}x{height} image "
                f"(valid x -0.5..{width - 0.5:g}, y -0.5..{height - 0.5:g})"
            )
    return problems
