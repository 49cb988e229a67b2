"""Model assist in the window: pre-labelling, accepting and correcting, ordering, and the training dock.

Faces are the committed fixture (40 real low-resolution faces). The model is a small G2
trained here for a few seconds, so its points are rough but real; training runs in the real
worker process.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from s2ld_core import assist
from s2ld_core.schema import PointState
from s2ld_core.store import Project
from s2ld_core.training_data import load_points_csv

from .conftest import ANNOTATOR, FACES, click, drag, open_window, widget_pos

#: Seconds to wait for a training process (start-up imports torch; the machine may be busy).
TRAINING_TIMEOUT_MS = 180_000


def _project(root: Path, model: Path, labelled_by: str | None = None) -> Project:
    """All 40 fixture faces with the tiny model active; ``labelled_by`` gets the fixture points as labels."""
    faces = load_points_csv(FACES / "points.csv")
    project = Project.create(root)
    summary = project.add_images([FACES / k for k in faces.keys])
    assert len(summary.added) == len(faces.keys)
    card = json.loads((model / "card.json").read_text())
    project.register_model("tiny-fixture", model, card, activate=True)
    if labelled_by:
        labels = {image_id: (faces.xy[n], faces.state[n]) for n, image_id in enumerate(summary.added)}
        project.import_labels(labelled_by, labels, allow_outside=True)
        project.set_meta(assist.VALIDATION_SALT_KEY, "0123456789abcdef")
    return project


@pytest.fixture
def assist_project(tmp_path, tiny_checkpoint):
    project = _project(tmp_path / "project", tiny_checkpoint)
    yield project
    project.close()


def _prelabel(qtbot, window, scope: str = "all"):
    controller = window.model_assist
    with qtbot.waitSignal(controller.prelabel_finished, timeout=60_000) as blocker:
        assert controller.start_prelabel(scope)
    return blocker.args[0]


# ---------------------------------------------------------------------- pre-labelling


def test_prelabel_fills_predictions_and_draws_them(qtbot, assist_project):
    window = open_window(qtbot, assist_project)
    result = _prelabel(qtbot, window)

    assert result.done == 40
    assert not result.cancelled
    confidence = assist_project.prediction_confidence("tiny-fixture")
    assert sorted(confidence) == assist_project.image_ids()
    prediction = assist_project.get_prediction(window.current_image_id)
    layers = [window.canvas.layer(f"prediction:{k}") for k in range(5)]
    assert all(layer is not None for layer in layers)
    for k, layer in enumerate(layers):
        assert layer.xy[k].tolist() == prediction.xy[k].tolist()
        expected = f"{prediction.confidence[k]:.0%}" if prediction.visible[k] else "invisible?"
        assert layer.caption == expected
    assert "tiny-fixture on cpu" in window.model_assist.device_label.text()
    assert "lowest confidence" in window.model_assist.prediction_label.text()

    # Blind mode hides other annotators but not the model.
    window.project.import_labels("bob", {window.current_image_id: (prediction.xy, np.ones(5, np.int8))})
    window.show_image(window.current_image_id)
    assert window.actions.view.blind_mode.isChecked()
    assert window.canvas.layer("annotator:bob") is None
    assert window.canvas.layer("prediction:0") is not None


def test_prelabel_cancel_keeps_finished_batches(qtbot, assist_project):
    window = open_window(qtbot, assist_project)
    controller = window.model_assist
    controller.batch_size = 4
    original_start = controller.start_prelabel

    def start_and_cancel_after_first_batch(scope):
        started = original_start(scope)
        # Direct connection: the worker sets the token itself right after its first batch, as a click on Cancel would.
        controller.worker.progress.connect(lambda *_: controller.cancel_event.set(), Qt.ConnectionType.DirectConnection)
        return started

    controller.start_prelabel = start_and_cancel_after_first_batch
    result = _prelabel(qtbot, window, "unfinished")

    assert result.cancelled
    assert result.done == 4
    assert len(assist_project.prediction_confidence("tiny-fixture")) == 4
    assert not controller.progress_widget.isVisible()
    assert "cancelled" in window.statusBar().currentMessage()


def test_cancel_button_sets_token(qtbot, assist_project):
    window = open_window(qtbot, assist_project)
    controller = window.model_assist
    controller.progress_widget.show()
    controller.cancel_button.setEnabled(True)
    qtbot.mouseClick(controller.cancel_button, Qt.MouseButton.LeftButton)
    assert controller.cancel_event.is_set()


# ---------------------------------------------------------------------- accepting and correcting


def test_accept_key_records_origin(qtbot, assist_project):
    window = open_window(qtbot, assist_project)
    _prelabel(qtbot, window)
    image_id = window.current_image_id
    # A hand-placed point away from every predicted marker (a click on a marker would accept it).
    prediction = assist_project.get_prediction(image_id)
    corner = (1.0, 1.0)
    assert np.hypot(*(prediction.xy - corner).T).min() > 1.0
    click(qtbot, window.canvas, widget_pos(window.canvas, *corner))
    qtbot.keyClick(window.canvas, Qt.Key.Key_A)

    label = assist_project.get_label(image_id, ANNOTATOR)
    assert label.xy[0].tolist() == pytest.approx(list(corner), abs=0.5 / window.canvas.zoom)
    assert label.is_done
    assert label.from_prediction.tolist() == [False, True, True, True, True]
    assert not label.moved.any()
    for k in range(1, 5):
        expected = PointState.VISIBLE if prediction.visible[k] else PointState.INVISIBLE
        assert label.state[k] == expected
    assert window.canvas.layer("prediction:1") is None

    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    label = assist_project.get_label(image_id, ANNOTATOR)
    assert label.state.tolist() == [PointState.VISIBLE, 0, 0, 0, 0]
    assert window.canvas.layer("prediction:1") is not None


def test_drag_prediction_records_moved(qtbot, assist_project, faces):
    window = open_window(qtbot, assist_project)
    _prelabel(qtbot, window)
    canvas = window.canvas
    image_id = window.current_image_id
    prediction = assist_project.get_prediction(image_id)
    k = 2
    target = faces[0].points[k]
    start = widget_pos(canvas, *prediction.xy[k])
    end = widget_pos(canvas, *target)
    if (end - start).manhattanLength() < 6:
        end = start + QPoint(12, 0)
    drag(qtbot, canvas, start, end)

    label = assist_project.get_label(image_id, ANNOTATOR)
    dropped = canvas.map_to_image(end)
    assert label.state[k] == PointState.VISIBLE
    assert label.xy[k].tolist() == pytest.approx(list(dropped))
    assert bool(label.from_prediction[k])
    assert bool(label.moved[k])
    assert label.n_labelled == 1

    # A click on another marker accepts that point unchanged.
    click(qtbot, canvas, widget_pos(canvas, *prediction.xy[0]))
    label = assist_project.get_label(image_id, ANNOTATOR)
    assert bool(label.from_prediction[0])
    assert not label.moved[0]
    assert label.n_labelled == 2
    stats = assist.acceptance_stats(assist_project, ANNOTATOR)["all"]
    assert (stats["accepted"], stats["moved"]) == (1, 1)

    # The drag was one undo step.
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert assist_project.get_label(image_id, ANNOTATOR).n_labelled == 0


# ---------------------------------------------------------------------- ordering


def test_confidence_order_sorts_list_and_next(qtbot, assist_project):
    window = open_window(qtbot, assist_project)
    _prelabel(qtbot, window)
    controller = window.model_assist
    combo = controller.order_combo
    combo.setCurrentIndex(combo.findData("confidence"))

    expected = assist.order_by_confidence(assist_project)
    panel = window.image_list
    shown = [panel._id_at_proxy_row(r) for r in range(panel.proxy.rowCount())]
    assert shown == expected

    window.show_image(shown[0])
    qtbot.keyClick(window.canvas, Qt.Key.Key_N)
    assert window.current_image_id == shown[1]
    qtbot.keyClick(window.canvas, Qt.Key.Key_U)
    assert window.current_image_id == shown[2]

    controller.low_threshold.setValue(float(np.median(list(assist_project.prediction_confidence().values()))))
    controller.low_filter.setChecked(True)
    threshold = controller.low_threshold.value()
    kept = [i for i in expected if assist_project.prediction_confidence()[i] < threshold]
    assert panel.proxy.rowCount() == len(kept)
    assert 0 < len(kept) < 40


# ---------------------------------------------------------------------- training dock


@pytest.fixture
def training_window(qtbot, tmp_path, tiny_checkpoint):
    project = _project(tmp_path / "train-project", tiny_checkpoint, labelled_by="a")
    window = open_window(qtbot, project)
    panel = window.model_assist.training_panel
    panel.set_option("source", "annotator")
    panel.annotator_combo.setCurrentText("a")
    panel.set_option("init", "active")
    panel.set_option("device", "cpu")
    panel.batch_size.setValue(32)
    panel.threads = 1
    panel.version = "tuned"
    yield window, panel
    panel.shut_down()
    project.close()


def _registry(project: Project) -> tuple[list[str], str | None]:
    return [m["version"] for m in project.models()], project.active_model()


def test_training_run_compares_and_activates(qtbot, training_window):
    window, panel = training_window
    panel.epochs.setValue(2)
    with qtbot.waitSignal(panel.run_finished, timeout=TRAINING_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["done"]

    assert len(panel.loss_x) >= 2
    assert len(panel.loss_curve.getData()[0]) == len(panel.loss_x)
    assert len(panel.nme_curve.getData()[0]) == 2
    assert "tuned" in _registry(window.project)[0]
    assert window.project.active_model() == "tiny-fixture"
    assert panel.activate_button.isEnabled()
    headers = [panel.comparison_table.horizontalHeaderItem(c).text() for c in range(panel.comparison_table.columnCount())]
    assert headers == ["tiny-fixture\n(active)", "tuned\n(new)"]
    new_nme = panel.comparison["models"]["tuned"]["nme"]
    assert panel.comparison_table.item(0, 1).text() == f"{new_nme:.4f}"
    assert len(panel.ced_plot.getPlotItem().listDataItems()) == 2

    qtbot.mouseClick(panel.activate_button, Qt.MouseButton.LeftButton)
    assert window.project.active_model() == "tuned"
    assert not panel.activate_button.isEnabled()
    assert "tuned" in window.model_assist.device_label.text()


def test_training_cancel_leaves_registry(qtbot, training_window):
    window, panel = training_window
    before = _registry(window.project)
    panel.epochs.setValue(200)

    def cancel_after_first_epoch(event):
        if event["event"] == "epoch" and event["epoch"] == 1:
            qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)

    panel.event_received.connect(cancel_after_first_epoch)
    with qtbot.waitSignal(panel.run_finished, timeout=TRAINING_TIMEOUT_MS) as blocker:
        panel.start()
    assert blocker.args == ["cancelled"]
    assert len(panel.nme_x) < 200
    assert _registry(window.project) == before
    assert "nothing was registered" in panel.status_label.text()
    assert panel.start_button.isEnabled()


def test_training_crash_reported_window_usable(qtbot, training_window, monkeypatch, faces):
    window, panel = training_window
    monkeypatch.setenv("ALRF_TEST_CRASH_AFTER_EPOCH", "1")
    before = _registry(window.project)
    panel.epochs.setValue(5)
    with qtbot.waitSignal(panel.run_finished, timeout=TRAINING_TIMEOUT_MS) as blocker:
        panel.start()

    assert blocker.args == ["error"]
    assert panel.error_label.isVisibleTo(panel)
    assert "exit status 70" in panel.error_label.text()
    assert _registry(window.project) == before

    image_id = window.current_image_id
    before_label = window.project.get_label(image_id, ANNOTATOR)
    assert before_label.n_labelled == 0
    click(qtbot, window.canvas, widget_pos(window.canvas, *faces[0].points[0]))
    label = window.project.get_label(image_id, ANNOTATOR)
    assert label.state[0] == PointState.VISIBLE
