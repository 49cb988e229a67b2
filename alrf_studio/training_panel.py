"""The training dock: retrain the project's model from human labels in a separate process.

The panel starts :mod:`s2ld_core.train_worker` with QProcess and reads its JSON lines as they
arrive. The GUI thread only parses lines and updates plots, so it never waits on training. It
plots the loss per batch and the validation NME per epoch with pyqtgraph, and shows the time
left. Stop ends early and keeps the best weights; Cancel discards the run. A finished run is a
new registered version; the panel shows it beside the active model on the same validation faces
(NME, failure rate, CED curves), and Activate makes it the active model. A crash, an
out-of-memory error or a killed process is shown in the panel; the window and the labels stay
as they were because the worker has its own process and its own project connection.

pyqtgraph is imported when the plots are first needed, so opening the window does not pay for it.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QProcess, QProcessEnvironment, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFormLayout,
    QHeaderView,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from s2ld_core import assist
from s2ld_core.store import StoreError
from s2ld_core.train_worker import FINAL_EVENTS, TrainRequest, exit_event, parse_event, worker_command, worker_env

if TYPE_CHECKING:
    from .assist_ui import ModelAssist
    from .main_window import MainWindow

log = logging.getLogger(__name__)

SOURCE_TITLES = {"consensus": "Consensus of annotators", "annotator": "One annotator", "all": "All human labels"}
INIT_TITLES = {"active": "Active model", "scratch": "Scratch (random weights)"}
DEVICE_TITLES = {"auto": "Auto (CUDA when available)", "cpu": "CPU", "cuda": "CUDA"}
#: Milliseconds a closing window waits for a cancelled worker before killing it.
SHUTDOWN_WAIT_MS = 5000
#: Colours of the active (old) and new model in the comparison plot.
OLD_COLOUR, NEW_COLOUR = (110, 110, 110), (0, 114, 178)
_ERROR_STYLE = "color: rgb(190, 30, 30);"


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


class TrainingPanel(QWidget):
    """Options, Start/Stop/Cancel, live plots, errors and the old-versus-new comparison of one window."""

    #: Every event of the worker as a dict, after the panel handled it.
    event_received = Signal(dict)
    #: A run ended: "done", "cancelled" or "error".
    run_finished = Signal(str)
    #: A version was made the active model.
    model_activated = Signal(str)

    def __init__(self, window: "MainWindow", controller: "ModelAssist | None" = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.window = window
        self.controller = controller
        #: CPU threads for the worker's torch; None leaves torch's default.
        self.threads: int | None = None
        #: Registry name of the next model; None lets the worker build one from the date and time.
        self.version: str | None = None
        self.process: QProcess | None = None
        self.final_event: str | None = None
        self.new_version: str | None = None
        self.comparison: dict | None = None
        self.loss_x: list[float] = []
        self.loss_y: list[float] = []
        self.nme_x: list[float] = []
        self.nme_y: list[float] = []
        self._buffer = b""
        self._stderr: deque[str] = deque(maxlen=40)
        self._plots_built = False

        self._build_form()
        self._build_run_area()
        self._build_comparison()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(self.form)
        layout.addLayout(self.buttons)
        layout.addWidget(self.status_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.error_label)
        layout.addWidget(self.details)
        layout.addLayout(self.plot_area)
        layout.addWidget(self.comparison_box)
        layout.addStretch(1)
        window.annotator_changed.connect(lambda _name: self.refresh_annotators())
        self._update_source_fields()
        self._set_running(False)

    # ------------------------------------------------------------------ construction

    def _build_form(self) -> None:
        self.source_combo = QComboBox()
        for key, title in SOURCE_TITLES.items():
            self.source_combo.addItem(title, key)
        self.source_combo.setToolTip("Training uses human labels only; predictions count once an annotator accepted them.")
        self.min_annotators = QSpinBox()
        self.min_annotators.setRange(1, 99)
        self.min_annotators.setValue(2)
        self.min_annotators.setToolTip("Images need at least this many finished annotators to enter the consensus")
        self.annotator_combo = QComboBox()
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(10)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 1024)
        self.batch_size.setValue(64)
        self.init_combo = QComboBox()
        for key, title in INIT_TITLES.items():
            self.init_combo.addItem(title, key)
        self.device_combo = QComboBox()
        for key, title in DEVICE_TITLES.items():
            self.device_combo.addItem(title, key)
        self.source_combo.currentIndexChanged.connect(lambda _i: self._update_source_fields())
        self.refresh_annotators()

        self.form = QFormLayout()
        self.form.addRow("Labels", self.source_combo)
        self.form.addRow("At least k annotators", self.min_annotators)
        self.form.addRow("Annotator", self.annotator_combo)
        self.form.addRow("Epochs", self.epochs)
        self.form.addRow("Batch size", self.batch_size)
        self.form.addRow("Start from", self.init_combo)
        self.form.addRow("Device", self.device_combo)

    def _build_run_area(self) -> None:
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("End training now and keep the best weights as a new version")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("End training now and discard the run; the registry stays as it is")
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.cancel_button.clicked.connect(self.cancel)
        self.buttons = QHBoxLayout()
        for button in (self.start_button, self.stop_button, self.cancel_button):
            self.buttons.addWidget(button)
        self.status_label = QLabel("Train a new model on this project's labels.")
        self.status_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(_ERROR_STYLE)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setMaximumHeight(110)
        self.details.hide()
        self.plot_area = QVBoxLayout()

    def _build_comparison(self) -> None:
        self.comparison_box = QWidget()
        box = QVBoxLayout(self.comparison_box)
        box.setContentsMargins(0, 4, 0, 0)
        self.comparison_title = QLabel()
        self.comparison_title.setWordWrap(True)
        self.comparison_table = QTableWidget(5, 2)
        self.comparison_table.setVerticalHeaderLabels(["Mean NME", "Median NME", "Failure rate (NME > 0.1)", "AUC at 0.1", "Faces"])
        self.comparison_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.comparison_table.verticalHeader().setDefaultSectionSize(22)
        self.comparison_table.setFixedHeight(46 + 5 * 22)
        self.comparison_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.activate_button = QPushButton("Activate new model")
        self.activate_button.clicked.connect(self.activate)
        self.ced_layout = QVBoxLayout()
        box.addWidget(self.comparison_title)
        box.addWidget(self.comparison_table)
        box.addLayout(self.ced_layout)
        box.addWidget(self.activate_button)
        # The box keeps its place while empty, so that filling it does not lay out the whole window again.
        self.comparison_title.setText("<b>Old versus new</b>: shown here when a run finishes.")
        self.activate_button.setEnabled(False)

    def ensure_plots(self) -> None:
        """Build the pyqtgraph plots (the import takes a noticeable fraction of a second, so it waits for first use)."""
        if self._plots_built:
            return
        import pyqtgraph as pg

        self._plots_built = True
        self.loss_plot = pg.PlotWidget(background="w")
        self.loss_plot.setTitle("Training loss per batch", color="k", size="9pt")
        self.loss_plot.setLabel("bottom", "epoch")
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen(color=(213, 94, 0), width=1.5))
        self.nme_plot = pg.PlotWidget(background="w")
        self.nme_plot.setTitle("Validation NME per epoch", color="k", size="9pt")
        self.nme_plot.setLabel("bottom", "epoch")
        self.nme_curve = self.nme_plot.plot([], [], pen=pg.mkPen(color=NEW_COLOUR, width=2), symbol="o", symbolSize=5,
                                            symbolBrush=NEW_COLOUR)
        self.ced_plot = pg.PlotWidget(background="w")
        self.ced_plot.setTitle("CED on the validation faces", color="k", size="9pt")
        self.ced_plot.setLabel("bottom", "NME (inter-ocular)")
        self.ced_plot.setLabel("left", "share of faces")
        self.ced_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.ced_plot.addLegend(offset=(-8, -8))
        for plot in (self.loss_plot, self.nme_plot, self.ced_plot):
            plot.setMinimumHeight(120)
            plot.setMaximumHeight(170)
            plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot_area.addWidget(self.loss_plot)
        self.plot_area.addWidget(self.nme_plot)
        self.ced_layout.addWidget(self.ced_plot)

    def showEvent(self, event) -> None:
        self.ensure_plots()
        self.refresh_annotators()
        super().showEvent(event)

    # ------------------------------------------------------------------ options

    def refresh_annotators(self) -> None:
        current = self.annotator_combo.currentText() or self.window.annotator
        self.annotator_combo.clear()
        names = self.window.project.annotators()
        self.annotator_combo.addItems(names)
        if current in names:
            self.annotator_combo.setCurrentText(current)

    def _update_source_fields(self) -> None:
        source = self.source_combo.currentData()
        self.min_annotators.setEnabled(source == "consensus")
        self.annotator_combo.setEnabled(source == "annotator")

    def set_option(self, name: str, key: str) -> None:
        """Choose ``key`` in the combo box ``name`` ("source", "init" or "device")."""
        combo = {"source": self.source_combo, "init": self.init_combo, "device": self.device_combo}[name]
        index = combo.findData(key)
        if index < 0:
            raise ValueError(f"Unknown {name} {key!r}")
        combo.setCurrentIndex(index)

    def build_request(self) -> TrainRequest:
        source = self.source_combo.currentData()
        return TrainRequest(
            project=str(self.window.project.root),
            source=source,
            annotator=self.annotator_combo.currentText() if source == "annotator" else None,
            min_annotators=self.min_annotators.value(),
            epochs=self.epochs.value(),
            init=self.init_combo.currentData(),
            device=self.device_combo.currentData(),
            threads=self.threads,
            batch_size=self.batch_size.value(),
            version=self.version,
        )

    # ------------------------------------------------------------------ running

    @property
    def running(self) -> bool:
        return self.process is not None

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        for widget in (self.source_combo, self.min_annotators, self.annotator_combo, self.epochs, self.batch_size,
                       self.init_combo, self.device_combo):
            widget.setEnabled(not running)
        if not running:
            self._update_source_fields()

    def start(self) -> bool:
        """Start a training run with the options shown; False when it could not start."""
        if self.running:
            return False
        project = self.window.project
        if project.read_only:
            self._show_error(f"Read-only project: {project.read_only_reason}. A new model cannot be registered.")
            return False
        request = self.build_request()
        if request.source == "annotator" and not request.annotator:
            self._show_error("Choose the annotator whose labels to train on.")
            return False
        self.ensure_plots()
        self._reset_run()
        program, *args = worker_command(request)
        environment = QProcessEnvironment()
        for key, value in worker_env().items():
            environment.insert(key, value)
        process = QProcess(self)
        process.setProcessEnvironment(environment)
        process.setProgram(program)
        process.setArguments(args)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._on_process_finished)
        process.errorOccurred.connect(self._on_process_error)
        self.process = process
        self._set_running(True)
        self.status_label.setText("Starting the training process…")
        log.info("Starting training: %s %s", program, " ".join(args))
        process.start()
        return True

    def stop(self) -> None:
        """Ask the worker to end early and register the best weights so far."""
        if self.process is not None:
            self.process.write(b"stop\n")
            self.status_label.setText("Stopping: the best weights so far become a new version…")
            self.stop_button.setEnabled(False)

    def cancel(self) -> None:
        """Ask the worker to discard the run."""
        if self.process is not None:
            self.process.write(b"cancel\n")
            self.status_label.setText("Cancelling: nothing will be registered…")
            self.stop_button.setEnabled(False)
            self.cancel_button.setEnabled(False)

    def shut_down(self) -> None:
        """Cancel a running worker and wait for it, killing it after :data:`SHUTDOWN_WAIT_MS` (the window is closing)."""
        process = self.process
        if process is None:
            return
        process.write(b"cancel\n")
        process.closeWriteChannel()
        if not process.waitForFinished(SHUTDOWN_WAIT_MS):
            log.warning("Training process did not end after cancel; killing it")
            process.kill()
            process.waitForFinished(2000)

    def _reset_run(self) -> None:
        self.final_event = None
        self.new_version = None
        self.comparison = None
        self._buffer = b""
        self._stderr.clear()
        self.loss_x, self.loss_y, self.nme_x, self.nme_y = [], [], [], []
        self.loss_curve.setData([], [])
        self.nme_curve.setData([], [])
        self.progress.setRange(0, 0)
        self.error_label.hide()
        self.details.hide()
        self.details.clear()
        self.activate_button.setEnabled(False)

    def _read_stdout(self) -> None:
        if self.process is None:
            return
        self._buffer += bytes(self.process.readAllStandardOutput().data())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            event = parse_event(line)
            if event is not None:
                self.handle_event(event)

    def _read_stderr(self) -> None:
        if self.process is None:
            return
        text = bytes(self.process.readAllStandardError().data()).decode("utf-8", errors="replace")
        self._stderr.extend(line for line in text.splitlines() if line.strip())

    def _on_process_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._read_stdout()
        self._read_stderr()
        if self._buffer.strip():
            event = parse_event(self._buffer)
            self._buffer = b""
            if event is not None:
                self.handle_event(event)
        # NOTE: on a crash exit Qt's exit code is the signal number on Unix; exit_event expects it negative.
        code = -exit_code if exit_status == QProcess.ExitStatus.CrashExit and exit_code > 0 else exit_code
        extra = exit_event(code, self.final_event, "\n".join(self._stderr))
        if extra is not None:
            self.handle_event(extra)
        self._finish_run()

    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error != QProcess.ProcessError.FailedToStart or self.process is None:
            return
        self.handle_event({"event": "error", "kind": "crash", "traceback": "",
                           "message": f"the training process could not start ({self.process.errorString()})"})
        self._finish_run()

    def _finish_run(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.deleteLater()
        self._set_running(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if self.final_event == "done" else 0)
        if self.controller is not None:
            # Drop the running worker's device from the status bar's model line.
            self.controller.update_device_label()
        self.run_finished.emit(self.final_event or "error")

    # ------------------------------------------------------------------ events

    def handle_event(self, event: dict) -> None:
        """Show one worker event (see :mod:`s2ld_core.train_worker` for the fields)."""
        kind = event.get("event")
        if kind in FINAL_EVENTS:
            self.final_event = kind
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(event)
        elif kind == "log":
            self._stderr.append(str(event.get("message", "")))
        self.event_received.emit(event)

    def _on_device(self, event: dict) -> None:
        message = str(event.get("message", ""))
        if event.get("fallback"):
            self.window.statusBar().showMessage(message, 10000)
        if self.controller is not None:
            self.controller.update_device_label(f"training: {message}")
        self.status_label.setText(message)

    def _on_start(self, event: dict) -> None:
        self.progress.setRange(0, max(1, int(event["epochs"]) * int(event["batches"])))
        self.progress.setValue(0)
        start = "the active model " + str(event["parent"]) if event.get("init") == "active" else "scratch"
        self.status_label.setText(f"Training {event['version']} from {start}: {event['message']}.")

    def _on_batch(self, event: dict) -> None:
        epoch, batch, batches = int(event["epoch"]), int(event["batch"]), max(1, int(event["batches"]))
        self.loss_x.append(epoch - 1 + batch / batches)
        self.loss_y.append(float(event["loss"]))
        self.loss_curve.setData(self.loss_x, self.loss_y)
        self.progress.setValue((epoch - 1) * batches + batch)
        self._show_progress(event, f"batch {batch}/{batches}, loss {float(event['loss']):.4f}")

    def _on_epoch(self, event: dict) -> None:
        self.nme_x.append(float(event["epoch"]))
        self.nme_y.append(float(event["val_nme"]) if event.get("val_nme") is not None else float("nan"))
        self.nme_curve.setData(self.nme_x, self.nme_y)
        best = event.get("best_val_nme")
        self._show_progress(event, f"validation NME {_number(event.get('val_nme'))} (best {_number(best)})")

    def _show_progress(self, event: dict, detail: str) -> None:
        eta = event.get("eta_s")
        left = "estimating the time left" if eta is None else f"about {format_duration(eta)} left"
        self.status_label.setText(f"Epoch {event['epoch']}/{event['epochs']}: {detail} \u00b7 {left}")

    def _on_done(self, event: dict) -> None:
        self.new_version = str(event["version"])
        self.comparison = event.get("comparison")
        stopped_note = " (stopped early)" if event.get("stopped_by") == "stop" else ""
        self.status_label.setText(
            f"Registered {self.new_version}{stopped_note} in {format_duration(float(event.get('elapsed_s') or 0))}: "
            f"best validation NME {_number(event.get('best_val_nme'))} at epoch {event.get('best_epoch')}."
        )
        if self.comparison:
            self.show_comparison(self.comparison, event.get("parent"), self.new_version)

    def _on_cancelled(self, event: dict) -> None:
        self.status_label.setText(f"Training cancelled after {format_duration(float(event.get('elapsed_s') or 0))}; nothing was registered.")

    def _on_error(self, event: dict) -> None:
        kind = str(event.get("kind", "crash")).replace("_", " ")
        self._show_error(f"Training failed ({kind}): {event.get('message', '')}\n"
                         "Your labels and the active model are unchanged.", str(event.get("traceback") or ""))
        self.status_label.setText("Training did not finish.")
        log.error("Training failed (%s): %s", kind, event.get("message"))

    def _show_error(self, text: str, details: str = "") -> None:
        self.error_label.setText(text)
        self.error_label.show()
        if details.strip():
            self.details.setPlainText(details)
            self.details.show()

    # ------------------------------------------------------------------ comparison and activation

    def show_comparison(self, comparison: dict, old: str | None, new: str) -> None:
        """Fill the table and CED plot with ``old`` (the active model when training started) and ``new``."""
        self.ensure_plots()
        models = comparison.get("models", {})
        versions = [v for v in (old, new) if v in models]
        self.comparison_title.setText(
            f"<b>Old versus new</b> on the same {comparison.get('n_faces', 0)} validation faces "
            f"({comparison.get('source', '')} labels). Lower NME and failure rate are better."
        )
        self.comparison_table.setColumnCount(len(versions))
        # Two header lines, because a version name from the date and time fills a column of the docked panel.
        self.comparison_table.setHorizontalHeaderLabels([f"{v}\n({'new' if v == new else 'active'})" for v in versions])
        for column, version in enumerate(versions):
            metrics = models[version]
            cells = (_number(metrics.get("nme")), _number(metrics.get("median")), _percent(metrics.get("failure_rate")),
                     _number(metrics.get("auc")), str(metrics.get("n", 0)))
            for row, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if version == new:
                    item.setForeground(QColor(*NEW_COLOUR))
                self.comparison_table.setItem(row, column, item)

        import pyqtgraph as pg

        self.ced_plot.clear()
        thresholds = comparison.get("ced_thresholds") or []
        for version in versions:
            colour = NEW_COLOUR if version == new else OLD_COLOUR
            style = Qt.PenStyle.SolidLine if version == new else Qt.PenStyle.DashLine
            self.ced_plot.plot(thresholds, models[version].get("ced_fractions", []), name=version,
                               pen=pg.mkPen(color=colour, width=2, style=style))
        self.ced_plot.setYRange(0, 1)
        self.activate_button.setEnabled(True)
        self.activate_button.setText(f"Activate {new}")
        self.comparison_box.show()

    def activate(self) -> bool:
        """Make the new version the active model; False when there is none or the store refused."""
        if self.new_version is None:
            return False
        try:
            assist.activate_model(self.window.project, self.new_version)
        except StoreError as exc:
            self._show_error(f"Model {self.new_version} not activated: {exc}")
            return False
        self.activate_button.setEnabled(False)
        self.activate_button.setText(f"{self.new_version} is active")
        self.window.statusBar().showMessage(f"{self.new_version} is the active model; pre-label to see its points.", 8000)
        if self.controller is not None:
            self.controller.after_model_change()
        self.model_activated.emit(self.new_version)
        return True


class _CloseWatcher(QObject):
    """Ends background work when the window closes, so no worker outlives it."""

    def __init__(self, panel: TrainingPanel, controller: "ModelAssist | None"):
        super().__init__(panel)
        self.panel = panel
        self.controller = controller

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Close:
            self.panel.shut_down()
            if self.controller is not None:
                self.controller.shut_down()
        return False


def install_training_panel(window: "MainWindow", controller: "ModelAssist | None" = None) -> TrainingPanel:
    """Add the training dock to ``window`` (hidden until the Model menu opens it); returns the panel."""
    panel = TrainingPanel(window, controller)
    scroll = QScrollArea()
    scroll.setWidget(panel)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    dock = window.add_dock("Training", scroll, Qt.DockWidgetArea.RightDockWidgetArea)
    display = window.findChild(QDockWidget, "dock:Display")
    if display is not None:
        window.tabifyDockWidget(display, dock)
    dock.hide()
    if controller is not None:
        controller.show_training.triggered.connect(lambda: (dock.show(), dock.raise_()))
    window.installEventFilter(_CloseWatcher(panel, controller))
    return panel
