"""Agreement between annotators: review flags, error tables and visibility kappa.

Each annotator is compared with the *others*: for annotator a on image i, the reference point
is the mean of the other finished annotators who marked that point visible (leave-one-out), so
an annotator never agrees with themself. Errors are Euclidean distances in pixels, also
divided by the image's inter-ocular distance (IOD).

The IOD of an image is the median over its finished annotators of each one's own eye
distance. Unlike the distance between mean eyes, it does not shrink when one annotator swaps
the eyes, and one careless annotator cannot move it far.

Flags and the steps between them, in the order they are computed:

1. Left/right swap: an annotator's eyes (or mouth corners) lie closer to the others' points
   once the pair is exchanged (crossed error below ``swap_ratio`` times the direct error) and
   the direct error is above ``outlier_iod``. When several annotators of one image are flagged
   for the same pair, only those whose crossed-to-direct ratio is within twice the smallest keep
   the flag. With only two annotators a swap is symmetric and both are flagged.
2. Detected swaps are undone in the copy of the labels that forms the references for the
   *other* annotators, so one annotator's swap is not counted as everyone else's error. The
   swapping annotator's own errors are measured on the labels as drawn.
3. Outlier point: error against the others above ``outlier_iod``, for the annotator with the
   largest error on that point only. One miss moves the others' references by half of it (with
   three annotators), and they should not be blamed for it. Points of a flagged swap pair are
   reported as the swap only.
4. Visibility disagreement: some finished annotators marked the point visible and some
   invisible.
5. Outlier annotator: estimated median error (see :func:`estimate_annotator_noise`) above
   ``annotator_factor`` times the median of the other annotators' estimates, and above
   ``annotator_floor_iod``. Leave-one-out errors cannot serve here: with three annotators, one
   annotator's miss also enters both others' references, so its expected error is at most twice
   theirs. Needs at least three annotators.

Arrays follow :mod:`s2ld_core.consensus`: ``xy`` float64 (N, A, 5, 2), ``state`` int8 (N, A, 5).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .consensus import ConsensusError, finished_mask, validate_labels
from .schema import LANDMARK_NAMES, SWAP_PAIRS, PointState

logger = logging.getLogger(__name__)

#: Names of the swap pairs in :data:`s2ld_core.schema.SWAP_PAIRS`, in the same order.
SWAP_PAIR_NAMES: tuple[str, ...] = ("eyes", "mouth_corners")

#: Median of the distance of a 2-D isotropic Gaussian error to its centre, per unit of the
#: per-coordinate standard deviation: sqrt(2 ln 2).
RAYLEIGH_MEDIAN = float(np.sqrt(2.0 * np.log(2.0)))

FLAG_KINDS: tuple[str, ...] = (
    "swap_eyes",
    "swap_mouth_corners",
    "outlier_point",
    "visibility_disagreement",
    "outlier_annotator",
)


@dataclass(frozen=True)
class AgreementThresholds:
    """Thresholds for review flags.

    Attributes:
        outlier_iod: a point is an outlier when farther than this fraction of the IOD from the
            mean of the other annotators. 0.15 is 1.5 px at a 10 px eye distance.
        swap_ratio: a pair is swapped when its crossed error is below this fraction of its
            direct error.
        annotator_factor: an annotator is an outlier when their estimated median error exceeds
            this multiple of the median of the other annotators' estimates.
        annotator_floor_iod: and their estimated median error exceeds this fraction of the IOD,
            so that differences between good annotators raise no flag. 0.05 is half the
            failure threshold of 0.1 IOD common in face alignment.
        min_annotators: images with fewer finished annotators are left out; at least 2.
    """

    outlier_iod: float = 0.25
    swap_ratio: float = 0.5
    annotator_factor: float = 2.0
    annotator_floor_iod: float = 0.05
    min_annotators: int = 2

    def __post_init__(self) -> None:
        for name in ("outlier_iod", "swap_ratio", "annotator_factor", "annotator_floor_iod"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ConsensusError(f"{name} must be a positive number, got {value!r}")
        if self.min_annotators < 2:
            raise ConsensusError(f"min_annotators for agreement must be at least 2, got {self.min_annotators!r}")


@dataclass
class AgreementResult:
    """Flags, errors and summary tables for N images by A annotators.

    Attributes:
        annotators: the A annotator names, in array order.
        thresholds: the thresholds used for the flags.
        eligible: bool (N,); images with at least ``thresholds.min_annotators`` finished annotators.
        finished: bool (N, A).
        iod: float64 (N,); median of the finished annotators' own eye distances, NaN where
            fewer than one annotator marked both eyes.
        errors_px: float64 (N, A, 5); distance to the mean of the other annotators, NaN where
            the annotator's point is not visible, no other annotator marked it or the image is
            not eligible.
        errors_iod: float64 (N, A, 5); ``errors_px / iod``.
        swap: bool (N, A, 2); likely left/right swaps, pairs in SWAP_PAIRS order.
        outlier: bool (N, A, 5); outlier points (not set for points of a flagged swap).
        visibility_disagreement: bool (N, 5).
        visibility_minority: bool (N, A, 5); the annotator's visibility differs from what a strict
            majority of the other finished annotators marked.
        annotator_outlier: bool (A,).
        noise_px: float64 (A,); estimated standard deviation per coordinate of each annotator's
            points in pixels, see :func:`estimate_annotator_noise`. NaN with fewer than 3 annotators.
        noise_iod: float64 (A,); the same estimate in IOD units.
        median_error_iod: float64 (A,); estimated median distance of each annotator's points to
            the true points, ``noise_iod * sqrt(2 ln 2)`` (median of a Rayleigh distribution).
        pairwise_nme: DataFrame (A x A) of mean NME between two annotators.
        per_landmark: DataFrame indexed by landmark name and "all".
        per_annotator: DataFrame indexed by annotator name.
        per_annotator_landmark: long DataFrame with one row per (annotator, landmark).
        visibility_kappa: Fleiss' kappa of the visible/invisible marks; NaN when every
            point was marked the same way (the chance agreement is then 1).
        flag_counts: DataFrame indexed by flag kind, columns "n_flags" and "n_images".
    """

    annotators: tuple[str, ...]
    thresholds: AgreementThresholds
    eligible: np.ndarray
    finished: np.ndarray
    iod: np.ndarray
    errors_px: np.ndarray
    errors_iod: np.ndarray
    swap: np.ndarray
    outlier: np.ndarray
    visibility_disagreement: np.ndarray
    visibility_minority: np.ndarray
    annotator_outlier: np.ndarray
    noise_px: np.ndarray
    noise_iod: np.ndarray
    median_error_iod: np.ndarray
    pairwise_nme: pd.DataFrame = field(repr=False)
    per_landmark: pd.DataFrame = field(repr=False)
    per_annotator: pd.DataFrame = field(repr=False)
    per_annotator_landmark: pd.DataFrame = field(repr=False)
    visibility_kappa: float = float("nan")
    flag_counts: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def flagged_images(self) -> np.ndarray:
        """Bool (N,); True where the image has any point, swap or visibility flag."""
        return (
            self.swap.any(axis=(1, 2))
            | self.outlier.any(axis=(1, 2))
            | self.visibility_disagreement.any(axis=1)
        )

    def flags_frame(self, image_ids: np.ndarray | None = None) -> pd.DataFrame:
        """Return one row per flag: image, annotator, landmark, kind and error in IOD units.

        ``image_ids`` (N,) names the images; without it the image column contains array indices.
        Visibility disagreements have an empty annotator and no error; outlier annotators have
        no image, and their error is the estimated median error.
        """
        ids = np.arange(self.eligible.shape[0]) if image_ids is None else np.asarray(image_ids)
        names = np.asarray(self.annotators, dtype=object)
        landmarks = np.asarray(LANDMARK_NAMES, dtype=object)
        parts = []

        for p, pair_name in enumerate(SWAP_PAIR_NAMES):
            i, a = np.nonzero(self.swap[:, :, p])
            left = SWAP_PAIRS[p][0]
            parts.append(_flag_rows(ids[i], names[a], np.full(i.size, pair_name, dtype=object),
                                    f"swap_{pair_name}", self.errors_iod[i, a, left]))

        i, a, k = np.nonzero(self.outlier)
        parts.append(_flag_rows(ids[i], names[a], landmarks[k], "outlier_point", self.errors_iod[i, a, k]))

        i, k = np.nonzero(self.visibility_disagreement)
        parts.append(_flag_rows(ids[i], np.full(i.size, "", dtype=object), landmarks[k],
                                "visibility_disagreement", np.full(i.size, np.nan)))

        a = np.nonzero(self.annotator_outlier)[0]
        parts.append(_flag_rows(np.full(a.size, None, dtype=object), names[a],
                                np.full(a.size, "", dtype=object), "outlier_annotator", self.median_error_iod[a]))

        frame = pd.concat(parts, ignore_index=True)
        return frame.sort_values(["image", "kind"], kind="stable", na_position="last", ignore_index=True)


def _flag_rows(image, annotator, landmark, kind: str, value) -> pd.DataFrame:
    return pd.DataFrame({
        "image": image,
        "annotator": annotator,
        "landmark": landmark,
        "kind": kind,
        "error_iod": np.asarray(value, dtype=np.float64),
    })


def leave_one_out_mean(xy: np.ndarray, use: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return, per annotator, the mean of the other annotators' used points, and their count.

    Args:
        xy: float64 (N, A, 5, 2).
        use: bool (N, A, 5); which points take part.

    Returns:
        float64 (N, A, 5, 2) means (NaN where no other annotator is used) and int (N, A, 5) counts.
    """
    own = np.where(use[..., None], xy, 0.0)
    others_total = own.sum(axis=1, keepdims=True) - own
    others_count = use.sum(axis=1, keepdims=True) - use
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = others_total / others_count[..., None]
    mean[others_count == 0] = np.nan
    return mean, others_count


