"""Set-up shared by the make_*_png.py scripts: the real app, offscreen, on a fresh demo project.

Each script calls :func:`open_demo_window`, which builds the demo project with
:func:`s2ld_core.demo.build_demo_project` (the 300 demo faces, pre-labelled by the shipped
default model) in a temporary folder. ``ALRF_STUDIO_HOME`` and the Qt settings point into the
same folder, so nothing of the user's own data or settings is read or changed.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

#: Known landmarks of the 100 cnn_facepoint demo faces, in the label CSV format.
LANDMARKS_CSV = REPO / "assets" / "demo" / "landmarks.csv"


@dataclass
class DemoWindow:
    """The application, the main window and what the scripts look up in the demo project."""

    app: object
    window: object
    project: object
    tmp: Path
    #: identity folder name (``cfp_6081_0_0``) -> project image id
    ids: dict[str, int]


def open_demo_window(annotator: str, width: int, height: int, before_window: Callable[[DemoWindow], None] | None = None) -> DemoWindow:
    """Build the demo project in a temporary folder and show the main window for ``annotator``.

    ``before_window(demo)`` runs on the open project before the window exists (``demo.window`` is
    None then), for labels that the window should read as it starts, as when a user opens a
    project that others labelled.
    """
    tmp = Path(tempfile.mkdtemp(prefix="alrf_screenshot_"))
    os.environ["ALRF_STUDIO_HOME"] = str(tmp / "home")

    import torch
    from PySide6.QtCore import QSettings

    from alrf_studio.app import create_main_window, ensure_application
    from s2ld_core.demo import build_demo_project
    from s2ld_core.store import Project

    torch.set_num_threads(1)
    app = ensure_application()
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp / "settings"))

    root = build_demo_project(tmp / "demo-project", device="cpu")
    project = Project.open(root)
    ids = {info.identity: info.id for info in project.list_images()}
    demo = DemoWindow(app, None, project, tmp, ids)
    if before_window is not None:
        before_window(demo)
    window = create_main_window(project, annotator)
    window.actions.navigate.auto_advance.setChecked(False)
    window.resize(width, height)
    window.show()
    app.processEvents()
    demo.window = window
    return demo


def known_landmarks() -> tuple[list[str], np.ndarray, np.ndarray]:
    """Return the image paths, points float (N, 5, 2) and states int8 (N, 5) of ``landmarks.csv``."""
    from s2ld_core import formats
    from s2ld_core.formats_common import stack_records

    records = formats.read_labels_csv(LANDMARKS_CSV).records
    xy, state = stack_records(records)
    return [r.image for r in records], xy, state


def identity_of(image: str) -> str:
    """Return the identity of a demo image path: its folder name (``faces/<identity>/<file>``)."""
    return Path(image).parent.name


def import_as_annotator(demo: DemoWindow, name: str, images: list[str], xy: np.ndarray, state: np.ndarray) -> int:
    """Write ``name``'s labels to a label CSV and import it as an annotator's file would be; returns the image count.

    Args:
        images: image paths as in ``landmarks.csv`` (``faces/<identity>/<file>``).
        xy: float (N, 5, 2) in crop pixels, NaN where not visible; state: int8 (N, 5).
    """
    from s2ld_core import formats
    from s2ld_core.project_io import import_label_file

    path = demo.tmp / formats.annotator_file_name(name)
    formats.write_labels_csv(path, formats.records_from_arrays(images, xy, state, annotator=name))
    summary = import_label_file(demo.project, path, fmt="csv")
    return summary.images


def click_image_point(demo: DemoWindow, x: float, y: float) -> None:
    """Click the canvas with the left button at image point (x, y)."""
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    canvas = demo.window.canvas
    p = canvas.map_from_image(x, y)
    QTest.mouseClick(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(round(p.x()), round(p.y())))


def widen_image_list(demo: DemoWindow, width: int) -> None:
    """Widen the File and Identity columns to fit the demo's names and the Images dock to ``width`` px.

    A user does the same by dragging the column dividers and the dock's edge. Call it before
    placing points, so that the canvas fits the face into the space left.
    """
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QDockWidget

    from alrf_studio.image_list import COL_FILE, COL_IDENTITY

    view = demo.window.image_list.view
    view.setColumnWidth(COL_FILE, 150)
    view.setColumnWidth(COL_IDENTITY, 112)
    dock = demo.window.findChild(QDockWidget, "dock:Images")
    demo.window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
    fit_canvas(demo)


def fit_canvas(demo: DemoWindow) -> None:
    """Let the window lay out its docks, then fit the face into the canvas (the F key)."""
    demo.app.processEvents()
    demo.window.canvas.fit_to_window()
    demo.app.processEvents()


def save_and_close(demo: DemoWindow, out: Path) -> None:
    """Grab the window into ``out`` and close the window and the project."""
    demo.app.processEvents()
    demo.window.grab().save(str(out))
    demo.window.close()
    demo.project.close()
