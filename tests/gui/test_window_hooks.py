"""What the window shows matches the store, and the hooks that later features build on."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QLabel

from s2ld_core.schema import N_POINTS, PointState

from .conftest import ANNOTATOR, click, widget_pos


def test_displayed_pixels_equal_stored_image(qtbot, window):
    from alrf_studio.adjustments import qimage_to_rgb

    for image_id in window.project.image_ids():
        window.show_image(image_id)
        stored = np.asarray(Image.open(window.project.image_path(image_id)).convert("RGB"))
        assert np.array_equal(qimage_to_rgb(window.canvas._image), stored)
        assert np.array_equal(window._raw_rgb, stored)


def test_canvas_pixel_blocks_are_nearest_neighbour(qtbot, window):
    """At high zoom every screen pixel inside an image pixel has that pixel's exact colour."""
    canvas = window.canvas
    canvas.set_view(16.0, canvas.origin)
    canvas.show_grid = False
    canvas.show_crosshair = False
    canvas.remove_layer("edit")
    frame = canvas.grab().toImage()
    rgb = window._raw_rgb
    for i, j in ((2, 3), (5, 5), (8, 1)):
        centre = canvas.map_from_image(i, j)
        for dx, dy in ((0, 0), (-7, -7), (6, 6), (7, -7)):
            colour = frame.pixelColor(QPoint(int(centre.x()) + dx, int(centre.y()) + dy))
            assert (colour.red(), colour.green(), colour.blue()) == tuple(int(v) for v in rgb[j, i])


def test_layer_provider_follows_switches(qtbot, window):
    from alrf_studio.canvas import MarkerStyle, PointLayer

    calls = []

    def provider(image_id: int):
        calls.append(image_id)
        xy = np.full((N_POINTS, 2), float(image_id))
        return [PointLayer("prediction:main", xy, np.full(N_POINTS, PointState.VISIBLE, dtype=np.int8), MarkerStyle.HOLLOW, z=8)]

    window.add_layer_provider("prediction:", provider)
    first = window.current_image_id
    assert window.canvas.layer("prediction:main").xy[0, 0] == first
    qtbot.keyClick(window.canvas, Qt.Key.Key_N)
    second = window.current_image_id
    assert window.canvas.layer("prediction:main").xy[0, 0] == second
    assert calls[-1] == second
    window.remove_layer_provider("prediction:")
    assert window.canvas.layer("prediction:main") is None


def test_add_dock_and_toolbar_action(qtbot, window):
    from PySide6.QtGui import QAction

    dock = window.add_dock("Training", QLabel("training panel"))
    assert dock.toggleViewAction() in window.menus["view"].actions()
    action = QAction("Accept predictions", window)
    window.toolbar.addAction(action)
    assert action in window.toolbar.actions()


def test_image_shown_and_label_changed_signals(qtbot, window, faces):
    shown, changed = [], []
    window.image_shown.connect(shown.append)
    window.label_changed.connect(changed.append)
    click(qtbot, window.canvas, widget_pos(window.canvas, *faces[0].points[0]))
    assert changed == [window.current_image_id]
    qtbot.keyClick(window.canvas, Qt.Key.Key_N)
    assert shown == [window.current_image_id]
    assert window.project.get_label(changed[0], ANNOTATOR).state[0] == PointState.VISIBLE


def test_record_external_edit_is_undoable(qtbot, window, faces):
    from s2ld_core.store import PointValue

    image_id = window.current_image_id
    x, y = faces[0].points[2]
    # A core function writes the point, as accepting a model prediction does.
    edit = window.project.apply_values(image_id, ANNOTATOR, {"nose": PointValue(PointState.VISIBLE, x, y, from_prediction=True)})
    window.session.record(edit, "Accept prediction")
    assert window.canvas.layer("edit").xy[2].tolist() == [x, y]
    assert window.legend.row_text(2) == f"{x:.2f}, {y:.2f}"
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.project.get_label(image_id, ANNOTATOR).state[2] == PointState.UNLABELLED
    assert np.isnan(window.canvas.layer("edit").xy[2]).all()
