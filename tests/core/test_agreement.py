"""Agreement flags, error tables, Fleiss' kappa and the report, on hand-computed and real labels."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from s2ld_core.agreement import AgreementThresholds, compute_agreement, fleiss_kappa
from s2ld_core.consensus import compute_consensus
from s2ld_core.report import write_report
from s2ld_core.schema import FLIP_PERMUTATION, PointState

VIS, INV, UNL = PointState.VISIBLE, PointState.INVISIBLE, PointState.UNLABELLED
NAMES = ["ann", "bob", "cat"]
NOSE = 2

# A 24 px face with eyes 8 px apart.
FACE = np.array([[8.0, 10.0], [16.0, 10.0], [12.0, 14.0], [9.0, 18.0], [15.0, 18.0]])
# Offsets of three annotators who agree within 0.3 px.
CLOSE = [[0.0, 0.0], [0.2, 0.0], [0.0, 0.3]]


def labels(offsets, n_images: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Every annotator marks every point of FACE at their own fixed offset; faces move per image."""
    offsets = np.asarray(offsets, dtype=np.float64)
    shift = np.arange(n_images, dtype=np.float64)[:, None, None, None] * [0.5, 0.25]
    xy = FACE[None, None] + offsets[None, :, None] + shift
    state = np.full(xy.shape[:3], VIS, dtype=np.int8)
    return xy, state


def mark_invisible(xy, state, image, annotator, point):
    xy[image, annotator, point] = np.nan
    state[image, annotator, point] = INV


def test_agreeing_annotators_errors():
    xy, state = labels(CLOSE)
    result = compute_agreement(xy, state, NAMES)

    # Leave-one-out references: ann vs (0.1, 0.15), bob vs (0, 0.15), cat vs (0.1, 0).
    expected_px = [np.hypot(0.1, 0.15), 0.25, np.hypot(0.1, 0.3)]
    np.testing.assert_allclose(result.errors_px[0], np.repeat(np.array(expected_px)[:, None], 5, axis=1))
    np.testing.assert_allclose(result.iod, [8.0])
    np.testing.assert_allclose(result.per_annotator["median_nme"], np.array(expected_px) / 8)
    np.testing.assert_allclose(result.per_landmark.loc["nose", "mean_nme"], np.mean(expected_px) / 8)

    bob_cat = np.hypot(0.2, 0.3)
    expected_pairwise = np.array([[0.0, 0.2, 0.3], [0.2, 0.0, bob_cat], [0.3, bob_cat, 0.0]]) / 8
    np.testing.assert_allclose(result.pairwise_nme.to_numpy(), expected_pairwise)
    assert result.flag_counts["n_flags"].sum() == 0
    assert not result.flagged_images.any()
    assert np.isnan(result.visibility_kappa)  # every point visible: chance agreement is 1


def test_one_invisible_mark_flags_visibility():
    xy, state = labels(CLOSE)
    mark_invisible(xy, state, 0, 2, NOSE)
    result = compute_agreement(xy, state, NAMES)

    assert result.visibility_disagreement[0].tolist() == [False, False, True, False, False]
    assert result.visibility_minority[0, :, NOSE].tolist() == [False, False, True]
    assert np.isnan(result.errors_px[0, 2, NOSE])
    # ann's nose is compared with bob's alone.
    np.testing.assert_allclose(result.errors_px[0, 0, NOSE], 0.2)
    assert result.flag_counts.loc["visibility_disagreement", "n_flags"] == 1


def test_two_invisible_marks_leave_no_reference():
    xy, state = labels(CLOSE)
    mark_invisible(xy, state, 0, 1, NOSE)
    mark_invisible(xy, state, 0, 2, NOSE)
    result = compute_agreement(xy, state, NAMES)

    assert result.visibility_disagreement[0, NOSE]
    assert result.visibility_minority[0, :, NOSE].tolist() == [True, False, False]
    assert np.isnan(result.errors_px[0, :, NOSE]).all()
    assert result.per_landmark.loc["nose", "points"] == 0


