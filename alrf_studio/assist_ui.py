"""Model assist in the annotation window: pre-labelling, predictions on the canvas, accepting and ordering.

:func:`install_model_assist` adds a Model menu, toolbar actions, a progress bar and a device line
in the status bar, ordering controls above the image list and the training dock
(:mod:`alrf_studio.training_panel`). The data changes go through :mod:`s2ld_core.assist`:

- Pre-labelling runs :func:`s2ld_core.assist.prelabel` on a worker thread with its own
  :class:`Project` connection; the predictor is built there on first use, so torch is imported
  only when a model is first needed, and it is kept for later runs with the same model.
- The active model's predictions are drawn as hollow markers for points the annotator has not
  placed, with the confidence beside each; a point the model judges invisible is drawn faint
  with "invisible?". Other annotators stay hidden in blind mode; predictions are not theirs.
- A accepts every remaining predicted point (one undo step). Clicking a marker accepts that
  point; dragging it stores the drop position as a corrected point (``from_prediction`` and
  ``moved`` set), also one undo step.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QWidget,
)

from s2ld_core import assist
from s2ld_core.schema import DISPLAY_NAMES, LANDMARK_NAMES, N_POINTS, PointState
from s2ld_core.store import PointValue, Project, StoreError

from . import dialogs
from .canvas import MarkerStyle, PointLayer
from .image_list import ScoreColumn
from .paths import default_model_dir

if TYPE_CHECKING:
    from s2ld_core.predict import Predictor

    from .main_window import MainWindow
    from .training_panel import TrainingPanel

log = logging.getLogger(__name__)

#: Prefix of the canvas layers with the model's points; one layer per landmark.
PREDICTION_PREFIX = "prediction:"
#: Faces per stored batch of a pre-labelling run.
PRELABEL_BATCH_SIZE = 64
#: Devices the model can be asked to run on.
DEVICES = {"auto": "Auto (CUDA when available)", "cpu": "CPU", "cuda": "CUDA"}
#: Image list orders offered above the list: key -> title.
ORDERS = {"id": "ID order", "confidence": "Least confident first", "disagreement": "Largest disagreement first"}


# ---------------------------------------------------------------------- worker thread


def load_predictor(folder: Path, requested: str) -> tuple["Predictor", str]:
    """Build a predictor on ``requested`` ("auto", "cpu" or "cuda"); fall back to the CPU with a note when CUDA is missing or fails."""
    import torch

    from s2ld_core.predict import Predictor

    device, note = requested, ""
    if requested == "cuda" and not torch.cuda.is_available():
        device, note = "cpu", "CUDA was requested but is not available; fell back to the CPU"
    try:
        return Predictor(folder, device=device), note
    except (RuntimeError, AssertionError) as exc:
        if device == "cpu":
            raise
        log.exception("Loading model %s on %s failed; using the CPU", folder, device)
        return Predictor(folder, device="cpu"), f"CUDA failed ({exc}); fell back to the CPU"


class PredictorCache:
    """Keeps the last predictor, keyed by checkpoint folder and requested device; used from worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, str] | None = None
        self._value: tuple["Predictor", str] | None = None

    def get(self, folder: Path, requested: str) -> tuple["Predictor", str]:
        key = (str(Path(folder).resolve()), requested)
        with self._lock:
            if self._key != key or self._value is None:
                self._value = load_predictor(Path(folder), requested)
                self._key = key
            return self._value


@dataclass(frozen=True)
class PrelabelResult:
    """End of a pre-labelling run: images handled, requested, whether it was cancelled, unreadable ids."""

    done: int
    total: int
    cancelled: bool
    skipped: tuple[int, ...]


class PrelabelWorker(QObject):
    """Runs :func:`s2ld_core.assist.prelabel` on its own project connection; reports by signals."""

    #: (model version, device, fallback note) once the predictor is ready.
    model_ready = Signal(str, str, str)
    #: (done, total, faces per second) after each stored batch.
    progress = Signal(int, int, float)
    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, root: Path, image_ids: list[int], checkpoint: Path, device: str, batch_size: int,
                 cancel: threading.Event, cache: PredictorCache):
        super().__init__()
        self.root, self.image_ids, self.checkpoint = root, image_ids, checkpoint
        self.device, self.batch_size, self.cancel, self.cache = device, batch_size, cancel, cache

    @Slot()
    def run(self) -> None:
        done, skipped = 0, ()
        try:
            predictor, note = self.cache.get(self.checkpoint, self.device)
            self.model_ready.emit(predictor.model_version, str(predictor.device), note)
            with Project.open(self.root) as project:
                for step in assist.prelabel(project, self.image_ids, predictor, self.batch_size, self.cancel):
                    done, skipped = step.done, step.skipped
                    self.progress.emit(step.done, step.total, step.faces_per_second)
        except Exception as exc:  # reported to the GUI thread, which logs and shows it
            log.exception("Pre-labelling %s failed", self.root)
            self.failed.emit(f"{type(exc).__name__}: {exc}")
            return
        self.finished.emit(PrelabelResult(done, len(self.image_ids), self.cancel.is_set() and done < len(self.image_ids), skipped))


