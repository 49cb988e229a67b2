"""Image list: a table model over the project's images with the current annotator's status.

The model keeps the image rows from :meth:`Project.list_images` and the status rows from
:meth:`Project.status`, both read once when the project or the annotator changes. After an
edit the window reads that one image's label back from the store and updates its row, so
switching images never rebuilds the list.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLineEdit, QTableView, QVBoxLayout, QWidget

from s2ld_core.schema import N_POINTS, Label, PointState
from s2ld_core.store import ImageInfo, ImageStatus, StatusRow

#: Role that returns a value for sorting (numbers sort as numbers).
SORT_ROLE = Qt.ItemDataRole.UserRole + 1

COLUMNS = ("ID", "File", "Size", "Identity", "Status")
COL_ID, COL_FILE, COL_SIZE, COL_IDENTITY, COL_STATUS = range(len(COLUMNS))

NOT_STARTED = StatusRow(ImageStatus.NOT_STARTED, 0, 0)

_STATUS_COLOURS = {
    ImageStatus.NOT_STARTED: QColor(150, 150, 150),
    ImageStatus.PARTIAL: QColor(214, 140, 0),
    ImageStatus.DONE: QColor(0, 150, 90),
}

#: Status filter keys shown in the filter combo box, with their titles.
STATUS_FILTERS: dict[str, str] = {
    "all": "All images",
    "unfinished": "Not done",
    "not_started": "Not started",
    "partial": "Partial",
    "done": "Done",
    "invisible": "Has invisible points",
}


@dataclass
class ScoreColumn:
    """An extra numeric column after :data:`COLUMNS`, such as model confidence.

    Rows without a value show nothing and sort last; with ``larger_first`` an ascending sort
    puts the largest value first.
    """

    key: str
    title: str
    larger_first: bool = False
    decimals: int = 2
    values: dict[int, float] = field(default_factory=dict)


def status_from_label(label: Label) -> StatusRow:
    """Return the status row of one label, counted the same way as :meth:`Project.status`."""
    n_labelled = label.n_labelled
    n_invisible = int((label.state == PointState.INVISIBLE).sum())
    if n_labelled == N_POINTS:
        status = ImageStatus.DONE
    elif n_labelled:
        status = ImageStatus.PARTIAL
    else:
        status = ImageStatus.NOT_STARTED
    return StatusRow(status, n_labelled, n_invisible)


def status_text(row: StatusRow) -> str:
    if row.status == ImageStatus.DONE:
        text = "done"
    elif row.status == ImageStatus.PARTIAL:
        text = f"partial {row.n_labelled}/{N_POINTS}"
    else:
        text = "not started"
    if row.n_invisible:
        text += f", {row.n_invisible} invisible"
    return text


class ImageListModel(QAbstractTableModel):
    """Rows of images in id order with file, size, identity and the current annotator's status."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._images: list[ImageInfo] = []
        self._names: list[str | None] = []
        self._row_of: dict[int, int] = {}
        self._status: dict[int, StatusRow] = {}
        self._n_done = 0
        self._n_partial = 0
        self._score_columns: list[ScoreColumn] = []

    def set_images(self, images: list[ImageInfo], status: dict[int, StatusRow]) -> None:
        self.beginResetModel()
        self._images = list(images)
        # File names are derived on first use; computing 10,000 at once would slow the start.
        self._names = [None] * len(self._images)
        self._row_of = {info.id: row for row, info in enumerate(self._images)}
        self._status = dict(status)
        self._recount()
        self.endResetModel()

    def set_statuses(self, status: dict[int, StatusRow]) -> None:
        """Replace every status (after the annotator changed)."""
        self._status = dict(status)
        self._recount()
        if self._images:
            self.dataChanged.emit(self.index(0, COL_STATUS), self.index(len(self._images) - 1, COL_STATUS))

    def update_status(self, image_id: int, row: StatusRow) -> None:
        old = self.status_of(image_id)
        if old == row:
            return
        self._count(old, -1)
        self._count(row, +1)
        self._status[image_id] = row
        r = self._row_of[image_id]
        self.dataChanged.emit(self.index(r, COL_STATUS), self.index(r, COL_STATUS))

    def _recount(self) -> None:
        self._n_done = self._n_partial = 0
        for image_id, row in self._status.items():
            if image_id in self._row_of:
                self._count(row, +1)

    def _count(self, row: StatusRow, sign: int) -> None:
        if row.status == ImageStatus.DONE:
            self._n_done += sign
        elif row.status == ImageStatus.PARTIAL:
            self._n_partial += sign

    def counts(self) -> tuple[int, int, int]:
        """Return (done, partial, total) for the current annotator."""
        return self._n_done, self._n_partial, len(self._images)

    def status_of(self, image_id: int) -> StatusRow:
        return self._status.get(image_id, NOT_STARTED)

    def row_of(self, image_id: int) -> int:
        return self._row_of[image_id]

    def info_at(self, row: int) -> ImageInfo:
        return self._images[row]

    def info(self, image_id: int) -> ImageInfo:
        return self._images[self._row_of[image_id]]

    def file_name(self, row: int) -> str:
        name = self._names[row]
        if name is None:
            info = self._images[row]
            name = self._names[row] = os.path.basename(info.original_path) or os.path.basename(info.file)
        return name

    def image_ids(self) -> list[int]:
        return list(self._row_of)

    def add_score_column(self, column: ScoreColumn) -> int:
        """Append ``column`` after the fixed columns and return its index."""
        index = len(COLUMNS) + len(self._score_columns)
        self.beginInsertColumns(QModelIndex(), index, index)
        self._score_columns.append(column)
        self.endInsertColumns()
        return index

    def score_column(self, key: str) -> int:
        """Return the index of the score column named ``key``; KeyError when there is none."""
        for n, column in enumerate(self._score_columns):
            if column.key == key:
                return len(COLUMNS) + n
        raise KeyError(f"no score column {key!r}")

    def set_scores(self, key: str, values: dict[int, float]) -> None:
        """Replace the values of score column ``key`` (image id -> value)."""
        index = self.score_column(key)
        self._score_columns[index - len(COLUMNS)].values = dict(values)
        if self._images:
            self.dataChanged.emit(self.index(0, index), self.index(len(self._images) - 1, index))

    def score(self, key: str, image_id: int) -> float | None:
        return self._score_columns[self.score_column(key) - len(COLUMNS)].values.get(image_id)

    # ------------------------------------------------------------------ Qt model

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._images)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS) + len(self._score_columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            if section >= len(COLUMNS):
                return self._score_columns[section - len(COLUMNS)].title
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        info = self._images[index.row()]
        col = index.column()
        if col >= len(COLUMNS):
            return self._score_data(self._score_columns[col - len(COLUMNS)], info.id, role)
        if role == Qt.ItemDataRole.DisplayRole:
            if col == COL_ID:
                return str(info.id)
            if col == COL_FILE:
                return self.file_name(index.row())
            if col == COL_SIZE:
                return f"{info.width}x{info.height}"
            if col == COL_IDENTITY:
                return info.identity
            return status_text(self.status_of(info.id))
        if role == SORT_ROLE:
            if col == COL_ID:
                return info.id
            if col == COL_FILE:
                return self.file_name(index.row()).lower()
            if col == COL_SIZE:
                return info.width * info.height
            if col == COL_IDENTITY:
                return info.identity.lower()
            row = self.status_of(info.id)
            return int(row.status) * 10 + row.n_labelled + (5 if row.n_invisible else 0)
        if role == Qt.ItemDataRole.ForegroundRole and col == COL_STATUS:
            return QBrush(_STATUS_COLOURS[self.status_of(info.id).status])
        if role == Qt.ItemDataRole.ToolTipRole and col == COL_FILE:
            return info.original_path
        return None

    @staticmethod
    def _score_data(column: ScoreColumn, image_id: int, role: int) -> Any:
        value = column.values.get(image_id)
        if role == Qt.ItemDataRole.DisplayRole:
            return "" if value is None else f"{value:.{column.decimals}f}"
        if role == SORT_ROLE:
            if value is None or not math.isfinite(value):
                return math.inf
            return -value if column.larger_first else value
        return None


class ImageFilterProxy(QSortFilterProxyModel):
    """Filters rows by text (file or identity) and by status."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self._text = ""
        self._status_filter = "all"
        self._row_filters: dict[str, Callable[[int], bool]] = {}

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        # The source rows are already in id order; sorting 10,000 rows through Python data()
        # calls would take about a second, so ascending id means "no sorting".
        if column == COL_ID and order == Qt.SortOrder.AscendingOrder:
            column = -1
        super().sort(column, order)

    def source(self) -> ImageListModel:
        return self.sourceModel()  # type: ignore[return-value]

    def is_unfiltered(self) -> bool:
        return not self._text and self._status_filter == "all" and not self._row_filters

    def set_row_filter(self, key: str, accepts: Callable[[int], bool] | None) -> None:
        """Show only images for which ``accepts(image_id)`` is True, besides the other filters; None removes filter ``key``."""
        self.beginFilterChange()
        if accepts is None:
            self._row_filters.pop(key, None)
        else:
            self._row_filters[key] = accepts
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self._text = text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_status_filter(self, key: str) -> None:
        if key not in STATUS_FILTERS:
            raise ValueError(f"Unknown status filter {key!r}; expected one of {', '.join(STATUS_FILTERS)}")
        self.beginFilterChange()
        self._status_filter = key
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        if self.is_unfiltered():
            return True
        model = self.source()
        info = model.info_at(source_row)
        if not all(accepts(info.id) for accepts in self._row_filters.values()):
            return False
        if self._text and self._text not in model.file_name(source_row).lower() and self._text not in info.identity.lower():
            return False
        key = self._status_filter
        if key == "all":
            return True
        row = model.status_of(info.id)
        if key == "unfinished":
            return row.status != ImageStatus.DONE
        if key == "not_started":
            return row.status == ImageStatus.NOT_STARTED
        if key == "partial":
            return row.status == ImageStatus.PARTIAL
        if key == "done":
            return row.status == ImageStatus.DONE
        return row.n_invisible > 0


class ImageListPanel(QWidget):
    """Filter controls above a sortable table of images; emits :attr:`image_chosen` on a user's pick."""

    image_chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = ImageListModel(self)
        self.proxy = ImageFilterProxy(self)
        self.proxy.setSourceModel(self.model)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by file or identity")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        self.status_combo = QComboBox()
        for key, title in STATUS_FILTERS.items():
            self.status_combo.addItem(title, key)
        self.status_combo.currentIndexChanged.connect(lambda _i: self.proxy.set_status_filter(self.status_combo.currentData()))

        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(COL_ID, Qt.SortOrder.AscendingOrder)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # The canvas keeps the keyboard focus so that labelling keys always reach it.
        self.view.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.view.setAlternatingRowColors(True)
        # select_image scrolls by pages itself; Qt's own scroll-to-current would scroll one row per step.
        self.view.setAutoScroll(False)
        self.view.setWordWrap(False)
        # Names of one set share a long prefix (crowd_centerface_...), so the middle is elided, not the end.
        self.view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        vheader = self.view.verticalHeader()
        vheader.setVisible(False)
        vheader.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vheader.setDefaultSectionSize(20)
        hheader = self.view.horizontalHeader()
        hheader.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for col, width in zip(range(len(COLUMNS)), (46, 112, 52, 72, 110)):
            self.view.setColumnWidth(col, width)
        hheader.setStretchLastSection(True)
        self.view.clicked.connect(self._on_clicked)

        top = QHBoxLayout()
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.status_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(self.view)

    def _on_clicked(self, index: QModelIndex) -> None:
        source = self.proxy.mapToSource(index)
        if source.isValid():
            self.image_chosen.emit(self.model.info_at(source.row()).id)

    def select_image(self, image_id: int) -> None:
        """Highlight ``image_id`` and scroll to it (no signal); hidden by the filter: clear the selection."""
        index = self.proxy.mapFromSource(self.model.index(self.model.row_of(image_id), 0))
        selection = self.view.selectionModel()
        if not index.isValid():
            selection.clearSelection()
            return
        # A row already in a multi-row selection (Ctrl- or Shift-click) keeps that selection.
        flags = selection.SelectionFlag.NoUpdate if selection.isRowSelected(index.row()) else selection.SelectionFlag.ClearAndSelect
        selection.setCurrentIndex(index, flags | selection.SelectionFlag.Rows)
        # Scroll only when the row is out of view, and then put it at the top: stepping
        # through images then repaints the whole table once a page, not on every step.
        rect = self.view.visualRect(index)
        viewport = self.view.viewport().rect()
        if not viewport.contains(rect):
            above = rect.top() < viewport.top()
            hint = QAbstractItemView.ScrollHint.PositionAtBottom if above else QAbstractItemView.ScrollHint.PositionAtTop
            self.view.scrollTo(index, hint)

    def _proxy_row(self, image_id: int) -> int:
        return self.proxy.mapFromSource(self.model.index(self.model.row_of(image_id), 0)).row()

    def _id_at_proxy_row(self, row: int) -> int:
        return self.model.info_at(self.proxy.mapToSource(self.proxy.index(row, 0)).row()).id

    def neighbour(self, image_id: int | None, step: int) -> int | None:
        """Return the image ``step`` rows away in the shown order, or None past either end."""
        n = self.proxy.rowCount()
        if n == 0:
            return None
        row = self._proxy_row(image_id) if image_id is not None else -1
        if row >= 0:
            target = row + step
        elif image_id is not None:
            # The shown image is hidden by the filter (for example it was just finished under
            # "Not done"): step from where it would stand in id order.
            current = self.model.row_of(image_id)
            ids = self._shown_ids()
            later = [k for k, i in enumerate(ids) if self.model.row_of(i) > current]
            # The first shown row after the hidden image, or one past the end when there is none.
            next_row = later[0] if later else n
            target = next_row if step > 0 else next_row - 1
        else:
            target = 0 if step > 0 else n - 1
        if not 0 <= target < n:
            return None
        return self._id_at_proxy_row(target)

    def _shown_ids(self) -> list[int]:
        """Image ids in the order the table shows them."""
        proxy = self.proxy
        if proxy.sortColumn() < 0 and proxy.is_unfiltered():
            return self.model.image_ids()
        return [self._id_at_proxy_row(r) for r in range(proxy.rowCount())]

    def next_unfinished(self, image_id: int | None) -> int | None:
        """Return the next image in the shown order that is not done, wrapping around; None when all are done."""
        ids = self._shown_ids()
        n = len(ids)
        start = self._proxy_row(image_id) if image_id is not None else -1
        for offset in range(1, n + 1):
            candidate = ids[(start + offset) % n]
            if candidate != image_id and self.model.status_of(candidate).status != ImageStatus.DONE:
                return candidate
        return None

    def first_image(self) -> int | None:
        return self._id_at_proxy_row(0) if self.proxy.rowCount() else None

    def selected_ids(self) -> list[int]:
        """Image ids of the selected rows, in the shown order."""
        rows = sorted(index.row() for index in self.view.selectionModel().selectedRows())
        return [self._id_at_proxy_row(r) for r in rows]
