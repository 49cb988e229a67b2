"""The shipped default model reaches the accuracy written in its card and in docs/model.md."""

from __future__ import annotations

import json

import numpy as np
import pytest

from s2ld_core.checkpoint import CARD_NAME
from s2ld_core.metrics import nme
from s2ld_core.predict import DEFAULT_MODEL_DIR, Predictor
from s2ld_core.training_data import load_cnn_facepoint_eval, load_points_csv
from tests.core.fixture_faces import FACES_DIR


@pytest.fixture(scope="module")
def card() -> dict:
    path = DEFAULT_MODEL_DIR / CARD_NAME
    if not path.is_file():
        pytest.skip(f"default model not found at {DEFAULT_MODEL_DIR}")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def predictor(card) -> Predictor:
    return Predictor(device="cpu", flip=True, threads=2)


def test_default_model_on_fixture_faces(card, predictor):
    documented = card["metrics"]["fixture_lowres_faces_flip_nme"]
    faces = load_points_csv(FACES_DIR / "points.csv")
    xy, confidence, visible = predictor.predict_arrays(list(faces.images))
    measured = float(np.nanmean(nme(xy, faces.xy, faces.state)))
    # The same 40 faces through the same weights: only float rounding may differ.
    assert measured == pytest.approx(documented, abs=0.002)
    assert measured < 0.08
    assert visible.mean() > 0.95


@pytest.mark.shared_data
def test_default_model_on_test_split_sample(card, predictor, cnn_facepoint_dir):
    documented = card["metrics"]["cnn_facepoint_test_jpeg50"]["results"]["G2 + flip"]["24"]["mean"]
    faces = load_cnn_facepoint_eval(cnn_facepoint_dir, "test", sizes=(24,), jpeg_quality=50, limit=400)[24]
    xy, _, _ = predictor.predict_arrays(list(faces.images))
    measured = float(np.nanmean(nme(xy, faces.xy, faces.state)))
    # 400 of the 2,027 test faces: the sample mean stays within about 0.5 points of the whole split.
    assert measured == pytest.approx(documented, abs=0.0075)


def test_default_model_card_describes_training(card):
    assert card["config"]["input_size"] == 32
    assert card["training"]["sources"] == ["cnn_facepoint:train"]
    assert card["data_hash"]
    assert 0.0 < card["heatmap"]["visibility_threshold"] < 1.0
