"""The annotation window: image list, magnified face, legend, thumbnails and display controls.

State flows one way. The project store contains every label. :class:`LabelSession` writes
edits to it and announces which image changed. The window then reads that image's label back
and redraws the canvas, legend, thumbnails, list row and status bar.

Hooks for features built on this window:

- ``canvas.set_layer(PointLayer(...))`` draws extra points (for example hollow prediction
  markers); :meth:`add_layer_provider` registers a function that returns layers for each shown
  image, so they follow image switches and edits by themselves.
- :meth:`add_dock` adds a panel; :attr:`toolbar` and :attr:`menus` take actions.
- :attr:`current_image_id`, :attr:`annotator` and :attr:`project` describe what is shown;
  :attr:`image_shown`, :attr:`label_changed` and :attr:`annotator_changed` announce changes.
- ``session.apply({name: PointValue}, text)`` writes points as one undoable step;
  ``session.record(edit, text)`` makes an edit that a core function already wrote undoable.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QImage, QUndoStack
from PySide6.QtWidgets import QComboBox, QDockWidget, QLabel, QMainWindow, QMenu, QToolBar, QVBoxLayout, QWidget

from s2ld_core.schema import DISPLAY_NAMES, N_POINTS, Label, PointState
from s2ld_core.store import Project, StoreError

from . import dialogs
from .actions import Actions, create_actions
from .adjustments import AdjustmentsPanel, DisplayAdjustments, apply_adjustments, qimage_to_rgb, rgb_to_qimage
from .app import APPLICATION
from .assist_ui import install_model_assist
from .canvas import EDIT_LAYER, FaceCanvas, MarkerStyle, PointLayer
from .image_list import ImageListPanel, status_from_label
from .labelling import LabelSession
from .legend import LegendWidget
from .review import install_review
from .thumbnails import ThumbnailPanel

log = logging.getLogger(__name__)

#: Time on one image beyond this many seconds counts as idle and is not recorded.
MAX_RECORDED_SECONDS = 300.0
#: Queued time is written this many milliseconds after the last image switch.
TIME_FLUSH_MS = 1000
#: Prefix of the layers that show other annotators when blind mode is off.
OTHERS_LAYER_PREFIX = "annotator:"

KEY_HELP = (
    "Click: place the next point \u00b7 drag: move \u00b7 1-5: select \u00b7 arrows: nudge 0.1 px "
    "(Shift: 1 px) \u00b7 V: invisible \u00b7 Delete: not labelled \u00b7 N / P / U: next, previous, "
    "next unfinished \u00b7 wheel or +/\u2212: zoom \u00b7 right-drag or Space+drag: pan \u00b7 F: fit"
)

LayerProvider = Callable[[int], list[PointLayer]]


class MainWindow(QMainWindow):
    """The annotation window for one open project and one annotator."""

    image_shown = Signal(int)
    label_changed = Signal(int)
    annotator_changed = Signal(str)

    def __init__(self, project: Project, annotator: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.project = project
        self.annotator = annotator
        self.current_image_id: int | None = None
        self._raw_rgb = None
        self._adjustments = DisplayAdjustments()
        self._lut = self._adjustments.lut()
        self._shown_at: float | None = None
        self._write_error_shown = False
        self._last_write_failed = False
        self._layer_providers: dict[str, LayerProvider] = {}
        # NOTE: time spent is held here for up to TIME_FLUSH_MS after a switch; a crash in that window loses it.
        self._pending_time: dict[tuple[int, str], float] = {}
        self._time_timer = QTimer(self)
        self._time_timer.setSingleShot(True)
        self._time_timer.setInterval(TIME_FLUSH_MS)
        self._time_timer.timeout.connect(self.flush_time)
        self.menus: dict[str, QMenu] = {}

        self.undo_stack = QUndoStack(self)
        if not project.read_only:
            project.add_annotator(annotator)
        self.session = LabelSession(project, annotator, self.undo_stack, self)

        self.canvas = FaceCanvas()
        self.setCentralWidget(self.canvas)
        self.image_list = ImageListPanel()
        self.legend = LegendWidget()
        self.thumbnails = ThumbnailPanel()
        self.adjustments_panel = AdjustmentsPanel()
        self.actions = create_actions(self)

        self._build_docks()
        self._build_toolbar()
        self._build_menus()
        self._build_status_bar()
        self._connect()
        self._restore_settings()

        self.image_list.model.set_images(project.list_images(), project.status(annotator))
        self._apply_read_only()
        self._update_title()
        first = self.image_list.next_unfinished(None) or self.image_list.first_image()
        if first is not None:
            self.show_image(first)
        self._update_counts()
        self.model_assist = install_model_assist(self)
        self.review = install_review(self)

    # ------------------------------------------------------------------ layout

    def _build_docks(self) -> None:
        points = QWidget()
        layout = QVBoxLayout(points)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.legend)
        layout.addWidget(self.thumbnails)
        help_label = QLabel(KEY_HELP)
        help_label.setWordWrap(True)
        help_label.setStyleSheet("color: palette(placeholder-text);")
        layout.addWidget(help_label)
        layout.addStretch(1)
        images = self.add_dock("Images", self.image_list, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.add_dock("Points", points, Qt.DockWidgetArea.RightDockWidgetArea)
        self.add_dock("Display", self.adjustments_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.resizeDocks([images], [420], Qt.Orientation.Horizontal)

    def add_dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        """Add ``widget`` as a dock panel titled ``title`` and list it in the View menu."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock:{title}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        if "view" in self.menus:
            self.menus["view"].addAction(dock.toggleViewAction())
        return dock

    def _build_toolbar(self) -> None:
        a = self.actions
        self.toolbar = QToolBar("Labelling")
        self.toolbar.setObjectName("toolbar:labelling")
        self.toolbar.setMovable(False)
        self.addToolBar(self.toolbar)
        self.toolbar.addWidget(QLabel(" Annotator "))
        self.annotator_combo = QComboBox()
        self.annotator_combo.setEditable(True)
        self.annotator_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.annotator_combo.setMinimumWidth(110)
        self._fill_annotator_combo()
        self.toolbar.addWidget(self.annotator_combo)
        self.toolbar.addAction(a.view.blind_mode)
        self.toolbar.addSeparator()
        for action in (a.navigate.previous_image, a.navigate.next_image, a.navigate.next_unfinished, a.navigate.auto_advance):
            self.toolbar.addAction(action)
        self.toolbar.addSeparator()
        for action in (a.edit.undo, a.edit.redo, a.edit.mark_invisible):
            self.toolbar.addAction(action)
        self.toolbar.addSeparator()
        for action in (a.view.zoom_out, a.view.fit, a.view.zoom_in, a.view.smooth, a.view.grid):
            self.toolbar.addAction(action)

    def _build_menus(self) -> None:
        a = self.actions
        bar = self.menuBar()
        file = self.menus["file"] = bar.addMenu("&File")
        for action in (a.file.open_project, a.file.new_project):
            file.addAction(action)
        file.addSeparator()
        for action in (a.file.import_images, a.file.import_labels, a.file.export_labels, a.file.export_consensus, a.file.build_dataset):
            file.addAction(action)
        file.addSeparator()
        file.addAction(a.file.quit)

        edit = self.menus["edit"] = bar.addMenu("&Edit")
        for action in (a.edit.undo, a.edit.redo):
            edit.addAction(action)
        edit.addSeparator()
        for action in (*a.edit.select_point, a.edit.clear_selection, a.edit.mark_invisible, a.edit.delete_point):
            edit.addAction(action)
        nudge = edit.addMenu("Nudge selected point")
        for action in a.edit.nudge:
            nudge.addAction(action)

        nav = self.menus["navigate"] = bar.addMenu("&Navigate")
        for action in (a.navigate.next_image, a.navigate.previous_image, a.navigate.next_unfinished, a.navigate.auto_advance):
            nav.addAction(action)

        view = self.menus["view"] = bar.addMenu("&View")
        for action in (a.view.zoom_in, a.view.zoom_out, a.view.fit):
            view.addAction(action)
        view.addSeparator()
        for action in (a.view.smooth, a.view.grid, a.view.crosshair, a.view.blind_mode, a.view.reset_adjustments):
            view.addAction(action)
        view.addSeparator()
        for dock in self.findChildren(QDockWidget):
            view.addAction(dock.toggleViewAction())

    def _build_status_bar(self) -> None:
        self.next_label = QLabel()
        self.cursor_label = QLabel()
        self.cursor_label.setMinimumWidth(150)
        self.counts_label = QLabel()
        # The zoom text changes on most image switches. A label laid out by the status bar would
        # make it lay out and repaint the whole bar each time; inside a fixed-size holder without
        # a layout only the label repaints.
        zoom_holder = QWidget()
        self.zoom_label = QLabel(zoom_holder)
        width = self.zoom_label.fontMetrics().horizontalAdvance("zoom 0.000x") + 8
        height = self.zoom_label.fontMetrics().height() + 8
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        zoom_holder.setFixedSize(width, height)
        self.zoom_label.setGeometry(0, 0, width, height)
        bar = self.statusBar()
        bar.addPermanentWidget(self.next_label)
        bar.addPermanentWidget(self.cursor_label)
        bar.addPermanentWidget(zoom_holder)
        bar.addPermanentWidget(self.counts_label)

    def _connect(self) -> None:
        a = self.actions
        c = self.canvas
        c.place_requested.connect(self._on_place)
        c.move_finished.connect(self._on_move)
        c.point_pressed.connect(self._select)
        c.cursor_moved.connect(self._on_cursor)
        c.view_changed.connect(lambda: self.zoom_label.setText(f"zoom {c.zoom:.3g}x"))
        self.legend.point_clicked.connect(self._select)
        self.image_list.image_chosen.connect(self.show_image)
        self.adjustments_panel.changed.connect(self._on_adjustments)
        self.annotator_combo.activated.connect(lambda _i: self.set_annotator(self.annotator_combo.currentText()))
        self.annotator_combo.lineEdit().returnPressed.connect(lambda: self.set_annotator(self.annotator_combo.currentText()))

        s = self.session
        s.label_changed.connect(self._on_label_changed)
        s.write_failed.connect(self._on_write_failed)
        s.write_succeeded.connect(self._on_write_succeeded)
        s.notice.connect(lambda text: self.statusBar().showMessage(text, 5000))

        a.edit.undo.triggered.connect(self.undo_stack.undo)
        a.edit.redo.triggered.connect(self.undo_stack.redo)
        self.undo_stack.canUndoChanged.connect(lambda ok: a.edit.undo.setEnabled(ok and not self.project.read_only))
        self.undo_stack.canRedoChanged.connect(lambda ok: a.edit.redo.setEnabled(ok and not self.project.read_only))
        a.edit.undo.setEnabled(False)
        a.edit.redo.setEnabled(False)
        a.edit.mark_invisible.triggered.connect(s.mark_invisible)
        a.edit.delete_point.triggered.connect(s.delete_point)
        a.edit.clear_selection.triggered.connect(lambda: self._select(None))
        for k, action in enumerate(a.edit.select_point):
            action.triggered.connect(lambda _checked=False, k=k: self._select(k))
        for action, (dx, dy) in zip(a.edit.nudge, a.edit.nudge_steps):
            action.triggered.connect(lambda _checked=False, dx=dx, dy=dy: s.nudge(dx, dy))

        a.navigate.next_image.triggered.connect(lambda: self.go_relative(+1))
        a.navigate.previous_image.triggered.connect(lambda: self.go_relative(-1))
        a.navigate.next_unfinished.triggered.connect(self.go_next_unfinished)

        a.view.zoom_in.triggered.connect(lambda: c.zoom_by(1.25))
        a.view.zoom_out.triggered.connect(lambda: c.zoom_by(1 / 1.25))
        a.view.fit.triggered.connect(c.fit_to_window)
        a.view.smooth.toggled.connect(self._set_canvas_flag("smooth"))
        a.view.grid.toggled.connect(self._set_canvas_flag("show_grid"))
        a.view.crosshair.toggled.connect(self._set_canvas_flag("show_crosshair"))
        a.view.blind_mode.toggled.connect(lambda _on: self._refresh_points())
        a.view.reset_adjustments.triggered.connect(self.adjustments_panel.reset)
        a.file.quit.triggered.connect(self.close)

        from . import file_actions

        file_actions.connect(self)

    def _set_canvas_flag(self, name: str) -> Callable[[bool], None]:
        def setter(on: bool) -> None:
            setattr(self.canvas, name, on)
            QSettings().setValue(f"view/{name}", on)
            self.canvas.update()

        return setter

    def _restore_settings(self) -> None:
        settings = QSettings()
        view = self.actions.view
        for action, name in ((view.smooth, "smooth"), (view.grid, "show_grid"), (view.crosshair, "show_crosshair")):
            value = settings.value(f"view/{name}")
            if value is not None:
                action.setChecked(str(value).lower() == "true")
            setattr(self.canvas, name, action.isChecked())
        value = settings.value("navigate/auto_advance")
        if value is not None:
            self.actions.navigate.auto_advance.setChecked(str(value).lower() == "true")
        self.actions.navigate.auto_advance.toggled.connect(lambda on: QSettings().setValue("navigate/auto_advance", on))
        self._adjustments = self.adjustments_panel.adjustments()
        self._lut = self._adjustments.lut()
        geometry = settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)

    # ------------------------------------------------------------------ public hooks

    def add_layer_provider(self, key: str, provider: LayerProvider) -> None:
        """Call ``provider(image_id)`` whenever an image is shown or its label changes; draw what it returns.

        The returned layers replace the ones this provider returned before. ``key`` names the
        provider; its layers must be named ``key + ...``.
        """
        self._layer_providers[key] = provider
        self._refresh_points()

    def remove_layer_provider(self, key: str) -> None:
        self._layer_providers.pop(key, None)
        self.canvas.remove_layers(key)

    # ------------------------------------------------------------------ navigation

    def show_image(self, image_id: int) -> None:
        """Show ``image_id`` with its points; records the time spent on the image shown before."""
        self._record_time()
        model = self.image_list.model
        info = model.info(image_id)
        image = QImage(str(self.project.root / info.file))
        if image.isNull():
            log.error("Stored image %s of image id %s could not be read", info.file, image_id)
            self.statusBar().showMessage(f"Image {info.file} is missing or unreadable; re-import {info.original_path}.", 8000)
            return
        self.current_image_id = image_id
        self._raw_rgb = qimage_to_rgb(image)
        self._show_adjusted()
        self.session.load(image_id, (info.width, info.height))
        self._refresh_points()
        self.image_list.select_image(image_id)
        self._shown_at = time.monotonic()
        self.image_shown.emit(image_id)

    def _show_adjusted(self) -> None:
        if self._raw_rgb is None:
            return
        display = rgb_to_qimage(apply_adjustments(self._raw_rgb, self._adjustments, self._lut))
        self.canvas.set_image(display, keep_view=False)
        self.thumbnails.set_image(display)

    def go_relative(self, step: int) -> None:
        target = self.image_list.neighbour(self.current_image_id, step)
        if target is None:
            self.statusBar().showMessage("No more images in this direction.", 3000)
            return
        self.show_image(target)

    def go_next_unfinished(self) -> None:
        target = self.image_list.next_unfinished(self.current_image_id)
        if target is None:
            self.statusBar().showMessage(f"Every image is done for {self.annotator}.", 5000)
            return
        self.show_image(target)

    def set_annotator(self, name: str) -> None:
        name = name.strip()
        if not name or name == self.annotator:
            self.annotator_combo.setCurrentText(self.annotator)
            return
        if not self.project.read_only:
            try:
                self.project.add_annotator(name)
            except StoreError as exc:
                dialogs.show_error(self, "Annotator not added", str(exc))
                self.annotator_combo.setCurrentText(self.annotator)
                return
        self._record_time()
        self.annotator = name
        QSettings().setValue(dialogs.LAST_ANNOTATOR_KEY, name)
        self.session.set_annotator(name)
        self._fill_annotator_combo()
        self.image_list.model.set_statuses(self.project.status(name))
        self._shown_at = time.monotonic()
        self._refresh_points()
        self._update_counts()
        self._update_title()
        self.annotator_changed.emit(name)

    def _fill_annotator_combo(self) -> None:
        self.annotator_combo.blockSignals(True)
        self.annotator_combo.clear()
        names = self.project.annotators()
        if self.annotator not in names:
            names.append(self.annotator)
        self.annotator_combo.addItems(names)
        self.annotator_combo.setCurrentText(self.annotator)
        self.annotator_combo.blockSignals(False)

    def reload_project(self) -> None:
        """Read the image list and statuses again after images or labels were added outside the window."""
        self.image_list.model.set_images(self.project.list_images(), self.project.status(self.annotator))
        self._fill_annotator_combo()
        ids = set(self.image_list.model.image_ids())
        target = self.current_image_id if self.current_image_id in ids else self.image_list.first_image()
        if target is not None:
            self.show_image(target)
        self._update_counts()

    def set_project(self, project: Project) -> None:
        """Close the open project and show ``project`` for the same annotator."""
        self._record_time()
        self._time_timer.stop()
        self.flush_time()
        self.undo_stack.clear()
        self.project.close()
        self.project = project
        self.session.project = project
        self.current_image_id = None
        self._raw_rgb = None
        if not project.read_only:
            project.add_annotator(self.annotator)
        self._last_write_failed = False
        self._write_error_shown = False
        self._apply_read_only()
        self._update_title()
        self.reload_project()
        if self.current_image_id is None:
            self.canvas.clear_image()
            self.thumbnails.set_image(None)
            self.session.image_id = None
            self.session.label = Label()
            self._refresh_points()

    # ------------------------------------------------------------------ drawing

    def _refresh_points(self) -> None:
        """Redraw every point layer, the legend, thumbnails and status bar from the session's label."""
        s = self.session
        label = s.label
        self.canvas.set_selected(s.selected)
        self.canvas.set_layer(PointLayer(EDIT_LAYER, label.xy.copy(), label.state.copy(), MarkerStyle.FILLED, z=10))
        next_index = s.next_index()
        self.legend.set_points(label.xy, label.state, next_index, s.selected)
        self.thumbnails.set_points(label.xy, label.state)

        self.canvas.remove_layers(OTHERS_LAYER_PREFIX)
        if not self.actions.view.blind_mode.isChecked() and self.current_image_id is not None:
            for name in self.project.annotators():
                if name == self.annotator:
                    continue
                other = self.project.get_label(self.current_image_id, name)
                if other.n_labelled:
                    self.canvas.set_layer(
                        PointLayer(OTHERS_LAYER_PREFIX + name, other.xy, other.state, MarkerStyle.CROSS, z=5, opacity=0.9, caption=name[:2])
                    )
        if self.current_image_id is not None:
            for key, provider in self._layer_providers.items():
                self.canvas.remove_layers(key)
                for layer in provider(self.current_image_id):
                    self.canvas.set_layer(layer)

        if next_index is None:
            done = int((label.state != PointState.UNLABELLED).sum())
            self.next_label.setText(f"All points placed ({done}/{N_POINTS})")
        else:
            self.next_label.setText(f"Next: {next_index + 1} {DISPLAY_NAMES[next_index]}")

    def _on_label_changed(self, image_id: int) -> None:
        if image_id != self.current_image_id:
            # Undo or redo of an edit on another image: show that image so the change is visible.
            self.show_image(image_id)
        row = status_from_label(self.session.label)
        self.image_list.model.update_status(image_id, row)
        self._refresh_points()
        self._update_counts()
        self.label_changed.emit(image_id)

    def _update_counts(self) -> None:
        done, partial, total = self.image_list.model.counts()
        self.counts_label.setText(f"Done {done}/{total}, partial {partial}")

    def _on_cursor(self, x: float, y: float) -> None:
        if x != x:  # NaN: the cursor left the canvas
            self.cursor_label.setText("")
        else:
            self.cursor_label.setText(f"x {x:.2f}, y {y:.2f} px")

    def _on_adjustments(self, adjustments: DisplayAdjustments) -> None:
        self._adjustments = adjustments
        self._lut = adjustments.lut()
        if self._raw_rgb is not None:
            display = rgb_to_qimage(apply_adjustments(self._raw_rgb, adjustments, self._lut))
            self.canvas.set_image(display, keep_view=True)
            self.thumbnails.set_image(display)

    # ------------------------------------------------------------------ edits

    def _select(self, index: int | None) -> None:
        self.session.select(index)
        self._refresh_points()

    def _on_place(self, x: float, y: float) -> None:
        if self.project.read_only:
            self.statusBar().showMessage(f"Read-only: {self.project.read_only_reason}. Points cannot be placed.", 5000)
            return
        was_done = self.session.label.is_done
        if self.session.place(x, y) and not was_done and self.session.label.is_done:
            self._after_done()

    def _after_done(self) -> None:
        if self.actions.navigate.auto_advance.isChecked():
            target = self.image_list.next_unfinished(self.current_image_id)
            if target is not None:
                self.show_image(target)

    def _on_move(self, k: int, x0: float, y0: float, x: float, y: float) -> None:
        if not self.session.move(k, x, y):
            self._refresh_points()

    def _on_write_failed(self, title: str, message: str) -> None:
        self._last_write_failed = True
        self._update_title()
        if not self._write_error_shown:
            self._write_error_shown = True
            dialogs.show_error(self, title, f"{message}\n\nThe point shown is the value stored in the project.")
        else:
            self.statusBar().showMessage(f"{title}: {message}", 8000)

    def _on_write_succeeded(self) -> None:
        if self._last_write_failed:
            self._last_write_failed = False
            self._write_error_shown = False
            self._update_title()

    # ------------------------------------------------------------------ state

    def _apply_read_only(self) -> None:
        read_only = self.project.read_only
        for action in self.actions.editing():
            action.setEnabled(not read_only)
        self.actions.edit.undo.setEnabled(self.undo_stack.canUndo() and not read_only)
        self.actions.edit.redo.setEnabled(self.undo_stack.canRedo() and not read_only)
        self.canvas.editable = not read_only
        if read_only:
            self.statusBar().showMessage(f"Read-only: {self.project.read_only_reason}", 0)

    def _update_title(self) -> None:
        if self.project.read_only:
            state = "read-only, viewing only"
        elif self._last_write_failed:
            state = "LAST EDIT NOT SAVED"
        else:
            state = "all changes saved"
        parts = [self.project.name, self.annotator, state]
        if not self.project.name.startswith(APPLICATION):
            parts.append(APPLICATION)
        self.setWindowTitle(" \u2014 ".join(parts))

    def _record_time(self) -> None:
        """Queue the time spent on the shown image; :meth:`flush_time` writes it shortly after."""
        if self._shown_at is None or self.current_image_id is None:
            return
        seconds = min(time.monotonic() - self._shown_at, MAX_RECORDED_SECONDS)
        self._shown_at = None
        if self.project.read_only or seconds <= 0:
            return
        key = (self.current_image_id, self.annotator)
        self._pending_time[key] = self._pending_time.get(key, 0.0) + seconds
        # The write waits until switching pauses, so it never delays showing the next face.
        self._time_timer.start()

    def flush_time(self) -> None:
        """Write the queued time per (image, annotator) to the store."""
        pending, self._pending_time = self._pending_time, {}
        for (image_id, annotator), seconds in pending.items():
            try:
                self.project.add_time(image_id, annotator, seconds)
            except StoreError as exc:
                log.warning("Time on image %s for %s was not recorded: %s", image_id, annotator, exc)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._record_time()
        self._time_timer.stop()
        self.flush_time()
        QSettings().setValue("window/geometry", self.saveGeometry())
        super().closeEvent(event)
