"""The magnified face with its landmark layers.

Coordinates: the canvas maps image point (x, y) to widget point
``(x * zoom + origin_x, y * zoom + origin_y)``, so the centre of image pixel (i, j) is image
point (i, j) and the pixel covers i - 0.5 .. i + 0.5. Mouse positions map back with the exact
inverse and are never rounded. Widget coordinates are Qt's logical paint coordinates, the same
values that ``QMouseEvent.position()`` reports.

Points are drawn as layers (:class:`PointLayer`) above the image. The layer named
:data:`EDIT_LAYER` contains the current annotator's points; other layers (other annotators, model
predictions) are drawn with their own marker style. A layer with ``draggable=True`` can be pressed
and dragged too, but the canvas only reports that through :attr:`FaceCanvas.layer_point_released`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap, QTransform, QWheelEvent
from PySide6.QtWidgets import QWidget

from s2ld_core.schema import COLOURS, N_POINTS, PointState

# Pens and brushes reused by every paint.
_NO_PEN = QPen(Qt.PenStyle.NoPen)
_NO_BRUSH = QBrush(Qt.BrushStyle.NoBrush)
_BLACK_BRUSH = QBrush(QColor(0, 0, 0))
_GRID_COLOUR = QColor(0, 0, 0, 70)
_BACKGROUND = QColor(38, 40, 44)


#: Name of the layer with the current annotator's editable points.
EDIT_LAYER = "edit"

MIN_ZOOM = 0.5
MAX_ZOOM = 128.0
#: Zoom factor per wheel notch or zoom key press.
ZOOM_STEP = 1.25
#: The pixel grid is drawn from this zoom (screen pixels per image pixel) upwards.
GRID_MIN_ZOOM = 8.0
#: Pixels of grid overlays kept for recent zooms (4 bytes each).
GRID_CACHE_PIXELS = 8_000_000
#: A press within this many screen pixels of a point grabs it for dragging.
GRAB_RADIUS = 9.0
#: A drag shorter than this many screen pixels is a click, not a move.
DRAG_THRESHOLD = 2.0


class MarkerStyle(enum.Enum):
    """Marker shape of a layer's points."""

    FILLED = "filled"  # the current annotator's points
    HOLLOW = "hollow"  # model predictions
    CROSS = "cross"  # other annotators' points (blind mode off)


@dataclass
class PointLayer:
    """Points drawn above the image.

    Attributes:
        name: unique key of the layer on the canvas.
        xy: float64 (5, 2) in image pixels; NaN rows are not drawn.
        state: int8 (5,) of PointState; only VISIBLE points are drawn.
        style: marker style.
        z: drawing order; higher layers are drawn later (on top).
        opacity: 0..1 for the whole layer.
        caption: short text drawn beside each point (for example an annotator's name); empty for none.
        colours: RGB per point; defaults to the schema colours.
        draggable: its points can be pressed and dragged like those of the edit layer, which
            wins where both are within reach.
    """

    name: str
    xy: np.ndarray
    state: np.ndarray
    style: MarkerStyle = MarkerStyle.FILLED
    z: int = 0
    opacity: float = 1.0
    caption: str = ""
    colours: tuple[tuple[int, int, int], ...] = field(default=COLOURS)
    draggable: bool = False


def _is_whole_rect(rect: QRectF) -> bool:
    """True when every edge of ``rect`` lies on a whole screen pixel."""
    return all(v == int(v) for v in (rect.left(), rect.top(), rect.width(), rect.height()))