def test_outlier_point_flags_only_the_miss():
    xy, state = labels(CLOSE)
    xy[0, 2, NOSE] += [3.0, 0.0]
    result = compute_agreement(xy, state, NAMES)

    assert np.argwhere(result.outlier).tolist() == [[0, 2, NOSE]]
    # cat's nose (15, 14.3) against the mean of (12, 14) and (12.2, 14): (2.9, 0.3).
    np.testing.assert_allclose(result.errors_iod[0, 2, NOSE], np.hypot(2.9, 0.3) / 8)
    frame = result.flags_frame(np.array([501]))
    assert frame[["image", "annotator", "landmark", "kind"]].values.tolist() == [[501, "cat", "nose", "outlier_point"]]


def test_outlier_annotator_flagged():
    # Offsets at right angles behave like independent errors: pairwise squared distances
    # 0.25, 4 and 4.25 give per-annotator errors of 0, 0.5 and 2 px.
    xy, state = labels([[0.0, 0.0], [0.0, 0.5], [2.0, 0.0]], n_images=6)
    result = compute_agreement(xy, state, NAMES)

    assert result.annotator_outlier.tolist() == [False, False, True]
    np.testing.assert_allclose(result.median_error_iod, np.array([0.0, 0.5, 2.0]) / 8, atol=1e-6)
    # Leave-one-out references: ann vs (1, 0.25), bob vs (1, 0), cat vs (0, 0.25).
    expected_px = [np.hypot(1.0, 0.25), np.hypot(1.0, 0.5), np.hypot(2.0, 0.25)]
    np.testing.assert_allclose(result.per_annotator["median_px"], expected_px)
    assert result.per_annotator["outlier_points"].tolist() == [0, 0, 30]
    assert result.flag_counts.loc["outlier_annotator", "n_flags"] == 1


def test_left_right_swap_detected():
    xy, state = labels(CLOSE, n_images=3)
    xy[1, 2] = xy[1, 2, list(FLIP_PERMUTATION)]  # cat swaps both pairs on image 1
    xy[2, 1, [3, 4]] = xy[2, 1, [4, 3]]  # bob swaps the mouth corners on image 2
    result = compute_agreement(xy, state, NAMES)

    assert np.argwhere(result.swap).tolist() == [[1, 2, 0], [1, 2, 1], [2, 1, 1]]
    assert not result.outlier.any()
    # The swaps are undone in the references, so ann keeps her errors of image 0.
    np.testing.assert_allclose(result.errors_px[1, 0], result.errors_px[0, 0])
    np.testing.assert_allclose(result.errors_px[2, 0], result.errors_px[0, 0])
    # cat's own errors count the swap: her left eye (16, 10.3) against (8.1, 10).
    np.testing.assert_allclose(result.errors_px[1, 2, 0], np.hypot(7.9, 0.3))
    assert result.flag_counts.loc["swap_eyes", "n_flags"] == 1
    assert result.flag_counts.loc["swap_mouth_corners", "n_flags"] == 2


def test_swap_with_two_annotators_flags_both():
    xy, state = labels([[0.0, 0.0], [0.3, 0.0], [0.0, 0.0]])
    xy[0, 1, [0, 1]] = xy[0, 1, [1, 0]]
    xy[0, 2] = np.nan
    state[0, 2] = UNL
    result = compute_agreement(xy, state, NAMES)

    assert result.swap[0, :, 0].tolist() == [True, True, False]
    assert np.isnan(result.noise_px).all()  # two annotators' noise levels are not identifiable
    assert not result.annotator_outlier.any()


def test_two_annotators_below_minimum_left_out():
    xy, state = labels(CLOSE, n_images=2)
    xy[1, 2] = np.nan
    state[1, 2] = UNL
    result = compute_agreement(xy, state, NAMES, AgreementThresholds(min_annotators=3))

    assert result.eligible.tolist() == [True, False]
    assert np.isnan(result.errors_px[1]).all()
    assert result.per_annotator["images_finished"].tolist() == [1, 1, 1]


