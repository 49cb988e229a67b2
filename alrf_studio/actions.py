"""The main window's actions in one typed container, with their texts and shortcuts.

The window connects them; keeping the definitions here makes every shortcut visible in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence

from s2ld_core.schema import DISPLAY_NAMES, N_POINTS


def _action(
    parent: QObject,
    text: str,
    shortcuts: tuple[str | QKeySequence.StandardKey, ...] = (),
    tip: str = "",
    checkable: bool = False,
    checked: bool = False,
) -> QAction:
    action = QAction(text, parent)
    keys = [QKeySequence(s) for s in shortcuts]
    if keys:
        action.setShortcuts(keys)
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    if tip:
        action.setToolTip(tip)
        action.setStatusTip(tip)
    if checkable:
        action.setCheckable(True)
        action.setChecked(checked)
    return action


@dataclass
class FileActions:
    open_project: QAction
    new_project: QAction
    import_images: QAction
    import_labels: QAction
    export_labels: QAction
    build_dataset: QAction
    export_consensus: QAction
    quit: QAction


@dataclass
class EditActions:
    undo: QAction
    redo: QAction
    mark_invisible: QAction
    delete_point: QAction
    clear_selection: QAction
    select_point: list[QAction]
    nudge: list[QAction]
    #: (dx, dy) in image pixels for each action of :attr:`nudge`, in the same order.
    nudge_steps: list[tuple[float, float]]


@dataclass
class NavigateActions:
    next_image: QAction
    previous_image: QAction
    next_unfinished: QAction
    auto_advance: QAction


@dataclass
class ViewActions:
    zoom_in: QAction
    zoom_out: QAction
    fit: QAction
    smooth: QAction
    grid: QAction
    crosshair: QAction
    blind_mode: QAction
    reset_adjustments: QAction


@dataclass
class Actions:
    file: FileActions
    edit: EditActions
    navigate: NavigateActions
    view: ViewActions

    def editing(self) -> list[QAction]:
        """Actions that change labels; disabled when the project is read-only."""
        e = self.edit
        return [e.undo, e.redo, e.mark_invisible, e.delete_point, *e.nudge, self.file.import_images, self.file.import_labels, self.file.build_dataset]


#: Nudge sizes in image pixels: arrow keys move by NUDGE_FINE, with Shift by NUDGE_COARSE.
NUDGE_FINE = 0.1
NUDGE_COARSE = 1.0


def create_actions(parent: QObject) -> Actions:
    """Build every action of the main window (not yet connected)."""
    file = FileActions(
        open_project=_action(parent, "&Open project…", (QKeySequence.StandardKey.Open,)),
        new_project=_action(parent, "&New project…", (QKeySequence.StandardKey.New,)),
        import_images=_action(parent, "Import &images…", tip="Copy image files into the project"),
        import_labels=_action(parent, "Import &labels…", tip="Read an ALRF, MTCNN, CSV or COCO file as one annotator's labels"),
        export_labels=_action(parent, "&Export labels…", tip="Write one annotator's labels as ALRF, CSV or COCO"),
        build_dataset=_action(parent, "&Build dataset…", tip="Choose an ALRF-style image set from a TinyFace-like folder"),
        export_consensus=_action(parent, "Export &consensus…", tip="Merge the annotators' points and write the consensus"),
        # Qt has no standard Quit key on Windows, so Ctrl+Q is named as well.
        quit=_action(parent, "&Quit", ("Ctrl+Q",)),
    )

    nudge, steps = [], []
    for key, name, (dx, dy) in (
        ("Left", "left", (-1, 0)),
        ("Right", "right", (1, 0)),
        ("Up", "up", (0, -1)),
        ("Down", "down", (0, 1)),
    ):
        nudge.append(_action(parent, f"Nudge {name} {NUDGE_FINE:g} px", (key,)))
        steps.append((dx * NUDGE_FINE, dy * NUDGE_FINE))
        nudge.append(_action(parent, f"Nudge {name} {NUDGE_COARSE:g} px", (f"Shift+{key}",)))
        steps.append((dx * NUDGE_COARSE, dy * NUDGE_COARSE))

    edit = EditActions(
        undo=_action(parent, "&Undo", (QKeySequence.StandardKey.Undo,)),
        redo=_action(parent, "&Redo", ("Ctrl+Shift+Z", "Ctrl+Y")),
        mark_invisible=_action(parent, "Mark &invisible", ("V", "I"), tip="Mark the selected point, or the next one, as invisible (-1)"),
        delete_point=_action(parent, "&Delete point", ("Delete", "Backspace"), tip="Return the selected point to 'not labelled'"),
        clear_selection=_action(parent, "Clear selection", ("Escape",)),
        select_point=[_action(parent, f"Select {DISPLAY_NAMES[k]}", (str(k + 1),)) for k in range(N_POINTS)],
        nudge=nudge,
        nudge_steps=steps,
    )
    navigate = NavigateActions(
        next_image=_action(parent, "&Next image", ("N",)),
        previous_image=_action(parent, "&Previous image", ("P",)),
        next_unfinished=_action(parent, "Next &unfinished image", ("U",)),
        auto_advance=_action(
            parent, "&Auto-advance", tip="Open the next unfinished image when the 5th point is placed", checkable=True, checked=True
        ),
    )
    view = ViewActions(
        zoom_in=_action(parent, "Zoom &in", ("+", "=", QKeySequence.StandardKey.ZoomIn)),
        zoom_out=_action(parent, "Zoom &out", ("-", QKeySequence.StandardKey.ZoomOut)),
        fit=_action(parent, "&Fit to window", ("F", "Ctrl+0")),
        smooth=_action(parent, "&Smooth pixels", ("S",), tip="Interpolate magnified pixels (off: sharp pixel blocks)", checkable=True),
        grid=_action(parent, "Pixel &grid", ("G",), checkable=True, checked=True),
        crosshair=_action(parent, "&Crosshair", ("C",), checkable=True, checked=True),
        blind_mode=_action(
            parent, "&Blind mode", ("B",), tip="Show only the current annotator's points (off: overlay all annotators)", checkable=True, checked=True
        ),
        reset_adjustments=_action(parent, "&Reset brightness/contrast/gamma", ("R",)),
    )
    # Short texts for the toolbar; menus keep the full texts.
    for action, short in (
        (navigate.previous_image, "\u25c0 Prev"),
        (navigate.next_image, "Next \u25b6"),
        (navigate.next_unfinished, "Next unfinished"),
        (edit.mark_invisible, "Invisible"),
        (view.zoom_in, "+"),
        (view.zoom_out, "\u2212"),
        (view.fit, "Fit"),
        (view.smooth, "Smooth"),
        (view.grid, "Grid"),
        (view.blind_mode, "Blind"),
    ):
        action.setIconText(short)
    for action in (*vars(file).values(), *vars(navigate).values(), *vars(view).values(), edit.undo, edit.redo, edit.mark_invisible, edit.delete_point):
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        if keys:
            action.setToolTip(f"{action.toolTip() or action.text().replace('&', '')} ({keys})")
    return Actions(file, edit, navigate, view)
