"""Open the demo project from the app, building it first behind a modal progress dialog.

The build imports 300 tiny faces and pre-labels them in a few seconds on a CPU, so it runs on
the GUI thread. A modal :class:`QProgressDialog` processes events in ``setValue``, which keeps
the window painted. Its Cancel button stops the build between steps, and the incomplete
project is then removed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QProgressDialog, QWidget

from s2ld_core.demo import DemoCancelledError, DemoError, ensure_demo_project, is_demo_ready

from . import dialogs, paths

log = logging.getLogger(__name__)

_STAGE_TEXT = {"images": "Importing the demo faces…", "predictions": "Pre-labelling with the default model…"}


def open_demo_project(
    parent_widget: QWidget | None = None,
    target: str | Path | None = None,
    model_dir: str | Path | None = None,
) -> str | None:
    """Return the demo project folder, building it there first when needed; None when cancelled or failed.

    ``target`` defaults to the demo folder in the user's data folder and ``model_dir`` to the
    shipped model. A failed build is shown as an error message and logged.
    """
    folder = Path(target) if target is not None else paths.demo_project_dir()
    if is_demo_ready(folder):
        return str(folder)

    progress = QProgressDialog("Building the demo project…", "Cancel", 0, 100, parent_widget)
    progress.setWindowTitle("Demo project")
    progress.setWindowModality(Qt.WindowModality.ApplicationModal)
    progress.setMinimumDuration(0)
    progress.setAutoClose(False)
    progress.setValue(0)

    def report(stage: str, done: int, total: int) -> None:
        # Images are the first half of the bar, predictions the second.
        base = 0 if stage == "images" else 50
        progress.setLabelText(_STAGE_TEXT.get(stage, stage))
        progress.setValue(base + int(50 * done / max(total, 1)))

    try:
        ensure_demo_project(folder, model_dir, progress=report, cancel=progress.wasCanceled)
    except DemoCancelledError:
        log.info("Building the demo project at %s was cancelled", folder)
        return None
    except DemoError as exc:
        log.warning("Building the demo project at %s failed: %s", folder, exc)
        dialogs.show_error(parent_widget, "Demo project not built", str(exc))
        return None
    finally:
        progress.close()
    return str(folder)