class FaceCanvas(QWidget):
    """Magnified view of one face with nearest-neighbour pixels, zoom, pan, grid and crosshair.

    Signals carry image coordinates as Python floats. The canvas changes no data itself: it requests
    placements and moves, and the owner writes them to the store and sets the layer again.
    """

    #: Left click on the image away from any point: request to place a point at (x, y).
    place_requested = Signal(float, float)
    #: A point of the edit layer was dragged: (index, old x, old y, new x, new y), sent on release.
    move_finished = Signal(int, float, float, float, float)
    #: A point of the edit layer was pressed (selected) without being moved.
    point_pressed = Signal(int)
    #: A point of a draggable layer other than the edit layer was released:
    #: (layer name, index, moved, x, y); x, y is where it was dropped, or its own position when not moved.
    layer_point_released = Signal(str, int, bool, float, float)
    #: Cursor position in image pixels; NaN, NaN when the cursor leaves the canvas.
    cursor_moved = Signal(float, float)
    #: Zoom or pan changed.
    view_changed = Signal()
    #: A frame with an image was painted.
    painted = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumSize(200, 200)

        self._image: QImage | None = None
        self._image_size = (0, 0)
        self._zoom = 1.0
        self._origin = QPointF(0.0, 0.0)
        self._fit_pending = True
        self._layers: dict[str, PointLayer] = {}
        self._selected: int | None = None
        self._grid_tile_cache: QPixmap | None = None
        self._grid_overlays: dict[tuple[int, int, int], QPixmap] = {}

        self.smooth = False
        self.show_grid = True
        self.show_crosshair = True
        self.editable = True

        self._cursor: QPointF | None = None
        self._space_down = False
        self._pan_start: QPointF | None = None
        self._pan_button = Qt.MouseButton.NoButton
        self._drag_index: int | None = None
        self._drag_layer = EDIT_LAYER
        self._drag_start_widget = QPointF()
        self._drag_start_xy = (0.0, 0.0)
        self._drag_moved = False

    # ------------------------------------------------------------------ image and layers

    def set_image(self, image: QImage, keep_view: bool = True) -> None:
        """Show ``image``; the zoom and pan stay unless the size changes or ``keep_view`` is False."""
        size = (image.width(), image.height())
        if size != self._image_size or not keep_view:
            self._fit_pending = True
        self._image = image
        self._image_size = size
        self._cancel_drag()
        self.update()

    def clear_image(self) -> None:
        self._image = None
        self._image_size = (0, 0)
        self._layers.clear()
        self._cancel_drag()
        self.update()

    def image_size(self) -> tuple[int, int]:
        return self._image_size

    def set_layer(self, layer: PointLayer) -> None:
        """Add or replace the layer with ``layer.name``."""
        self._layers[layer.name] = layer
        self.update()

    def remove_layer(self, name: str) -> None:
        if self._layers.pop(name, None) is not None:
            self.update()

    def remove_layers(self, prefix: str) -> None:
        """Remove every layer whose name starts with ``prefix``."""
        names = [n for n in self._layers if n.startswith(prefix)]
        for n in names:
            del self._layers[n]
        if names:
            self.update()

    def layer(self, name: str) -> PointLayer | None:
        return self._layers.get(name)

    def layer_names(self) -> list[str]:
        return list(self._layers)

    def set_selected(self, index: int | None) -> None:
        self._selected = index
        self.update()

    # ------------------------------------------------------------------ mapping

    @property
    def zoom(self) -> float:
        """Screen pixels per image pixel."""
        return self._zoom

    @property
    def origin(self) -> QPointF:
        """Widget position of image point (0, 0), the centre of the top-left pixel."""
        return QPointF(self._origin)

    def map_to_image(self, pos: QPointF) -> tuple[float, float]:
        """Map a widget position to image coordinates (no rounding)."""
        self._ensure_fit()
        return ((pos.x() - self._origin.x()) / self._zoom, (pos.y() - self._origin.y()) / self._zoom)

    def map_from_image(self, x: float, y: float) -> QPointF:
        """Map image coordinates to a widget position."""
        self._ensure_fit()
        return QPointF(x * self._zoom + self._origin.x(), y * self._zoom + self._origin.y())

    def set_view(self, zoom: float, origin: QPointF) -> None:
        """Set zoom and the widget position of image point (0, 0) directly."""
        self._zoom = float(min(max(zoom, MIN_ZOOM), MAX_ZOOM))
        self._origin = QPointF(origin)
        self._fit_pending = False
        self.update()
        self.view_changed.emit()

    def fit_to_window(self) -> None:
        """Zoom so the whole face fits, at a whole-number zoom when it is at least 1 (equal-sized pixels)."""
        w, h = self._image_size
        if w == 0 or h == 0 or self.width() < 2 or self.height() < 2:
            self._fit_pending = True
            return
        zoom = min(self.width() / w, self.height() / h) * 0.92
        if zoom >= 2.0:
            # An even zoom puts pixel centres on whole screen pixels, where a click stores (i, j) exactly.
            zoom = 2.0 * math.floor(zoom / 2.0)
        elif zoom >= 1.0:
            zoom = 1.0
        zoom = min(max(zoom, MIN_ZOOM), MAX_ZOOM)
        # Round the origin so that image pixel edges fall on whole screen pixels.
        left = round((self.width() - w * zoom) / 2.0)
        top = round((self.height() - h * zoom) / 2.0)
        self.set_view(zoom, QPointF(left + 0.5 * zoom, top + 0.5 * zoom))

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Multiply the zoom by ``factor`` keeping the image point under ``anchor`` (default: centre) fixed."""
        self._ensure_fit()
        if anchor is None:
            anchor = QPointF(self.width() / 2.0, self.height() / 2.0)
        x, y = self.map_to_image(anchor)
        zoom = float(min(max(self._zoom * factor, MIN_ZOOM), MAX_ZOOM))
        self.set_view(zoom, QPointF(anchor.x() - x * zoom, anchor.y() - y * zoom))

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the image by (dx, dy) screen pixels."""
        self._ensure_fit()
        self.set_view(self._zoom, QPointF(self._origin.x() + dx, self._origin.y() + dy))

    def _ensure_fit(self) -> None:
        if self._fit_pending:
            self.fit_to_window()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit_pending:
            self.fit_to_window()

    # ------------------------------------------------------------------ painting

    def paintEvent(self, event: QPaintEvent) -> None:
        self._ensure_fit()
        painter = QPainter(self)
        if self._image is None:
            painter.fillRect(self.rect(), _BACKGROUND)
            painter.setPen(QColor(170, 170, 170))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No image")
            painter.end()
            return

        w, h = self._image_size
        z = self._zoom
        target = QRectF(self._origin.x() - 0.5 * z, self._origin.y() - 0.5 * z, w * z, h * z)
        self._paint_background(painter, target)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth)
        painter.drawImage(target, self._image)

        if self.show_grid and z >= GRID_MIN_ZOOM:
            self._paint_grid(painter, target)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for layer in sorted(self._layers.values(), key=lambda item: item.z):
            self._paint_layer(painter, layer)
        if self.show_crosshair and self._cursor is not None and self._pan_start is None:
            self._paint_crosshair(painter)
        painter.end()
        self.painted.emit()

    def _paint_background(self, painter: QPainter, target: QRectF) -> None:
        # Only the four bands around the image: the image covers the rest.
        full = QRectF(self.rect())
        painter.fillRect(QRectF(full.left(), full.top(), full.width(), max(0.0, target.top() - full.top())), _BACKGROUND)
        painter.fillRect(QRectF(full.left(), target.bottom(), full.width(), max(0.0, full.bottom() - target.bottom())), _BACKGROUND)
        painter.fillRect(QRectF(full.left(), target.top(), max(0.0, target.left() - full.left()), target.height()), _BACKGROUND)
        painter.fillRect(QRectF(target.right(), target.top(), max(0.0, full.right() - target.right()), target.height()), _BACKGROUND)

    def _paint_grid(self, painter: QPainter, target: QRectF) -> None:
        z = self._zoom
        visible = target.intersected(QRectF(self.rect()))
        if visible.isEmpty():
            return
        if z == int(z) and z <= 512:
            if self.devicePixelRatioF() == 1.0 and _is_whole_rect(visible) and _is_whole_rect(target):
                # The same pixels blended from a cached overlay, measured about three times faster than
                # the tiled fill. The overlay stays valid while the zoom and the widget size stay.
                size = int(z)
                source = QRectF((visible.left() - target.left()) % size, (visible.top() - target.top()) % size, visible.width(), visible.height())
                painter.drawPixmap(visible, self._grid_overlay(size), source)
                return
            # At whole-number zooms one tiled brush paints the whole grid in a single fill,
            # several times faster than a rectangle per grid line.
            brush = QBrush(self._grid_tile(int(z)))
            brush.setTransform(QTransform.fromTranslate(target.left(), target.top()))
            painter.fillRect(visible, brush)
            return
        w, h = self._image_size
        colour = _GRID_COLOUR
        i0 = max(0, math.floor((visible.left() - target.left()) / z))
        i1 = min(w, math.ceil((visible.right() - target.left()) / z))
        j0 = max(0, math.floor((visible.top() - target.top()) / z))
        j1 = min(h, math.ceil((visible.bottom() - target.top()) / z))
        for i in range(i0, i1 + 1):
            painter.fillRect(QRectF(target.left() + i * z, visible.top(), 1.0, visible.height()), colour)
        for j in range(j0, j1 + 1):
            painter.fillRect(QRectF(visible.left(), target.top() + j * z, visible.width(), 1.0), colour)

    def _grid_overlay(self, size: int) -> QPixmap:
        """Return a transparent pixmap one tile larger than the widget with the grid of ``size``.

        The grid repeats every ``size`` pixels, so any part of the widget takes its grid from this
        pixmap at an offset.
        """
        key = (size, self.width(), self.height())
        overlay = self._grid_overlays.get(key)
        if overlay is None:
            overlay = QPixmap(self.width() + size, self.height() + size)
            overlay.fill(QColor(0, 0, 0, 0))
            p = QPainter(overlay)
            p.fillRect(QRectF(0, 0, overlay.width(), overlay.height()), QBrush(self._grid_tile(size)))
            p.end()
            # Fitting each face size picks its own zoom, so several overlays are kept. The oldest go
            # first once the budget is reached; an overlay larger than the budget is still kept alone.
            kept = sum(o.width() * o.height() for o in self._grid_overlays.values())
            while self._grid_overlays and kept + overlay.width() * overlay.height() > GRID_CACHE_PIXELS:
                oldest = self._grid_overlays.pop(next(iter(self._grid_overlays)))
                kept -= oldest.width() * oldest.height()
            self._grid_overlays[key] = overlay
        return overlay

    def _grid_tile(self, size: int) -> QPixmap:
        """Return a size x size transparent tile with a grid line along its left and top edges."""
        if self._grid_tile_cache is None or self._grid_tile_cache.width() != size:
            tile = QPixmap(size, size)
            tile.fill(QColor(0, 0, 0, 0))
            p = QPainter(tile)
            p.fillRect(QRectF(0, 0, size, 1), _GRID_COLOUR)
            p.fillRect(QRectF(0, 1, 1, size - 1), _GRID_COLOUR)
            p.end()
            self._grid_tile_cache = tile
        return self._grid_tile_cache

    def _marker_radius(self) -> float:
        # Markers grow with zoom but stay small against a pixel so the pixel under them stays visible.
        return float(min(max(self._zoom * 0.22, 3.0), 7.0))

    def _paint_layer(self, painter: QPainter, layer: PointLayer) -> None:
        r = self._marker_radius()
        painter.setOpacity(layer.opacity)
        for k in range(N_POINTS):
            if int(layer.state[k]) != PointState.VISIBLE:
                continue
            x, y = float(layer.xy[k, 0]), float(layer.xy[k, 1])
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            p = self.map_from_image(x, y)
            colour = QColor(*layer.colours[k])
            if layer.style is MarkerStyle.FILLED:
                selected = layer.name == EDIT_LAYER and self._selected == k
                radius = r + (2.0 if selected else 0.0)
                # A white ring inside a black one keeps the marker visible on dark and light skin.
                painter.setPen(QPen(QColor(0, 0, 0), 3.0))
                painter.setBrush(QBrush(colour))
                painter.drawEllipse(p, radius, radius)
                painter.setPen(QPen(QColor(255, 255, 255), 2.0 if selected else 1.2))
                painter.drawEllipse(p, radius, radius)
                # A dark dot marks the exact stored position inside the marker.
                painter.setPen(_NO_PEN)
                painter.setBrush(_BLACK_BRUSH)
                painter.drawEllipse(p, 1.1, 1.1)
            elif layer.style is MarkerStyle.HOLLOW:
                painter.setBrush(_NO_BRUSH)
                painter.setPen(QPen(QColor(0, 0, 0, 160), 3.2))
                painter.drawEllipse(p, r + 1.0, r + 1.0)
                painter.setPen(QPen(colour, 1.8))
                painter.drawEllipse(p, r + 1.0, r + 1.0)
            else:
                d = r * 0.9
                painter.setPen(QPen(QColor(0, 0, 0, 160), 3.2))
                painter.drawLine(QPointF(p.x() - d, p.y() - d), QPointF(p.x() + d, p.y() + d))
                painter.drawLine(QPointF(p.x() - d, p.y() + d), QPointF(p.x() + d, p.y() - d))
                painter.setPen(QPen(colour, 1.6))
                painter.drawLine(QPointF(p.x() - d, p.y() - d), QPointF(p.x() + d, p.y() + d))
                painter.drawLine(QPointF(p.x() - d, p.y() + d), QPointF(p.x() + d, p.y() - d))
            if layer.caption:
                painter.setPen(QColor(235, 235, 235))
                painter.drawText(QPointF(p.x() + r + 3.0, p.y() - r), layer.caption)
        painter.setOpacity(1.0)
        painter.setBrush(_NO_BRUSH)

    def _paint_crosshair(self, painter: QPainter) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        pen = QPen(QColor(255, 255, 255, 110), 1.0, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        c = self._cursor
        painter.drawLine(QPointF(0, c.y()), QPointF(self.width(), c.y()))
        painter.drawLine(QPointF(c.x(), 0), QPointF(c.x(), self.height()))

    # ------------------------------------------------------------------ mouse and keys

    def _hit_point(self, pos: QPointF, layer_name: str = EDIT_LAYER) -> int | None:
        layer = self._layers.get(layer_name)
        if layer is None:
            return None
        best, best_d = None, GRAB_RADIUS
        for k in range(N_POINTS):
            if int(layer.state[k]) != PointState.VISIBLE:
                continue
            p = self.map_from_image(float(layer.xy[k, 0]), float(layer.xy[k, 1]))
            d = math.hypot(p.x() - pos.x(), p.y() - pos.y())
            if d <= best_d:
                best, best_d = k, d
        return best

    def _hit_draggable(self, pos: QPointF) -> tuple[str, int] | None:
        """Return (layer name, index) of the draggable point under ``pos``; the edit layer first, then higher z."""
        hit = self._hit_point(pos)
        if hit is not None:
            return EDIT_LAYER, hit
        if not self.editable:
            return None
        for layer in sorted(self._layers.values(), key=lambda item: -item.z):
            if layer.draggable and layer.name != EDIT_LAYER:
                hit = self._hit_point(pos, layer.name)
                if hit is not None:
                    return layer.name, hit
        return None

    def mousePressEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        button = event.button()
        if button in (Qt.MouseButton.MiddleButton, Qt.MouseButton.RightButton) or (
            button == Qt.MouseButton.LeftButton and self._space_down
        ):
            self._pan_start = pos
            self._pan_button = button
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        if button != Qt.MouseButton.LeftButton or self._image is None:
            return
        found = self._hit_draggable(pos)
        if found is not None:
            name, hit = found
            layer = self._layers[name]
            self._drag_layer = name
            self._drag_index = hit
            self._drag_start_widget = pos
            self._drag_start_xy = (float(layer.xy[hit, 0]), float(layer.xy[hit, 1]))
            self._drag_moved = False
            if name == EDIT_LAYER:
                self._selected = hit
                self.point_pressed.emit(hit)
            self.update()
            return
        x, y = self.map_to_image(pos)
        self.place_requested.emit(x, y)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        self._cursor = pos
        if self._pan_start is not None:
            delta = pos - self._pan_start
            self._pan_start = pos
            self.pan_by(delta.x(), delta.y())
        elif self._drag_index is not None and self.editable:
            moved = pos - self._drag_start_widget
            if self._drag_moved or math.hypot(moved.x(), moved.y()) >= DRAG_THRESHOLD:
                self._drag_moved = True
                # The preview moves the drawn marker only; the store is written on release.
                x, y = self._clamped(*self.map_to_image(pos))
                layer = self._layers.get(self._drag_layer)
                if layer is not None:
                    layer.xy[self._drag_index] = (x, y)
        x, y = self.map_to_image(pos)
        self.cursor_moved.emit(x, y)
        self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._pan_start is not None and event.button() == self._pan_button:
            self._pan_start = None
            self.setCursor(Qt.CursorShape.OpenHandCursor if self._space_down else Qt.CursorShape.ArrowCursor)
            return
        if event.button() != Qt.MouseButton.LeftButton or self._drag_index is None:
            return
        k, moved, name = self._drag_index, self._drag_moved, self._drag_layer
        self._drag_index = None
        self._drag_moved = False
        x0, y0 = self._drag_start_xy
        if name != EDIT_LAYER:
            x, y = self._clamped(*self.map_to_image(event.position())) if moved else (x0, y0)
            self.layer_point_released.emit(name, k, moved, x, y)
        elif moved and self.editable:
            x, y = self._clamped(*self.map_to_image(event.position()))
            self.move_finished.emit(k, x0, y0, x, y)

    def _clamped(self, x: float, y: float) -> tuple[float, float]:
        # A point dragged past the border stays on the border of the image.
        w, h = self._image_size
        return float(min(max(x, -0.5), w - 0.5)), float(min(max(y, -0.5), h - 0.5))

    def _cancel_drag(self) -> None:
        self._drag_index = None
        self._drag_moved = False

    def leaveEvent(self, event) -> None:
        self._cursor = None
        self.cursor_moved.emit(float("nan"), float("nan"))
        self.update()
        super().leaveEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(ZOOM_STEP**steps, event.position())

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self.setCursor(Qt.CursorShape.OpenHandCursor)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self._pan_start = None
            self.setCursor(Qt.CursorShape.ArrowCursor)
            return
        super().keyReleaseEvent(event)
