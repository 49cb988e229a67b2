"""Merge several annotators' labels into one consensus label per image.

Inputs are plain arrays, so this module does not depend on the project store:

- ``xy``: float64 (N, A, 5, 2), N images by A annotators by the five MTCNN points, in
  stored-image pixels. NaN where a point is not visible.
- ``state``: int8 (N, A, 5) of :class:`~s2ld_core.schema.PointState`. An annotator who never
  opened an image has every point UNLABELLED there.

An annotator has *finished* an image when none of its five points is UNLABELLED. Only
finished annotators take part: a half-done label may still be in the middle of an edit.

Rules (the full text with examples is in ``docs/consensus.md``):

- An image enters the consensus only when at least ``min_annotators`` finished it.
- ``visible_mean``: a point is visible in the consensus when at least ``quorum`` finished
  annotators marked it visible (default: a strict majority of the finished annotators), and its
  position is the mean over exactly those annotators.
- ``strict_mean``: a point is visible only when every finished annotator marked it visible, and
  its position is the mean over all of them. One -1 makes the point invisible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .metrics import interocular
from .schema import N_POINTS, PointState

logger = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("visible_mean", "strict_mean")

_METHOD_TEXT = {
    "visible_mean": "mean over the annotators who marked the point visible",
    "strict_mean": "mean over all finished annotators; invisible when any of them marked it invisible",
}


class ConsensusError(ValueError):
    """Invalid consensus rule or label arrays; the message names the value."""


def _is_count(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class ConsensusRule:
    """How labels of several annotators merge into one.

    Attributes:
        method: "visible_mean" or "strict_mean" (see the module docstring).
        quorum: minimum number of finished annotators who must mark a point visible for it to be
            visible in the consensus; None means a strict majority of the finished annotators
            of that image (2 of 3, 3 of 4). Only "visible_mean" uses it.
        min_annotators: minimum number of finished annotators for an image to enter the consensus.
    """

    method: str = "visible_mean"
    quorum: int | None = None
    min_annotators: int = 3

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConsensusError(f"unknown consensus method {self.method!r}; use one of {', '.join(METHODS)}")
        if self.quorum is not None and not (_is_count(self.quorum) and self.quorum >= 1):
            raise ConsensusError(f"quorum must be a whole number of annotators >= 1 or None for a majority, got {self.quorum!r}")
        if not (_is_count(self.min_annotators) and self.min_annotators >= 1):
            raise ConsensusError(f"min_annotators must be a whole number >= 1, got {self.min_annotators!r}")

    def quorum_for(self, n_finished: np.ndarray) -> np.ndarray:
        """Return the number of visible marks that makes a point visible, per image (int array)."""
        n_finished = np.asarray(n_finished)
        if self.method == "strict_mean":
            return n_finished.astype(np.int64)
        if self.quorum is None:
            return n_finished.astype(np.int64) // 2 + 1
        return np.full(n_finished.shape, int(self.quorum), dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as JSON-ready values for an export sidecar; :meth:`from_dict` reads it back."""
        return {
            "method": self.method,
            "quorum": "majority" if self.quorum is None else int(self.quorum),
            "min_annotators": int(self.min_annotators),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ConsensusRule:
        """Build a rule from :meth:`to_dict` output; missing keys take the defaults."""
        quorum = values.get("quorum", "majority")
        return cls(
            method=values.get("method", "visible_mean"),
            quorum=None if quorum in (None, "majority") else int(quorum),
            min_annotators=int(values.get("min_annotators", 3)),
        )

    def describe(self) -> str:
        """Return a one-line English description, for an export header or a log line."""
        if self.method == "strict_mean":
            visibility = "visible only when all finished annotators marked it visible"
        elif self.quorum is None:
            visibility = "visible when a majority of finished annotators marked it visible"
        else:
            visibility = f"visible when at least {self.quorum} finished annotators marked it visible"
        return (
            f"consensus {self.method}: {_METHOD_TEXT[self.method]}; point {visibility}; "
            f"image included when at least {self.min_annotators} annotators finished it"
        )

    def header_lines(self) -> list[str]:
        """Return ``#`` comment lines that record the rule in a text export (ALRF, CSV)."""
        params = " ".join(f"{key}={value}" for key, value in self.to_dict().items())
        return [f"# {self.describe()}", f"# consensus_rule: {params}"]


@dataclass
class ConsensusResult:
    """Consensus labels and their spread for N images.

    Attributes:
        rule: the rule that made this result.
        finished: bool (N, A); True where the annotator finished the image.
        n_finished: int64 (N,); number of finished annotators per image.
        included: bool (N,); True where the image entered the consensus.
        xy: float64 (N, 5, 2) in stored-image pixels; NaN where the consensus point is invisible
            or the image is excluded.
        state: int8 (N, 5) of PointState; VISIBLE or INVISIBLE for included images,
            UNLABELLED for excluded ones.
        n_visible: int64 (N, 5); finished annotators who marked the point visible (every image).
        n_annotators: int64 (N, 5); annotators whose points entered the mean, 0 where the
            consensus point is invisible or the image is excluded.
        spread_std_px: float64 (N, 5); root mean square distance of those annotators' points to
            the consensus point, NaN where no mean. It divides by n, so one annotator gives 0.
        spread_max_px: float64 (N, 5); largest distance of those points to the consensus point.
        iod: float64 (N,); distance between the consensus eyes; NaN where an eye is invisible,
            the image is excluded or the eyes coincide.
        spread_std_iod: float64 (N, 5); ``spread_std_px / iod``.
        spread_max_iod: float64 (N, 5); ``spread_max_px / iod``.
    """

    rule: ConsensusRule
    finished: np.ndarray
    n_finished: np.ndarray
    included: np.ndarray
    xy: np.ndarray
    state: np.ndarray
    n_visible: np.ndarray
    n_annotators: np.ndarray
    spread_std_px: np.ndarray
    spread_max_px: np.ndarray
    iod: np.ndarray
    spread_std_iod: np.ndarray = field(repr=False)
    spread_max_iod: np.ndarray = field(repr=False)

    @property
    def n_images(self) -> int:
        return int(self.included.shape[0])

    @property
    def n_included(self) -> int:
        return int(np.count_nonzero(self.included))

    def provenance(self, annotators: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
        """Return what an export sidecar records: the rule, its text, the annotators and counts."""
        info: dict[str, Any] = {
            "rule": self.rule.to_dict(),
            "description": self.rule.describe(),
            "n_images": self.n_images,
            "n_included": self.n_included,
            "n_excluded_too_few_annotators": self.n_images - self.n_included,
            "n_invisible_points": int(np.count_nonzero(self.state == PointState.INVISIBLE)),
        }
        if annotators is not None:
            info["annotators"] = list(annotators)
        return info


def validate_labels(xy: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check label arrays and return them as float64 (N, A, 5, 2) and int8 (N, A, 5).

    Raises:
        ConsensusError: on a wrong shape, an unknown state value, or a visible point whose
            coordinates are not finite. The message gives the image and annotator index.
    """
    xy = np.asarray(xy, dtype=np.float64)
    state = np.asarray(state)
    if xy.ndim != 4 or xy.shape[2:] != (N_POINTS, 2):
        raise ConsensusError(f"xy must have shape (images, annotators, {N_POINTS}, 2), got {xy.shape}")
    if state.shape != xy.shape[:3]:
        raise ConsensusError(f"state must have shape {xy.shape[:3]} to match xy, got {state.shape}")

    known = np.isin(state, [int(s) for s in PointState])
    if not known.all():
        i, a, k = np.argwhere(~known)[0]
        raise ConsensusError(
            f"unknown point state {int(state[i, a, k])} at image index {i}, annotator index {a}, point {k}; "
            f"expected one of {[int(s) for s in PointState]}"
        )

    visible = state == PointState.VISIBLE
    bad = visible & ~np.isfinite(xy).all(axis=-1)
    if bad.any():
        i, a, k = np.argwhere(bad)[0]
        raise ConsensusError(
            f"visible point {k} of annotator index {a} on image index {i} has non-finite coordinates "
            f"({xy[i, a, k, 0]:g}, {xy[i, a, k, 1]:g}); mark it invisible or give its position"
        )
    return xy, state.astype(np.int8, copy=False)


def finished_mask(state: np.ndarray) -> np.ndarray:
    """Return bool (N, A): True where the annotator labelled all five points of the image."""
    return np.all(np.asarray(state) != PointState.UNLABELLED, axis=-1)


def masked_mean(xy: np.ndarray, use: np.ndarray, axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Return the mean of ``xy`` (..., 2) over ``axis`` where ``use`` is True, and the counts.

    The mean is NaN where no entry is used. Masked entries may hold NaN.
    """
    weights = use[..., None]
    total = np.where(weights, xy, 0.0).sum(axis=axis)
    count = use.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count[..., None]
    mean[count == 0] = np.nan
    return mean, count


def compute_consensus(xy: np.ndarray, state: np.ndarray, rule: ConsensusRule | None = None) -> ConsensusResult:
    """Merge annotators into one label per image under ``rule``.

    Args:
        xy: float64 (N, A, 5, 2) in stored-image pixels; NaN where a point is not visible.
        state: int8 (N, A, 5) of PointState.
        rule: the consensus rule; defaults to ``ConsensusRule()``.

    Returns:
        A :class:`ConsensusResult` with per-image and per-point arrays.

    Raises:
        ConsensusError: on invalid arrays (see :func:`validate_labels`).
    """
    rule = rule or ConsensusRule()
    xy, state = validate_labels(xy, state)

    finished = finished_mask(state)
    n_finished = finished.sum(axis=1)
    included = n_finished >= rule.min_annotators

    # Visible marks of finished annotators only; (N, A, 5).
    marked_visible = (state == PointState.VISIBLE) & finished[:, :, None]
    marked_invisible = (state == PointState.INVISIBLE) & finished[:, :, None]
    n_visible = marked_visible.sum(axis=1)

    needed = rule.quorum_for(n_finished)[:, None]
    point_visible = included[:, None] & (n_visible >= needed) & (n_visible > 0)
    if rule.method == "strict_mean":
        point_visible &= ~marked_invisible.any(axis=1)

    used = marked_visible & point_visible[:, None, :]
    mean, n_used = masked_mean(xy, used, axis=1)

    # Distances of each used annotator point to the consensus; (N, A, 5).
    distance = np.linalg.norm(xy - mean[:, None], axis=-1)
    distance = np.where(used, distance, np.nan)
    with np.errstate(invalid="ignore"):
        spread_std = np.sqrt(np.where(used, distance**2, 0.0).sum(axis=1) / n_used)
    spread_std[n_used == 0] = np.nan
    spread_max = np.where(n_used > 0, np.where(used, distance, -np.inf).max(axis=1), np.nan)

    cons_state = np.full(point_visible.shape, PointState.UNLABELLED, dtype=np.int8)
    cons_state[included] = PointState.INVISIBLE
    cons_state[point_visible] = PointState.VISIBLE

    iod = interocular(mean)
    result = ConsensusResult(
        rule=rule,
        finished=finished,
        n_finished=n_finished.astype(np.int64),
        included=included,
        xy=mean,
        state=cons_state,
        n_visible=n_visible.astype(np.int64),
        n_annotators=n_used.astype(np.int64),
        spread_std_px=spread_std,
        spread_max_px=spread_max,
        iod=iod,
        spread_std_iod=spread_std / iod[:, None],
        spread_max_iod=spread_max / iod[:, None],
    )
    logger.debug(
        "consensus %s: %d of %d images included", rule.method, result.n_included, result.n_images
    )
    return result
