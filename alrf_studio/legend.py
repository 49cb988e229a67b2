"""Legend of the five landmarks: colour, key, name, state, which point comes next, which is selected."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from s2ld_core.schema import COLOURS, DISPLAY_NAMES, N_POINTS, PointState

# Pens and brushes reused by every paint.
_NO_PEN = QPen(Qt.PenStyle.NoPen)
_NO_BRUSH = QBrush(Qt.BrushStyle.NoBrush)
_BLACK_BRUSH = QBrush(QColor(0, 0, 0))


_ROW_HEIGHT = 26


class LegendWidget(QWidget):
    """Paints one row per landmark; a click on a row emits :attr:`point_clicked` with its index."""

    point_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._xy = np.full((N_POINTS, 2), np.nan)
        self._state = np.zeros(N_POINTS, dtype=np.int8)
        self._next: int | None = 0
        self._selected: int | None = None
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        # The widget paints its whole background, so its parents need not repaint under it.
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumWidth(220)

    def sizeHint(self) -> QSize:
        return QSize(260, _ROW_HEIGHT * N_POINTS + 8)

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def set_points(self, xy: np.ndarray, state: np.ndarray, next_index: int | None, selected: int | None) -> None:
        self._xy = np.array(xy, dtype=np.float64)
        self._state = np.array(state, dtype=np.int8)
        self._next = next_index
        self._selected = selected
        self.update()

    def row_text(self, k: int) -> str:
        """Return the state column of row ``k`` as shown: coordinates, 'invisible', 'next' or 'not labelled'."""
        state = int(self._state[k])
        if state == PointState.VISIBLE:
            return f"{self._xy[k, 0]:.2f}, {self._xy[k, 1]:.2f}"
        if state == PointState.INVISIBLE:
            return "invisible"
        return "next" if k == self._next else "not labelled"

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().window())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        palette = self.palette()
        base_font = QFont(self.font())
        bold = QFont(base_font)
        bold.setBold(True)
        for k in range(N_POINTS):
            top = 4 + k * _ROW_HEIGHT
            row = QRectF(2, top, self.width() - 4, _ROW_HEIGHT - 2)
            if k == self._next:
                painter.fillRect(row, QColor(255, 214, 102, 90))
            if k == self._selected:
                painter.setPen(QPen(palette.highlight().color(), 2.0))
                painter.setBrush(_NO_BRUSH)
                painter.drawRoundedRect(row.adjusted(1, 1, -1, -1), 4, 4)

            centre = QPointF(row.left() + 14, row.center().y())
            state = int(self._state[k])
            colour = QColor(*COLOURS[k])
            painter.setPen(QPen(QColor(0, 0, 0), 1.2))
            if state == PointState.VISIBLE:
                painter.setBrush(QBrush(colour))
                painter.drawEllipse(centre, 6, 6)
            else:
                # Hollow marker for points without coordinates; a slash marks invisible.
                painter.setBrush(_NO_BRUSH)
                painter.setPen(QPen(colour, 2.0))
                painter.drawEllipse(centre, 5.5, 5.5)
                if state == PointState.INVISIBLE:
                    d = 5.5 / math.sqrt(2)
                    painter.drawLine(QPointF(centre.x() - d, centre.y() + d), QPointF(centre.x() + d, centre.y() - d))

            painter.setPen(palette.text().color())
            painter.setFont(bold if k == self._next else base_font)
            name_rect = QRectF(row.left() + 28, row.top(), row.width() - 28, row.height())
            prefix = "\u25b6 " if k == self._next else ""
            painter.drawText(name_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, f"{prefix}{k + 1}  {DISPLAY_NAMES[k]}")
            painter.setFont(base_font)
            if state == PointState.INVISIBLE:
                painter.setPen(QColor(200, 60, 60))
            elif state != PointState.VISIBLE:
                painter.setPen(palette.placeholderText().color())
            painter.drawText(name_rect.adjusted(0, 0, -6, 0), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, self.row_text(k))
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        k = int((event.position().y() - 4) // _ROW_HEIGHT)
        if 0 <= k < N_POINTS:
            self.point_clicked.emit(k)
