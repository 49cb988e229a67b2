"""Fixtures for the annotation window tests: offscreen Qt, isolated settings, message recorders, real faces."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

# The offscreen platform must be chosen before any Qt module is imported.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication, QPoint, QPointF, QSettings, Qt

from s2ld_core.schema import LANDMARK_NAMES
from s2ld_core.store import Project

FACES = Path(__file__).resolve().parents[1] / "fixtures" / "lowres_faces"
ANNOTATOR = "alice"


@dataclass
class FixtureFace:
    file: Path
    width: int
    height: int
    points: np.ndarray  # float64 (5, 2), the reference landmarks in crop pixels


def load_faces() -> list[FixtureFace]:
    faces = []
    with open(FACES / "points.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            points = np.array([[float(row[f"{n}_x"]), float(row[f"{n}_y"])] for n in LANDMARK_NAMES])
            faces.append(FixtureFace(FACES / row["image"], int(row["width"]), int(row["height"]), points))
    return faces


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, qapp):
    """Keep QSettings of every test in its own folder."""
    QCoreApplication.setOrganizationName("ALRF Studio Tests")
    QCoreApplication.setApplicationName("ALRF Studio Tests")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    QSettings().clear()
    yield


@pytest.fixture(autouse=True)
def messages(monkeypatch):
    """Record message boxes instead of showing them: a list of (kind, title, text)."""
    from alrf_studio import dialogs

    shown: list[tuple[str, str, str]] = []
    for kind in ("error", "warning", "info"):
        monkeypatch.setattr(dialogs, f"show_{kind}", lambda _parent, title, text, kind=kind: shown.append((kind, title, text)))
    return shown


@pytest.fixture
def faces() -> list[FixtureFace]:
    return load_faces()


def make_project(path: Path, faces: list[FixtureFace]) -> Project:
    project = Project.create(path)
    summary = project.add_images([f.file for f in faces], identity=lambda p: p.stem.split("_")[0])
    assert len(summary.added) == len(faces), summary.describe()
    return project


@pytest.fixture
def project(tmp_path, faces):
    project = make_project(tmp_path / "project", faces[:6])
    yield project
    project.close()


def open_window(qtbot, project: Project, annotator: str = ANNOTATOR, auto_advance: bool = False):
    from alrf_studio.main_window import MainWindow

    window = MainWindow(project, annotator)
    qtbot.addWidget(window)
    window.actions.navigate.auto_advance.setChecked(auto_advance)
    window.resize(1100, 760)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    window.canvas.setFocus()
    qtbot.waitUntil(lambda: window.isActiveWindow())
    return window


@pytest.fixture
def window(qtbot, project):
    return open_window(qtbot, project)


def widget_pos(canvas, x: float, y: float) -> QPoint:
    """The whole widget pixel nearest to image point (x, y)."""
    p = canvas.map_from_image(x, y)
    return QPoint(round(p.x()), round(p.y()))


def expected_image_point(canvas, pos: QPoint) -> tuple[float, float]:
    """Image point under widget position ``pos`` by the canvas formula, computed here independently."""
    origin = canvas.origin
    return ((pos.x() - origin.x()) / canvas.zoom, (pos.y() - origin.y()) / canvas.zoom)


def click(qtbot, canvas, pos: QPoint) -> None:
    qtbot.mouseMove(canvas, pos)
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=pos)


def drag(qtbot, canvas, start: QPoint, end: QPoint, steps: int = 5) -> None:
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start)
    for k in range(1, steps + 1):
        p = start + (end - start) * (k / steps)
        qtbot.mouseMove(canvas, p)
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=end)


def set_exact_view(canvas, zoom: float, origin: tuple[float, float]) -> None:
    canvas.set_view(zoom, QPointF(*origin))