def test_visibility_kappa_by_hand():
    xy, state = labels(CLOSE, n_images=2)
    mark_invisible(xy, state, 0, 2, NOSE)
    for annotator in range(3):
        mark_invisible(xy, state, 1, annotator, 3)
    mark_invisible(xy, state, 1, 0, 4)
    mark_invisible(xy, state, 1, 2, 4)
    result = compute_agreement(xy, state, NAMES)

    # Ten subjects of three raters. Seven unanimous subjects agree fully (P_i = 1); the split
    # subjects (2 visible, 1 invisible) and (1, 2) have P_i = (4 + 1 - 3) / 6 = 1/3.
    # Mean P = (8 + 2/3) / 10 = 13/15. Visible share 24/30, invisible 6/30: P_e = 0.68.
    expected = (Fraction(13, 15) - Fraction(17, 25)) / (1 - Fraction(17, 25))
    assert expected == Fraction(7, 12)
    assert result.visibility_kappa == pytest.approx(float(expected), abs=1e-12)


# Fleiss (1971): 30 psychiatric patients, each diagnosed by 6 raters into 5 categories
# (1 depression, 2 personality disorder, 3 schizophrenia, 4 neurosis, 5 other). This is the
# table distributed as `diagnoses` in R's irr package, whose kappam.fleiss returns 0.4302.
FLEISS_1971_RATINGS = [
    "444444", "222555", "233335", "555555", "222444", "113333", "333355", "113334", "114444", "555555",
    "144444", "124444", "222333", "144444", "224445", "333335", "111455", "111112", "224444", "133555",
    "555555", "244444", "224555", "114444", "144445", "222224", "111155", "224444", "133333", "555555",
]


def test_fleiss_kappa_fleiss_1971_example():
    counts = np.array([[row.count(str(c)) for c in range(1, 6)] for row in FLEISS_1971_RATINGS])
    n = 6

    # By hand: P_i = (sum_j n_ij^2 - n) / (n (n - 1)); p_j = column total / (30 n).
    agreement = [Fraction(sum(c * c for c in row) - n, n * (n - 1)) for row in counts.tolist()]
    mean_agreement = sum(agreement) / len(agreement)
    shares = [Fraction(int(total), len(counts) * n) for total in counts.sum(axis=0)]
    chance = sum(p * p for p in shares)
    by_hand = (mean_agreement - chance) / (1 - chance)

    assert counts.sum(axis=0).tolist() == [26, 26, 30, 55, 43]
    assert fleiss_kappa(counts) == pytest.approx(float(by_hand), abs=1e-12)
    assert fleiss_kappa(counts) == pytest.approx(0.4302445, abs=5e-7)


def test_fleiss_kappa_ten_subjects_fourteen_raters():
    # The worked example of Wikipedia's article on Fleiss' kappa, as quoted in statsmodels' tests:
    # 10 subjects, 14 raters, 5 categories, with P_i to 3 decimals and kappa 0.210.
    counts = np.array([
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ])
    published_p_i = [1.000, 0.253, 0.308, 0.440, 0.330, 0.462, 0.242, 0.176, 0.286, 0.286]
    p_i = ((counts**2).sum(axis=1) - 14) / (14 * 13)
    np.testing.assert_allclose(p_i, published_p_i, atol=5e-4)
    assert fleiss_kappa(counts) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_edge_cases():
    assert np.isnan(fleiss_kappa(np.array([[3, 0], [3, 0]])))  # one category only
    assert np.isnan(fleiss_kappa(np.array([[1, 0]])))  # one rater only
    assert fleiss_kappa(np.array([[3, 0], [0, 3]])) == pytest.approx(1.0)


