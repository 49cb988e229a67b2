"""Labelling with real mouse and key events on real low-resolution faces."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt

from s2ld_core.schema import N_POINTS, PointState
from s2ld_core.store import ImageStatus, Project

from .conftest import ANNOTATOR, click, drag, expected_image_point, open_window, widget_pos


def _label(window, image_id=None):
    return window.project.get_label(window.current_image_id if image_id is None else image_id, ANNOTATOR)


def test_full_labelling_of_several_faces(qtbot, project, faces):
    window = open_window(qtbot, project, auto_advance=True)
    infos = {info.id: info for info in project.list_images()}
    face_of = {info.id: faces[n] for n, info in enumerate(project.list_images())}
    labelled, zooms = {}, {}
    for _ in range(4):
        image_id = window.current_image_id
        canvas = window.canvas
        expected = []
        for k, (x, y) in enumerate(face_of[image_id].points):
            assert window.session.next_index() == k
            pos = widget_pos(canvas, x, y)
            expected.append(expected_image_point(canvas, pos))
            click(qtbot, canvas, pos)
        labelled[image_id] = np.array(expected)
        zooms[image_id] = canvas.zoom
        # Auto-advance opened the next unfinished face after the fifth point.
        assert window.current_image_id != image_id

    status = project.status(ANNOTATOR)
    for image_id, xy in labelled.items():
        label = project.get_label(image_id, ANNOTATOR)
        assert np.all(label.state == PointState.VISIBLE)
        assert np.abs(label.xy - xy).max() < 1e-9
        # A click lands within half a screen pixel of the reference landmark.
        assert np.abs(label.xy - face_of[image_id].points).max() <= 0.5 / zooms[image_id] + 1e-9
        assert status[image_id].status == ImageStatus.DONE
        assert infos[image_id].width == face_of[image_id].width
    model = window.image_list.model
    assert model.counts() == (4, 0, len(infos))
    assert window.counts_label.text() == f"Done 4/{len(infos)}, partial 0"
    assert model.data(model.index(model.row_of(next(iter(labelled))), 4)) == "done"


def test_mark_invisible_next_and_selected(qtbot, window, faces):
    canvas = window.canvas
    for x, y in faces[0].points[:2]:
        click(qtbot, canvas, widget_pos(canvas, x, y))
    qtbot.keyClick(canvas, Qt.Key.Key_V)
    label = _label(window)
    assert label.state.tolist() == [PointState.VISIBLE, PointState.VISIBLE, PointState.INVISIBLE, 0, 0]
    assert np.isnan(label.xy[2]).all()
    assert window.legend.row_text(2) == "invisible"
    assert window.session.next_index() == 3

    # With point 1 selected, the key marks that point instead of the next one.
    qtbot.keyClick(canvas, Qt.Key.Key_1)
    qtbot.keyClick(canvas, Qt.Key.Key_I)
    assert _label(window).state.tolist() == [PointState.INVISIBLE, PointState.VISIBLE, PointState.INVISIBLE, 0, 0]
    row = window.image_list.model.status_of(window.current_image_id)
    assert row.status == ImageStatus.PARTIAL
    assert row.n_invisible == 2
    assert "2 invisible" in window.image_list.model.data(window.image_list.model.index(window.image_list.model.row_of(window.current_image_id), 4))

    # A selected invisible point is placed again by the next click.
    pos = widget_pos(canvas, *faces[0].points[0])
    click(qtbot, canvas, pos)
    label = _label(window)
    assert label.state[0] == PointState.VISIBLE
    assert tuple(label.xy[0]) == expected_image_point(canvas, pos)


def test_all_invisible_finishes_image(qtbot, window):
    image_id = window.current_image_id
    for _ in range(N_POINTS):
        qtbot.keyClick(window.canvas, Qt.Key.Key_V)
    assert window.project.status(ANNOTATOR)[image_id].status == ImageStatus.DONE
    assert window.session.next_index() is None


def test_delete_returns_point_to_unlabelled(qtbot, window, faces):
    canvas = window.canvas
    for x, y in faces[0].points[:3]:
        click(qtbot, canvas, widget_pos(canvas, x, y))
    qtbot.keyClick(canvas, Qt.Key.Key_2)
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    label = _label(window)
    assert label.state.tolist() == [PointState.VISIBLE, PointState.UNLABELLED, PointState.VISIBLE, 0, 0]
    assert window.legend.row_text(1) == "next"
    assert window.session.next_index() == 1
    pos = widget_pos(canvas, *faces[0].points[1])
    click(qtbot, canvas, pos)
    assert tuple(_label(window).xy[1]) == expected_image_point(canvas, pos)


def test_nudge_and_merged_undo(qtbot, window, faces):
    canvas = window.canvas
    for x, y in faces[0].points[:2]:
        click(qtbot, canvas, widget_pos(canvas, x, y))
    start = _label(window).xy.copy()
    qtbot.keyClick(canvas, Qt.Key.Key_1)
    for _ in range(3):
        qtbot.keyClick(canvas, Qt.Key.Key_Right)
    qtbot.keyClick(canvas, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(canvas, Qt.Key.Key_Up)
    xy = _label(window).xy
    assert xy[0, 0] == round(start[0, 0] + 0.3, 9)
    assert xy[0, 1] == round(start[0, 1] + 1.0 - 0.1, 9)
    assert np.array_equal(xy[1], start[1])

    # The five nudges of one point are one undo step.
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(_label(window).xy[:2], start[:2])
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert np.array_equal(_label(window).xy, xy, equal_nan=True)


def test_drag_undo_redo_exact(qtbot, window, faces):
    canvas = window.canvas
    image_id = window.current_image_id
    for x, y in faces[0].points:
        click(qtbot, canvas, widget_pos(canvas, x, y))
    old = _label(window).xy.copy()
    grab = canvas.map_from_image(*old[2]).toPoint()
    end = grab + QPoint(17, -9)
    drag(qtbot, canvas, grab, end)
    moved = _label(window).xy.copy()
    assert tuple(moved[2]) == expected_image_point(canvas, end)
    assert np.array_equal(np.delete(moved, 2, axis=0), np.delete(old, 2, axis=0))
    # The drag wrote once: one edit-log row for the nose besides its placement.
    nose_rows = [r for r in window.project.edit_log(image_id) if r["landmark"] == "nose"]
    assert [r["action"] for r in nose_rows] == ["edit", "edit"]

    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(_label(window).xy, old, equal_nan=True)
    assert np.array_equal(canvas.layer("edit").xy, old)
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert np.array_equal(_label(window).xy, moved)
    actions = [r["action"] for r in window.project.edit_log(image_id) if r["landmark"] == "nose"]
    assert actions == ["edit", "edit", "undo", "redo"]

    # Undo past the drag removes the placements one by one, newest first.
    for _ in range(2):
        qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _label(window).state.tolist() == [1, 1, 1, 1, 0]


def test_undo_switches_to_the_edited_image(qtbot, window, faces):
    canvas = window.canvas
    first = window.current_image_id
    click(qtbot, canvas, widget_pos(canvas, *faces[0].points[0]))
    qtbot.keyClick(canvas, Qt.Key.Key_N)
    assert window.current_image_id != first
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.current_image_id == first
    assert _label(window, first).n_labelled == 0


def test_reopen_keeps_points(qtbot, tmp_path, project, faces):
    window = open_window(qtbot, project)
    canvas = window.canvas
    for x, y in faces[0].points[:4]:
        click(qtbot, canvas, widget_pos(canvas, *(x, y)))
    qtbot.keyClick(canvas, Qt.Key.Key_V)
    image_id = window.current_image_id
    stored = project.get_label(image_id, ANNOTATOR)
    window.close()
    root = project.root
    project.close()

    reopened = Project.open(root)
    try:
        again = open_window(qtbot, reopened)
        again.show_image(image_id)
        label = reopened.get_label(image_id, ANNOTATOR)
        assert np.array_equal(label.xy, stored.xy, equal_nan=True)
        assert np.array_equal(label.state, stored.state)
        assert np.array_equal(again.canvas.layer("edit").xy, stored.xy, equal_nan=True)
        assert again.legend.row_text(4) == "invisible"
        again.close()
    finally:
        reopened.close()


def test_time_is_recorded_per_image(qtbot, window):
    first = window.current_image_id
    qtbot.wait(30)
    qtbot.keyClick(window.canvas, Qt.Key.Key_N)
    window.flush_time()
    assert window.project.time_spent(first, ANNOTATOR) > 0.0
    second = window.current_image_id
    qtbot.wait(20)
    window.close()
    assert window.project.time_spent(second, ANNOTATOR) > 0.0


def test_click_outside_image_places_nothing(qtbot, window):
    canvas = window.canvas
    w, h = canvas.image_size()
    click(qtbot, canvas, widget_pos(canvas, w + 1.0, h / 2))
    assert _label(window).n_labelled == 0
    assert "outside" in window.statusBar().currentMessage()


def test_blind_mode_hides_other_annotators(qtbot, window, faces):
    canvas = window.canvas
    image_id = window.current_image_id
    for x, y in faces[0].points[:3]:
        click(qtbot, canvas, widget_pos(canvas, x, y))
    alice = _label(window).xy.copy()

    window.set_annotator("bob")
    assert window.annotator == "bob"
    assert window.current_image_id == image_id
    assert window.project.get_label(image_id, "bob").n_labelled == 0
    assert np.isnan(canvas.layer("edit").xy).all()
    assert not [n for n in canvas.layer_names() if n.startswith("annotator:")]
    assert window.image_list.model.status_of(image_id).status == ImageStatus.NOT_STARTED

    window.actions.view.blind_mode.setChecked(False)
    overlay = canvas.layer("annotator:alice")
    assert overlay is not None
    assert np.array_equal(overlay.xy, alice, equal_nan=True)
    window.actions.view.blind_mode.setChecked(True)
    assert canvas.layer("annotator:alice") is None


def test_adjustments_persist_across_images(qtbot, window):
    from alrf_studio.adjustments import DisplayAdjustments, qimage_to_rgb

    adj = DisplayAdjustments(brightness=0.2, contrast=1.5, gamma=0.8)
    window.adjustments_panel.set_adjustments(adj)
    qtbot.keyClick(window.canvas, Qt.Key.Key_N)
    assert window.adjustments_panel.adjustments() == adj
    raw = qimage_to_rgb(window.canvas._image)
    assert np.array_equal(raw, adj.lut()[window._raw_rgb])
    window.adjustments_panel.reset()
    assert np.array_equal(qimage_to_rgb(window.canvas._image), window._raw_rgb)


def test_image_list_filter_and_sort(qtbot, window, faces):
    panel = window.image_list
    panel.filter_edit.setText("face03")
    assert panel.proxy.rowCount() == 1
    panel.filter_edit.setText("")
    canvas = window.canvas
    for x, y in faces[0].points:
        click(qtbot, canvas, widget_pos(canvas, x, y))
    panel.status_combo.setCurrentIndex(panel.status_combo.findData("done"))
    assert panel.proxy.rowCount() == 1
    panel.status_combo.setCurrentIndex(panel.status_combo.findData("unfinished"))
    assert panel.proxy.rowCount() == len(window.project.list_images()) - 1
    panel.status_combo.setCurrentIndex(0)
    panel.view.sortByColumn(2, Qt.SortOrder.DescendingOrder)
    sizes = [panel.model.info(panel._id_at_proxy_row(r)).width for r in range(panel.proxy.rowCount())]
    assert sizes == sorted(sizes, reverse=True)


def test_next_under_not_done_filter(qtbot, window, faces):
    panel = window.image_list
    panel.status_combo.setCurrentIndex(panel.status_combo.findData("unfinished"))
    ids = window.project.image_ids()
    window.show_image(ids[2])
    for x, y in faces[2].points:
        click(qtbot, window.canvas, widget_pos(window.canvas, x, y))
    # The finished face left the filtered list; N and P step from its place in id order.
    assert panel.proxy.rowCount() == len(ids) - 1
    qtbot.keyClick(window.canvas, Qt.Key.Key_N)
    assert window.current_image_id == ids[3]
    window.show_image(ids[2])
    qtbot.keyClick(window.canvas, Qt.Key.Key_P)
    assert window.current_image_id == ids[1]
    qtbot.keyClick(window.canvas, Qt.Key.Key_U)
    assert window.current_image_id == ids[3]
