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


def train_tiny_checkpoint(folder: Path, model_id: str = "tiny-fixture") -> Path:
    """Train a small G2 (widths 8, 8, 16, 16) for 30 one-batch epochs on 32 fixture faces and save it in ``folder``.

    The other 8 faces validate. This takes about 7 s on one CPU thread and gives rough but
    real points, for tests and benchmarks that need a trained model without the shipped one.
    """
    import torch

    from s2ld_core.checkpoint import save_checkpoint
    from s2ld_core.model import G2Config
    from s2ld_core.train import TrainConfig, result_card, train
    from s2ld_core.training_data import Sample, load_points_csv

    torch.set_num_threads(1)
    faces = load_points_csv(FACES_DIR / "points.csv")
    samples = [Sample(faces.images[i], faces.xy[i], faces.state[i], False, key=faces.keys[i]) for i in range(len(faces.keys))]
    config = TrainConfig(
        model=G2Config(widths=(8, 8, 16, 16)),
        # A broad target learns faster from 32 faces than the default sigma of 1.0.
        sigma=1.5,
        epochs=30,
        batch_size=32,
        lr=5e-3,
        warmup_epochs=2,
        patience=30,
        threads=1,
        device="cpu",
    )
    result = list(train(samples[:32], config, val_samples=samples[32:]))[-1].result
    card = result_card(result, config, model_id, sources=["tests/fixtures/lowres_faces"])
    return save_checkpoint(result.model, card, folder)
