"""The shown face at 1:1 and 4x beside the canvas, so the annotator sees it as a viewer would."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from s2ld_core.schema import COLOURS, N_POINTS, PointState

# Pens and brushes reused by every paint.
_NO_PEN = QPen(Qt.PenStyle.NoPen)
_NO_BRUSH = QBrush(Qt.BrushStyle.NoBrush)
_BLACK_BRUSH = QBrush(QColor(0, 0, 0))


_SCALES = (1, 4)
_MARGIN = 8
_CAPTION = 16
#: Face side in pixels that the panel is sized for; larger faces are cut off at the panel's edge.
_LAYOUT_FACE_SIZE = 34


class ThumbnailPanel(QWidget):
    """Paints the display image at each scale in :data:`_SCALES` with nearest-neighbour pixels."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._image: QImage | None = None
        self._xy = np.full((N_POINTS, 2), np.nan)
        self._state = np.zeros(N_POINTS, dtype=np.int8)
        self.show_points = True
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        # The widget paints its whole background, so its parents need not repaint under it.
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def sizeHint(self) -> QSize:
        # A fixed size: a hint that followed each image's size would re-layout the window on every switch.
        side = _LAYOUT_FACE_SIZE
        width = sum(side * s for s in _SCALES) + _MARGIN * (len(_SCALES) + 1)
        return QSize(width, side * max(_SCALES) + _CAPTION + 2 * _MARGIN)

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def set_image(self, image: QImage | None) -> None:
        self._image = image
        self.update()

    def set_points(self, xy: np.ndarray, state: np.ndarray) -> None:
        self._xy = xy
        self._state = state
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().window())
        if self._image is None:
            painter.end()
            return
        w, h = self._image.width(), self._image.height()
        x = float(_MARGIN)
        painter.setPen(self.palette().text().color())
        for scale in _SCALES:
            target = QRectF(x, _MARGIN + _CAPTION, w * scale, h * scale)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            painter.drawImage(target, self._image)
            painter.setPen(self.palette().text().color())
            painter.drawText(QRectF(x, _MARGIN, max(w * scale, 30), _CAPTION), Qt.AlignmentFlag.AlignLeft, f"{scale}:1" if scale == 1 else f"{scale}x")
            if self.show_points and scale > 1:
                self._paint_points(painter, target, scale)
            x += w * scale + _MARGIN
        painter.end()

    def _paint_points(self, painter: QPainter, target: QRectF, scale: int) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for k in range(N_POINTS):
            if int(self._state[k]) != PointState.VISIBLE or not math.isfinite(float(self._xy[k, 0])):
                continue
            # Image point (x, y) is at target.left + (x + 0.5) * scale, since pixel 0 starts at -0.5.
            p = QPointF(target.left() + (self._xy[k, 0] + 0.5) * scale, target.top() + (self._xy[k, 1] + 0.5) * scale)
            painter.setPen(QPen(QColor(0, 0, 0), 1.0))
            painter.setBrush(QBrush(QColor(*COLOURS[k])))
            painter.drawEllipse(p, 2.0, 2.0)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
