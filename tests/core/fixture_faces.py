"""Access to the committed low-resolution face fixture (tests/fixtures/lowres_faces)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from s2ld_core.imageio import read_image
from s2ld_core.schema import LANDMARK_NAMES

FACES_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "lowres_faces"


def fixture_points() -> pd.DataFrame:
    """Return points.csv of the fixture: image, width, height, source_image, <point>_x, <point>_y."""
    return pd.read_csv(FACES_DIR / "points.csv")


def fixture_xy(row: pd.Series) -> np.ndarray:
    """Return the (5, 2) points of one points.csv row in MTCNN order."""
    return np.array([[row[f"{name}_x"], row[f"{name}_y"]] for name in LANDMARK_NAMES], dtype=np.float64)


def fixture_face(index: int = 0) -> np.ndarray:
    """Return the RGB pixels of fixture face number ``index``."""
    return read_image(FACES_DIR / fixture_points()["image"].iloc[index])
