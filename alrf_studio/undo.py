"""Undo commands that replay store edits.

Each command wraps one :class:`s2ld_core.store.Edit` that was already written to the store when
the command was pushed. Undo writes ``edit.before`` back through :meth:`Project.undo` and redo
writes ``edit.after`` through :meth:`Project.redo`, so the store and its edit log stay the only
record. A whole drag is one edit because the canvas writes it on release. Consecutive arrow-key
nudges of the same point merge into one step.
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtGui import QUndoCommand

from s2ld_core.store import Edit

#: Command id shared by nudges so that QUndoStack offers them to :meth:`EditCommand.mergeWith`.
NUDGE_ID = 1001


class EditReplayer(Protocol):
    """What a command needs from the window: replay an edit and show the result."""

    def replay_edit(self, edit: Edit, undo: bool) -> None: ...


class EditCommand(QUndoCommand):
    """One undo step for an edit already applied to the store."""

    def __init__(self, replayer: EditReplayer, edit: Edit, text: str, mergeable: bool = False):
        super().__init__(text)
        self._replayer = replayer
        self.edit = edit
        self._mergeable = mergeable
        self._first_redo = True

    def id(self) -> int:
        return NUDGE_ID if self._mergeable else -1

    def redo(self) -> None:
        # QUndoStack.push calls redo at once; the edit is already in the store then.
        if self._first_redo:
            self._first_redo = False
            return
        self._replayer.replay_edit(self.edit, undo=False)

    def undo(self) -> None:
        self._replayer.replay_edit(self.edit, undo=True)

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, EditCommand) or not other._mergeable:
            return False
        mine, theirs = self.edit, other.edit
        if (mine.image_id, mine.annotator, set(mine.after)) != (theirs.image_id, theirs.annotator, set(theirs.after)):
            return False
        self.edit = Edit(mine.image_id, mine.annotator, mine.before, theirs.after)
        return True
