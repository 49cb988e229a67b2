"""The Agreement panel: annotator agreement of the whole project as pyqtgraph plots and tables.

It shows an :class:`~s2ld_core.agreement.AgreementResult` as it is: errors of each annotator
against the mean of the others, normalised by the inter-ocular distance (IOD) and shown in
percent; the pairwise annotator NME matrix; Fleiss' kappa of the visibility marks; the flag
counts. Computing the result is the caller's job: ``compute_agreement`` on 10,000 images by
3 annotators takes about 0.2 s (docs/benchmarks.md), so the GUI thread does it.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from s2ld_core.agreement import AgreementResult
from s2ld_core.schema import LANDMARK_NAMES

from .review_model import KIND_TEXT

MEAN_BRUSH = (80, 140, 220)
MEDIAN_BRUSH = (240, 170, 60)
SHORT_LANDMARKS = ("L eye", "R eye", "nose", "L mouth", "R mouth", "all")
BAR_WIDTH = 0.38


def _percent(value: float) -> str:
    return "" if not math.isfinite(value) else f"{100.0 * value:.1f}"


def _readonly_table(rows: int, columns: int) -> QTableWidget:
    table = QTableWidget(rows, columns)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return table


class ErrorBars(pg.PlotWidget):
    """Grouped bars of mean and median error (percent of IOD) per category."""

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setBackground("w")
        self.setTitle(title, color="k", size="9pt")
        self.setLabel("left", "% of IOD")
        self.showGrid(y=True, alpha=0.3)
        self.setMouseEnabled(x=False, y=False)
        self.setMenuEnabled(False)
        self.setMinimumHeight(170)
        self.addLegend(offset=(-5, 5), labelTextColor="k")
        self.mean_bars = pg.BarGraphItem(x=[], height=[], width=BAR_WIDTH, brush=MEAN_BRUSH, name="mean")
        self.median_bars = pg.BarGraphItem(x=[], height=[], width=BAR_WIDTH, brush=MEDIAN_BRUSH, name="median")
        self.addItem(self.mean_bars)
        self.addItem(self.median_bars)

    def set_values(self, labels: list[str], mean: np.ndarray, median: np.ndarray) -> None:
        """Draw ``mean`` and ``median`` (fractions of the IOD; NaN draws no bar) beside each label."""
        x = np.arange(len(labels), dtype=float)
        self.mean_bars.setOpts(x=x - BAR_WIDTH / 2, height=np.nan_to_num(100.0 * np.asarray(mean, float)), width=BAR_WIDTH)
        self.median_bars.setOpts(x=x + BAR_WIDTH / 2, height=np.nan_to_num(100.0 * np.asarray(median, float)), width=BAR_WIDTH)
        self.getAxis("bottom").setTicks([list(zip(x, labels))])
        self.setXRange(-0.6, len(labels) - 0.4, padding=0)
        top = np.nanmax(100.0 * np.concatenate([mean, median])) if len(labels) and np.isfinite(np.concatenate([mean, median])).any() else 1.0
        self.setYRange(0.0, max(float(top) * 1.15, 1.0), padding=0)


class AgreementPanel(QWidget):
    """Plots and tables of one agreement result, with a Refresh button."""

    #: The Refresh button was pressed.
    refresh_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Read the labels again and recompute the agreement")
        self.summary = QLabel("No agreement computed yet.")
        self.summary.setWordWrap(True)
        self.landmark_plot = ErrorBars("Error per landmark vs the other annotators")
        self.annotator_plot = ErrorBars("Error per annotator vs the other annotators")
        self.pairwise_table = _readonly_table(0, 0)
        self.pairwise_table.setToolTip("Mean NME (% of IOD) between two annotators' shared visible points")
        self.flag_table = _readonly_table(0, 3)
        self.flag_table.setHorizontalHeaderLabels(["Kind", "Flags", "Images"])
        self.flag_table.verticalHeader().setVisible(False)

        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.refresh_button, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.landmark_plot, 2)
        layout.addWidget(self.annotator_plot, 2)
        layout.addWidget(QLabel("Pairwise NME (% of IOD)"))
        layout.addWidget(self.pairwise_table, 1)
        layout.addWidget(QLabel("Flags"))
        layout.addWidget(self.flag_table, 1)
        self.refresh_button.clicked.connect(self.refresh_requested)

    def show_message(self, text: str) -> None:
        """Show ``text`` in place of a result (for example when fewer than two annotators labelled)."""
        self.summary.setText(text)
        self.landmark_plot.set_values([], np.zeros(0), np.zeros(0))
        self.annotator_plot.set_values([], np.zeros(0), np.zeros(0))
        self.pairwise_table.setRowCount(0)
        self.pairwise_table.setColumnCount(0)
        self.flag_table.setRowCount(0)

    def set_result(self, result: AgreementResult, seconds: float) -> None:
        """Show ``result``, computed in ``seconds``."""
        kappa = result.visibility_kappa
        kappa_text = f"{kappa:.3f}" if math.isfinite(kappa) else "undefined (every point marked the same way)"
        self.summary.setText(
            f"{int(result.eligible.sum())} of {result.eligible.size} images with at least "
            f"{result.thresholds.min_annotators} finished annotators \u00b7 annotators: {', '.join(result.annotators)}\n"
            f"Visibility agreement (Fleiss' kappa): {kappa_text} \u00b7 computed in {seconds:.2f} s"
        )

        landmarks = result.per_landmark.loc[[*LANDMARK_NAMES, "all"]]
        self.landmark_plot.set_values(list(SHORT_LANDMARKS), landmarks["mean_nme"].to_numpy(), landmarks["median_nme"].to_numpy())
        annotators = result.per_annotator.loc[list(result.annotators)]
        self.annotator_plot.set_values(list(result.annotators), annotators["mean_nme"].to_numpy(), annotators["median_nme"].to_numpy())
        self._fill_pairwise(result)
        self._fill_flags(result)

    def _fill_pairwise(self, result: AgreementResult) -> None:
        names = list(result.annotators)
        matrix = result.pairwise_nme.loc[names, names].to_numpy(dtype=float)
        table = self.pairwise_table
        table.setRowCount(len(names))
        table.setColumnCount(len(names))
        table.setHorizontalHeaderLabels(names)
        table.setVerticalHeaderLabels(names)
        finite = matrix[np.isfinite(matrix) & ~np.eye(len(names), dtype=bool)]
        top = float(finite.max()) if finite.size else 0.0
        for a in range(len(names)):
            for b in range(len(names)):
                item = QTableWidgetItem("" if a == b else _percent(matrix[a, b]))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if a != b and math.isfinite(matrix[a, b]) and top > 0:
                    # White for the best pair, deeper red towards the worst.
                    shade = int(200 * matrix[a, b] / top)
                    item.setBackground(QColor(255, 255 - shade, 255 - shade))
                    item.setForeground(QColor(0, 0, 0))
                table.setItem(a, b, item)

    def _fill_flags(self, result: AgreementResult) -> None:
        counts = result.flag_counts
        self.flag_table.setRowCount(len(counts))
        for row, (kind, values) in enumerate(counts.iterrows()):
            label = KIND_TEXT.get(kind, kind)
            if kind.startswith("swap_"):
                label += " (" + kind.removeprefix("swap_").replace("_", " ") + ")"
            texts = [label, str(int(values["n_flags"])), "" if kind == "outlier_annotator" else str(int(values["n_images"]))]
            for column, text in enumerate(texts):
                self.flag_table.setItem(row, column, QTableWidgetItem(text))
