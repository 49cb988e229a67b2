"""Start the desktop app: QApplication, project choice, annotator choice, main window.

Nothing on this path imports torch, pandas or OpenCV, so the first face shows quickly; model
features import them when they are first used.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QApplication, QFileDialog, QWidget

from s2ld_core.store import Project, ProjectLockedError, StoreError

from . import dialogs

log = logging.getLogger(__name__)

ORGANISATION = "ALRF Studio"
APPLICATION = "ALRF Studio"


def ensure_application() -> QApplication:
    """Return the QApplication, creating it with the names QSettings uses."""
    app = QApplication.instance()
    if app is None:
        app = QApplication([APPLICATION])
    QCoreApplication.setOrganizationName(ORGANISATION)
    QCoreApplication.setApplicationName(APPLICATION)
    return app  # type: ignore[return-value]


def open_project(path: str | os.PathLike, parent: QWidget | None = None) -> Project | None:
    """Open a project for labelling; a locked database opens read-only with a message, other errors return None."""
    try:
        project = Project.open(path)
    except ProjectLockedError as exc:
        log.warning("Project %s is locked, opening it read-only: %s", path, exc)
        try:
            project = Project.open(path, read_only=True)
        except StoreError as inner:
            dialogs.show_error(parent, "Project not opened", str(inner))
            return None
        project.read_only_reason = f"the database is locked by another process, so the project is open for viewing only ({exc})"
        dialogs.show_warning(
            parent,
            "Project is locked",
            f"{exc}\n\nThe project is open for viewing only; close the other program and reopen it to label.",
        )
        return project
    except StoreError as exc:
        dialogs.show_error(parent, "Project not opened", str(exc))
        return None
    if project.read_only:
        dialogs.show_warning(parent, "Project is read-only", f"{project.read_only_reason}.\n\nYou can view the labels but not change them.")
    return project


def ask_for_project(parent: QWidget | None = None) -> Project | None:
    """Show the start dialog until a project is opened or the user quits."""
    while True:
        start = dialogs.StartDialog(parent)
        log.info("Showing the start dialog (open, create or demo project)")
        if not start.exec():
            return None
        if start.choice == dialogs.StartDialog.OPEN:
            folder = QFileDialog.getExistingDirectory(parent, "Open project folder")
            if folder:
                project = open_project(folder, parent)
                if project is not None:
                    return project
        elif start.choice == dialogs.StartDialog.NEW:
            folder = QFileDialog.getExistingDirectory(parent, "Choose an empty folder for the new project")
            if folder:
                try:
                    return Project.create(folder)
                except StoreError as exc:
                    dialogs.show_error(parent, "Project not created", str(exc))
        else:
            from .demo_gui import open_demo_project

            # open_demo_project shows its own message when the build fails or is cancelled.
            folder = open_demo_project(parent)
            if folder is not None:
                project = open_project(folder, parent)
                if project is not None:
                    return project


def create_main_window(project: Project, annotator: str):
    """Build the main window (imported here so that app start-up can show dialogs first)."""
    from .main_window import MainWindow

    return MainWindow(project, annotator)


def run_gui(project_path: str | None) -> int:
    """Run the app on ``project_path`` (or ask for a project); returns the exit code."""
    app = ensure_application()
    dialogs.install_excepthook()
    log.info("ALRF Studio started on the Qt platform %s", app.platformName())

    project = open_project(Path(project_path)) if project_path else ask_for_project()
    if project is None:
        return 1 if project_path else 0
    annotator = dialogs.choose_annotator(project.annotators())
    if annotator is None:
        project.close()
        return 0
    window = create_main_window(project, annotator)
    window.show()
    log.info("Showing project %s to annotator %s", project.root, annotator)
    code = app.exec()
    project.close()
    return code
