"""Comparison of landmark predictors on labelled low-resolution faces: tables and CED plots.

A predictor is any callable that takes a list of H x W x 3 uint8 RGB crops and returns points
(N, 5, 2) in each crop's pixels. :func:`evaluate` runs several of them on the same faces and
returns per-face NME arrays; :func:`format_table` and :func:`save_ced_plot` present them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from s2ld_core import schema
from s2ld_core.metrics import mean_offsets, nme, summarise, summarise_by_group, ced_curve
from s2ld_core.training_data import LowResSet

log = logging.getLogger(__name__)

PointPredictor = Callable[[list[np.ndarray]], np.ndarray]

#: MTFL head-pose codes of the cnn_facepoint train split.
HEAD_POSE_NAMES = {1: "left profile", 2: "left", 3: "frontal", 4: "right", 5: "right profile"}


def size_label(size: int) -> str:
    """Return the face size for tables: the side in pixels, or "mixed" for 0 (crops of several sizes)."""
    return str(size) if size > 0 else "mixed"


@dataclass
class EvalResult:
    """One predictor on one face set; ``size`` is the crop side in pixels, 0 for mixed sizes."""

    name: str
    size: int
    per_face: np.ndarray
    offsets: np.ndarray
    seconds: float
    by_pose: dict = field(default_factory=dict)

    @property
    def summary(self):
        return summarise(self.per_face)


def evaluate(
    predictors: dict[str, PointPredictor],
    faces: LowResSet,
    size: int,
    normaliser: str = "interocular",
) -> list[EvalResult]:
    """Run every predictor on ``faces`` and return one :class:`EvalResult` each, in order."""
    images = list(faces.images)
    results = []
    for name, predict in predictors.items():
        start = time.perf_counter()
        xy = np.asarray(predict(images), dtype=np.float64)
        seconds = time.perf_counter() - start
        boxes = None
        if normaliser == "box_diagonal":
            # The face box of a crop made with margin 1.25 is the centre 0.8 of the crop.
            side = np.array([im.shape[1] for im in images], dtype=np.float64)
            boxes = np.stack([0.1 * side - 0.5, 0.1 * side - 0.5, 0.9 * side - 0.5, 0.9 * side - 0.5], axis=1)
        per_face = nme(xy, faces.xy, faces.state, normaliser=normaliser, boxes=boxes)
        by_pose = {}
        known = faces.head_pose > 0
        if known.any():
            by_pose = {HEAD_POSE_NAMES.get(k, str(k)): v for k, v in summarise_by_group(per_face[known], faces.head_pose[known]).items()}
        results.append(EvalResult(name, size, per_face, mean_offsets(xy, faces.xy, faces.state), seconds, by_pose))
        log.info("%s at %d px: mean NME %.4f on %d faces in %.2f s", name, size, np.nanmean(per_face), len(images), seconds)
    return results


def format_table(results: list[EvalResult]) -> str:
    """Return a Markdown table: predictor, face size, faces, mean, median NME, failure rate, AUC."""
    lines = [
        "| predictor | size (px) | faces | mean NME (%) | median NME (%) | failure rate @10% (%) | AUC @10% |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r.summary
        lines.append(
            f"| {r.name} | {size_label(r.size)} | {s.n} | {100 * s.mean:.2f} | {100 * s.median:.2f} | {100 * s.failure_rate:.1f} | {s.auc:.3f} |"
        )
    return "\n".join(lines)


def format_offsets(results: list[EvalResult]) -> str:
    """Return a Markdown table of each point's mean signed offset (prediction - truth) in crop pixels."""
    header = "| predictor | size (px) | " + " | ".join(f"{n} dx, dy" for n in schema.LANDMARK_NAMES) + " |"
    lines = [header, "|" + "---|" * (2 + schema.N_POINTS)]
    for r in results:
        cells = " | ".join(f"{dx:+.2f}, {dy:+.2f}" for dx, dy in r.offsets)
        lines.append(f"| {r.name} | {size_label(r.size)} | {cells} |")
    return "\n".join(lines)


def save_ced_plot(results: list[EvalResult], path: str | Path, title: str = "") -> Path:
    """Save cumulative error distribution curves (NME up to 10%) of ``results`` as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    for r in results:
        thresholds, fractions = ced_curve(r.per_face, 0.10)
        ax.plot(100 * thresholds, 100 * fractions, label=f"{r.name}, {size_label(r.size)} px (AUC {r.summary.auc:.3f})")
    ax.set_xlabel("NME, % of inter-ocular distance")
    ax.set_ylabel("faces at or below, %")
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