# ---------------------------------------------------------------------- the window part


class ModelAssist(QObject):
    """Model menu, prediction layers, accepting, ordering and device status of one main window."""

    #: A pre-labelling run ended: its :class:`PrelabelResult`, or None when it failed.
    prelabel_finished = Signal(object)

    def __init__(self, window: "MainWindow"):
        super().__init__(window)
        self.window = window
        self.cache = PredictorCache()
        self.device = "auto"
        self.batch_size = PRELABEL_BATCH_SIZE
        self._thread: QThread | None = None
        self._worker: PrelabelWorker | None = None
        self._cancel = threading.Event()
        self._loaded: tuple[str, str, str] | None = None  # model version, device, note
        self.training_panel: "TrainingPanel | None" = None

        self._build_actions()
        self._build_status_widgets()
        self._build_order_controls()
        window.canvas.layer_point_released.connect(self._on_marker_released)
        window.annotator_changed.connect(lambda _name: self.refresh_scores())
        window.add_layer_provider(PREDICTION_PREFIX, self._prediction_layers)
        self.refresh_scores()
        self.update_device_label()

    # ------------------------------------------------------------------ construction

    def _build_actions(self) -> None:
        w = self.window
        self.prelabel_all = QAction("Pre-label &all images", w)
        self.prelabel_unfinished = QAction("Pre-label &unfinished images", w)
        self.prelabel_unfinished.setToolTip("Predict points for the images the current annotator has not finished")
        self.prelabel_selected = QAction("Pre-label &selected rows", w)
        self.prelabel_selected.setToolTip("Predict points for the rows selected in the image list (Ctrl- or Shift-click)")
        self.accept_all = QAction("&Accept model points", w)
        self.accept_all.setShortcut(QKeySequence("A"))
        self.accept_all.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.accept_all.setIconText("Accept (A)")
        self.accept_all.setToolTip("Take every predicted point not yet placed as your own (A)")
        self.show_predictions = QAction("Show &predictions", w)
        self.show_predictions.setCheckable(True)
        self.show_predictions.setChecked(True)
        self.show_predictions.setShortcut(QKeySequence("M"))
        self.show_training = QAction("&Train a new model…", w)

        self.prelabel_all.triggered.connect(lambda: self.start_prelabel("all"))
        self.prelabel_unfinished.triggered.connect(lambda: self.start_prelabel("unfinished"))
        self.prelabel_selected.triggered.connect(lambda: self.start_prelabel("selected"))
        self.accept_all.triggered.connect(self.accept_current)
        self.show_predictions.toggled.connect(lambda _on: self.window.add_layer_provider(PREDICTION_PREFIX, self._prediction_layers))

        menu = w.menus["model"] = w.menuBar().addMenu("&Model")
        for action in (self.prelabel_all, self.prelabel_unfinished, self.prelabel_selected):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.accept_all)
        menu.addAction(self.show_predictions)
        devices = menu.addMenu("Model &device")
        group = QActionGroup(w)
        self.device_actions: dict[str, QAction] = {}
        for key, title in DEVICES.items():
            action = devices.addAction(title)
            action.setCheckable(True)
            action.setChecked(key == self.device)
            action.triggered.connect(lambda _checked=False, key=key: self.set_device(key))
            group.addAction(action)
            self.device_actions[key] = action
        menu.addSeparator()
        menu.addAction(self.show_training)

        self.prelabel_button = QAction("Pre-label", w)
        self.prelabel_button.setToolTip("Pre-label the images the current annotator has not finished")
        self.prelabel_button.triggered.connect(lambda: self.start_prelabel("unfinished"))
        w.toolbar.addSeparator()
        w.toolbar.addAction(self.prelabel_button)
        w.toolbar.addAction(self.accept_all)

    def _build_status_widgets(self) -> None:
        bar = self.window.statusBar()
        self.progress_widget = QWidget()
        row = QHBoxLayout(self.progress_widget)
        row.setContentsMargins(0, 0, 0, 0)
        self.progress_label = QLabel()
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(160)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_prelabel)
        for widget in (self.progress_label, self.progress_bar, self.cancel_button):
            row.addWidget(widget)
        self.progress_widget.hide()
        self.prediction_label = QLabel()
        self.device_label = QLabel()
        bar.addPermanentWidget(self.progress_widget)
        bar.addPermanentWidget(self.prediction_label)
        bar.addPermanentWidget(self.device_label)

    def _build_order_controls(self) -> None:
        panel = self.window.image_list
        panel.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        model = panel.model
        self.confidence_column = model.add_score_column(ScoreColumn("confidence", "Conf.", decimals=2))
        self.disagreement_column = model.add_score_column(ScoreColumn("disagreement", "Disagr.", larger_first=True, decimals=3))
        self.order_combo = QComboBox()
        for key, title in ORDERS.items():
            self.order_combo.addItem(title, key)
        self.order_combo.setToolTip("Order of the list; N, P and U follow it. Disagreement is the mean point error "
                                    "between annotators in inter-ocular distances, for images at least two finished.")
        self.order_combo.currentIndexChanged.connect(lambda _i: self.set_order(self.order_combo.currentData()))
        self.low_filter = QCheckBox("Only confidence below")
        self.low_threshold = QDoubleSpinBox()
        self.low_threshold.setRange(0.0, 1.0)
        self.low_threshold.setSingleStep(0.05)
        self.low_threshold.setValue(0.5)
        self.low_filter.toggled.connect(lambda _on: self._apply_confidence_filter())
        self.low_threshold.valueChanged.connect(lambda _v: self._apply_confidence_filter())
        row = QHBoxLayout()
        row.addWidget(self.order_combo, 1)
        row.addWidget(self.low_filter)
        row.addWidget(self.low_threshold)
        panel.layout().insertLayout(1, row)

    # ------------------------------------------------------------------ model and device

    def checkpoint(self) -> tuple[Path, str]:
        """Return the checkpoint folder of the active model, or the shipped default, and a name for it."""
        project = self.window.project
        version = project.active_model()
        if version is None:
            return default_model_dir(), "default model"
        return project.model_path(version), version

    def set_device(self, key: str) -> None:
        if key not in DEVICES:
            raise ValueError(f"Unknown device {key!r}; expected one of {', '.join(DEVICES)}")
        self.device = key
        self.device_actions[key].setChecked(True)
        self.update_device_label()

    def update_device_label(self, training_note: str = "") -> None:
        """Show which model runs on which device, and any CPU fallback."""
        active = self.window.project.active_model()
        version = active or "default model"
        if self._loaded is not None and self._loaded[0] == version:
            text = f"Model {version} on {self._loaded[1]}"
            if self._loaded[2]:
                text += f" ({self._loaded[2]})"
        else:
            # An active model is one whose predictions pre-labelling stored; the network loads only to predict again.
            stored = "predictions stored; " if active is not None else ""
            text = f"Model {version} ({stored}loads on first pre-label)"
        if training_note:
            text += f" \u00b7 {training_note}"
        self.device_label.setText(text)

    def after_model_change(self) -> None:
        """Redraw predictions, scores and the device line after the active model changed."""
        self.refresh_scores()
        self.update_device_label()
        self.window.add_layer_provider(PREDICTION_PREFIX, self._prediction_layers)

    # ------------------------------------------------------------------ pre-labelling

    @property
    def running(self) -> bool:
        return self._thread is not None

    def image_ids_for(self, scope: str) -> list[int]:
        project = self.window.project
        if scope == "all":
            return assist.all_images(project)
        if scope == "unfinished":
            return assist.unfinished_images(project, self.window.annotator)
        if scope == "selected":
            return assist.selected_images(project, self.window.image_list.selected_ids())
        raise ValueError(f"Unknown pre-label scope {scope!r}; use all, unfinished or selected")

    def start_prelabel(self, scope: str) -> bool:
        """Start pre-labelling ``scope`` ("all", "unfinished" or "selected") in the background; False when nothing started."""
        w = self.window
        if self.running:
            w.statusBar().showMessage("Pre-labelling is already running.", 4000)
            return False
        if w.project.read_only:
            w.statusBar().showMessage(f"Read-only: {w.project.read_only_reason}. Predictions cannot be stored.", 5000)
            return False
        try:
            ids = self.image_ids_for(scope)
            folder, name = self.checkpoint()
        except StoreError as exc:
            dialogs.show_error(w, "Pre-labelling not started", str(exc))
            return False
        if not ids:
            w.statusBar().showMessage("No images to pre-label.", 4000)
            return False

        self._cancel = threading.Event()
        self._thread = QThread(self)
        self._worker = PrelabelWorker(w.project.root, ids, folder, self.device, self.batch_size, self._cancel, self.cache)
        self._worker.moveToThread(self._thread)
        self._worker.model_ready.connect(self._on_model_ready)
        self._worker.progress.connect(self._on_progress)
        self._worker.finished.connect(self._on_finished)
        self._worker.failed.connect(self._on_failed)
        self._thread.started.connect(self._worker.run)
        self.progress_label.setText(f"Loading {name}…")
        self.progress_bar.setRange(0, len(ids))
        self.progress_bar.setValue(0)
        self.cancel_button.setEnabled(True)
        self.progress_widget.show()
        for action in (self.prelabel_all, self.prelabel_unfinished, self.prelabel_selected, self.prelabel_button):
            action.setEnabled(False)
        log.info("Pre-labelling %d images of %s with %s", len(ids), w.project.root, name)
        self._thread.start()
        return True

    def cancel_prelabel(self) -> None:
        """Stop after the batch being predicted; every stored batch is kept."""
        self._cancel.set()
        self.cancel_button.setEnabled(False)
        self.progress_label.setText("Cancelling after this batch…")

    @property
    def cancel_event(self) -> threading.Event:
        """The cancel token of the current run (thread-safe to set)."""
        return self._cancel

    @property
    def worker(self) -> PrelabelWorker | None:
        return self._worker

    def _on_model_ready(self, version: str, device: str, note: str) -> None:
        self._loaded = (version, device, note)
        self.update_device_label()
        if note:
            self.window.statusBar().showMessage(note, 8000)

    def _on_progress(self, done: int, total: int, rate: float) -> None:
        self.progress_bar.setValue(done)
        if not self._cancel.is_set():
            self.progress_label.setText(f"Pre-labelling {done}/{total} \u00b7 {rate:.0f} faces/s")

    def _end_run(self) -> None:
        self._thread.quit()
        self._thread.wait()
        self._worker.deleteLater()
        self._thread.deleteLater()
        self._thread = None
        self.progress_widget.hide()
        for action in (self.prelabel_all, self.prelabel_unfinished, self.prelabel_selected, self.prelabel_button):
            action.setEnabled(True)

    def _on_finished(self, result: PrelabelResult) -> None:
        self._end_run()
        if result.cancelled:
            text = f"Pre-labelling cancelled: {result.done} of {result.total} images have predictions."
        else:
            text = f"Pre-labelled {result.done} images."
        if result.skipped:
            text += f" {len(result.skipped)} unreadable images skipped (see the log)."
        self.window.statusBar().showMessage(text, 8000)
        self.after_model_change()
        self.prelabel_finished.emit(result)

    def _on_failed(self, message: str) -> None:
        self._end_run()
        dialogs.show_error(self.window, "Pre-labelling failed", f"{message}\n\nPredictions of finished batches are kept.")
        self.refresh_scores()
        self.prelabel_finished.emit(None)

    def shut_down(self) -> None:
        """Cancel a running pre-label and wait for its thread (the window is closing)."""
        if self._thread is not None:
            self._cancel.set()
            self._thread.quit()
            self._thread.wait()

    # ------------------------------------------------------------------ predictions on the canvas

    def _prediction_layers(self, image_id: int) -> list[PointLayer]:
        # The window calls this on every redraw, selection changes included, so it also updates the status text.
        w = self.window
        prediction = w.project.get_prediction(image_id) if self.show_predictions.isChecked() else None
        if prediction is None or image_id != w.session.image_id:
            self.prediction_label.setText("" if self.show_predictions.isChecked() else "Predictions hidden (M)")
            return []
        label = w.session.label
        layers = []
        for k in range(N_POINTS):
            if label.state[k] != PointState.UNLABELLED:
                continue
            xy = np.full((N_POINTS, 2), np.nan)
            xy[k] = prediction.xy[k]
            state = np.zeros(N_POINTS, dtype=np.int8)
            state[k] = PointState.VISIBLE
            confidence = float(prediction.confidence[k])
            if prediction.visible[k]:
                opacity, caption = 0.55 + 0.45 * confidence, f"{confidence:.0%}"
            else:
                opacity, caption = 0.45, "invisible?"
            layers.append(PointLayer(f"{PREDICTION_PREFIX}{k}", xy, state, MarkerStyle.HOLLOW, z=8, opacity=opacity,
                                     caption=caption, draggable=not w.project.read_only))
        self.prediction_label.setText(self._prediction_text(prediction, label.state, w.session.selected, len(layers)))
        return layers

    @staticmethod
    def _prediction_text(prediction, state: np.ndarray, selected: int | None, open_points: int) -> str:
        if selected is not None:
            k = selected
            seen = "visible" if prediction.visible[k] else "invisible"
            return f"{DISPLAY_NAMES[k]}: model confidence {prediction.confidence[k]:.2f} ({seen})"
        lowest = float(prediction.confidence.min())
        if open_points:
            return f"{prediction.model_version}: lowest confidence {lowest:.2f} \u00b7 A accepts {open_points} points"
        return f"{prediction.model_version}: lowest confidence {lowest:.2f}"

    def accept_current(self) -> bool:
        """Accept every predicted point the annotator has not placed on the shown image, as one undo step."""
        w = self.window
        if w.current_image_id is None or w.project.read_only:
            return False
        try:
            edit = assist.accept_prediction(w.project, w.current_image_id, w.annotator)
        except StoreError as exc:
            w.statusBar().showMessage(str(exc), 6000)
            return False
        if edit is None:
            w.statusBar().showMessage("Every point is already placed; drag a point to correct it.", 4000)
            return False
        image_id = w.current_image_id
        w.session.record(edit, f"Accept {len(edit.after)} model points")
        if w.session.label.is_done and w.actions.navigate.auto_advance.isChecked():
            target = w.image_list.next_unfinished(image_id)
            if target is not None:
                w.show_image(target)
        return True

    def _on_marker_released(self, layer: str, k: int, moved: bool, x: float, y: float) -> None:
        w = self.window
        if not layer.startswith(PREDICTION_PREFIX) or w.current_image_id is None:
            return
        if not moved:
            try:
                edit = assist.accept_prediction(w.project, w.current_image_id, w.annotator, points=[k])
            except StoreError as exc:
                w.statusBar().showMessage(str(exc), 6000)
                edit = None
            if edit is not None:
                w.session.record(edit, f"Accept {DISPLAY_NAMES[k]}")
            else:
                w._refresh_points()
            return
        # Same provenance as assist.move_point on an accepted point, written as one edit and one undo step.
        value = PointValue(PointState.VISIBLE, x, y, from_prediction=True, moved=True)
        if w.session.apply({LANDMARK_NAMES[k]: value}, f"Correct {DISPLAY_NAMES[k]}") is None:
            w._refresh_points()

    # ------------------------------------------------------------------ what to label next

    def refresh_scores(self) -> None:
        """Read the active model's confidences and the annotators' disagreement into the image list."""
        project = self.window.project
        model = self.window.image_list.model
        model.set_scores("confidence", project.prediction_confidence())
        try:
            model.set_scores("disagreement", assist.disagreement_scores(project))
        except (StoreError, ValueError) as exc:
            log.warning("Disagreement of %s not computed: %s", project.root, exc)
            model.set_scores("disagreement", {})
        self._apply_confidence_filter()

    def set_order(self, key: str) -> None:
        """Sort the image list by ``key`` (see :data:`ORDERS`); Next and Next unfinished follow it."""
        view = self.window.image_list.view
        if key == "id":
            view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        elif key == "confidence":
            view.sortByColumn(self.confidence_column, Qt.SortOrder.AscendingOrder)
        elif key == "disagreement":
            self.refresh_scores()
            view.sortByColumn(self.disagreement_column, Qt.SortOrder.AscendingOrder)
        else:
            raise ValueError(f"Unknown order {key!r}; expected one of {', '.join(ORDERS)}")
        index = self.order_combo.findData(key)
        if index != self.order_combo.currentIndex():
            self.order_combo.setCurrentIndex(index)
        if self.window.current_image_id is not None:
            self.window.image_list.select_image(self.window.current_image_id)

    def _apply_confidence_filter(self) -> None:
        proxy = self.window.image_list.proxy
        if not self.low_filter.isChecked():
            proxy.set_row_filter("confidence", None)
            return
        model = self.window.image_list.model
        threshold = self.low_threshold.value()

        def below(image_id: int) -> bool:
            value = model.score("confidence", image_id)
            return value is not None and value < threshold

        proxy.set_row_filter("confidence", below)


def install_model_assist(window: "MainWindow") -> ModelAssist:
    """Add model assist and the training dock to ``window``; returns the controller."""
    from .training_panel import install_training_panel

    controller = ModelAssist(window)
    controller.training_panel = install_training_panel(window, controller)
    return controller
