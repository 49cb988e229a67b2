"""Consensus rules on hand-computed cases of a 24 px face with three annotators."""

from __future__ import annotations

import numpy as np
import pytest

from s2ld_core.consensus import ConsensusError, ConsensusRule, compute_consensus
from s2ld_core.schema import PointState

VIS, INV, UNL = PointState.VISIBLE, PointState.INVISIBLE, PointState.UNLABELLED
NOSE = 2

# Annotator A's points on a 24 px face: eyes 8 px apart.
FACE = np.array([[8.0, 10.0], [16.0, 10.0], [12.0, 14.0], [9.0, 18.0], [15.0, 18.0]])
# B and C mark every point at a fixed offset from A; the mean offset is (+1, 0).
OFFSETS = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, -2.0]])


def three_annotators(n_images: int = 1) -> tuple[np.ndarray, np.ndarray]:
    xy = np.broadcast_to(FACE[None, None] + OFFSETS[None, :, None], (n_images, 3, 5, 2)).copy()
    state = np.full((n_images, 3, 5), VIS, dtype=np.int8)
    return xy, state


def mark_invisible(xy, state, image, annotator, point):
    xy[image, annotator, point] = np.nan
    state[image, annotator, point] = INV


def test_agreeing_annotators_mean_and_spread():
    xy, state = three_annotators()
    result = compute_consensus(xy, state)

    assert result.included.tolist() == [True]
    np.testing.assert_allclose(result.xy[0], FACE + [1.0, 0.0])
    assert (result.state[0] == VIS).all()
    assert (result.n_annotators[0] == 3).all()

    # Distances to the mean: A (-1, 0) -> 1, B (0, 2) -> 2, C (1, -2) -> sqrt(5).
    np.testing.assert_allclose(result.spread_std_px[0], np.sqrt((1 + 4 + 5) / 3))
    np.testing.assert_allclose(result.spread_max_px[0], np.sqrt(5))
    np.testing.assert_allclose(result.iod, [8.0])
    np.testing.assert_allclose(result.spread_max_iod[0], np.sqrt(5) / 8)
    np.testing.assert_allclose(result.spread_std_iod[0], np.sqrt(10 / 3) / 8)


@pytest.mark.parametrize(
    ("invisible_marks", "expected_state", "expected_xy", "expected_n"),
    [
        ((), VIS, (13.0, 14.0), 3),  # mean of (12, 14), (13, 16), (14, 12)
        ((2,), VIS, (12.5, 15.0), 2),  # mean of A and B
        ((1, 2), INV, (np.nan, np.nan), 0),  # one visible mark is below the quorum of 2
        ((0, 1, 2), INV, (np.nan, np.nan), 0),
    ],
    ids=["0 invisible", "1 invisible", "2 invisible", "3 invisible"],
)
def test_visible_mean_by_invisible_marks(invisible_marks, expected_state, expected_xy, expected_n):
    xy, state = three_annotators()
    for annotator in invisible_marks:
        mark_invisible(xy, state, 0, annotator, NOSE)
    result = compute_consensus(xy, state)

    assert result.state[0, NOSE] == expected_state
    np.testing.assert_allclose(result.xy[0, NOSE], expected_xy)
    assert result.n_annotators[0, NOSE] == expected_n
    assert result.n_visible[0, NOSE] == 3 - len(invisible_marks)
    # The other points keep the three-annotator mean.
    np.testing.assert_allclose(result.xy[0, [0, 1, 3, 4]], FACE[[0, 1, 3, 4]] + [1.0, 0.0])


def test_one_invisible_mark_spread():
    xy, state = three_annotators()
    mark_invisible(xy, state, 0, 2, NOSE)
    result = compute_consensus(xy, state)

    # A (12, 14) and B (13, 16) are each sqrt(0.5^2 + 1^2) from their mean (12.5, 15).
    np.testing.assert_allclose(result.spread_std_px[0, NOSE], np.sqrt(1.25))
    np.testing.assert_allclose(result.spread_max_px[0, NOSE], np.sqrt(1.25))


@pytest.mark.parametrize("n_invisible", [0, 1, 2, 3])
def test_strict_mean_any_invisible_hides_point(n_invisible):
    xy, state = three_annotators()
    for annotator in range(n_invisible):
        mark_invisible(xy, state, 0, annotator, NOSE)
    result = compute_consensus(xy, state, ConsensusRule(method="strict_mean"))

    if n_invisible == 0:
        assert result.state[0, NOSE] == VIS
        np.testing.assert_allclose(result.xy[0, NOSE], [13.0, 14.0])
    else:
        assert result.state[0, NOSE] == INV
        assert np.isnan(result.xy[0, NOSE]).all()
        assert result.n_annotators[0, NOSE] == 0


