"""Read-only and locked projects: a clear message, viewing still works, nothing is written."""

from __future__ import annotations

import sqlite3

import numpy as np
from PySide6.QtCore import Qt

from s2ld_core.schema import PointState
from s2ld_core.store import DB_NAME, Project

from .conftest import ANNOTATOR, click, open_window, widget_pos


def _seed_points(root, faces) -> int:
    """Label the first image with the reference points and close the project; returns its id."""
    with Project.open(root) as project:
        project.add_annotator(ANNOTATOR)
        image_id = project.image_ids()[0]
        for k, (x, y) in enumerate(faces[0].points):
            project.set_point(image_id, ANNOTATOR, k, PointState.VISIBLE, x, y)
    return image_id


def _check_viewing_only(qtbot, window, image_id, faces):
    canvas = window.canvas
    window.show_image(image_id)
    assert np.array_equal(canvas.layer("edit").xy, faces[0].points)
    assert "read-only" in window.windowTitle()
    assert not window.actions.edit.mark_invisible.isEnabled()

    # Clicks, drags and keys change nothing; navigation still works.
    other = window.project.image_ids()[1]
    qtbot.keyClick(canvas, Qt.Key.Key_N)
    assert window.current_image_id == other
    click(qtbot, canvas, widget_pos(canvas, 5.0, 5.0))
    qtbot.keyClick(canvas, Qt.Key.Key_V)
    assert window.project.get_label(other, ANNOTATOR).n_labelled == 0
    assert "Read-only" in window.statusBar().currentMessage()
    qtbot.keyClick(canvas, Qt.Key.Key_P)
    assert window.current_image_id == image_id


def test_read_only_disk_opens_for_viewing(qtbot, monkeypatch, project, faces, messages):
    from alrf_studio.app import open_project

    root = project.root
    project.close()
    image_id = _seed_points(root, faces)

    # The store's writable connection fails the way SQLite fails on a read-only disk.
    connect = Project._connect

    def failing_connect(db, read_only):
        if not read_only:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return connect(db, read_only)

    monkeypatch.setattr(Project, "_connect", staticmethod(failing_connect))
    opened = open_project(root)
    try:
        assert opened is not None and opened.read_only
        assert [m[0] for m in messages] == ["warning"]
        assert "cannot be written" in messages[0][2]
        window = open_window(qtbot, opened)
        _check_viewing_only(qtbot, window, image_id, faces)
    finally:
        opened.close()


def test_locked_database_opens_for_viewing(qtbot, project, faces, messages):
    from alrf_studio.app import open_project

    root = project.root
    project.close()
    image_id = _seed_points(root, faces)

    blocker = sqlite3.connect(str(root / DB_NAME), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        opened = open_project(root)
        assert opened is not None and opened.read_only
        assert messages[0][0] == "warning"
        assert messages[0][1] == "Project is locked"
        assert "locked by another process" in messages[0][2]
        window = open_window(qtbot, opened)
        _check_viewing_only(qtbot, window, image_id, faces)
        assert "locked" in window.statusBar().currentMessage() or "locked" in opened.read_only_reason
        opened.close()
    finally:
        blocker.rollback()
        blocker.close()


def test_lock_during_labelling_reports_and_recovers(qtbot, window, faces, messages):
    canvas = window.canvas
    image_id = window.current_image_id
    click(qtbot, canvas, widget_pos(canvas, *faces[0].points[0]))

    blocker = sqlite3.connect(str(window.project.root / DB_NAME), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        click(qtbot, canvas, widget_pos(canvas, *faces[0].points[1]))
        assert [m[:2] for m in messages] == [("error", "Point not saved")]
        assert "locked" in messages[0][2]
        assert "NOT SAVED" in window.windowTitle()
        # What is drawn is what the store holds: one point.
        assert int((canvas.layer("edit").state == PointState.VISIBLE).sum()) == 1
    finally:
        blocker.rollback()
        blocker.close()

    click(qtbot, canvas, widget_pos(canvas, *faces[0].points[1]))
    assert window.project.get_label(image_id, ANNOTATOR).n_labelled == 2
    assert "all changes saved" in window.windowTitle()
    assert len(messages) == 1
