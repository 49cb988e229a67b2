"""Landmark accuracy: normalised mean error per face and the summaries built on it.

:func:`nme` returns one value per face; :func:`summarise` turns those into the mean,
median, failure rate, AUC and CED curve. Points that are not visible in the ground truth
never enter an error; :func:`visibility_accuracy` scores the visible/invisible decision
on its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from s2ld_core import schema

LEFT_EYE, RIGHT_EYE = 0, 1


def interocular(gt_xy: np.ndarray) -> np.ndarray:
    """Return the eye distance of points (..., 5, 2), shape (...), with NaN where an eye is NaN.

    Coinciding eyes also give NaN, because a zero distance cannot normalise an error. Such a
    face drops out of NME means instead of giving an infinite error.
    """
    gt_xy = np.asarray(gt_xy, dtype=np.float64)
    distance = np.linalg.norm(gt_xy[..., LEFT_EYE, :] - gt_xy[..., RIGHT_EYE, :], axis=-1)
    return np.where(distance > 0, distance, np.nan)


def box_diagonal(boxes: np.ndarray) -> np.ndarray:
    """Return the diagonal of face boxes (N, 4) given as (x1, y1, x2, y2), shape (N,)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def nme(
    pred_xy: np.ndarray,
    gt_xy: np.ndarray,
    gt_state: np.ndarray | None = None,
    normaliser: str | np.ndarray = "interocular",
    boxes: np.ndarray | None = None,
) -> np.ndarray:
    """Return the normalised mean error of each face, shape (N,).

    Args:
        pred_xy: float (N, K, 2) predicted points.
        gt_xy: float (N, K, 2) ground-truth points, same pixels as ``pred_xy``.
        gt_state: int (N, K) :class:`schema.PointState`; points not VISIBLE are excluded.
            None treats every point with finite coordinates as visible.
        normaliser: "interocular" (distance between ground-truth eye centres; NaN for a face
            whose eyes are not both visible), "box_diagonal" (needs ``boxes``), or an
            array (N,) of distances in pixels.
        boxes: (N, 4) face boxes (x1, y1, x2, y2) for "box_diagonal".

    A face with no visible ground-truth point gets NaN.
    """
    pred_xy = np.asarray(pred_xy, dtype=np.float64)
    gt_xy = np.asarray(gt_xy, dtype=np.float64)
    if gt_state is None:
        visible = np.all(np.isfinite(gt_xy), axis=-1)
    else:
        visible = np.asarray(gt_state) == schema.PointState.VISIBLE

    if isinstance(normaliser, str):
        if normaliser == "interocular":
            norm = interocular(gt_xy)
            norm = np.where(visible[:, LEFT_EYE] & visible[:, RIGHT_EYE], norm, np.nan)
        elif normaliser == "box_diagonal":
            if boxes is None:
                raise ValueError("normaliser 'box_diagonal' needs boxes of shape (N, 4)")
            norm = box_diagonal(boxes)
        else:
            raise ValueError(f"unknown normaliser {normaliser!r}; use 'interocular', 'box_diagonal' or an array")
    else:
        norm = np.asarray(normaliser, dtype=np.float64)

    errors = np.linalg.norm(pred_xy - gt_xy, axis=-1)
    errors = np.where(visible, errors, 0.0)
    counts = visible.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_face = errors.sum(axis=1) / counts / norm
    return np.where(counts > 0, per_face, np.nan)


def ced_curve(per_face: np.ndarray, max_error: float = 0.10, steps: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """Return (thresholds, fraction of faces with NME at or below each) for a CED plot."""
    values = np.asarray(per_face, dtype=np.float64)
    values = values[np.isfinite(values)]
    thresholds = np.linspace(0.0, max_error, steps)
    if values.size == 0:
        return thresholds, np.zeros_like(thresholds)
    fractions = (values[None, :] <= thresholds[:, None]).mean(axis=1)
    return thresholds, fractions


def auc(per_face: np.ndarray, max_error: float = 0.10, steps: int = 1001) -> float:
    """Return the area under the CED curve up to ``max_error``, divided by ``max_error`` (0..1)."""
    thresholds, fractions = ced_curve(per_face, max_error, steps)
    return float(np.trapezoid(fractions, thresholds) / max_error)


@dataclass
class Summary:
    """Summary of per-face NME values (fractions, not percent)."""

    n: int
    mean: float
    median: float
    failure_rate: float
    auc: float
    failure_threshold: float = 0.10

    def to_dict(self) -> dict:
        return asdict(self)


def summarise(per_face: np.ndarray, failure_threshold: float = 0.10) -> Summary:
    """Summarise per-face NME: mean, median, share above ``failure_threshold``, AUC up to it."""
    values = np.asarray(per_face, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Summary(0, float("nan"), float("nan"), float("nan"), float("nan"), failure_threshold)
    return Summary(
        n=int(values.size),
        mean=float(values.mean()),
        median=float(np.median(values)),
        failure_rate=float((values > failure_threshold).mean()),
        auc=auc(values, failure_threshold),
        failure_threshold=failure_threshold,
    )


def summarise_by_group(per_face: np.ndarray, groups: np.ndarray, failure_threshold: float = 0.10) -> dict:
    """Summarise per-face NME within each distinct value of ``groups`` (N,): value -> :class:`Summary`."""
    per_face = np.asarray(per_face)
    groups = np.asarray(groups)
    return {g.item(): summarise(per_face[groups == g], failure_threshold) for g in np.unique(groups)}


def visibility_accuracy(pred_visible: np.ndarray, gt_state: np.ndarray) -> float:
    """Return the share of labelled points whose predicted visibility matches the ground truth.

    Unlabelled ground-truth points are skipped; NaN when none is labelled.
    """
    gt_state = np.asarray(gt_state)
    labelled = gt_state != schema.PointState.UNLABELLED
    if not labelled.any():
        return float("nan")
    gt_visible = gt_state == schema.PointState.VISIBLE
    return float((np.asarray(pred_visible, dtype=bool) == gt_visible)[labelled].mean())


def mean_offsets(pred_xy: np.ndarray, gt_xy: np.ndarray, gt_state: np.ndarray | None = None) -> np.ndarray:
    """Return the mean signed offset (pred - gt) of each point over visible faces, shape (K, 2), in pixels."""
    diff = np.asarray(pred_xy, dtype=np.float64) - np.asarray(gt_xy, dtype=np.float64)
    if gt_state is not None:
        diff = np.where((np.asarray(gt_state) == schema.PointState.VISIBLE)[..., None], diff, np.nan)
    return np.nanmean(diff, axis=0)
