"""What review mode and the agreement panel show, read from the project without Qt.

A :class:`ReviewSnapshot` contains the labels of every annotator who labelled at least one point,
their agreement flags (:func:`s2ld_core.agreement.compute_agreement`) and consensus
(:func:`s2ld_core.consensus.compute_consensus` with :data:`REVIEW_RULE`). The review controller
reads a new snapshot after labels change, so the flags never describe labels that are gone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from s2ld_core.consensus import ConsensusResult, ConsensusRule, compute_consensus, finished_mask
from s2ld_core.schema import DISPLAY_NAMES, N_POINTS, SWAP_PAIRS, PointState
from s2ld_core.store import Project

if TYPE_CHECKING:
    # The agreement module imports pandas, which would add about 0.3 s to starting the window.
    from s2ld_core.agreement import AgreementResult, AgreementThresholds

log = logging.getLogger(__name__)

#: Consensus shown in review mode: the default mean, from two finished annotators on, so that
#: an image labelled by two people already shows where their mean lies.
REVIEW_RULE = ConsensusRule(min_annotators=2)

#: One colour per annotator, in the order of :attr:`ReviewSnapshot.annotators`; chosen to
#: differ from each other and from the five landmark colours of the schema.
ANNOTATOR_COLOURS: tuple[tuple[int, int, int], ...] = (
    (228, 26, 28),  # red
    (55, 200, 255),  # sky blue
    (120, 220, 60),  # light green
    (190, 110, 255),  # violet
    (255, 140, 20),  # dark orange
    (255, 105, 180),  # hot pink
    (0, 210, 170),  # teal
    (200, 160, 100),  # tan
)

#: Text shown for each flag kind of :data:`s2ld_core.agreement.FLAG_KINDS`.
KIND_TEXT: dict[str, str] = {
    "swap_eyes": "left/right swap",
    "swap_mouth_corners": "left/right swap",
    "outlier_point": "outlier point",
    "visibility_disagreement": "visibility disagreement",
    "outlier_annotator": "outlier annotator",
}

_PAIR_TEXT = ("eyes", "mouth corners")


def annotator_colour(index: int) -> tuple[int, int, int]:
    """Return the display colour of the annotator at ``index``; colours repeat after eight."""
    return ANNOTATOR_COLOURS[index % len(ANNOTATOR_COLOURS)]


@dataclass
class ImageFlag:
    """One flag on the image under review, in words.

    Attributes:
        kind: a flag kind of :data:`s2ld_core.agreement.FLAG_KINDS`.
        annotator: the flagged annotator; empty for a visibility disagreement.
        point: landmark display name, or "eyes" / "mouth corners" for a swap; empty for an
            outlier annotator.
        error_iod: error against the other annotators as a fraction of the IOD; NaN when
            the flag has none.
        detail: one sentence for the reviewer.
    """

    kind: str
    annotator: str
    point: str
    error_iod: float
    detail: str

    @property
    def kind_text(self) -> str:
        return KIND_TEXT.get(self.kind, self.kind)


@dataclass
class ReviewSnapshot:
    """The project's labels, agreement and consensus at one moment.

    Attributes:
        image_ids: int64 (N,), in :meth:`Project.image_ids` order.
        annotators: the A annotators with at least one labelled point, in project order.
        xy: float64 (N, A, 5, 2); state: int8 (N, A, 5), as :meth:`Project.labels_array` returns.
        agreement: flags and tables; None with fewer than two such annotators or no images.
        consensus: the consensus with :data:`REVIEW_RULE`.
        latest_review: per image id, the newest row of :meth:`Project.reviews`.
    """

    image_ids: np.ndarray
    annotators: list[str]
    xy: np.ndarray
    state: np.ndarray
    agreement: AgreementResult | None
    consensus: ConsensusResult
    latest_review: dict[int, dict]

    def __post_init__(self) -> None:
        self._row_of = {int(image_id): row for row, image_id in enumerate(self.image_ids)}

    def row(self, image_id: int) -> int | None:
        """Return the array row of ``image_id``; None for an image added after the snapshot."""
        return self._row_of.get(int(image_id))

    def flagged_ids(self) -> list[int]:
        """Return the image ids with a swap, outlier point or visibility flag, in image order."""
        if self.agreement is None:
            return []
        return [int(i) for i in self.image_ids[self.agreement.flagged_images]]

    def is_accepted(self, image_id: int) -> bool:
        """True when the newest review of ``image_id`` accepted it."""
        review = self.latest_review.get(int(image_id))
        return review is not None and review["action"] == "accept"

    def annotators_on(self, image_id: int) -> list[int]:
        """Return the indices of the annotators who labelled at least one point of ``image_id``."""
        row = self.row(image_id)
        if row is None:
            return []
        return [a for a in range(len(self.annotators)) if np.any(self.state[row, a] != PointState.UNLABELLED)]

    def flags(self, image_id: int) -> list[ImageFlag]:
        """Return the flags of ``image_id``: swaps, outlier points, visibility disagreements and
        the outlier annotators among those who finished it."""
        row = self.row(image_id)
        result = self.agreement
        if row is None or result is None:
            return []
        names = self.annotators
        errors = result.errors_iod[row]
        out: list[ImageFlag] = []

        for a, p in zip(*np.nonzero(result.swap[row])):
            first, second = SWAP_PAIRS[p]
            detail = (
                f"{DISPLAY_NAMES[first]} and {DISPLAY_NAMES[second].lower()} of {names[a]} match the others "
                f"only when exchanged"
            )
            out.append(ImageFlag(f"swap_{('eyes', 'mouth_corners')[p]}", names[a], _PAIR_TEXT[p], float(errors[a, first]), detail))

        for a, k in zip(*np.nonzero(result.outlier[row])):
            error = float(errors[a, k])
            detail = f"{error:.0%} of the eye distance from the mean of the other annotators"
            out.append(ImageFlag("outlier_point", names[a], DISPLAY_NAMES[k], error, detail))

        finished = result.finished[row]
        for k in np.flatnonzero(result.visibility_disagreement[row]):
            marks = self.state[row, :, k]
            visible = [names[a] for a in range(len(names)) if finished[a] and marks[a] == PointState.VISIBLE]
            invisible = [names[a] for a in range(len(names)) if finished[a] and marks[a] == PointState.INVISIBLE]
            detail = f"invisible for {', '.join(invisible)}; visible for {', '.join(visible)}"
            out.append(ImageFlag("visibility_disagreement", "", DISPLAY_NAMES[k], float("nan"), detail))

        for a in np.flatnonzero(result.annotator_outlier & finished):
            error = float(result.median_error_iod[a])
            detail = f"estimated median error of {names[a]} over all images: {error:.0%} of the eye distance"
            out.append(ImageFlag("outlier_annotator", names[a], "", error, detail))
        return out

    def suspect_annotator(self, image_id: int) -> str | None:
        """Return the annotator named by most flags of ``image_id``; None when no flag names one."""
        counts: dict[str, int] = {}
        for flag in self.flags(image_id):
            if flag.annotator:
                counts[flag.annotator] = counts.get(flag.annotator, 0) + 1
        if not counts:
            return None
        return max(counts, key=lambda name: counts[name])


def load_snapshot(project: Project, thresholds: AgreementThresholds | None = None) -> ReviewSnapshot:
    """Read every annotator's labels from ``project`` and compute their flags and consensus."""
    ids, names, xy, state = project.labels_array()
    labelled = np.any(state != PointState.UNLABELLED, axis=(0, 2)) if len(ids) else np.zeros(len(names), dtype=bool)
    keep = np.flatnonzero(labelled)
    names = [names[a] for a in keep]
    xy = xy[:, keep]
    state = state[:, keep]

    agreement = None
    if len(ids) and len(names) >= 2:
        from s2ld_core.agreement import compute_agreement

        agreement = compute_agreement(xy, state, names, thresholds)
    if len(names):
        consensus = compute_consensus(xy, state, REVIEW_RULE)
    else:
        # No labels yet: a consensus over one empty annotator, with every image left out.
        consensus = compute_consensus(np.full((len(ids), 1, N_POINTS, 2), np.nan), np.zeros((len(ids), 1, N_POINTS), dtype=np.int8), REVIEW_RULE)

    latest: dict[int, dict] = {}
    for review in project.reviews():
        latest[int(review["image_id"])] = review
    log.debug("Review snapshot: %d images, annotators %s, %d flagged", len(ids), names, int(agreement.flagged_images.sum()) if agreement else 0)
    return ReviewSnapshot(ids, names, xy, state, agreement, consensus, latest)


def finished_on(snapshot: ReviewSnapshot, image_id: int) -> np.ndarray:
    """Return bool (A,): which annotators finished ``image_id`` (all False for an unknown image)."""
    row = snapshot.row(image_id)
    if row is None:
        return np.zeros(len(snapshot.annotators), dtype=bool)
    return finished_mask(snapshot.state[row : row + 1])[0]