def test_report_tables_without_plots(tmp_path):
    xy, state = labels([[0.0, 0.0], [0.0, 0.5], [2.0, 0.0]], n_images=6)
    mark_invisible(xy, state, 3, 1, NOSE)
    agreement = compute_agreement(xy, state, NAMES)
    consensus = compute_consensus(xy, state)
    page = write_report(tmp_path / "report", agreement, consensus, image_ids=np.arange(100, 106), plots=False)

    text = page.read_text(encoding="utf-8")
    assert "consensus visible_mean" in text
    assert not list(page.parent.glob("*.png"))
    per_annotator = pd.read_csv(page.parent / "per_annotator.csv", index_col="annotator")
    assert per_annotator["outlier_annotator"].tolist() == [False, False, True]
    flags = pd.read_csv(page.parent / "flags.csv")
    assert set(flags.loc[flags["kind"] == "visibility_disagreement", "image"]) == {103}
    spread = pd.read_csv(page.parent / "consensus_spread.csv", index_col="landmark")
    assert spread.loc["nose", "invisible_points"] == 0
    assert spread.loc["nose", "mean_annotators"] == pytest.approx((5 * 3 + 2) / 6)


@pytest.mark.shared_data
def test_real_faces_noise_and_swaps(cnn_facepoint_dir, tmp_path):
    table = pd.read_csv(cnn_facepoint_dir / "landmarks.csv")
    table = table[table["split"] == "test"]
    truth = table[[f"{axis}{k}" for k in range(1, 6) for axis in "xy"]].to_numpy(float).reshape(-1, 5, 2)
    n_faces = len(truth)

    rng = np.random.default_rng(20240611)
    sigma = np.array([0.0, 1.5, 3.0])  # px per coordinate, for annotators A, B, C
    xy = truth[:, None] + rng.normal(size=(n_faces, 3, 5, 2)) * sigma[None, :, None, None]
    eye_swaps = rng.random(n_faces) < 0.05
    mouth_swaps = rng.random(n_faces) < 0.03
    xy[eye_swaps, 2] = xy[eye_swaps, 2][:, [1, 0, 2, 3, 4]]
    xy[mouth_swaps, 1] = xy[mouth_swaps, 1][:, [0, 1, 2, 4, 3]]
    state = np.full((n_faces, 3, 5), VIS, dtype=np.int8)

    agreement = compute_agreement(xy, state, ["A", "B", "C"])
    np.testing.assert_allclose(agreement.noise_px[1:], sigma[1:], rtol=0.1)
    # A's true noise is 0, estimated as the root of a small difference of variances.
    assert agreement.noise_px[0] < 0.5
    assert np.array_equal(agreement.swap[:, 2, 0], eye_swaps)
    assert np.array_equal(agreement.swap[:, 1, 1], mouth_swaps)
    # A may share a flag only on an image where another annotator really swapped.
    assert not (agreement.swap[:, 0].any(axis=1) & ~(eye_swaps | mouth_swaps)).any()
    assert agreement.annotator_outlier.tolist() == [False, False, True]

    # The mean of three has per-coordinate noise sqrt(1.5^2 + 3^2) / 3 away from C's swaps.
    consensus = compute_consensus(xy, state)
    clean = ~eye_swaps
    distance = np.linalg.norm(consensus.xy[clean] - truth[clean], axis=-1)
    assert np.median(distance) == pytest.approx(np.sqrt(1.5**2 + 3.0**2) / 3 * np.sqrt(2 * np.log(2)), rel=0.1)

    page = write_report(tmp_path, agreement, consensus, image_ids=table["image_path"].to_numpy(), plots=True)
    per_annotator = pd.read_csv(page.parent / "per_annotator.csv", index_col="annotator")
    np.testing.assert_allclose(per_annotator.loc[["B", "C"], "noise_px"], sigma[1:], rtol=0.1)
    assert per_annotator.loc["C", "swaps_eyes"] == eye_swaps.sum()
    assert per_annotator.loc["B", "swaps_mouth_corners"] == mouth_swaps.sum()
    flags = pd.read_csv(page.parent / "flags.csv")
    swapped_images = set(flags.loc[flags["kind"] == "swap_eyes", "image"])
    assert swapped_images == set(table["image_path"].to_numpy()[eye_swaps])
    assert (page.parent / "pairwise_nme.png").stat().st_size > 1000
    assert "data:image/png;base64," in page.read_text(encoding="utf-8")
