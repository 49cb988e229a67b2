"""Write the agreement report: one self-contained HTML page with CSV tables and PNG plots beside it.

The page embeds its plots as base64 PNG, so it can be mailed on its own; the same PNGs and
every table as CSV are written beside it for other tools. Plots use matplotlib's Agg canvas
directly (no pyplot, no Qt), so the report can be written headless and from a worker thread.
Every file is written atomically (:mod:`s2ld_core.atomic`).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .agreement import AgreementResult
from .atomic import write_bytes_atomic
from .consensus import ConsensusResult
from .schema import COLOURS, LANDMARK_NAMES, PointState

logger = logging.getLogger(__name__)

REPORT_NAME = "report.html"

_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.6em; text-align: right; }
th { background: #eee; }
img { max-width: 100%; margin: 0.5em 0 1.5em; }
.note { color: #555; font-size: 0.9em; }
"""


class ReportError(OSError):
    """The report could not be written; the message names the path."""


def write_report(
    out_dir: str | os.PathLike,
    agreement: AgreementResult,
    consensus: ConsensusResult | None = None,
    *,
    image_ids: np.ndarray | None = None,
    plots: bool = True,
    title: str = "Annotator agreement",
) -> Path:
    """Write the report page and its tables into ``out_dir`` and return the page's path.

    Args:
        out_dir: folder for ``report.html``, the CSV tables and the PNG plots; created if missing.
        agreement: result of :func:`s2ld_core.agreement.compute_agreement`.
        consensus: result of :func:`s2ld_core.consensus.compute_consensus` on the same arrays;
            adds the consensus rule, counts and spread table.
        image_ids: (N,) ids for the flag list; array indices without it.
        plots: draw PNG plots (about a second with matplotlib); False writes tables only.
        title: page heading.

    Raises:
        ReportError: when a file cannot be written.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"failed to create report folder {out}: {exc}; choose a writable folder") from exc

    tables = _tables(agreement, consensus, image_ids)
    for name, frame in tables.items():
        _write_atomic(out / f"{name}.csv", frame.to_csv().encode("utf-8"))

    images: dict[str, bytes] = {}
    if plots:
        images = _draw_plots(agreement, consensus)
        for name, png in images.items():
            _write_atomic(out / f"{name}.png", png)

    page = _render_page(title, agreement, consensus, tables, images)
    path = out / REPORT_NAME
    _write_atomic(path, page.encode("utf-8"))
    logger.info("wrote agreement report %s (%d tables, %d plots)", path, len(tables), len(images))
    return path


def consensus_spread_table(consensus: ConsensusResult) -> pd.DataFrame:
    """Summarise the spread of annotators around the consensus, per landmark and overall."""
    rows = {}
    for k, name in enumerate([*LANDMARK_NAMES, "all"]):
        column = slice(None) if name == "all" else k
        std_px = consensus.spread_std_px[:, column]
        max_px = consensus.spread_max_px[:, column]
        max_iod = consensus.spread_max_iod[:, column]
        present = np.isfinite(std_px)
        rows[name] = {
            "visible_points": int(present.sum()),
            "invisible_points": int((consensus.state[:, column] == PointState.INVISIBLE).sum()),
            "mean_annotators": _mean(consensus.n_annotators[:, column][present]),
            "mean_std_px": _mean(std_px[present]),
            "mean_max_px": _mean(max_px[present]),
            "median_max_iod": _median(max_iod[np.isfinite(max_iod)]),
            "p90_max_iod": _quantile(max_iod[np.isfinite(max_iod)], 0.9),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "landmark"
    return frame


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else float("nan")


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if values.size else float("nan")


def _tables(agreement: AgreementResult, consensus: ConsensusResult | None, image_ids) -> dict[str, pd.DataFrame]:
    tables = {
        "flag_counts": agreement.flag_counts,
        "per_annotator": agreement.per_annotator,
        "per_landmark": agreement.per_landmark,
        "per_annotator_landmark": agreement.per_annotator_landmark.set_index(["annotator", "landmark"]),
        "pairwise_nme": agreement.pairwise_nme,
    }
    if consensus is not None:
        tables["consensus_spread"] = consensus_spread_table(consensus)
    tables["flags"] = agreement.flags_frame(image_ids)
    return tables


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        write_bytes_atomic(path, data)
    except OSError as exc:
        raise ReportError(f"failed to write {path}: {exc}; check free space and permissions") from exc


# --- page -------------------------------------------------------------------------------------


def _render_page(title, agreement, consensus, tables, images) -> str:
    n_images = int(agreement.eligible.shape[0])
    facts = [
        ("Images", n_images),
        ("Images with at least %d finished annotators" % agreement.thresholds.min_annotators, int(agreement.eligible.sum())),
        ("Flagged images", int(agreement.flagged_images.sum())),
        ("Visibility agreement (Fleiss' kappa)", _format_kappa(agreement.visibility_kappa)),
        ("Flag thresholds", _format_thresholds(agreement)),
    ]
    if consensus is not None:
        facts[1:1] = [
            ("Images in the consensus", consensus.n_included),
            ("Consensus rule", consensus.rule.describe()),
        ]

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">Written {dt.datetime.now().isoformat(timespec="seconds")} by ALRF Studio '
        f"{html.escape(__version__)}. Annotators: {html.escape(', '.join(agreement.annotators))}.</p>",
        "<table>",
        *(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(str(value))}</td></tr>" for key, value in facts),
        "</table>",
        '<p class="note">Errors compare each annotator with the mean of the other annotators and are '
        "divided by the inter-ocular distance (NME). noise_px and noise_iod estimate each annotator's "
        "per-coordinate standard deviation from pairwise distances.</p>",
    ]

    sections = [
        ("Flag counts", "flag_counts", None),
        ("Per annotator", "per_annotator", "annotator_errors"),
        ("Per landmark", "per_landmark", "landmark_errors"),
        ("Pairwise NME", "pairwise_nme", "pairwise_nme"),
        ("Consensus spread", "consensus_spread", "consensus_spread"),
        ("Per annotator and landmark", "per_annotator_landmark", None),
    ]
    for heading, table_name, image_name in sections:
        if table_name not in tables:
            continue
        parts.append(f"<h2>{heading}</h2>")
        parts.append(f'<p class="note"><a href="{table_name}.csv">{table_name}.csv</a></p>')
        parts.append(tables[table_name].to_html(float_format=lambda v: f"{v:.4g}", na_rep="", border=0))
        if image_name in images:
            encoded = base64.b64encode(images[image_name]).decode("ascii")
            parts.append(f'<img alt="{heading}" src="data:image/png;base64,{encoded}">')

    flags = tables["flags"]
    parts.append("<h2>Flags</h2>")
    parts.append(f'<p class="note">{len(flags)} flags; the full list is in <a href="flags.csv">flags.csv</a>'
                 + (", the first 200 are shown." if len(flags) > 200 else ".") + "</p>")
    parts.append(flags.head(200).to_html(float_format=lambda v: f"{v:.3f}", na_rep="", border=0, index=False))
    parts.append("</body></html>")
    return "\n".join(parts)


def _format_kappa(kappa: float) -> str:
    if np.isfinite(kappa):
        return f"{kappa:.3f}"
    return "undefined (all points were marked the same way)"


def _format_thresholds(agreement: AgreementResult) -> str:
    t = agreement.thresholds
    return (
        f"outlier point > {t.outlier_iod:g} IOD; swap when crossed error < {t.swap_ratio:g} x direct error; "
        f"outlier annotator median > {t.annotator_factor:g} x others' and > {t.annotator_floor_iod:g} IOD"
    )


# --- plots ------------------------------------------------------------------------------------


def _legend(axes, title: str, **options) -> None:
    if axes.get_legend_handles_labels()[0]:  # an empty legend only draws a warning
        axes.legend(title=title, **options)


def _draw_plots(agreement: AgreementResult, consensus: ConsensusResult | None) -> dict[str, bytes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def render(figure: Figure) -> bytes:
        FigureCanvasAgg(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()

    colours = [tuple(c / 255 for c in rgb) for rgb in COLOURS]
    images = {}

    figure = Figure(figsize=(7, 4))
    axes = figure.add_subplot()
    for a, name in enumerate(agreement.annotators):
        errors = np.sort(agreement.errors_iod[:, a][np.isfinite(agreement.errors_iod[:, a])])
        if errors.size:
            axes.plot(errors, np.arange(1, errors.size + 1) / errors.size, label=name)
    axes.axvline(agreement.thresholds.outlier_iod, color="grey", linestyle="--", linewidth=1)
    axes.set(xlabel="error against the other annotators (fraction of IOD)", ylabel="fraction of points",
             xlim=(0, max(0.5, 2 * agreement.thresholds.outlier_iod)), ylim=(0, 1))
    _legend(axes, "annotator")
    images["annotator_errors"] = render(figure)

    figure = Figure(figsize=(7, 4))
    axes = figure.add_subplot()
    n_annotators = len(agreement.annotators)
    width = 0.8 / max(n_annotators, 1)
    table = agreement.per_annotator_landmark
    for a, name in enumerate(agreement.annotators):
        values = table.loc[table["annotator"] == name, "median_nme"].to_numpy()
        axes.bar(np.arange(len(LANDMARK_NAMES)) + (a - (n_annotators - 1) / 2) * width, values, width, label=name)
    axes.set_xticks(np.arange(len(LANDMARK_NAMES)), LANDMARK_NAMES)
    axes.set(ylabel="median error (fraction of IOD)")
    _legend(axes, "annotator", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    images["landmark_errors"] = render(figure)

    figure = Figure(figsize=(1.2 * n_annotators + 2.5, 1.0 * n_annotators + 1.5))
    axes = figure.add_subplot()
    matrix = agreement.pairwise_nme.to_numpy().copy()
    np.fill_diagonal(matrix, np.nan)  # an annotator against themself is 0 and would flatten the scale
    heatmap = axes.imshow(matrix, cmap="viridis")
    axes.set_xticks(range(n_annotators), agreement.annotators)
    axes.set_yticks(range(n_annotators), agreement.annotators)
    middle = np.nanmean(matrix) if np.isfinite(matrix).any() else 0.0
    for (row, column), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            axes.text(column, row, f"{value:.3f}", ha="center", va="center", color="white" if value < middle else "black")
    figure.colorbar(heatmap, ax=axes, label="mean NME")
    images["pairwise_nme"] = render(figure)

    if consensus is not None:
        figure = Figure(figsize=(7, 4))
        axes = figure.add_subplot()
        for k, name in enumerate(LANDMARK_NAMES):
            values = consensus.spread_max_iod[:, k]
            values = np.sort(values[np.isfinite(values)])
            if values.size:
                axes.plot(values, np.arange(1, values.size + 1) / values.size, label=name, color=colours[k])
        axes.set(xlabel="largest distance of an annotator to the consensus (fraction of IOD)",
                 ylabel="fraction of points", xlim=(0, 0.5), ylim=(0, 1))
        _legend(axes, "landmark")
        images["consensus_spread"] = render(figure)
    return images
