"""The Review dock: annotator colours, the flags and consensus spread of the shown image, and the
reviewer's decision (accept, or send back to one annotator with a note).

The dock only displays a :class:`~alrf_studio.review_model.ReviewSnapshot` and requests
decisions by signal; :mod:`alrf_studio.review` writes them to the project.
"""

from __future__ import annotations

import html
import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from s2ld_core.schema import COLOURS, DISPLAY_NAMES, N_POINTS, PointState

from .review_model import ReviewSnapshot, annotator_colour

FLAG_COLUMNS = ("Kind", "Annotator", "Point", "Error", "Detail")
SPREAD_COLUMNS = ("Point", "Annotators", "RMS px", "Max px", "Max % IOD")

KEY_HELP = (
    "F / Shift+F: next / previous flagged image (Fit is Ctrl+0 in review mode) \u00b7 "
    "Ctrl+Return: accept \u00b7 crosses: annotators \u00b7 filled markers: consensus \u00b7 "
    "circles around the consensus: spread (solid: RMS distance, dashed: largest distance) \u00b7 "
    "thin lines: each annotator's offset from the consensus"
)


def _swatch(rgb: tuple[int, int, int], text: str) -> str:
    colour = "#%02x%02x%02x" % rgb
    return f'<span style="color:{colour}; font-size:15px">\u25a0</span>&nbsp;{html.escape(text)}'


