"""File menu actions: import images and labels, export labels and the consensus, build a dataset.

Each action requests its inputs through dialogs, then calls a ``do_*`` function without Qt.
Those call :mod:`s2ld_core.project_io` and :mod:`s2ld_core.dataset`, the same functions
that the ``alrf-studio`` commands use, imported inside the handlers so that pandas and OpenCV
stay off the start-up path. Long work runs in a worker thread behind a modal progress dialog
that can cancel it. Errors are logged with their traceback and shown as a message, never as a
traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QEventLoop, QObject, Qt, QThread, Signal, Slot
from PySide6.QtWidgets import QFileDialog, QInputDialog, QProgressDialog, QWidget

from s2ld_core.store import Project

from . import dialogs

if TYPE_CHECKING:
    from s2ld_core.consensus import ConsensusRule

    from .main_window import MainWindow

log = logging.getLogger(__name__)

LABEL_FILE_FILTER = "Label files (*.txt *.alrf *.csv *.json);;ALRF text (*.txt *.alrf);;CSV (*.csv);;COCO keypoints (*.json)"

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


# ---------------------------------------------------------------------- work without Qt


def do_import_images(project: Project, folder: Path, progress: ProgressFn, cancel: CancelFn) -> str:
    """Copy every supported image below ``folder`` into the project; returns the summary text."""
    from s2ld_core.project_io import import_images

    summary = import_images(project, [folder], source_name=str(folder), progress=progress, cancel=cancel)
    text = summary.describe()
    if summary.errors:
        shown = "\n".join(f"  {message}" for _path, message in summary.errors[:10])
        text += f"\n\nFailed files:\n{shown}"
    return text


def do_import_labels(project: Project, path: Path, annotator: str | None) -> str:
    """Import an ALRF, CSV or COCO file (format from the suffix) as ``annotator``'s labels."""
    from s2ld_core.project_io import import_label_file

    return import_label_file(project, path, annotator=annotator).describe()


def do_export_labels(project: Project, path: Path, annotator: str) -> str:
    """Write one annotator's finished labels as ALRF (.txt), CSV (.csv) or COCO (.json)."""
    from s2ld_core.project_io import export_labels, guess_format

    summary = export_labels(project, path, guess_format(path), [annotator])
    return f"Wrote {summary.written} labels of {annotator} to {summary.path} ({summary.skipped_incomplete} unfinished images left out)."


def do_export_consensus(project: Project, path: Path, rule: "ConsensusRule") -> str:
    """Merge the annotators under ``rule`` and write the consensus."""
    from s2ld_core.project_io import export_consensus, guess_format

    summary, result = export_consensus(project, path, guess_format(path), rule)
    return f"Wrote the consensus of {summary.written} of {result.n_images} images ({rule.describe()}) to {summary.path}."


# ---------------------------------------------------------------------- running work


class _Worker(QObject):
    progress = Signal(int, int)
    done = Signal(object)
    failed = Signal(object)

    def __init__(self, work: Callable[[ProgressFn, CancelFn], Any]):
        super().__init__()
        self._work = work
        self.cancelled = False

    def cancel(self) -> None:
        # Called from the GUI thread; the worker polls the flag between steps.
        self.cancelled = True

    def run(self) -> None:
        try:
            result = self._work(self.progress.emit, lambda: self.cancelled)
        except Exception as exc:  # reported to the GUI thread, which logs and shows it
            self.failed.emit(exc)
        else:
            self.done.emit(result)


class _Relay(QObject):
    """Receives the worker's signals in the GUI thread, so the dialog is only touched there."""

    def __init__(self, dialog: QProgressDialog, loop: QEventLoop):
        super().__init__()
        self.dialog = dialog
        self.loop = loop
        self.outcome: dict[str, Any] = {}

    @Slot(int, int)
    def on_progress(self, done: int, total: int) -> None:
        self.dialog.setMaximum(total)
        self.dialog.setValue(done)

    @Slot(object)
    def on_done(self, result: object) -> None:
        self.outcome["result"] = result
        self.loop.quit()

    @Slot(object)
    def on_failed(self, exc: object) -> None:
        self.outcome["error"] = exc
        self.loop.quit()


def run_with_progress(parent: QWidget, title: str, work: Callable[[ProgressFn, CancelFn], Any]) -> Any:
    """Run ``work(progress, cancel)`` in a worker thread behind a modal, cancellable progress dialog.

    Returns what ``work`` returned; re-raises what it raised.
    """
    dialog = QProgressDialog(title, "Cancel", 0, 0, parent)
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(300)
    loop = QEventLoop()
    relay = _Relay(dialog, loop)
    worker = _Worker(work)
    thread = QThread()
    worker.moveToThread(thread)
    # The relay lives in the GUI thread, so these connections are queued across threads.
    worker.progress.connect(relay.on_progress)
    worker.done.connect(relay.on_done)
    worker.failed.connect(relay.on_failed)
    # Direct, because the worker thread runs ``work`` and handles no queued calls until it ends.
    dialog.canceled.connect(worker.cancel, Qt.ConnectionType.DirectConnection)
    thread.started.connect(worker.run)
    thread.start()
    loop.exec()
    thread.quit()
    thread.wait()
    dialog.close()
    dialog.deleteLater()
    if "error" in relay.outcome:
        raise relay.outcome["error"]
    return relay.outcome.get("result")


