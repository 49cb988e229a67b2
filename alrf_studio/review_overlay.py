"""Spread circles and offset lines drawn over the canvas in review mode.

The canvas draws markers of a fixed screen size, so the spread of the annotators, a length in
image pixels, is drawn by this transparent child widget instead. It maps image points with the
canvas's own :meth:`~alrf_studio.canvas.FaceCanvas.map_from_image` and repaints when the view
changes, so circles and markers stay aligned at every zoom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from s2ld_core.schema import N_POINTS, PointState

from .canvas import FaceCanvas


@dataclass
class SpreadData:
    """What the overlay draws for one image.

    Attributes:
        annotator_xy: float64 (A, 5, 2); the annotators' points, NaN where not visible.
        annotator_colours: RGB per annotator.
        consensus_xy: float64 (5, 2); NaN where the consensus point is not visible.
        spread_std_px: float64 (5,); root mean square distance to the consensus, image pixels.
        spread_max_px: float64 (5,); largest distance to the consensus, image pixels.
    """

    annotator_xy: np.ndarray
    annotator_colours: list[tuple[int, int, int]]
    consensus_xy: np.ndarray
    spread_std_px: np.ndarray
    spread_max_px: np.ndarray


class SpreadOverlay(QWidget):
    """Transparent layer over a :class:`FaceCanvas` that ignores the mouse."""

    def __init__(self, canvas: FaceCanvas):
        super().__init__(canvas)
        self.canvas = canvas
        self.data: SpreadData | None = None
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.setGeometry(canvas.rect())
        canvas.installEventFilter(self)
        canvas.view_changed.connect(self.update)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.canvas and event.type() == QEvent.Type.Resize:
            self.setGeometry(self.canvas.rect())
        return False

    def set_data(self, data: SpreadData | None) -> None:
        self.data = data
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        data = self.data
        if data is None or self.canvas.image_size() == (0, 0):
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        zoom = self.canvas.zoom
        for k in range(N_POINTS):
            cx, cy = data.consensus_xy[k]
            if not (math.isfinite(cx) and math.isfinite(cy)):
                continue
            centre = self.canvas.map_from_image(float(cx), float(cy))
            for a, colour in enumerate(data.annotator_colours):
                x, y = data.annotator_xy[a, k]
                if math.isfinite(x) and math.isfinite(y):
                    painter.setPen(QPen(QColor(*colour, 200), 1.3))
                    painter.drawLine(centre, self.canvas.map_from_image(float(x), float(y)))
            self._circle(painter, centre, data.spread_std_px[k] * zoom, Qt.PenStyle.SolidLine)
            self._circle(painter, centre, data.spread_max_px[k] * zoom, Qt.PenStyle.DashLine)
        painter.end()

    @staticmethod
    def _circle(painter: QPainter, centre: QPointF, radius: float, style: Qt.PenStyle) -> None:
        if not (math.isfinite(radius) and radius >= 1.0):
            return
        # A dark halo under the white line keeps the circle visible on light skin.
        painter.setPen(QPen(QColor(0, 0, 0, 150), 3.0, style))
        painter.drawEllipse(centre, radius, radius)
        painter.setPen(QPen(QColor(255, 255, 255, 230), 1.3, style))
        painter.drawEllipse(centre, radius, radius)


def visible_xy(xy: np.ndarray, state: np.ndarray) -> np.ndarray:
    """Return ``xy`` with NaN where ``state`` is not VISIBLE (any leading shape, last axes (5, 2))."""
    return np.where((np.asarray(state) == PointState.VISIBLE)[..., None], xy, np.nan)
