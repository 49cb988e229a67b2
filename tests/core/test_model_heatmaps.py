"""Heatmap targets, decoding and the mapping between image and network input frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2ld_core.heatmaps import (
    calibrate_visibility_threshold,
    decide_visible,
    decode_heatmaps,
    encode_heatmaps,
    from_input_frame,
    resize_to_input,
    to_input_frame,
)
from s2ld_core.train import gaussian_targets


@pytest.mark.parametrize("face_size", [15, 16, 24, 32, 48, 100])
def test_encode_decode_round_trip(face_size):
    rng = np.random.default_rng(face_size)
    for _ in range(20):
        xy = rng.uniform(0.15 * face_size, 0.85 * face_size, size=(5, 2))
        uv = to_input_frame(xy, face_size, face_size, 32)
        maps = encode_heatmaps(uv, np.ones(5, bool), 32)
        decoded, confidence = decode_heatmaps(maps[None], 5)
        back = from_input_frame(decoded[0], face_size, face_size, 32)
        assert np.abs(back - xy).max() < 0.05
        assert confidence.min() > 0.5


def test_round_trip_non_square_image():
    xy = np.array([[7.2, 9.9], [15.1, 10.3], [11.0, 15.5], [8.4, 20.7], [14.6, 21.0]])
    uv = to_input_frame(xy, 22, 29, 32)
    decoded, _ = decode_heatmaps(encode_heatmaps(uv, np.ones(5, bool), 32)[None], 5)
    assert np.abs(from_input_frame(decoded[0], 22, 29, 32) - xy).max() < 0.05


def test_frame_mapping_matches_opencv_resize():
    # A single bright pixel keeps its centre under OpenCV's resize with the pixel-centre mapping.
    image = np.zeros((16, 16, 3), np.uint8)
    image[5, 9] = 255
    big = resize_to_input(image, 32).astype(np.float64)[..., 0]
    ys, xs = np.mgrid[:32, :32]
    centre = np.array([(big * xs).sum() / big.sum(), (big * ys).sum() / big.sum()])
    assert np.allclose(centre, to_input_frame(np.array([9.0, 5.0]), 16, 16, 32), atol=0.02)


def test_invisible_point_has_no_peak():
    uv = np.array([[10.0, 12.0], [21.0, 12.0], [16.0, 18.0], [12.0, 24.0], [np.nan, np.nan]])
    visible = np.array([True, True, True, True, False])
    maps = encode_heatmaps(uv, visible, 32)
    assert maps[4].max() == 0.0
    assert maps[0].max() == pytest.approx(1.0)


def test_background_is_one_minus_max():
    uv = np.array([[10.0, 12.0], [21.0, 12.0], [16.0, 18.0], [12.0, 24.0], [20.0, 24.0]])
    maps = encode_heatmaps(uv, np.ones(5, bool), 32)
    assert np.allclose(maps[5], 1.0 - maps[:5].max(axis=0))
    assert maps[5, 12, 10] == pytest.approx(0.0, abs=1e-6)
    assert maps[5, 0, 31] == pytest.approx(1.0, abs=1e-6)


def test_torch_targets_match_numpy():
    uv = np.array([[10.3, 12.7], [21.1, 12.2], [16.5, 18.0], [np.nan, np.nan], [20.9, 24.4]])
    visible = np.array([True, True, True, False, True])
    expected = encode_heatmaps(uv, visible, 32, sigma=1.5)
    got = gaussian_targets(torch.tensor(uv[None]), torch.tensor(visible[None]), 32, 1.5, True)[0].numpy()
    assert np.allclose(got, expected, atol=1e-5)


def test_border_peak_decodes_without_refinement():
    maps = np.zeros((1, 1, 32, 32), np.float32)
    maps[0, 0, 0, 5] = 0.9
    uv, confidence = decode_heatmaps(maps)
    assert uv[0, 0].tolist() == [5.0, 0.0]
    assert confidence[0, 0] == pytest.approx(0.9)


def test_visibility_threshold_separates_classes():
    confidence = np.array([0.9, 0.8, 0.7, 0.05, 0.1, 0.02])
    visible = np.array([True, True, True, False, False, False])
    threshold = calibrate_visibility_threshold(confidence, visible)
    assert np.array_equal(decide_visible(confidence, threshold), visible)


def test_visibility_threshold_without_invisible_points():
    confidence = np.linspace(0.3, 0.9, 1000)
    threshold = calibrate_visibility_threshold(confidence, np.ones(1000, bool), quantile=0.01)
    assert decide_visible(confidence, threshold).mean() == pytest.approx(0.99, abs=0.002)
