"""Label editing for one annotator on the shown image: guided order, moves, nudges, invisibility, undo.

:class:`LabelSession` turns user intents into store edits. Every edit is written with
:meth:`Project.apply_values` when it happens and pushed to the undo stack as an
:class:`~alrf_studio.undo.EditCommand`; afterwards the label is read back from the store, so
what the window draws is always what the store holds.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from s2ld_core.schema import DISPLAY_NAMES, LANDMARK_NAMES, N_POINTS, Label, PointState
from s2ld_core.store import Edit, PointValue, Project, StoreError

from .undo import EditCommand

log = logging.getLogger(__name__)


class LabelSession(QObject):
    """Edits of one annotator, with the label of the shown image as last read from the store."""

    #: The stored label of this image changed (an edit, undo or redo); the argument is the image id.
    label_changed = Signal(int)
    #: A write failed: (title, message). The label shown was re-read from the store.
    write_failed = Signal(str, str)
    #: A write succeeded after an earlier failure, or the first write of the session succeeded.
    write_succeeded = Signal()
    #: A short note for the status bar (for example why a click did nothing).
    notice = Signal(str)

    def __init__(self, project: Project, annotator: str, undo_stack: QUndoStack, parent: QObject | None = None):
        super().__init__(parent)
        self.project = project
        self.annotator = annotator
        self.undo_stack = undo_stack
        self.image_id: int | None = None
        self.image_size = (0, 0)
        self.label = Label()
        #: Point chosen with keys 1-5, a click on the legend or a press on its marker.
        self.selected: int | None = None
        #: Point placed last on this image; arrow keys and Delete act on it when nothing is selected.
        self.last_placed: int | None = None

    # ------------------------------------------------------------------ state

    @property
    def can_edit(self) -> bool:
        return not self.project.read_only and self.image_id is not None

    def load(self, image_id: int, size: tuple[int, int]) -> None:
        """Read the label of ``image_id`` from the store and reset the selection."""
        self.image_id = image_id
        self.image_size = size
        self.selected = None
        self.last_placed = None
        self.reload()

    def reload(self) -> None:
        if self.image_id is not None:
            self.label = self.project.get_label(self.image_id, self.annotator)

    def set_annotator(self, annotator: str) -> None:
        self.annotator = annotator
        self.undo_stack.clear()
        self.selected = None
        self.last_placed = None
        self.reload()

    def next_index(self) -> int | None:
        """Return the point the next click places: a selected point without coordinates, else the first unlabelled."""
        if self.selected is not None and self.label.state[self.selected] != PointState.VISIBLE:
            return self.selected
        for k in range(N_POINTS):
            if self.label.state[k] == PointState.UNLABELLED:
                return k
        return None

    def target_index(self) -> int | None:
        """Return the point that nudges and Delete act on: the selected point, else the one placed last."""
        return self.selected if self.selected is not None else self.last_placed

    def select(self, index: int | None) -> None:
        self.selected = index

    # ------------------------------------------------------------------ edits

    def _value(self, k: int) -> PointValue:
        label = self.label
        state = PointState(int(label.state[k]))
        return PointValue(state, float(label.xy[k, 0]), float(label.xy[k, 1]), bool(label.from_prediction[k]), bool(label.moved[k]))

    def apply(self, values: dict[str, PointValue], text: str, mergeable: bool = False) -> Edit | None:
        """Write ``values`` for the shown image, push the undo step and re-read the label.

        Returns the edit, or None when the write failed (reported through :attr:`write_failed`).
        """
        if self.image_id is None:
            return None
        if self.project.read_only:
            self.notice.emit(f"Read-only project: {self.project.read_only_reason}")
            return None
        image_id = self.image_id
        try:
            edit = self.project.apply_values(image_id, self.annotator, values)
        except StoreError as exc:
            log.warning("Edit on image %s by %s failed: %s", image_id, self.annotator, exc)
            self.reload()
            self.label_changed.emit(image_id)
            self.write_failed.emit("Point not saved", str(exc))
            return None
        self.undo_stack.push(EditCommand(self, edit, text, mergeable))
        self.reload()
        self.write_succeeded.emit()
        self.label_changed.emit(image_id)
        return edit

    def record(self, edit: Edit, text: str) -> None:
        """Make an edit that another core function already wrote (for example an accepted prediction) one undo step.

        The edit must belong to this session's annotator; the shown label is read again.
        """
        self.undo_stack.push(EditCommand(self, edit, text))
        if edit.image_id == self.image_id and edit.annotator == self.annotator:
            self.reload()
        self.write_succeeded.emit()
        self.label_changed.emit(edit.image_id)

    def place(self, x: float, y: float) -> bool:
        """Place the next point at (x, y) exactly; False when nothing was placed."""
        k = self.next_index()
        if k is None:
            self.notice.emit("All 5 points are placed: drag a point to move it, or press 1-5 to select one.")
            return False
        w, h = self.image_size
        if not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
            self.notice.emit(f"({x:.2f}, {y:.2f}) is outside the {w}x{h} image; click on the face.")
            return False
        previous = (self.selected, self.last_placed)
        # The selection is updated before the write so that the redraw after it shows the new state.
        self.selected, self.last_placed = None, k
        if self.apply({LANDMARK_NAMES[k]: PointValue(PointState.VISIBLE, x, y)}, f"Place {DISPLAY_NAMES[k]}") is None:
            self.selected, self.last_placed = previous
            return False
        return True

    def move(self, k: int, x: float, y: float, text: str | None = None, mergeable: bool = False) -> bool:
        """Move visible point ``k`` to (x, y); a point accepted from a prediction is flagged as moved."""
        old = self._value(k)
        if old.state != PointState.VISIBLE:
            return False
        w, h = self.image_size
        x = min(max(x, -0.5), w - 0.5)
        y = min(max(y, -0.5), h - 0.5)
        new = PointValue(PointState.VISIBLE, x, y, old.from_prediction, old.moved or old.from_prediction)
        return self.apply({LANDMARK_NAMES[k]: new}, text or f"Move {DISPLAY_NAMES[k]}", mergeable) is not None

    def nudge(self, dx: float, dy: float) -> bool:
        k = self.target_index()
        if k is None or self.label.state[k] != PointState.VISIBLE:
            self.notice.emit("Select a placed point (keys 1-5) to nudge it.")
            return False
        x, y = float(self.label.xy[k, 0]) + dx, float(self.label.xy[k, 1]) + dy
        # Round away binary noise from repeated 0.1 steps (0.1 + 0.2 != 0.3) at 1e-9 px.
        x, y = round(x, 9), round(y, 9)
        return self.move(k, x, y, f"Nudge {DISPLAY_NAMES[k]}", mergeable=True)

    def mark_invisible(self) -> bool:
        """Mark the selected point, or else the next one, invisible."""
        k = self.selected if self.selected is not None else self.next_index()
        if k is None:
            self.notice.emit("No point to mark invisible: select one with keys 1-5.")
            return False
        if self.label.state[k] == PointState.INVISIBLE:
            return False
        if self.apply({LANDMARK_NAMES[k]: PointValue(PointState.INVISIBLE)}, f"Mark {DISPLAY_NAMES[k]} invisible") is None:
            return False
        self.last_placed = k
        return True

    def delete_point(self) -> bool:
        """Return the selected (or last placed) point to 'not labelled'."""
        k = self.target_index()
        if k is None or self.label.state[k] == PointState.UNLABELLED:
            self.notice.emit("Select a point with keys 1-5 to delete it.")
            return False
        previous = (self.selected, self.last_placed)
        self.selected, self.last_placed = None, None
        if self.apply({LANDMARK_NAMES[k]: PointValue(PointState.UNLABELLED)}, f"Delete {DISPLAY_NAMES[k]}") is None:
            self.selected, self.last_placed = previous
            return False
        return True

    # ------------------------------------------------------------------ undo and redo

    def replay_edit(self, edit: Edit, undo: bool) -> None:
        """Write an edit's before (undo) or after (redo) values back through the store."""
        try:
            if undo:
                self.project.undo(edit)
            else:
                self.project.redo(edit)
        except StoreError as exc:
            # NOTE: the undo stack has already moved its index; the store keeps the values it had.
            log.warning("%s of an edit on image %s failed: %s", "Undo" if undo else "Redo", edit.image_id, exc)
            self.write_failed.emit("Undo not saved" if undo else "Redo not saved", str(exc))
            return
        if edit.image_id == self.image_id and edit.annotator == self.annotator:
            self.reload()
        self.write_succeeded.emit()
        self.label_changed.emit(edit.image_id)

