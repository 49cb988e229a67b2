"""Start-up: run_gui opens a project for the chosen annotator; the last-resort error hook."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication


def test_run_gui_opens_project_and_quits(qtbot, monkeypatch, project):
    from alrf_studio import app, dialogs

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(dialogs, "choose_annotator", lambda names, parent=None: "carol")
    seen = []

    def fake_exec(_app) -> int:
        # Stands in for the event loop, which a test must not enter: record and close the window.
        windows = [w for w in QApplication.topLevelWidgets() if w.isVisible() and w.windowTitle().endswith("ALRF Studio")]
        seen.extend(w.windowTitle() for w in windows)
        for w in windows:
            w.close()
        return 0

    monkeypatch.setattr(QApplication, "exec", fake_exec)
    root = project.root
    project.close()
    assert app.run_gui(str(root)) == 0
    assert len(seen) == 1
    assert "carol" in seen[0]
    assert "all changes saved" in seen[0]
    from s2ld_core.store import Project

    with Project.open(root) as reopened:
        assert "carol" in reopened.annotators()


def test_run_gui_missing_project_shows_error(qtbot, monkeypatch, tmp_path, messages):
    from alrf_studio import app

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    assert app.run_gui(str(tmp_path / "nowhere")) == 1
    assert messages[0][:2] == ("error", "Project not opened")
    assert "nowhere" in messages[0][2]


def test_excepthook_logs_and_shows_message(qtbot, monkeypatch, caplog, messages):
    from alrf_studio import dialogs

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    dialogs.install_excepthook()
    try:
        raise RuntimeError("wheel event on a closed project")
    except RuntimeError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    assert messages[0][:2] == ("error", "Unexpected error")
    assert "RuntimeError: wheel event on a closed project" in messages[0][2]
    assert "Traceback" not in messages[0][2]
    assert any("wheel event on a closed project" in r.getMessage() for r in caplog.records)


def test_start_dialog_enter_opens_demo(qtbot):
    from PySide6.QtCore import Qt, QTimer

    from alrf_studio import dialogs

    dialog = dialogs.StartDialog()
    qtbot.addWidget(dialog)
    # exec() runs a nested event loop, so the key press is sent from a timer inside it.
    QTimer.singleShot(50, lambda: qtbot.keyClick(dialog, Qt.Key.Key_Return))
    assert dialog.exec()
    assert dialog.choice == dialogs.StartDialog.DEMO
