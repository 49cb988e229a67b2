"""NME and its summaries, with explicit normalisers and invisible points excluded."""

from __future__ import annotations

import numpy as np
import pytest

from s2ld_core import schema
from s2ld_core.metrics import auc, ced_curve, mean_offsets, nme, summarise, summarise_by_group, visibility_accuracy
from tests.core.fixture_faces import fixture_points, fixture_xy


@pytest.fixture(scope="module")
def gt() -> np.ndarray:
    table = fixture_points()
    return np.stack([fixture_xy(row) for _, row in table.iterrows()])


def test_interocular_nme_of_known_shift(gt):
    shifted = gt + np.array([0.3, -0.4])
    iod = np.linalg.norm(gt[:, 0] - gt[:, 1], axis=-1)
    assert np.allclose(nme(shifted, gt), 0.5 / iod)


def test_box_diagonal_normaliser(gt):
    boxes = np.tile([0.0, 0.0, 30.0, 40.0], (len(gt), 1))
    assert np.allclose(nme(gt + [0.0, 1.0], gt, normaliser="box_diagonal", boxes=boxes), 1.0 / 50.0)
    with pytest.raises(ValueError, match="needs boxes"):
        nme(gt, gt, normaliser="box_diagonal")


def test_array_normaliser(gt):
    assert np.allclose(nme(gt + [2.0, 0.0], gt, normaliser=np.full(len(gt), 4.0)), 0.5)


def test_invisible_points_excluded(gt):
    pred = gt.copy()
    pred[:, 2] += 100.0  # a wild nose prediction
    state = np.full(gt.shape[:2], schema.PointState.VISIBLE, dtype=np.int8)
    state[:, 2] = schema.PointState.INVISIBLE
    gt_masked = gt.copy()
    gt_masked[:, 2] = np.nan
    assert np.allclose(nme(pred, gt_masked, state), 0.0)


def test_invisible_eye_gives_nan_interocular(gt):
    state = np.full(gt.shape[:2], schema.PointState.VISIBLE, dtype=np.int8)
    state[0, 0] = schema.PointState.INVISIBLE
    values = nme(gt, gt, state)
    assert np.isnan(values[0])
    assert np.all(values[1:] == 0.0)


def test_coinciding_eyes_give_nan_nme(gt):
    same_eyes = gt.copy()
    same_eyes[0, 1] = same_eyes[0, 0]
    values = nme(same_eyes + 0.5, same_eyes)
    assert np.isnan(values[0])
    assert np.all(np.isfinite(values[1:]))


def test_summary_values():
    per_face = np.array([0.02, 0.04, 0.06, 0.12, np.nan])
    s = summarise(per_face)
    assert s.n == 4
    assert s.mean == pytest.approx(0.06)
    assert s.median == pytest.approx(0.05)
    assert s.failure_rate == pytest.approx(0.25)
    # Area under the CED: faces at 2%, 4% and 6% contribute (10-2)+(10-4)+(10-6) out of 4 x 10.
    assert s.auc == pytest.approx(18 / 40, abs=2e-3)


def test_ced_curve_monotone():
    thresholds, fractions = ced_curve(np.array([0.01, 0.05, 0.2]))
    assert thresholds[0] == 0.0
    assert thresholds[-1] == pytest.approx(0.10)
    assert np.all(np.diff(fractions) >= 0)
    assert fractions[-1] == pytest.approx(2 / 3)
    assert auc(np.array([0.0, 0.0])) == pytest.approx(1.0)


def test_by_group():
    groups = summarise_by_group(np.array([0.01, 0.03, 0.2]), np.array([16, 16, 32]))
    assert groups[16].mean == pytest.approx(0.02)
    assert groups[32].failure_rate == 1.0


def test_visibility_accuracy_skips_unlabelled():
    gt_state = np.array([[1, 1, 2, 0, 1]], dtype=np.int8)
    pred_visible = np.array([[True, False, False, True, True]])
    assert visibility_accuracy(pred_visible, gt_state) == pytest.approx(3 / 4)


def test_mean_offsets(gt):
    assert np.allclose(mean_offsets(gt + [0.25, -0.5], gt), [[0.25, -0.5]] * 5)