def _table(columns: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    table.setWordWrap(True)
    return table


def _fill_row(table: QTableWidget, row: int, texts: list[str], colour: QColor | None = None) -> None:
    for column, text in enumerate(texts):
        item = QTableWidgetItem(text)
        if colour is not None and column == 1:
            item.setForeground(colour)
        table.setItem(row, column, item)


class ReviewDock(QWidget):
    """Flags and decision buttons for the image shown in review mode."""

    #: Accept the shown image.
    accept_requested = Signal()
    #: Send the shown image back: (annotator, note).
    send_back_requested = Signal(str, str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = QLabel("Review mode is off.")
        self.title.setWordWrap(True)
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.flag_table = _table(FLAG_COLUMNS)
        self.spread_table = _table(SPREAD_COLUMNS)
        self.spread_table.setRowCount(N_POINTS)
        row_height = self.spread_table.verticalHeader().defaultSectionSize()
        self.spread_table.setMinimumHeight(row_height * (N_POINTS + 1) + 8)
        self.history = QLabel()
        self.history.setWordWrap(True)

        self.previous_button = QToolButton()
        self.next_button = QToolButton()
        self.skip_accepted = QCheckBox("Skip accepted images")
        self.skip_accepted.setChecked(True)
        self.skip_accepted.setToolTip("F and Shift+F pass over images whose newest review accepted them")

        self.accept_button = QPushButton("Accept")
        self.accept_button.setToolTip("Record that the labels of this image are correct (Ctrl+Return)")
        self.send_to = QComboBox()
        self.send_to.setToolTip("Annotator who gets the image back in their queue")
        self.note = QLineEdit()
        self.note.setPlaceholderText("Note for the annotator (optional)")
        self.send_button = QPushButton("Send back")
        self.send_button.setToolTip("Put the image back into the chosen annotator's unfinished images")

        help_label = QLabel(KEY_HELP)
        help_label.setWordWrap(True)
        help_label.setStyleSheet("color: palette(placeholder-text);")

        nav = QHBoxLayout()
        nav.addWidget(self.previous_button)
        nav.addWidget(self.next_button)
        nav.addWidget(self.skip_accepted)
        nav.addStretch(1)

        decide = QGridLayout()
        decide.addWidget(self.accept_button, 0, 0, 1, 3)
        decide.addWidget(QLabel("Send back to"), 1, 0)
        decide.addWidget(self.send_to, 1, 1)
        decide.addWidget(self.send_button, 1, 2)
        decide.addWidget(self.note, 2, 0, 1, 3)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.legend)
        layout.addLayout(nav)
        layout.addWidget(QLabel("Flags"))
        layout.addWidget(self.flag_table, 1)
        layout.addWidget(QLabel("Consensus and spread"))
        layout.addWidget(self.spread_table, 0)
        layout.addWidget(self.history)
        layout.addLayout(decide)
        layout.addWidget(help_label)

        self.accept_button.clicked.connect(self.accept_requested)
        self.send_button.clicked.connect(self._request_send_back)
        self.note.returnPressed.connect(self._request_send_back)

    def _request_send_back(self) -> None:
        name = self.send_to.currentText()
        if name:
            self.send_back_requested.emit(name, self.note.text().strip())

    def set_decisions_enabled(self, enabled: bool) -> None:
        for widget in (self.accept_button, self.send_to, self.note, self.send_button):
            widget.setEnabled(enabled)

    def show_image(self, snapshot: ReviewSnapshot, image_id: int | None, position: str) -> None:
        """Show the flags, spread and reviews of ``image_id`` in ``snapshot``."""
        self._show_legend(snapshot)
        self.flag_table.setRowCount(0)
        for row in range(N_POINTS):
            _fill_row(self.spread_table, row, [DISPLAY_NAMES[row], "", "", "", ""])
        self.send_to.clear()
        self.history.setText("")
        if image_id is None or snapshot.row(image_id) is None:
            self.title.setText("No image shown.")
            return

        flags = snapshot.flags(image_id)
        state = "flagged" if flags else "no flags"
        self.title.setText(f"<b>Image {image_id}</b>: {state} \u00b7 {html.escape(position)}")
        self.flag_table.setRowCount(len(flags))
        colour_of = {name: QColor(*annotator_colour(a)) for a, name in enumerate(snapshot.annotators)}
        for row, flag in enumerate(flags):
            error = "" if math.isnan(flag.error_iod) else f"{flag.error_iod:.0%} IOD"
            _fill_row(self.flag_table, row, [flag.kind_text, flag.annotator, flag.point, error, flag.detail], colour_of.get(flag.annotator))
        self.flag_table.resizeRowsToContents()
        self._show_spread(snapshot, image_id)

        on_image = [snapshot.annotators[a] for a in snapshot.annotators_on(image_id)]
        self.send_to.addItems(on_image)
        suspect = snapshot.suspect_annotator(image_id)
        if suspect in on_image:
            self.send_to.setCurrentText(suspect)
        self.note.clear()

        review = snapshot.latest_review.get(int(image_id))
        if review is not None:
            if review["action"] == "accept":
                text = f"Accepted by {review['reviewer']} at {review['at']}."
            else:
                text = f"Sent back to {review['annotator']} by {review['reviewer']} at {review['at']}."
            if review["note"]:
                text += f" Note: {review['note']}"
            self.history.setText(text)

    def _show_legend(self, snapshot: ReviewSnapshot) -> None:
        parts = [_swatch(annotator_colour(a), name) for a, name in enumerate(snapshot.annotators)]
        if not parts:
            self.legend.setText("No annotator has labelled a point yet.")
            return
        self.legend.setText("Annotators: " + " &nbsp; ".join(parts))

    def _show_spread(self, snapshot: ReviewSnapshot, image_id: int) -> None:
        row = snapshot.row(image_id)
        consensus = snapshot.consensus
        for k in range(N_POINTS):
            name = QTableWidgetItem(DISPLAY_NAMES[k])
            name.setForeground(QColor(*COLOURS[k]))
            self.spread_table.setItem(k, 0, name)
            if not consensus.included[row]:
                texts = ["too few finished", "", "", ""]
            elif consensus.state[row, k] != PointState.VISIBLE:
                texts = [f"invisible ({consensus.n_visible[row, k]} visible marks)", "", "", ""]
            else:
                max_iod = consensus.spread_max_iod[row, k]
                texts = [
                    str(int(consensus.n_annotators[row, k])),
                    f"{consensus.spread_std_px[row, k]:.2f}",
                    f"{consensus.spread_max_px[row, k]:.2f}",
                    "" if math.isnan(max_iod) else f"{max_iod:.0%}",
                ]
            for column, text in enumerate(texts, start=1):
                self.spread_table.setItem(k, column, QTableWidgetItem(text))
