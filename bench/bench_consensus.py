"""Time consensus, agreement flags and the agreement report on synthetic labels.

Usage: python bench/bench_consensus.py [--images 10000] [--annotators 3] [--repeat 5] [--no-docs]

The labels are made from a 5-point template on faces 15-32 px wide, with per-annotator
Gaussian noise, 2% invisible marks, 1% eye swaps and 2% of images that one annotator has not
finished. Each stage runs ``--repeat`` times; the median and the best time are reported. The
results replace the "Consensus and agreement" section of docs/benchmarks.md unless
``--no-docs`` is given.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from s2ld_core.agreement import compute_agreement  # noqa: E402
from s2ld_core.consensus import compute_consensus  # noqa: E402
from s2ld_core.report import write_report  # noqa: E402
from s2ld_core.schema import PointState  # noqa: E402

from bench_common import cpu_name, time_stage, update_docs  # noqa: E402

SECTION = "## Consensus and agreement"

# Template points in units of the face width, MTCNN order.
TEMPLATE = np.array([[0.33, 0.40], [0.67, 0.40], [0.50, 0.58], [0.36, 0.76], [0.64, 0.76]])


def make_labels(n_images: int, n_annotators: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return synthetic xy (N, A, 5, 2) and state (N, A, 5) in the layout of Project.labels_array."""
    rng = np.random.default_rng(seed)
    width = rng.uniform(15, 32, n_images)
    truth = TEMPLATE[None] * width[:, None, None] + rng.normal(0, 0.5, (n_images, 5, 2))
    noise = np.linspace(0.04, 0.08, n_annotators) * 0.34  # per-coordinate standard deviation: 4-8% of the IOD (0.34 face widths)
    xy = truth[:, None] + rng.normal(size=(n_images, n_annotators, 5, 2)) * (noise[None, :, None, None] * width[:, None, None, None])
    state = np.full((n_images, n_annotators, 5), PointState.VISIBLE, dtype=np.int8)

    swapped = rng.random(n_images) < 0.01
    xy[swapped, -1] = xy[swapped, -1][:, [1, 0, 2, 3, 4]]
    invisible = rng.random(state.shape) < 0.02
    state[invisible] = PointState.INVISIBLE
    unfinished = rng.random(n_images) < 0.02
    state[unfinished, 0, 4] = PointState.UNLABELLED
    xy[state != PointState.VISIBLE] = np.nan
    return xy, state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="number of images (default 10000)")
    parser.add_argument("--annotators", type=int, default=3, help="number of annotators (default 3)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per stage (default 5)")
    parser.add_argument("--no-docs", action="store_true", help="print the results without editing docs/benchmarks.md")
    args = parser.parse_args()

    xy, state = make_labels(args.images, args.annotators)
    names = [f"annotator_{a + 1}" for a in range(args.annotators)]

    with tempfile.TemporaryDirectory() as folder:
        consensus_median, consensus_best, consensus = time_stage(lambda: compute_consensus(xy, state), args.repeat)
        agreement_median, agreement_best, agreement = time_stage(lambda: compute_agreement(xy, state, names), args.repeat)
        ids = np.arange(args.images)
        report_median, report_best, _ = time_stage(
            lambda: write_report(Path(folder) / "tables", agreement, consensus, image_ids=ids, plots=False), args.repeat
        )
        plots_median, plots_best, _ = time_stage(
            lambda: write_report(Path(folder) / "plots", agreement, consensus, image_ids=ids, plots=True), 2
        )

    total_median = consensus_median + agreement_median + report_median
    flags = agreement.flag_counts["n_flags"]
    body = f"""Command: `python bench/bench_consensus.py --images {args.images} --annotators {args.annotators} --repeat {args.repeat}`

Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()}, Python {platform.python_version()},
numpy {np.__version__}; single process. Synthetic labels: {args.images} images x {args.annotators} annotators,
2% invisible marks, 1% eye swaps, 2% of images unfinished by one annotator. The best and median times
show the run-to-run variation; on a machine shared with other jobs it reached about 2x.

| stage | median (s) | best (s) |
|---|---|---|
| consensus (`compute_consensus`) | {consensus_median:.3f} | {consensus_best:.3f} |
| flags and tables (`compute_agreement`) | {agreement_median:.3f} | {agreement_best:.3f} |
| report without plots (`write_report(plots=False)`, CSV + HTML) | {report_median:.3f} | {report_best:.3f} |
| **total without plots** (target: under 2 s) | **{total_median:.3f}** | |
| report with 4 PNG plots (matplotlib Agg, first run includes its import) | {plots_median:.3f} | {plots_best:.3f} |

Result: {consensus.n_included} images in the consensus; flags: {flags['swap_eyes']} eye swaps,
{flags['outlier_point']} outlier points, {flags['visibility_disagreement']} visibility disagreements.
"""
    print(body)
    if not args.no_docs:
        update_docs(REPO / "docs" / "benchmarks.md", SECTION, body)


if __name__ == "__main__":
    main()