def test_fixed_quorum_of_one():
    xy, state = three_annotators()
    mark_invisible(xy, state, 0, 1, NOSE)
    mark_invisible(xy, state, 0, 2, NOSE)
    result = compute_consensus(xy, state, ConsensusRule(quorum=1))

    assert result.state[0, NOSE] == VIS
    np.testing.assert_allclose(result.xy[0, NOSE], FACE[NOSE])
    assert result.spread_max_px[0, NOSE] == 0.0


def test_majority_of_four_needs_three():
    xy, state = three_annotators()
    xy = np.concatenate([xy, xy[:, :1]], axis=1)
    state = np.concatenate([state, state[:, :1]], axis=1)
    mark_invisible(xy, state, 0, 1, NOSE)
    mark_invisible(xy, state, 0, 2, NOSE)
    result = compute_consensus(xy, state)

    assert result.state[0, NOSE] == INV
    assert result.n_visible[0, NOSE] == 2


def test_two_annotators_below_default_minimum():
    xy, state = three_annotators(n_images=2)
    xy[1, 2] = np.nan
    state[1, 2] = UNL
    result = compute_consensus(xy, state)

    assert result.included.tolist() == [True, False]
    assert result.n_finished.tolist() == [3, 2]
    assert (result.state[1] == UNL).all()
    assert np.isnan(result.xy[1]).all()
    assert result.provenance(["a", "b", "c"])["n_excluded_too_few_annotators"] == 1

    relaxed = compute_consensus(xy, state, ConsensusRule(min_annotators=2))
    assert relaxed.included.tolist() == [True, True]
    # Mean of A and B: offset (0.5, 1).
    np.testing.assert_allclose(relaxed.xy[1], FACE + [0.5, 1.0])


def test_unfinished_annotator_is_ignored():
    xy, state = three_annotators()
    # C has placed four points and not yet decided on the right mouth corner.
    xy[0, 2, 4] = np.nan
    state[0, 2, 4] = UNL
    result = compute_consensus(xy, state, ConsensusRule(min_annotators=2))

    assert result.finished[0].tolist() == [True, True, False]
    np.testing.assert_allclose(result.xy[0, NOSE], FACE[NOSE] + [0.5, 1.0])
    assert (result.n_annotators[0] == 2).all()


def test_invisible_eye_leaves_iod_undefined():
    xy, state = three_annotators()
    for annotator in range(3):
        mark_invisible(xy, state, 0, annotator, 0)
    result = compute_consensus(xy, state)

    assert np.isnan(result.iod[0])
    assert np.isfinite(result.spread_max_px[0, NOSE])
    assert np.isnan(result.spread_max_iod[0, NOSE])


def test_rule_round_trip_and_header():
    rule = ConsensusRule(method="strict_mean", quorum=2, min_annotators=4)
    assert ConsensusRule.from_dict(rule.to_dict()) == rule
    assert ConsensusRule.from_dict(ConsensusRule().to_dict()) == ConsensusRule()
    assert ConsensusRule().to_dict() == {"method": "visible_mean", "quorum": "majority", "min_annotators": 3}

    lines = ConsensusRule().header_lines()
    assert all(line.startswith("# ") for line in lines)
    assert "consensus_rule: method=visible_mean quorum=majority min_annotators=3" in lines[1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "median"}, "unknown consensus method 'median'"),
        ({"quorum": 0}, "quorum must be"),
        ({"quorum": 1.5}, "quorum must be"),
        ({"min_annotators": 0}, "min_annotators must be"),
    ],
)
def test_invalid_rule_rejected(kwargs, message):
    with pytest.raises(ConsensusError, match=message):
        ConsensusRule(**kwargs)


def test_visible_point_without_coordinates_rejected():
    xy, state = three_annotators(n_images=3)
    xy[2, 1, 3] = np.nan
    with pytest.raises(ConsensusError, match="visible point 3 of annotator index 1 on image index 2"):
        compute_consensus(xy, state)


def test_wrong_shapes_rejected():
    xy, state = three_annotators()
    with pytest.raises(ConsensusError, match="xy must have shape"):
        compute_consensus(xy[..., :1], state)
    with pytest.raises(ConsensusError, match="state must have shape"):
        compute_consensus(xy, state[:, :2])
    state[0, 0, 0] = 7
    with pytest.raises(ConsensusError, match="unknown point state 7"):
        compute_consensus(xy, state)
