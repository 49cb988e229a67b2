"""Review mode, the Agreement panel and the agreement report, added to the annotation window.

:func:`install_review` adds them to a :class:`~alrf_studio.main_window.MainWindow` through its
public hooks:

- Review mode turns blind mode off and replaces the window's ``annotator:<name>`` layers with
  one layer per annotator in that annotator's colour (a layer provider under the same prefix).
  A second provider draws the consensus, and :class:`~alrf_studio.review_overlay.SpreadOverlay`
  draws the spread circles. Both providers read the shown image's labels from the store, so
  they are current after every edit.
- Flags and navigation come from a :class:`~alrf_studio.review_model.ReviewSnapshot` of the
  whole project, read again after labels change.
- Accept and Send back write :meth:`Project.add_review`; a sent-back image becomes unfinished
  for that annotator (:meth:`Project.status`), and the image list is read again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMessageBox, QVBoxLayout, QWidget

from s2ld_core.consensus import compute_consensus
from s2ld_core.schema import N_POINTS
from s2ld_core.store import StoreError

from . import dialogs
from .canvas import MarkerStyle, PointLayer
from .review_dock import ReviewDock
from .review_model import REVIEW_RULE, ReviewSnapshot, annotator_colour, load_snapshot
from .review_overlay import SpreadData, SpreadOverlay, visible_xy

if TYPE_CHECKING:
    from .agreement_panel import AgreementPanel
    from .main_window import MainWindow

log = logging.getLogger(__name__)

#: Prefix of the window's layers of other annotators; review mode provides them itself.
ANNOTATOR_PREFIX = "annotator:"
#: Prefix of the review mode's own layers.
REVIEW_PREFIX = "review:"
CONSENSUS_LAYER = REVIEW_PREFIX + "consensus"
#: Keys of the flagged-image steps. F is "Fit to window" outside review mode.
NEXT_FLAGGED_KEY = "F"
PREVIOUS_FLAGGED_KEY = "Shift+F"


@dataclass
class ReviewActions:
    review_mode: QAction
    next_flagged: QAction
    previous_flagged: QAction
    accept: QAction
    agreement_report: QAction


def _action(parent: QObject, text: str, key: str = "", tip: str = "", checkable: bool = False) -> QAction:
    action = QAction(text, parent)
    if key:
        action.setShortcut(QKeySequence(key))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    if tip:
        action.setToolTip(f"{tip} ({key})" if key else tip)
        action.setStatusTip(tip)
    action.setCheckable(checkable)
    return action


def ask_open_report(parent: QWidget, path: Path) -> bool:
    """Ask whether to open the written report; tests replace this function."""
    answer = QMessageBox.question(parent, "Agreement report", f"Wrote {path}.\n\nOpen it in the web browser?")
    return answer == QMessageBox.StandardButton.Yes


class ReviewController(QObject):
    """Review mode, flags, decisions and the Agreement panel of one window."""

    def __init__(self, window: "MainWindow"):
        super().__init__(window)
        self.window = window
        self._snapshot: ReviewSnapshot | None = None
        self._snapshot_project = None
        self._snapshot_seconds = 0.0
        self._stale = True
        self._blind_before = True
        self._dock_placed = False
        self._fit_keys = window.actions.view.fit.shortcuts()
        self.panel: AgreementPanel | None = None

        self.actions = ReviewActions(
            review_mode=_action(window, "&Review mode", tip="Show every annotator, the consensus and the flags", checkable=True),
            next_flagged=_action(window, "Next &flagged image", NEXT_FLAGGED_KEY, "Show the next image with a flag"),
            previous_flagged=_action(window, "Previous flagged image", PREVIOUS_FLAGGED_KEY, "Show the previous image with a flag"),
            accept=_action(window, "&Accept image", "Ctrl+Return", "Record that the labels of the shown image are correct"),
            agreement_report=_action(window, "Agreement &report…", tip="Write the HTML agreement report with plots and CSV tables"),
        )
        self.actions.review_mode.setIconText("Review")
        self.dock_widget = ReviewDock()
        self.dock_widget.previous_button.setDefaultAction(self.actions.previous_flagged)
        self.dock_widget.next_button.setDefaultAction(self.actions.next_flagged)
        self.dock = window.add_dock("Review", self.dock_widget, Qt.DockWidgetArea.RightDockWidgetArea)
        self.dock.hide()
        self._panel_holder = QWidget()
        QVBoxLayout(self._panel_holder).setContentsMargins(0, 0, 0, 0)
        self.agreement_dock = window.add_dock("Agreement", self._panel_holder, Qt.DockWidgetArea.RightDockWidgetArea)
        self.agreement_dock.hide()
        self.overlay = SpreadOverlay(window.canvas)
        self.overlay.hide()

        self._add_to_menus()
        self._connect()
        self._set_navigation_enabled(False)

    # ------------------------------------------------------------------ setup

    def _add_to_menus(self) -> None:
        w, a = self.window, self.actions
        for action in vars(a).values():
            w.addAction(action)
        w.toolbar.addSeparator()
        w.toolbar.addAction(a.review_mode)

        view = w.menus["view"]
        after_blind = view.actions().index(w.actions.view.blind_mode) + 1
        view.insertAction(view.actions()[after_blind], a.review_mode)
        file = w.menus["file"]
        file.insertAction(w.actions.file.build_dataset, a.agreement_report)

        review = w.menus["review"] = w.menuBar().addMenu("&Review")
        review.addAction(a.review_mode)
        review.addSeparator()
        for action in (a.next_flagged, a.previous_flagged, a.accept):
            review.addAction(action)
        review.addSeparator()
        review.addAction(self.agreement_dock.toggleViewAction())
        review.addAction(a.agreement_report)

    def _connect(self) -> None:
        w, a = self.window, self.actions
        a.review_mode.toggled.connect(self.set_review_mode)
        a.next_flagged.triggered.connect(lambda: self.go_flagged(+1))
        a.previous_flagged.triggered.connect(lambda: self.go_flagged(-1))
        a.accept.triggered.connect(self.accept)
        a.agreement_report.triggered.connect(self.write_report)
        self.dock_widget.accept_requested.connect(self.accept)
        self.dock_widget.send_back_requested.connect(self.send_back)
        self.agreement_dock.visibilityChanged.connect(self._on_agreement_visible)
        w.image_shown.connect(lambda _image_id: self._update_dock())
        w.label_changed.connect(self._on_label_changed)

    # ------------------------------------------------------------------ data

    def snapshot(self) -> ReviewSnapshot:
        """Return the project's flags and consensus, read again when labels or the project changed."""
        if self._snapshot is None or self._stale or self._snapshot_project is not self.window.project:
            self.reload()
        return self._snapshot

    def reload(self) -> None:
        """Read every label again and recompute flags, consensus and the Agreement panel."""
        start = time.perf_counter()
        self._snapshot = load_snapshot(self.window.project)
        self._snapshot_seconds = time.perf_counter() - start
        self._snapshot_project = self.window.project
        self._stale = False
        log.info("Agreement of %d images recomputed in %.3f s", len(self._snapshot.image_ids), self._snapshot_seconds)
        self._update_panel()

    def _on_label_changed(self, _image_id: int) -> None:
        self._stale = True
        if self.is_active():
            self._update_dock()

    def is_active(self) -> bool:
        return self.actions.review_mode.isChecked()

    # ------------------------------------------------------------------ review mode

    def set_review_mode(self, on: bool) -> None:
        """Show every annotator, the consensus, the spread and the Review dock; or return to labelling."""
        w = self.window
        blind = w.actions.view.blind_mode
        if on:
            self._blind_before = blind.isChecked()
            blind.setChecked(False)
            blind.setEnabled(False)
            # F steps through flagged images; Fit keeps its other keys.
            w.actions.view.fit.setShortcuts([k for k in self._fit_keys if k != QKeySequence(NEXT_FLAGGED_KEY)])
            self._set_navigation_enabled(True)
            self.overlay.show()
            w.add_layer_provider(ANNOTATOR_PREFIX, self._annotator_layers)
            w.add_layer_provider(REVIEW_PREFIX, self._consensus_layers)
            if not self._dock_placed:
                # Sharing the Points panel's place gives the flag tables the full height.
                points = w.findChild(QDockWidget, "dock:Points")
                if points is not None:
                    w.tabifyDockWidget(points, self.dock)
                self._dock_placed = True
            self.dock.show()
            self.dock.raise_()
            self._update_dock()
            log.info("Review mode on for reviewer %s", w.annotator)
            return

        w.remove_layer_provider(REVIEW_PREFIX)
        w.remove_layer_provider(ANNOTATOR_PREFIX)
        self.overlay.set_data(None)
        self.overlay.hide()
        self._set_navigation_enabled(False)
        w.actions.view.fit.setShortcuts(self._fit_keys)
        blind.setEnabled(True)
        if blind.isChecked() == self._blind_before:
            # No toggle follows, so redraw here to bring back the window's own annotator layers.
            w._refresh_points()
        blind.setChecked(self._blind_before)
        self.dock.hide()
        log.info("Review mode off")

    def _set_navigation_enabled(self, on: bool) -> None:
        read_only = self.window.project.read_only
        self.actions.next_flagged.setEnabled(on)
        self.actions.previous_flagged.setEnabled(on)
        self.actions.accept.setEnabled(on and not read_only)
        self.dock_widget.set_decisions_enabled(on and not read_only)

    def _image_labels(self, image_id: int) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Return (names, xy (1, A, 5, 2), state (1, A, 5)) of the annotators with points on ``image_id``, from the store."""
        project = self.window.project
        names, xy, state = [], [], []
        for name in project.annotators():
            label = project.get_label(image_id, name)
            if label.n_labelled:
                names.append(name)
                xy.append(label.xy)
                state.append(label.state)
        if not names:
            return [], np.full((1, 0, N_POINTS, 2), np.nan), np.zeros((1, 0, N_POINTS), dtype=np.int8)
        return names, np.asarray(xy)[None], np.asarray(state, dtype=np.int8)[None]

    def _colour_index(self, names: list[str]) -> list[int]:
        snapshot = self.snapshot()
        if any(name not in snapshot.annotators for name in names):
            # An annotator labelled their first point since the snapshot.
            self.reload()
            snapshot = self._snapshot
        return [snapshot.annotators.index(name) for name in names]

    def _annotator_layers(self, image_id: int) -> list[PointLayer]:
        names, xy, state = self._image_labels(image_id)
        layers = []
        for a, (name, colour) in enumerate(zip(names, self._colour_index(names))):
            rgb = annotator_colour(colour)
            layers.append(PointLayer(ANNOTATOR_PREFIX + name, xy[0, a], state[0, a], MarkerStyle.CROSS, z=5, colours=(rgb,) * N_POINTS))
        return layers

    def _consensus_layers(self, image_id: int) -> list[PointLayer]:
        names, xy, state = self._image_labels(image_id)
        if not names:
            self.overlay.set_data(None)
            return []
        consensus = compute_consensus(xy, state, REVIEW_RULE)
        colours = [annotator_colour(c) for c in self._colour_index(names)]
        self.overlay.set_data(
            SpreadData(visible_xy(xy[0], state[0]), colours, consensus.xy[0], consensus.spread_std_px[0], consensus.spread_max_px[0])
        )
        if not consensus.included[0]:
            return []
        return [PointLayer(CONSENSUS_LAYER, consensus.xy[0], consensus.state[0], MarkerStyle.FILLED, z=7)]

    def _update_dock(self) -> None:
        if not self.is_active():
            return
        snapshot = self.snapshot()
        image_id = self.window.current_image_id
        flagged = self._flagged_ids(snapshot)
        if image_id in flagged:
            position = f"flagged image {flagged.index(image_id) + 1} of {len(flagged)}"
        else:
            position = f"{len(flagged)} flagged images to review"
        self.dock_widget.show_image(snapshot, image_id, position)

    # ------------------------------------------------------------------ navigation

    def _flagged_ids(self, snapshot: ReviewSnapshot) -> list[int]:
        ids = snapshot.flagged_ids()
        if self.dock_widget.skip_accepted.isChecked():
            ids = [i for i in ids if not snapshot.is_accepted(i)]
        return ids

    def go_flagged(self, step: int) -> None:
        """Show the next (``step`` > 0) or previous flagged image in image order, wrapping at the ends."""
        snapshot = self.snapshot()
        flagged = self._flagged_ids(snapshot)
        if not flagged:
            self.window.statusBar().showMessage("No flagged images to review.", 5000)
            return
        current = self.window.current_image_id
        row = snapshot.row(current) if current is not None else None
        current_row = -1 if row is None else row
        rows = [snapshot.row(i) for i in flagged]
        if step > 0:
            later = [i for i, r in zip(flagged, rows) if r > current_row]
            target = later[0] if later else flagged[0]
        else:
            earlier = [i for i, r in zip(flagged, rows) if r < current_row] if row is not None else []
            target = earlier[-1] if earlier else flagged[-1]
        self.window.show_image(target)

    # ------------------------------------------------------------------ decisions

    def accept(self) -> None:
        """Record that the shown image's labels are correct."""
        self._decide("accept", None, "")

    def send_back(self, annotator: str, note: str = "") -> None:
        """Send the shown image back to ``annotator``: it becomes unfinished in their queue."""
        self._decide("send_back", annotator, note)

    def _decide(self, action: str, annotator: str | None, note: str) -> None:
        w = self.window
        image_id = w.current_image_id
        if image_id is None or not self.is_active():
            return
        try:
            w.project.add_review(image_id, w.annotator, action, annotator, note)
        except StoreError as exc:
            log.warning("Review of image %s by %s not stored: %s", image_id, w.annotator, exc)
            dialogs.show_error(w, "Review not stored", str(exc))
            return
        if action == "accept":
            log.info("Image %s accepted by %s", image_id, w.annotator)
            text = f"Image {image_id} accepted."
        else:
            log.info("Image %s sent back to %s by %s (note: %r)", image_id, annotator, w.annotator, note)
            text = f"Image {image_id} sent back to {annotator}."
        # A send-back changes the annotator's status of the image; an accept can undo an earlier one.
        w.image_list.model.set_statuses(w.project.status(w.annotator))
        w._update_counts()
        snapshot = self.snapshot()
        snapshot.latest_review[int(image_id)] = w.project.reviews(image_id)[-1]
        self._update_dock()
        w.statusBar().showMessage(f"{text} F: next flagged image.", 5000)

    # ------------------------------------------------------------------ agreement panel and report

    def _on_agreement_visible(self, visible: bool) -> None:
        if visible and self.panel is None:
            from .agreement_panel import AgreementPanel

            self.panel = AgreementPanel()
            self._panel_holder.layout().addWidget(self.panel)
            self.panel.refresh_requested.connect(self.reload)
        if visible:
            self.snapshot()
            self._update_panel()

    def _update_panel(self) -> None:
        if self.panel is None or self._snapshot is None:
            return
        result = self._snapshot.agreement
        if result is None:
            self.panel.show_message("Agreement needs images labelled by at least two annotators.")
        else:
            self.panel.set_result(result, self._snapshot_seconds)

    def write_report(self) -> None:
        """Ask for a folder, write the HTML agreement report there and offer to open it."""
        from s2ld_core.project_io import write_project_report

        from .file_actions import run_with_progress

        w = self.window
        folder = QFileDialog.getExistingDirectory(w, "Folder for the agreement report")
        if not folder:
            return
        names = self.snapshot().annotators
        try:
            path = run_with_progress(w, "Writing the agreement report…", lambda _p, _c: write_project_report(w.project, folder, annotators=names))
        except (StoreError, OSError, ValueError) as exc:
            log.exception("Agreement report to %s failed", folder)
            dialogs.show_error(w, "Agreement report failed", str(exc))
            return
        log.info("Wrote the agreement report %s", path)
        if ask_open_report(w, Path(path)):
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def install_review(window: "MainWindow") -> ReviewController:
    """Add review mode, the Review and Agreement docks and the report action to ``window``."""
    return ReviewController(window)
