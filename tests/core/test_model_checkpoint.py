"""Checkpoints: safetensors round trip, the model card, and rejection of pickle files."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from s2ld_core.checkpoint import (
    CARD_NAME,
    WEIGHTS_NAME,
    CheckpointError,
    ModelCard,
    PickleCheckpointError,
    load_card,
    load_checkpoint,
    save_checkpoint,
)
from s2ld_core.model import G2, G2Config
from s2ld_core.predict import Predictor
from s2ld_core.quantize import CalibrationMissingError, load_calibration, save_calibration
from s2ld_core.metrics import nme
from s2ld_core.training_data import load_points_csv
from tests.core.fixture_faces import FACES_DIR, fixture_face


def _trained_looking_model() -> G2:
    torch.manual_seed(0)
    model = G2(G2Config(widths=(8, 16, 16, 24)))
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, 32, 32))
    return model.eval()


def test_round_trip_identical_outputs(tmp_path):
    model = _trained_looking_model()
    card = ModelCard(model_id="test-1", config={}, data_hash="abc", metrics={"val": 0.1}, parent_model="g2-default")
    save_checkpoint(model, card, tmp_path / "ckpt")

    loaded, loaded_card = load_checkpoint(tmp_path / "ckpt")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not loaded.training
    assert loaded.config == model.config
    assert loaded_card.parent_model == "g2-default"
    assert loaded_card.data_hash == "abc"


def test_card_has_required_fields(tmp_path):
    save_checkpoint(_trained_looking_model(), ModelCard(model_id="m", config={}), tmp_path)
    data = json.loads((tmp_path / CARD_NAME).read_text())
    for key in ("config", "data_hash", "metrics", "parent_model", "code_version", "created", "model_id"):
        assert key in data
    assert data["config"]["widths"] == [8, 16, 16, 24]
    assert load_card(tmp_path).model_id == "m"


def test_pickle_checkpoint_rejected(tmp_path):
    model = _trained_looking_model()
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(PickleCheckpointError, match="pickle checkpoint"):
        load_checkpoint(path)
    with pytest.raises(PickleCheckpointError):
        Predictor(path)


def test_folder_with_pickle_only_rejected(tmp_path):
    torch.save(_trained_looking_model().state_dict(), tmp_path / "model.pth")
    with pytest.raises(CheckpointError, match=CARD_NAME):
        load_checkpoint(tmp_path)


def test_mismatched_weights_rejected(tmp_path):
    save_checkpoint(_trained_looking_model(), ModelCard(model_id="m", config={}), tmp_path)
    card = json.loads((tmp_path / CARD_NAME).read_text())
    card["config"]["widths"] = [16, 16, 16, 16]
    (tmp_path / CARD_NAME).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(tmp_path)


def test_missing_weights_named(tmp_path):
    save_checkpoint(_trained_looking_model(), ModelCard(model_id="m", config={}), tmp_path)
    (tmp_path / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError, match=WEIGHTS_NAME):
        load_checkpoint(tmp_path)


def test_predictor_on_saved_checkpoint(tmp_path):
    save_checkpoint(_trained_looking_model(), ModelCard(model_id="tiny", config={}), tmp_path)
    predictor = Predictor(tmp_path, device="cpu", flip=False)
    faces = [fixture_face(0), fixture_face(1), np.zeros((40, 27, 3), np.uint8)]
    predictions = predictor.predict(faces)
    assert len(predictions) == 3
    for face, prediction in zip(faces, predictions):
        assert prediction.xy.shape == (5, 2)
        assert prediction.model_version == "tiny"
        assert np.all(prediction.xy[:, 0] >= -0.5)
        assert np.all(prediction.xy[:, 0] <= face.shape[1] - 0.5)
        assert np.all((prediction.confidence >= 0) & (prediction.confidence <= 1))


def test_predictor_speedups_keep_outputs(tmp_path):
    save_checkpoint(_trained_looking_model(), ModelCard(model_id="tiny", config={}), tmp_path)
    faces = [fixture_face(i) for i in range(6)]
    plain = Predictor(tmp_path, device="cpu", flip=True, fuse=False, jit=False, precision="fp32").predict_arrays(faces)
    fast = Predictor(tmp_path, device="cpu", flip=True, fuse=True, jit=True, precision="fp32").predict_arrays(faces)
    assert np.allclose(plain[1], fast[1], atol=1e-4)
    # An untrained network has flat heatmaps, so only points with a clear peak are compared.
    clear = plain[1] > 0.05
    assert np.allclose(plain[0][clear], fast[0][clear], atol=0.05)


def test_bfloat16_matches_float32_points():
    faces = load_points_csv(FACES_DIR / "points.csv")
    images = list(faces.images)
    exact = Predictor(device="cpu", flip=False, precision="fp32")
    half = Predictor(device="cpu", flip=False, precision="bf16")
    assert half.dtype == torch.bfloat16
    xy32, conf32, _ = exact.predict_arrays(images)
    xy16, conf16, _ = half.predict_arrays(images)
    shift = np.linalg.norm(xy32 - xy16, axis=-1)
    # bfloat16 keeps 8 significant bits, so points move by hundredths of a pixel.
    assert np.median(shift) < 0.05
    assert shift.max() < 0.5
    assert np.abs(conf32 - conf16).max() < 0.05
    nme32 = np.nanmean(nme(xy32, faces.xy, faces.state))
    nme16 = np.nanmean(nme(xy16, faces.xy, faces.state))
    assert abs(nme32 - nme16) < 0.002


def test_unknown_precision_named():
    with pytest.raises(ValueError, match="'fp8'"):
        Predictor(device="cpu", precision="fp8")


def test_int8_predictions_close_to_float32():
    faces = load_points_csv(FACES_DIR / "points.csv")
    images = list(faces.images)
    exact = Predictor(device="cpu", flip=False, precision="fp32")
    int8 = Predictor(device="cpu", flip=False, precision="int8")
    assert int8.precision == "int8"
    xy32, _, _ = exact.predict_arrays(images)
    xy8, conf8, _ = int8.predict_arrays(images)
    shift = np.linalg.norm(xy32 - xy8, axis=-1)
    assert np.median(shift) < 0.1
    assert np.all((conf8 >= 0) & (conf8 <= 1))
    nme32 = np.nanmean(nme(xy32, faces.xy, faces.state))
    nme8 = np.nanmean(nme(xy8, faces.xy, faces.state))
    assert abs(nme32 - nme8) < 0.003


def test_int8_without_calibration_named(tmp_path):
    save_checkpoint(_trained_looking_model(), ModelCard(model_id="tiny", config={}), tmp_path)
    with pytest.raises(CalibrationMissingError, match="calibration.safetensors"):
        Predictor(tmp_path, device="cpu", precision="int8")


def test_calibration_shape_checked(tmp_path):
    save_checkpoint(_trained_looking_model(), ModelCard(model_id="tiny", config={}), tmp_path)
    save_calibration(tmp_path, np.zeros((4, 24, 24, 3), np.uint8))
    with pytest.raises(ValueError, match="expected uint8 N x 32 x 32 x 3"):
        load_calibration(tmp_path, 32)
    with pytest.raises(ValueError, match="expected N x S x S x 3"):
        save_calibration(tmp_path, np.zeros((4, 32, 32), np.uint8))


def test_int8_on_calibrated_tiny_model(tmp_path):
    save_checkpoint(_trained_looking_model(), ModelCard(model_id="tiny", config={}), tmp_path)
    save_calibration(tmp_path, np.stack([cv2.resize(fixture_face(i), (32, 32)) for i in range(8)]))
    xy, confidence, visible = Predictor(tmp_path, device="cpu", flip=True, precision="int8").predict_arrays(
        [fixture_face(0), fixture_face(1)]
    )
    assert xy.shape == (2, 5, 2)
    assert np.all(np.isfinite(xy))
