"""Small dialogs: messages, the annotator chooser, the start dialog, and the last-resort error hook.

Every message box goes through :func:`show_error`, :func:`show_warning` or :func:`show_info`, so
tests can replace them with recorders and the app never blocks on a box nobody sees.
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

log = logging.getLogger(__name__)

LAST_ANNOTATOR_KEY = "session/last_annotator"


def show_error(parent: QWidget | None, title: str, text: str) -> None:
    QMessageBox.critical(parent, title, text)


def show_warning(parent: QWidget | None, title: str, text: str) -> None:
    QMessageBox.warning(parent, title, text)


def show_info(parent: QWidget | None, title: str, text: str) -> None:
    QMessageBox.information(parent, title, text)


class AnnotatorDialog(QDialog):
    """Pick an existing annotator or type a new name."""

    def __init__(self, annotators: list[str], default: str | None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Who is annotating?")
        self.combo = QComboBox()
        self.combo.setEditable(True)
        self.combo.addItems(annotators)
        self.combo.lineEdit().setPlaceholderText("Your annotator name")
        if default:
            self.combo.setCurrentText(default)
        elif not annotators:
            self.combo.setCurrentText("")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        note = QLabel(
            "Choose your name or type a new one. In blind mode you see only your own points;\n"
            "every point you place is saved at once under this name."
        )
        layout.addWidget(note)
        layout.addWidget(self.combo)
        layout.addWidget(buttons)

    def name(self) -> str:
        return self.combo.currentText().strip()


def choose_annotator(annotators: list[str], parent: QWidget | None = None) -> str | None:
    """Ask for the annotator's name (default: the one used last); None when cancelled."""
    settings = QSettings()
    default = settings.value(LAST_ANNOTATOR_KEY)
    dialog = AnnotatorDialog(annotators, default if isinstance(default, str) else None, parent)
    while dialog.exec() == QDialog.DialogCode.Accepted:
        name = dialog.name()
        if name:
            settings.setValue(LAST_ANNOTATOR_KEY, name)
            return name
        show_warning(parent, "Annotator name missing", "Type your annotator name, or choose one from the list.")
    return None


class StartDialog(QDialog):
    """Shown when the app starts without a project: open, create or try the demo project."""

    OPEN, NEW, DEMO = "open", "new", "demo"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("ALRF Studio")
        self.choice: str | None = None
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>ALRF Studio</b><br>Landmarks for low-resolution faces.<br>Try the demo, or open or create a project."))
        choices = (
            (self.DEMO, "Open the demo project (300 real tiny faces, pre-labelled)"),
            (self.OPEN, "Open project…"),
            (self.NEW, "New project…"),
        )
        for key, text in choices:
            button = QPushButton(text)
            button.clicked.connect(lambda _checked=False, k=key: self._choose(k))
            # The demo is the default, so Enter opens it on a first start.
            button.setDefault(key == self.DEMO)
            button.setAutoDefault(key == self.DEMO)
            layout.addWidget(button)
        quit_button = QPushButton("Quit")
        quit_button.clicked.connect(self.reject)
        layout.addWidget(quit_button)

    def _choose(self, key: str) -> None:
        self.choice = key
        self.accept()


def install_excepthook() -> None:
    """Log any exception that reaches the event loop and show it as a message, not a traceback."""

    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        log.error("Unhandled error:\n%s", "".join(traceback.format_exception(exc_type, exc, tb)))
        if QApplication.instance() is not None:
            show_error(
                QApplication.activeWindow(),
                "Unexpected error",
                f"{exc_type.__name__}: {exc}\n\nYour saved points are safe in the project. "
                "The details are in the log; please report them with the steps that led here.",
            )

    sys.excepthook = hook
