"""Exactness of the canvas: clicks store the mapped position unrounded; views never move stored points."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from s2ld_core.schema import N_POINTS, PointState

from .conftest import ANNOTATOR, click, expected_image_point, set_exact_view, widget_pos

# Even zooms with whole-number origins put every pixel centre on a whole widget pixel, so a
# click at that widget pixel is exactly the displayed centre of the image pixel.
# Each view is (zoom, pan): the pan in widget pixels is added to a view centred on pixel (6, 8).
EXACT_VIEWS = [
    (8.0, (0, 0)),
    (16.0, (-7, 3)),
    (40.0, (12, -5)),
    (64.0, (31, 17)),
    (100.0, (-2, -40)),
]
PIXELS = [(3, 4), (7, 4), (5, 8), (4, 11), (9, 11)]


@pytest.mark.parametrize("zoom, pan", EXACT_VIEWS)
def test_pixel_centre_click_stores_integer(qtbot, window, zoom, pan):
    image_id = window.current_image_id
    cx, cy = 6.0, 8.0
    centre = QPointF(window.canvas.width() // 2, window.canvas.height() // 2)
    origin = (round(centre.x() - cx * zoom) + pan[0], round(centre.y() - cy * zoom) + pan[1])
    set_exact_view(window.canvas, zoom, origin)
    for i, j in PIXELS:
        pos = window.canvas.map_from_image(i, j)
        assert pos.x() == int(pos.x())
        assert pos.y() == int(pos.y())
        click(qtbot, window.canvas, pos.toPoint())
    label = window.project.get_label(image_id, ANNOTATOR)
    assert np.all(label.state == PointState.VISIBLE)
    assert label.xy.tolist() == [[float(i), float(j)] for i, j in PIXELS]


@pytest.mark.parametrize("zoom", [8.0, 32.0, 64.0])
def test_pixel_corner_click_stores_half(qtbot, window, zoom):
    image_id = window.current_image_id
    window.canvas.set_view(zoom, QPointF(round(window.canvas.width() / 2 - 6 * zoom), round(window.canvas.height() / 2 - 8 * zoom)))
    corners = [(5.5, 7.5), (6.5, 8.5), (4.5, 9.5)]
    for x, y in corners:
        click(qtbot, window.canvas, window.canvas.map_from_image(x, y).toPoint())
    label = window.project.get_label(image_id, ANNOTATOR)
    assert label.xy[:3].tolist() == [[x, y] for x, y in corners]


def test_fractional_zoom_stores_mapped_position(qtbot, window):
    """At a zoom and pan where centres are not whole widget pixels, the store contains the exact inverse map."""
    image_id = window.current_image_id
    window.canvas.set_view(13.7, QPointF(101.3, 57.9))
    positions = [QPoint(150, 120), QPoint(221, 118), QPoint(187, 166), QPoint(160, 230), QPoint(233, 228)]
    for pos in positions:
        click(qtbot, window.canvas, pos)
    label = window.project.get_label(image_id, ANNOTATOR)
    for k, pos in enumerate(positions):
        x, y = (pos.x() - 101.3) / 13.7, (pos.y() - 57.9) / 13.7
        assert abs(label.xy[k, 0] - x) < 1e-9
        assert abs(label.xy[k, 1] - y) < 1e-9


def test_fit_view_centres_on_whole_pixels(window):
    canvas = window.canvas
    canvas.fit_to_window()
    w, h = canvas.image_size()
    assert canvas.zoom >= 2
    assert canvas.zoom % 2 == 0
    for i, j in ((0, 0), (w - 1, h - 1), (w // 2, h // 3)):
        p = canvas.map_from_image(i, j)
        assert p.x() == round(p.x())
        assert p.y() == round(p.y())
        assert canvas.map_to_image(p) == (float(i), float(j))


def test_wheel_zoom_reaches_64x_and_keeps_anchor(qtbot, window):
    canvas = window.canvas
    anchor = QPoint(canvas.width() // 2 + 13, canvas.height() // 2 - 7)
    before = canvas.map_to_image(QPointF(anchor))
    for _ in range(30):
        canvas.zoom_by(1.25, QPointF(anchor))
    assert canvas.zoom >= 64
    after = canvas.map_to_image(QPointF(anchor))
    assert abs(after[0] - before[0]) < 1e-9
    assert abs(after[1] - before[1]) < 1e-9


def test_view_changes_never_move_points(qtbot, window, faces):
    canvas = window.canvas
    image_id = window.current_image_id
    for x, y in faces[0].points:
        click(qtbot, canvas, widget_pos(canvas, x, y))
    stored = window.project.get_label(image_id, ANNOTATOR).xy.copy()

    # Zoom with the keyboard and the wheel, pan with the middle button and with space + drag.
    qtbot.keyClick(canvas, Qt.Key.Key_Plus)
    qtbot.keyClick(canvas, Qt.Key.Key_Plus)
    start = QPoint(200, 200)
    qtbot.mousePress(canvas, Qt.MouseButton.MiddleButton, pos=start)
    qtbot.mouseMove(canvas, QPoint(260, 230))
    qtbot.mouseRelease(canvas, Qt.MouseButton.MiddleButton, pos=QPoint(260, 230))
    origin_after_pan = canvas.origin
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(300, 300))
    qtbot.mouseMove(canvas, QPoint(280, 310))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(280, 310))
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert canvas.origin != origin_after_pan
    canvas.zoom_by(3.0, QPointF(123.0, 77.0))

    drawn = canvas.layer("edit").xy
    assert np.array_equal(drawn, stored)
    assert np.array_equal(window.project.get_label(image_id, ANNOTATOR).xy, stored)

    qtbot.keyClick(canvas, Qt.Key.Key_N)
    assert window.current_image_id != image_id
    qtbot.keyClick(canvas, Qt.Key.Key_P)
    assert window.current_image_id == image_id
    assert np.array_equal(window.project.get_label(image_id, ANNOTATOR).xy, stored)
    assert np.array_equal(canvas.layer("edit").xy, stored)
    assert window.project.get_label(image_id, ANNOTATOR).n_labelled == N_POINTS


def test_pan_click_places_nothing(qtbot, window):
    canvas = window.canvas
    image_id = window.current_image_id
    qtbot.mousePress(canvas, Qt.MouseButton.RightButton, pos=QPoint(200, 200))
    qtbot.mouseMove(canvas, QPoint(240, 210))
    qtbot.mouseRelease(canvas, Qt.MouseButton.RightButton, pos=QPoint(240, 210))
    assert window.project.get_label(image_id, ANNOTATOR).n_labelled == 0


def test_zoom_keys_and_status_label(qtbot, window):
    canvas = window.canvas
    start = canvas.zoom
    qtbot.keyClick(canvas, Qt.Key.Key_Plus)
    assert canvas.zoom == start * 1.25
    assert window.zoom_label.text() == f"zoom {canvas.zoom:.3g}x"
    qtbot.keyClick(canvas, Qt.Key.Key_Minus)
    assert abs(canvas.zoom - start) < 1e-9
    qtbot.keyClick(canvas, Qt.Key.Key_Plus)
    qtbot.keyClick(canvas, Qt.Key.Key_F)
    assert canvas.zoom == start
