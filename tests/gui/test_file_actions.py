"""File menu actions: labels exported from the window read back equal; errors become messages."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFileDialog, QInputDialog, QProgressDialog, QPushButton

from alrf_studio import consensus_dialog
from s2ld_core.consensus import ConsensusRule
from s2ld_core.schema import PointState

from .conftest import ANNOTATOR, click, open_window, widget_pos


def _label_first_faces(qtbot, window, faces, n_images: int) -> dict[int, np.ndarray]:
    stored = {}
    for n in range(n_images):
        image_id = window.project.image_ids()[n]
        window.show_image(image_id)
        for x, y in faces[n].points:
            click(qtbot, window.canvas, widget_pos(window.canvas, x, y))
        stored[image_id] = window.project.get_label(image_id, ANNOTATOR).xy.copy()
    return stored


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".json"])
def test_export_labels_round_trip(qtbot, tmp_path, monkeypatch, project, faces, messages, suffix):
    from s2ld_core import formats

    window = open_window(qtbot, project)
    stored = _label_first_faces(qtbot, window, faces, 3)
    out = tmp_path / f"alice{suffix}"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    window.actions.file.export_labels.trigger()

    assert messages and messages[-1][0] == "info", messages
    reader = {".txt": formats.read_alrf, ".csv": formats.read_labels_csv, ".json": formats.read_coco}[suffix]
    # CSV also lists unfinished images, with state "unlabelled"; ALRF and COCO leave them out.
    records = {r.image: r for r in reader(out).records if r.is_done}
    names = {info.id: info.original_path.rsplit("/", 1)[-1] for info in project.list_images()}
    assert set(records) == {names[i] for i in stored}
    for image_id, xy in stored.items():
        # Files keep 3 decimals, so the round trip is exact to 0.0005 px.
        assert np.abs(records[names[image_id]].xy - xy).max() <= 0.0005 + 1e-9


def test_import_labels_as_new_annotator(qtbot, tmp_path, monkeypatch, project, faces, messages):
    from s2ld_core import formats

    window = open_window(qtbot, project)
    names = [info.original_path.rsplit("/", 1)[-1] for info in project.list_images()]
    xy = np.stack([f.points for f in faces[:4]])
    state = np.full((4, 5), PointState.VISIBLE, dtype=np.int8)
    state[1, 2] = PointState.INVISIBLE
    xy[1, 2] = np.nan
    path = tmp_path / "reference.txt"
    formats.write_alrf(path, formats.records_from_arrays(names[:4], xy, state))

    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("reference", True))
    window.actions.file.import_labels.trigger()

    assert messages[-1][0] == "info", messages
    assert "reference" in project.annotators()
    for n, image_id in enumerate(project.image_ids()[:4]):
        label = project.get_label(image_id, "reference")
        assert np.array_equal(label.state, state[n])
        assert np.allclose(label.xy, xy[n], atol=0.0005, equal_nan=True)
    assert window.annotator_combo.findText("reference") >= 0


def test_import_bad_file_shows_message(qtbot, tmp_path, monkeypatch, project, messages):
    window = open_window(qtbot, project)
    bad = tmp_path / "bad.txt"
    bad.write_text("face00_0.png 1 2 3\n")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(bad), ""))
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("bob", True))
    window.actions.file.import_labels.trigger()
    assert [m[:2] for m in messages] == [("error", "Import labels failed")]
    assert "bad.txt" in messages[0][2]
    assert "bob" not in project.annotators()


def test_export_consensus_of_three(qtbot, tmp_path, monkeypatch, project, faces, messages):
    from s2ld_core import formats

    image_id = project.image_ids()[0]
    offsets = {"a1": -0.3, "a2": 0.0, "a3": 0.6}
    for name, dx in offsets.items():
        project.import_labels(name, {image_id: (faces[0].points + dx, np.full(5, PointState.VISIBLE, dtype=np.int8))})
    window = open_window(qtbot, project)
    out = tmp_path / "consensus.csv"
    monkeypatch.setattr(consensus_dialog, "ask_consensus_rule", lambda *a, **k: ConsensusRule(min_annotators=3))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    window.actions.file.export_consensus.trigger()
    assert messages[-1][0] == "info", messages
    records = formats.read_labels_csv(out).records
    assert len(records) == 1
    assert np.allclose(records[0].xy, faces[0].points + 0.1, atol=0.0005)


def test_import_images_into_empty_project(qtbot, tmp_path, monkeypatch, messages):
    from s2ld_core.store import Project

    from .conftest import FACES

    project = Project.create(tmp_path / "empty")
    try:
        window = open_window(qtbot, project)
        assert window.current_image_id is None
        click(qtbot, window.canvas, window.canvas.rect().center())
        assert project.status(ANNOTATOR) == {}

        monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(FACES))
        window.actions.file.import_images.trigger()
        n_faces = len(list(FACES.glob("*.png")))
        assert messages[-1][0] == "info", messages
        assert f"{n_faces} added" in messages[-1][2]
        assert window.image_list.model.counts() == (0, 0, n_faces)
        assert window.current_image_id == project.image_ids()[0]
        assert window.canvas.image_size() == (project.image_info(window.current_image_id).width, project.image_info(window.current_image_id).height)
        window.close()
    finally:
        project.close()


def test_run_with_progress_cancel_and_error(qtbot, window):
    import threading

    from alrf_studio.file_actions import run_with_progress

    def slow(progress, cancel):
        for n in range(2000):
            if cancel():
                return n
            progress(n, 2000)
            threading.Event().wait(0.005)
        return 2000

    def press_cancel():
        dialogs = [w for w in window.findChildren(QProgressDialog) if w.isVisible()]
        if dialogs:
            dialogs[0].findChild(QPushButton).click()
        else:
            QTimer.singleShot(50, press_cancel)

    QTimer.singleShot(400, press_cancel)
    steps = run_with_progress(window, "Working…", slow)
    assert 0 < steps < 2000

    def failing(progress, cancel):
        raise ValueError("face07_0.png: invalid point count")

    with pytest.raises(ValueError, match="invalid point count"):
        run_with_progress(window, "Working…", failing)
