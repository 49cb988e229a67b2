"""Baselines: the mean face shape and MTCNN's O-Net landmark network."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from s2ld_core.baselines import MeanShapePredictor
from s2ld_core.metrics import mean_offsets, nme
from s2ld_core.training_data import load_cnn_facepoint_eval, load_points_csv
from tests.core.fixture_faces import FACES_DIR

needs_onet = pytest.mark.skipif(
    importlib.util.find_spec("facenet_pytorch") is None,
    reason="MTCNN O-Net weights need facenet-pytorch (pip install --no-deps facenet-pytorch)",
)


def test_mean_shape_fit_and_predict():
    faces = load_points_csv(FACES_DIR / "points.csv")
    images = list(faces.images)
    predictor = MeanShapePredictor.fit(images, faces.xy)
    xy = predictor.predict_arrays(images)
    assert xy.shape == faces.xy.shape
    # Fitted on these faces, its mean offset is small and its error is large but bounded.
    assert np.abs(mean_offsets(xy, faces.xy)).max() < 0.5
    assert 0.05 < np.nanmean(nme(xy, faces.xy)) < 0.4


@pytest.mark.shared_data
@needs_onet
def test_onet_accurate_on_full_size_faces(cnn_facepoint_dir):
    from s2ld_core.baselines import ONetPredictor

    sets = load_cnn_facepoint_eval(cnn_facepoint_dir, "test", sizes=(120,), jpeg_quality=None, limit=60)
    faces = sets[120]
    xy = ONetPredictor().predict_arrays(list(faces.images))
    per_face = nme(xy, faces.xy, faces.state)
    # On 120 px faces MTCNN's landmarks are good: about 5% mean NME, with no constant offset.
    assert np.nanmean(per_face) < 0.07
    assert np.abs(mean_offsets(xy, faces.xy)).mean() < 0.6


@needs_onet
def test_onet_runs_on_fixture_faces():
    from s2ld_core.baselines import ONetPredictor

    faces = load_points_csv(FACES_DIR / "points.csv")
    xy = ONetPredictor().predict_arrays(list(faces.images))
    per_face = nme(xy, faces.xy, faces.state)
    assert xy.shape == faces.xy.shape
    assert np.nanmean(per_face) < 0.3


def test_onet_missing_weights_error(monkeypatch):
    from s2ld_core import baselines

    monkeypatch.setattr(baselines.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(baselines.BaselineUnavailableError, match="pip install --no-deps facenet-pytorch"):
        baselines.ONetPredictor()