# ---------------------------------------------------------------------- handlers


def _guarded(window: "MainWindow", title: str, action: Callable[[], str | None]) -> None:
    """Run an action; show its result text, or log and show its error."""
    window.flush_time()
    window._time_timer.stop()
    try:
        text = action()
    except Exception as exc:
        log.exception("%s failed", title)
        dialogs.show_error(window, f"{title} failed", str(exc))
        return
    if text:
        log.info("%s: %s", title, text)
        dialogs.show_info(window, title, text)


def _import_images(window: "MainWindow") -> None:
    folder = QFileDialog.getExistingDirectory(window, "Import images from folder")
    if not folder:
        return

    def action() -> str:
        text = run_with_progress(window, "Importing images…", lambda p, c: do_import_images(window.project, Path(folder), p, c))
        window.reload_project()
        return text

    _guarded(window, "Import images", action)


def _import_labels(window: "MainWindow") -> None:
    path, _ = QFileDialog.getOpenFileName(window, "Import labels", "", LABEL_FILE_FILTER)
    if not path:
        return
    annotator, ok = QInputDialog.getText(
        window, "Import labels", "Annotator for these labels (empty: the annotators named in the file):", text=Path(path).stem
    )
    if not ok:
        return

    def action() -> str:
        text = do_import_labels(window.project, Path(path), annotator.strip() or None)
        window.reload_project()
        return text

    _guarded(window, "Import labels", action)


def _export_labels(window: "MainWindow") -> None:
    path, _ = QFileDialog.getSaveFileName(window, f"Export labels of {window.annotator}", f"labels_{window.annotator}.txt", LABEL_FILE_FILTER)
    if path:
        _guarded(window, "Export labels", lambda: do_export_labels(window.project, Path(path), window.annotator))


def _export_consensus(window: "MainWindow") -> None:
    from .consensus_dialog import ask_consensus_rule

    rule = ask_consensus_rule(window)
    if rule is None:
        return
    path, _ = QFileDialog.getSaveFileName(window, "Export consensus", "consensus.txt", LABEL_FILE_FILTER)
    if path:
        _guarded(window, "Export consensus", lambda: do_export_consensus(window.project, Path(path), rule))


def _build_dataset(window: "MainWindow") -> None:
    source = QFileDialog.getExistingDirectory(window, "TinyFace-like source folder (identity folders or <identity>_<k> files)")
    if not source:
        return
    output = QFileDialog.getExistingDirectory(window, "Folder for the manifest and exclusion lists")
    if not output:
        return
    n, ok = QInputDialog.getInt(window, "Build dataset", "Identities to choose (one image each):", 700, 1, 1_000_000)
    if not ok:
        return
    seed, ok = QInputDialog.getInt(window, "Build dataset", "Random seed:", 0, 0, 2**31 - 1)
    if not ok:
        return

    def action() -> str:
        from s2ld_core.dataset import build_dataset

        summary = run_with_progress(
            window,
            "Scanning source images…",
            lambda p, c: build_dataset(source, n_identities=n, seed=seed, output_dir=output, progress=p, cancel=c),
        )
        chosen = [Path(source) / image.relative_path for image in summary.chosen]
        identity = {str(path): image.identity for path, image in zip(chosen, summary.chosen)}
        imported = run_with_progress(
            window,
            "Importing the chosen images…",
            lambda p, c: window.project.add_images(chosen, identity=lambda q: identity.get(str(q), ""), source=source, progress=p, cancel=c),
        )
        window.reload_project()
        return f"{summary.describe()}\n\nProject: {imported.describe()}"

    _guarded(window, "Build dataset", action)


def _open_project(window: "MainWindow") -> None:
    folder = QFileDialog.getExistingDirectory(window, "Open project folder")
    if folder:
        _switch_project(window, folder)


def _new_project(window: "MainWindow") -> None:
    folder = QFileDialog.getExistingDirectory(window, "Choose an empty folder for the new project")
    if not folder:
        return
    from s2ld_core.store import StoreError

    try:
        Project.create(folder).close()
    except StoreError as exc:
        dialogs.show_error(window, "Project not created", str(exc))
        return
    _switch_project(window, folder)


def _switch_project(window: "MainWindow", folder: str) -> None:
    from .app import open_project

    project = open_project(folder, window)
    if project is not None:
        window.set_project(project)


def connect(window: "MainWindow") -> None:
    """Connect the File menu actions of ``window``."""
    file = window.actions.file
    file.import_images.triggered.connect(lambda: _import_images(window))
    file.import_labels.triggered.connect(lambda: _import_labels(window))
    file.export_labels.triggered.connect(lambda: _export_labels(window))
    file.export_consensus.triggered.connect(lambda: _export_consensus(window))
    file.build_dataset.triggered.connect(lambda: _build_dataset(window))
    file.open_project.triggered.connect(lambda: _open_project(window))
    file.new_project.triggered.connect(lambda: _new_project(window))