def image_iod(xy: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Return float64 (N,): the median over annotators of their own eye distances.

    ``visible`` is bool (N, A, 5); annotators without both eyes visible are skipped.
    """
    own = np.linalg.norm(xy[:, :, 1] - xy[:, :, 0], axis=-1)
    own = np.where(visible[:, :, 0] & visible[:, :, 1] & (own > 0), own, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, as documented
        return np.nanmedian(own, axis=1)


def detect_swaps(xy: np.ndarray, use: np.ndarray, iod: np.ndarray, thresholds: AgreementThresholds) -> np.ndarray:
    """Return bool (N, A, 2): annotator's pair fits the others' points better exchanged."""
    reference, n_others = leave_one_out_mean(xy, use)
    swap = np.zeros(xy.shape[:2] + (len(SWAP_PAIRS),), dtype=bool)

    for p, (left, right) in enumerate(SWAP_PAIRS):
        comparable = use[:, :, left] & use[:, :, right] & (n_others[:, :, left] > 0) & (n_others[:, :, right] > 0)
        own_l, own_r = xy[:, :, left], xy[:, :, right]
        ref_l, ref_r = reference[:, :, left], reference[:, :, right]
        direct = np.linalg.norm(own_l - ref_l, axis=-1) + np.linalg.norm(own_r - ref_r, axis=-1)
        crossed = np.linalg.norm(own_l - ref_r, axis=-1) + np.linalg.norm(own_r - ref_l, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = crossed / direct
            flagged = (
                comparable
                & (direct / 2 > thresholds.outlier_iod * iod[:, None])
                & (ratio < thresholds.swap_ratio)
            )
        # One swapper can make an innocent annotator look swapped when the reference of one of
        # their points comes from the swapper alone (a third annotator left that point
        # invisible). Of several flags on one image, keep those with a ratio within twice the best.
        ratio = np.where(flagged, ratio, np.inf)
        best = ratio.min(axis=1, keepdims=True)
        swap[:, :, p] = flagged & (ratio <= 2.0 * best + 1e-12)
    return swap


def undo_swaps(xy: np.ndarray, swap: np.ndarray) -> np.ndarray:
    """Return a copy of ``xy`` (N, A, 5, 2) with each flagged pair of ``swap`` (N, A, 2) exchanged."""
    fixed = xy.copy()
    for p, (left, right) in enumerate(SWAP_PAIRS):
        mask = swap[:, :, p]
        fixed[mask, left], fixed[mask, right] = xy[mask, right], xy[mask, left]
    return fixed


def fleiss_kappa(counts: np.ndarray) -> float:
    """Return Fleiss' kappa for ``counts`` (S subjects, C categories) of raters per category.

    Subjects may have different numbers of raters n_i: the agreement of subject i is
    ``(sum_j n_ij^2 - n_i) / (n_i (n_i - 1))`` and the category shares pool all ratings, which
    is Fleiss' (1971) formula when n_i is constant. Subjects with fewer than 2 raters are
    skipped. Returns NaN when nothing is left or all ratings fall into one category.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2:
        raise ConsensusError(f"counts must be a (subjects, categories) table, got shape {counts.shape}")
    raters = counts.sum(axis=1)
    counts, raters = counts[raters >= 2], raters[raters >= 2]
    if counts.shape[0] == 0:
        return float("nan")

    per_subject = ((counts**2).sum(axis=1) - raters) / (raters * (raters - 1))
    observed = per_subject.mean()
    shares = counts.sum(axis=0) / raters.sum()
    expected = float((shares**2).sum())
    if expected >= 1.0:
        return float("nan")
    return float((observed - expected) / (1.0 - expected))


def estimate_annotator_noise(distance_sq: np.ndarray, pair_index: list[tuple[int, int]], n_annotators: int) -> np.ndarray:
    """Estimate each annotator's per-coordinate noise from pairwise squared distances.

    If annotators a and b add independent isotropic Gaussian noise of per-coordinate standard
    deviation s_a and s_b to the same true point, ``|p_a - p_b|^2 / (s_a^2 + s_b^2)`` follows
    a chi-square law with 2 degrees of freedom, whose median is 2 ln 2. So
    ``median(|p_a - p_b|^2) / (2 ln 2)`` estimates ``s_a^2 + s_b^2``, and least squares over
    all pairs gives each s_a^2 (the three-cornered-hat method). The median keeps rare swaps
    and gross misses from inflating it.

    Args:
        distance_sq: list-like of 1-D arrays, one per pair, of squared distances.
        pair_index: the (a, b) annotator indices of each entry of ``distance_sq``.
        n_annotators: A.

    Returns:
        float64 (A,) standard deviations, NaN when A < 3 or a pair has no shared points.
        Negative variance estimates are clipped to 0.
    """
    if n_annotators < 3:
        return np.full(n_annotators, np.nan)
    design = np.zeros((len(pair_index), n_annotators))
    target = np.zeros(len(pair_index))
    for row, ((a, b), values) in enumerate(zip(pair_index, distance_sq)):
        if len(values) == 0:
            return np.full(n_annotators, np.nan)
        design[row, [a, b]] = 1.0
        target[row] = np.median(values) / (2.0 * np.log(2.0))
    variance, *_ = np.linalg.lstsq(design, target, rcond=None)
    return np.sqrt(np.clip(variance, 0.0, None))


def compute_agreement(
    xy: np.ndarray,
    state: np.ndarray,
    annotators: list[str] | tuple[str, ...],
    thresholds: AgreementThresholds | None = None,
) -> AgreementResult:
    """Compare annotators with each other and flag likely mistakes.

    Args:
        xy: float64 (N, A, 5, 2) in stored-image pixels; NaN where a point is not visible.
        state: int8 (N, A, 5) of PointState.
        annotators: A names, in array order.
        thresholds: flag thresholds; defaults to ``AgreementThresholds()``.

    Raises:
        ConsensusError: on invalid arrays or a name count that does not match A.
    """
    thresholds = thresholds or AgreementThresholds()
    xy, state = validate_labels(xy, state)
    annotators = tuple(str(name) for name in annotators)
    if len(annotators) != xy.shape[1]:
        raise ConsensusError(f"got {len(annotators)} annotator names for {xy.shape[1]} annotators in the label arrays")

    finished = finished_mask(state)
    eligible = finished.sum(axis=1) >= thresholds.min_annotators
    taking_part = finished & eligible[:, None]
    visible = (state == PointState.VISIBLE) & taking_part[:, :, None]
    invisible = (state == PointState.INVISIBLE) & taking_part[:, :, None]
    iod = image_iod(xy, visible)

    swap = detect_swaps(xy, visible, iod, thresholds)
    fixed = undo_swaps(xy, swap)
    reference, n_others = leave_one_out_mean(fixed, visible)
    has_reference = visible & (n_others > 0)
    errors_px = np.where(has_reference, np.linalg.norm(xy - reference, axis=-1), np.nan)
    errors_iod = errors_px / iod[:, None, None]

    in_swap = np.zeros_like(visible)
    for p, pair in enumerate(SWAP_PAIRS):
        in_swap[:, :, list(pair)] |= swap[:, :, p, None]
    with np.errstate(invalid="ignore"):
        largest = np.where(has_reference & ~in_swap, errors_px, -np.inf).max(axis=1, keepdims=True)
        outlier = (
            has_reference
            & ~in_swap
            & (errors_iod > thresholds.outlier_iod)
            & (errors_px >= largest * (1.0 - 1e-9))
        )

    n_vis = visible.sum(axis=1)
    n_invis = invisible.sum(axis=1)
    disagreement = (n_vis > 0) & (n_invis > 0)
    minority = _visibility_minority(visible, invisible)

    pairs, distance_sq_px, distance_sq_iod, pairwise = _pairwise(fixed, visible, iod, len(annotators))
    noise_px = estimate_annotator_noise(distance_sq_px, pairs, len(annotators))
    noise_iod = estimate_annotator_noise(distance_sq_iod, pairs, len(annotators))
    median_error_iod = noise_iod * RAYLEIGH_MEDIAN
    annotator_outlier = _annotator_outliers(median_error_iod, thresholds)

    counts = np.stack([n_vis, n_invis], axis=-1).reshape(-1, 2)
    kappa = fleiss_kappa(counts)

    result = AgreementResult(
        annotators=annotators,
        thresholds=thresholds,
        eligible=eligible,
        finished=finished,
        iod=iod,
        errors_px=errors_px,
        errors_iod=errors_iod,
        swap=swap,
        outlier=outlier,
        visibility_disagreement=disagreement,
        visibility_minority=minority,
        annotator_outlier=annotator_outlier,
        noise_px=noise_px,
        noise_iod=noise_iod,
        median_error_iod=median_error_iod,
        pairwise_nme=pd.DataFrame(pairwise, index=list(annotators), columns=list(annotators)),
        per_landmark=pd.DataFrame(),
        per_annotator=pd.DataFrame(),
        per_annotator_landmark=pd.DataFrame(),
        visibility_kappa=kappa,
    )
    _fill_tables(result, taking_part)
    logger.debug("agreement: %d eligible images, %d flagged", int(eligible.sum()), int(result.flagged_images.sum()))
    return result


def _visibility_minority(visible: np.ndarray, invisible: np.ndarray) -> np.ndarray:
    others_visible = visible.sum(axis=1, keepdims=True) - visible
    others_invisible = invisible.sum(axis=1, keepdims=True) - invisible
    others = others_visible + others_invisible
    return (visible & (2 * others_invisible > others)) | (invisible & (2 * others_visible > others))


def _annotator_outliers(median: np.ndarray, thresholds: AgreementThresholds) -> np.ndarray:
    flags = np.zeros(median.shape, dtype=bool)
    for a in range(median.size):
        others = np.delete(median, a)
        others = others[np.isfinite(others)]
        if not np.isfinite(median[a]) or others.size == 0:
            continue
        flags[a] = median[a] > thresholds.annotator_factor * np.median(others) and median[a] > thresholds.annotator_floor_iod
    return flags


def _pairwise(xy: np.ndarray, visible: np.ndarray, iod: np.ndarray, n_annotators: int):
    """Return pair list, squared distances per pair (px and IOD units) and the mean NME matrix."""
    pairs = [(a, b) for a in range(n_annotators) for b in range(a + 1, n_annotators)]
    matrix = np.zeros((n_annotators, n_annotators))
    distance_sq_px, distance_sq_iod = [], []
    for a, b in pairs:
        shared = visible[:, a] & visible[:, b]
        distance = np.linalg.norm(xy[:, a] - xy[:, b], axis=-1)
        normalised = distance / iod[:, None]
        usable = shared & np.isfinite(normalised)
        distance_sq_px.append(distance[shared] ** 2)
        distance_sq_iod.append(normalised[usable] ** 2)

        per_image = np.where(usable, normalised, 0.0).sum(axis=1)
        n_points = usable.sum(axis=1)
        images = n_points > 0
        value = float(np.mean(per_image[images] / n_points[images])) if images.any() else float("nan")
        matrix[a, b] = matrix[b, a] = value
    return pairs, distance_sq_px, distance_sq_iod, matrix


def _summary(errors_iod: np.ndarray, errors_px: np.ndarray) -> dict[str, float]:
    finite = np.isfinite(errors_iod)
    px = errors_px[np.isfinite(errors_px)]
    nme = errors_iod[finite]
    return {
        "points": int(px.size),
        "mean_nme": float(nme.mean()) if nme.size else float("nan"),
        "median_nme": float(np.median(nme)) if nme.size else float("nan"),
        "p90_nme": float(np.quantile(nme, 0.9)) if nme.size else float("nan"),
        "mean_px": float(px.mean()) if px.size else float("nan"),
        "median_px": float(np.median(px)) if px.size else float("nan"),
    }


def _fill_tables(result: AgreementResult, taking_part: np.ndarray) -> None:
    errors_iod, errors_px = result.errors_iod, result.errors_px

    rows = {name: _summary(errors_iod[:, :, k], errors_px[:, :, k]) for k, name in enumerate(LANDMARK_NAMES)}
    rows["all"] = _summary(errors_iod, errors_px)
    result.per_landmark = pd.DataFrame.from_dict(rows, orient="index")
    result.per_landmark.index.name = "landmark"

    annotator_rows = {}
    long_rows = []
    for a, name in enumerate(result.annotators):
        row = {"images_finished": int(taking_part[:, a].sum())}
        row.update(_summary(errors_iod[:, a], errors_px[:, a]))
        row["noise_px"] = float(result.noise_px[a])
        row["noise_iod"] = float(result.noise_iod[a])
        row["est_median_error_iod"] = float(result.median_error_iod[a])
        row["outlier_points"] = int(result.outlier[:, a].sum())
        for p, pair_name in enumerate(SWAP_PAIR_NAMES):
            row[f"swaps_{pair_name}"] = int(result.swap[:, a, p].sum())
        row["visibility_minority"] = int(result.visibility_minority[:, a].sum())
        row["outlier_annotator"] = bool(result.annotator_outlier[a])
        annotator_rows[name] = row
        for k, landmark in enumerate(LANDMARK_NAMES):
            long_rows.append({"annotator": name, "landmark": landmark,
                              **_summary(errors_iod[:, a, k], errors_px[:, a, k])})
    result.per_annotator = pd.DataFrame.from_dict(annotator_rows, orient="index")
    result.per_annotator.index.name = "annotator"
    result.per_annotator_landmark = pd.DataFrame(long_rows)

    swap_images = result.swap.any(axis=1)
    counts = {
        "swap_eyes": (int(result.swap[:, :, 0].sum()), int(swap_images[:, 0].sum())),
        "swap_mouth_corners": (int(result.swap[:, :, 1].sum()), int(swap_images[:, 1].sum())),
        "outlier_point": (int(result.outlier.sum()), int(result.outlier.any(axis=(1, 2)).sum())),
        "visibility_disagreement": (int(result.visibility_disagreement.sum()),
                                    int(result.visibility_disagreement.any(axis=1).sum())),
        "outlier_annotator": (int(result.annotator_outlier.sum()), 0),
    }
    result.flag_counts = pd.DataFrame.from_dict(counts, orient="index", columns=["n_flags", "n_images"])
    result.flag_counts.index.name = "kind"
