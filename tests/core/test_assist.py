"""Model assist: pre-labelling, accepting and correcting predictions, ordering, training data,
the fixed validation split, and training in a separate process.

Faces and points are the committed fixture (40 real low-resolution faces). The model is a
small G2 trained here for a few seconds, so its points are rough but real.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from s2ld_core import assist
from s2ld_core.assist import (
    accept_prediction,
    acceptance_stats,
    compare_models,
    disagreement_scores,
    human_labels,
    mark_invisible,
    move_point,
    order_by_confidence,
    order_by_disagreement,
    prelabel,
    training_samples,
    unfinished_images,
    validation_split,
)
from s2ld_core.predict import Predictor
from s2ld_core.schema import LANDMARK_NAMES, PointState
from s2ld_core.store import Project
from s2ld_core.train_worker import TrainingProcess, TrainRequest, exit_event, parse_event
from s2ld_core.training_data import load_points_csv
from tests.core.fixture_faces import FACES_DIR

EVENT_TIMEOUT_S = 120


@pytest.fixture(scope="session")
def predictor(tiny_checkpoint) -> Predictor:
    return Predictor(tiny_checkpoint, device="cpu", threads=1)


def _fixture_project(root: Path, n_images: int | None = None, annotators: dict[str, float] | None = None) -> Project:
    """Create a project with the fixture faces; each annotator gets the fixture points plus Gaussian noise (px)."""
    faces = load_points_csv(FACES_DIR / "points.csv")
    keys = faces.keys[:n_images] if n_images else faces.keys
    project = Project.create(root)
    summary = project.add_images([FACES_DIR / k for k in keys])
    assert len(summary.added) == len(keys)
    rng = np.random.default_rng(5)
    for name, noise_px in (annotators or {}).items():
        labels = {}
        for image_id, n in zip(summary.added, range(len(keys))):
            xy = faces.xy[n] + rng.normal(0.0, noise_px, (5, 2)) if noise_px else faces.xy[n]
            labels[image_id] = (xy, faces.state[n])
        project.import_labels(name, labels, allow_outside=True)
    return project


@pytest.fixture
def project(tmp_path) -> Project:
    p = _fixture_project(tmp_path / "proj")
    yield p
    p.close()


def _prelabelled(project: Project, predictor: Predictor) -> list[int]:
    ids = project.image_ids()
    list(prelabel(project, ids, predictor, batch_size=16))
    return ids


# ---------------------------------------------------------------------- pre-labelling


def test_prelabel_fills_predictions(project, predictor):
    ids = project.image_ids()
    progress = list(prelabel(project, ids, predictor, batch_size=16))

    assert [p.done for p in progress] == [16, 32, 40]
    assert all(p.total == 40 for p in progress)
    assert all(p.faces_per_second > 0 for p in progress)
    assert project.active_model() == predictor.model_version
    assert (project.model_path(predictor.model_version) / "model.safetensors").is_file()

    xy, confidence, visible = predictor.predict_arrays([project.load_image(i) for i in ids])
    for n, image_id in enumerate(ids):
        stored = project.get_prediction(image_id)
        assert stored.model_version == predictor.model_version
        np.testing.assert_allclose(stored.xy, xy[n], atol=1e-6)
        np.testing.assert_allclose(stored.confidence, confidence[n], atol=1e-6)
        np.testing.assert_array_equal(stored.visible, visible[n])
    assert all(0.0 <= c <= 1.0 for c in project.prediction_confidence().values())


def test_prelabel_cancel_keeps_done_batches(project, predictor):
    ids = project.image_ids()
    cancel = threading.Event()
    progress = []
    for p in prelabel(project, ids, predictor, batch_size=16, cancel=cancel):
        progress.append(p)
        cancel.set()

    assert [p.done for p in progress] == [16]
    assert all(project.get_prediction(i) is not None for i in ids[:16])
    assert all(project.get_prediction(i) is None for i in ids[16:])


def test_prelabel_again_keeps_one_registry_entry(project, predictor):
    _prelabelled(project, predictor)
    _prelabelled(project, predictor)
    assert [m["version"] for m in project.models()] == [predictor.model_version]


def test_unfinished_images_selection(project):
    ids = project.image_ids()
    project.add_annotator("ann")
    for k in range(5):
        project.set_point(ids[0], "ann", k, PointState.INVISIBLE)
    project.set_point(ids[1], "ann", 0, PointState.VISIBLE, 3.0, 4.0)
    assert unfinished_images(project, "ann") == ids[1:]


# ---------------------------------------------------------------------- accepting and correcting


def test_accept_keeps_placed_points(project, predictor):
    ids = _prelabelled(project, predictor)
    project.add_annotator("ann")
    project.set_point(ids[3], "ann", "nose", PointState.VISIBLE, 5.0, 6.0)

    edit = accept_prediction(project, ids[3], "ann")
    label = project.get_label(ids[3], "ann")
    prediction = project.get_prediction(ids[3])

    assert set(edit.after) == set(LANDMARK_NAMES) - {"nose"}
    assert label.xy[2].tolist() == [5.0, 6.0]
    assert not label.from_prediction[2]
    assert label.from_prediction[[0, 1, 3, 4]].all()
    assert not label.moved.any()
    for k in (0, 1, 3, 4):
        if prediction.visible[k]:
            np.testing.assert_allclose(label.xy[k], prediction.xy[k], atol=1e-9)
    assert accept_prediction(project, ids[3], "ann") is None


def test_accept_turns_invisible_suggestion_invisible(project, predictor):
    image_id = _prelabelled(project, predictor)[0]
    stored = project.get_prediction(image_id)
    visible = np.ones(5, dtype=bool)
    visible[4] = False
    project.set_predictions(stored.model_version, [image_id], stored.xy[None], stored.confidence[None], visible[None])

    edit = accept_prediction(project, image_id, "ann")
    label = project.get_label(image_id, "ann")
    assert label.state[4] == PointState.INVISIBLE
    assert np.isnan(label.xy[4]).all()
    assert label.from_prediction[4]
    assert (label.state[:4] == PointState.VISIBLE).all()

    project.undo(edit)
    assert (project.get_label(image_id, "ann").state == PointState.UNLABELLED).all()


def test_accept_without_prediction_raises(project):
    project.add_annotator("ann")
    with pytest.raises(assist.AssistError, match="pre-label"):
        accept_prediction(project, project.image_ids()[0], "ann")


def test_move_point_records_moved(project, predictor):
    image_id = _prelabelled(project, predictor)[0]
    accept_prediction(project, image_id, "ann", points=["left_eye", "right_eye"])
    edit = move_point(project, image_id, "ann", "left_eye", 4.25, 5.5)
    move_point(project, image_id, "ann", "nose", 8.0, 9.0)
    mark_invisible(project, image_id, "ann", "right_eye")

    label = project.get_label(image_id, "ann")
    assert label.xy[0].tolist() == [4.25, 5.5]
    assert label.from_prediction[0]
    assert label.moved[0]
    assert label.from_prediction[1]
    assert label.moved[1]
    assert label.state[1] == PointState.INVISIBLE
    assert not label.from_prediction[2]
    assert not label.moved[2]
    assert edit.before["left_eye"].from_prediction
    assert not edit.before["left_eye"].moved


def test_acceptance_stats_counts_origins(project, predictor):
    ids = _prelabelled(project, predictor)
    for image_id in ids[:4]:
        accept_prediction(project, image_id, "ann")
    move_point(project, ids[0], "ann", "nose", 7.0, 8.0)
    move_point(project, ids[1], "ann", "nose", 7.0, 8.0)
    project.add_annotator("bob")
    project.set_point(ids[5], "bob", "nose", PointState.VISIBLE, 5.0, 5.0)

    stats = acceptance_stats(project, "ann")
    assert stats["nose"] == {"accepted": 2, "moved": 2, "by_hand": 0, "labelled": 4, "acceptance_rate": 0.5}
    assert stats["left_eye"]["accepted"] == 4
    assert stats["all"]["accepted"] == 18
    assert stats["all"]["moved"] == 2
    everyone = acceptance_stats(project)
    assert everyone["nose"]["by_hand"] == 1
    assert np.isnan(acceptance_stats(project, "bob")["nose"]["acceptance_rate"])


# ---------------------------------------------------------------------- ordering


def test_order_by_confidence_least_first(project, predictor):
    ids = _prelabelled(project, predictor)
    lowest = project.prediction_confidence()
    order = order_by_confidence(project)

    assert sorted(order) == ids
    values = [lowest[i] for i in order]
    assert values == sorted(values)

    project.set_predictions("other", ids[:2], np.zeros((2, 5, 2)), np.full((2, 5), 0.5), np.ones((2, 5), bool))
    partial = order_by_confidence(project, "other", include_missing=True)
    assert partial[:2] == ids[:2]
    assert partial[2:] == ids[2:]


def test_order_by_disagreement_largest_first(tmp_path):
    project = _fixture_project(tmp_path / "proj", annotators={"a": 0.0, "b": 0.1})
    ids = project.image_ids()
    # Annotator b misses the nose on two images by 1.0 and 0.5 eye distances; those two must lead the order.
    for image_id, shift_iod in ((ids[7], 1.0), (ids[20], 0.5)):
        label = project.get_label(image_id, "b")
        iod = float(np.linalg.norm(label.xy[1] - label.xy[0]))
        x = label.xy[2, 0] + shift_iod * iod * (-1 if label.xy[2, 0] > project.image_info(image_id).width / 2 else 1)
        project.set_point(image_id, "b", "nose", PointState.VISIBLE, x, label.xy[2, 1])
    # A third annotator's unfinished label takes no part.
    project.add_annotator("c")
    for k in range(4):
        project.set_point(ids[30], "c", k, PointState.INVISIBLE)

    scores = disagreement_scores(project)
    order = order_by_disagreement(project)
    assert len(scores) == 40
    assert order[:2] == [ids[7], ids[20]]
    assert [scores[i] for i in order] == sorted(scores.values(), reverse=True)
    project.close()


def test_disagreement_needs_two_annotators(tmp_path):
    project = _fixture_project(tmp_path / "proj", annotators={"a": 0.0})
    assert disagreement_scores(project) == {}
    assert order_by_disagreement(project, include_missing=True) == project.image_ids()
    project.close()


# ---------------------------------------------------------------------- training data and split


def test_training_samples_never_use_predictions(project, predictor):
    ids = _prelabelled(project, predictor)
    for image_id in ids[:6]:
        accept_prediction(project, image_id, "ann")
    project.set_point(ids[6], "ann", "nose", PointState.VISIBLE, 5.0, 5.0)

    samples = training_samples(project, source="annotator", annotator="ann")
    assert [s.key for s in samples] == [f"image:{i}" for i in ids[:6]]
    for sample, image_id in zip(samples, ids[:6]):
        label = project.get_label(image_id, "ann")
        np.testing.assert_array_equal(sample.state, label.state)
        np.testing.assert_array_equal(sample.xy, label.xy)
        assert sample.image.shape == project.load_image(image_id).shape
    assert training_samples(project, source="all")
    assert human_labels(project, "consensus").image_ids.size == 0


def test_consensus_source_needs_min_annotators(tmp_path):
    project = _fixture_project(tmp_path / "proj", n_images=10, annotators={"a": 0.0, "b": 0.4})
    ids = project.image_ids()
    labels = human_labels(project, "consensus", min_annotators=2)
    _, _, xy, _ = project.labels_array(["a", "b"])
    np.testing.assert_allclose(labels.xy, xy.mean(axis=1))
    assert labels.image_ids.tolist() == ids
    assert human_labels(project, "consensus", min_annotators=3).image_ids.size == 0
    everyone = human_labels(project, "all")
    assert len(everyone) == 20
    assert everyone.keys[1] == f"image:{ids[0]}:b"
    with pytest.raises(assist.AssistError, match="annotator"):
        human_labels(project, "annotator", annotator="nobody")
    project.close()


def test_validation_split_stable_when_images_added(tmp_path):
    project = _fixture_project(tmp_path / "proj", n_images=20)
    before = validation_split(project, 0.3)
    salt = project.get_meta(assist.VALIDATION_SALT_KEY)
    faces = load_points_csv(FACES_DIR / "points.csv")
    added = project.add_images([FACES_DIR / k for k in faces.keys[20:]]).added
    after = validation_split(project, 0.3)

    assert len(salt) == 16
    assert project.get_meta(assist.VALIDATION_SALT_KEY) == salt
    assert [i for i in after.validation if i not in added] == before.validation
    assert [i for i in after.train if i not in added] == before.train
    assert sorted(after.train + after.validation) == project.image_ids()
    assert set(after.train).isdisjoint(after.validation)
    assert 0 < len(after.validation) < 40
    project.close()


def test_compare_models_scores_same_faces(tmp_path, tiny_checkpoint, predictor):
    project = _fixture_project(tmp_path / "proj", annotators={"a": 0.0})
    list(prelabel(project, project.image_ids(), predictor))
    ids = project.image_ids()[:12]
    comparison = compare_models(project, [predictor.model_version], ids, source="annotator", annotator="a")

    scores = comparison["models"][predictor.model_version]
    faces = load_points_csv(FACES_DIR / "points.csv")
    xy, _, _ = Predictor(tiny_checkpoint, device="cpu", jit=False).predict_arrays(list(faces.images[:12]))
    errors = np.linalg.norm(xy - faces.xy[:12], axis=-1).mean(axis=1)
    iod = np.linalg.norm(faces.xy[:12, 1] - faces.xy[:12, 0], axis=-1)
    assert comparison["image_ids"] == ids
    assert comparison["n_faces"] == 12
    assert scores["nme"] == pytest.approx(float(np.mean(errors / iod)), rel=1e-4)
    assert scores["failure_rate"] == pytest.approx(float(np.mean(errors / iod > 0.1)))
    assert len(scores["ced_fractions"]) == len(comparison["ced_thresholds"])
    project.close()


# ---------------------------------------------------------------------- training process


def test_parse_event_and_exit_event():
    assert parse_event(b'{"event": "epoch", "epoch": 1}\n') == {"event": "epoch", "epoch": 1}
    assert parse_event("Warning: something\n") == {"event": "log", "message": "Warning: something"}
    assert parse_event("  \n") is None
    assert exit_event(0, "done") is None
    crash = exit_event(70, None, "line one\nSegmentation fault")
    assert crash["event"] == "error"
    assert "70" in crash["message"]
    assert "Segmentation fault" in crash["message"]
    assert "signal 9" in exit_event(-9, "epoch")["message"]


@pytest.fixture
def training_project(tmp_path, predictor) -> Path:
    """A closed project with one annotator on 40 faces, the tiny model active, and a fixed split salt."""
    root = tmp_path / "train-proj"
    with _fixture_project(root, annotators={"a": 0.0}) as project:
        project.set_meta(assist.VALIDATION_SALT_KEY, "0123456789abcdef")
        list(prelabel(project, project.image_ids(), predictor))
    return root


def _request(root: Path, epochs: int) -> TrainRequest:
    return TrainRequest(project=str(root), source="annotator", annotator="a", epochs=epochs, init="active",
                        device="cpu", threads=1, batch_size=32, version="tuned")


def _snapshot(root: Path):
    with Project.open(root, read_only=True) as project:
        _, _, xy, state = project.labels_array()
        return [m["version"] for m in project.models()], project.active_model(), xy, state


def test_training_process_registers_version(training_project):
    with TrainingProcess(_request(training_project, 2)) as process:
        events = list(process.iter_events(timeout=EVENT_TIMEOUT_S))
    kinds = [e["event"] for e in events]

    assert kinds[0] == "device"
    assert events[0]["device"] == "cpu"
    assert kinds[1] == "start"
    assert events[1]["parent"] == "tiny-fixture"
    assert "batch" in kinds
    assert kinds.count("epoch") == 2
    assert kinds[-2:] == ["done", "exit"]
    assert events[-1]["returncode"] == 0
    epochs = [e for e in events if e["event"] == "epoch"]
    assert all(e["loss"] > 0 for e in epochs)
    assert all(0 < e["val_nme"] < 5 for e in epochs)
    assert all(e["eta_s"] >= 0 for e in epochs)
    assert epochs[-1]["eta_s"] == 0

    done = events[-2]
    with Project.open(training_project, read_only=True) as project:
        models = {m["version"]: m for m in project.models()}
        assert set(models) == {"tiny-fixture", "tuned"}
        assert project.active_model() == "tiny-fixture"
        assert models["tuned"]["parent"] == "tiny-fixture"
        assert models["tuned"]["card"]["parent_model"] == "tiny-fixture"
        assert Path(done["checkpoint"]) == models["tuned"]["path"]
        split = validation_split(project, 0.15)
        expected = compare_models(project, ["tiny-fixture"], split.validation, source="annotator", annotator="a")

    comparison = done["comparison"]
    assert comparison["image_ids"] == split.validation
    assert set(comparison["models"]) == {"tiny-fixture", "tuned"}
    assert comparison["models"]["tiny-fixture"]["nme"] == pytest.approx(expected["models"]["tiny-fixture"]["nme"], rel=1e-6)
    assert comparison["models"]["tuned"]["n"] == len(split.validation)


def test_training_cancel_leaves_registry(training_project):
    before = _snapshot(training_project)
    with TrainingProcess(_request(training_project, 200)) as process:
        events = []
        for event in process.iter_events(timeout=EVENT_TIMEOUT_S):
            events.append(event)
            if event["event"] == "epoch" and event["epoch"] == 1:
                process.cancel()
    kinds = [e["event"] for e in events]

    assert kinds[-2:] == ["cancelled", "exit"]
    assert events[-1]["returncode"] == 0
    assert kinds.count("epoch") < 200
    after = _snapshot(training_project)
    assert after[:2] == before[:2]
    np.testing.assert_array_equal(after[2], before[2])


def test_training_stop_keeps_best_weights(training_project):
    with TrainingProcess(_request(training_project, 200)) as process:
        events = []
        for event in process.iter_events(timeout=EVENT_TIMEOUT_S):
            events.append(event)
            if event["event"] == "epoch" and event["epoch"] == 1:
                process.stop()
    done = events[-2]
    assert done["event"] == "done"
    assert done["stopped_by"] == "stop"
    assert done["best_val_nme"] == pytest.approx(min(e["val_nme"] for e in events if e["event"] == "epoch"))
    assert "tuned" in _snapshot(training_project)[0]


@pytest.mark.parametrize("kind", ["exit", "raise"])
def test_training_crash_reported(training_project, kind):
    before = _snapshot(training_project)
    env = dict(os.environ, ALRF_TEST_CRASH_AFTER_EPOCH="1", ALRF_TEST_CRASH_KIND=kind)
    with TrainingProcess(_request(training_project, 5), env=env) as process:
        events = list(process.iter_events(timeout=EVENT_TIMEOUT_S))
    error = events[-2]

    assert error["event"] == "error"
    assert events[-1]["returncode"] != 0
    if kind == "exit":
        assert error["kind"] == "crash"
        assert "exit status 70" in error["message"]
    else:
        assert "test crash after epoch 1" in error["message"]
        assert "Traceback" in error["traceback"]
    after = _snapshot(training_project)
    assert after[:2] == before[:2]
    np.testing.assert_array_equal(after[2], before[2])
    np.testing.assert_array_equal(after[3], before[3])


def test_worker_without_active_model_reports_error(tmp_path):
    from s2ld_core.train_worker import build_parser, run

    root = tmp_path / "proj"
    _fixture_project(root, n_images=5, annotators={"a": 0.0}).close()
    args = build_parser().parse_args(["--project", str(root), "--source", "annotator", "--annotator", "a", "--device", "cpu"])
    events = []
    status = run(args, events.append, threading.Event(), threading.Event())

    assert status == 1
    assert events[-1]["event"] == "error"
    assert "no active model" in events[-1]["message"]


def test_cuda_request_falls_back_to_cpu(monkeypatch):
    from s2ld_core.train_worker import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device, message = resolve_device("cuda")
    assert device == "cpu"
    assert "falling back to the CPU" in message
    assert resolve_device("auto")[0] == "cpu"
