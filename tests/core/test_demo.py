"""The demo assets, the demo project build and the headless main job on the bundled faces."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alrf_studio.cli import main as cli_main
from s2ld_core import formats
from s2ld_core.demo import (
    CROWD_PREFIX,
    DEMO_ASSETS_DIR,
    KNOWN_PREFIX,
    DemoCancelledError,
    DemoError,
    build_demo_project,
    ensure_demo_project,
    is_demo_ready,
)
from s2ld_core.demo_run import ANNOTATOR_NOISE_PX
from s2ld_core.formats_common import stack_records
from s2ld_core.imageio import read_image
from s2ld_core.metrics import nme
from s2ld_core.predict import Predictor
from s2ld_core.project_io import import_images, import_label_file
from s2ld_core.schema import PointState
from s2ld_core.store import Project
from tests.core.demo_fixtures import demo_model_dir

FACES = DEMO_ASSETS_DIR / "faces"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return demo_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def headless(tmp_path_factory, model_dir):
    """Run ``alrf-studio demo --headless`` once; returns (project folder, summary, printed text)."""
    root = tmp_path_factory.mktemp("headless")
    project = root / "project"
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALRF_STUDIO_HOME", str(root / "home"))
        with contextlib.redirect_stdout(stdout):
            code = cli_main(["demo", "--headless", "--project", str(project), "--overwrite", "--model", str(model_dir)])
    assert code == 0, stdout.getvalue()
    summary = json.loads((project / "demo-output" / "summary.json").read_text())
    return project, summary, stdout.getvalue()


def _known_truth() -> tuple[list[str], np.ndarray, np.ndarray]:
    records = formats.read_labels_csv(DEMO_ASSETS_DIR / "landmarks.csv").records
    xy, state = stack_records(records)
    return [r.image for r in records], xy, state


def test_assets_counts_and_layout():
    crowd = sorted(FACES.glob(f"{CROWD_PREFIX}*/*"))
    known = sorted(FACES.glob(f"{KNOWN_PREFIX}*/*"))
    assert len(crowd) == 200
    assert len(known) == 100
    for path in crowd + known:
        assert path.name == f"{path.parent.name}_0{path.suffix}"
    assert {p.suffix for p in crowd} == {".png"}
    assert {p.suffix for p in known} == {".jpg"}
    total = sum(p.stat().st_size for p in DEMO_ASSETS_DIR.rglob("*") if p.is_file())
    assert total < 1_500_000


def test_assets_face_sizes():
    for path in FACES.glob(f"{CROWD_PREFIX}*/*"):
        height, width = read_image(path).shape[:2]
        assert width <= 32, path
        assert height <= 32, path
    for path in FACES.glob(f"{KNOWN_PREFIX}*/*"):
        height, width = read_image(path).shape[:2]
        assert width == height, path
        assert 15 <= width <= 32, path


def test_assets_landmarks_inside_faces():
    images, xy, state = _known_truth()
    assert len(images) == 100
    assert np.all(state == PointState.VISIBLE)
    for image, points in zip(images, xy):
        side = read_image(DEMO_ASSETS_DIR / image).shape[1]
        assert np.all(points >= -0.5), image
        assert np.all(points <= side - 0.5), image
    # Image-left eye and mouth corner have the smaller x.
    assert np.all(xy[:, 0, 0] < xy[:, 1, 0])
    assert np.all(xy[:, 3, 0] < xy[:, 4, 0])


def test_project_images_and_identities(headless):
    project_dir, _, _ = headless
    with Project.open(project_dir, read_only=True) as project:
        infos = project.list_images()
    assert len(infos) == 300
    identities = {info.identity for info in infos}
    assert identities == {p.name for p in FACES.iterdir() if p.is_dir()}
    sources = pd.Series([info.source for info in infos]).value_counts().to_dict()
    assert sources == {"demo: crowd_lr": 200, "demo: cnn_facepoint": 100}


def test_project_predictions_for_every_face(headless, model_dir):
    project_dir, summary, _ = headless
    with Project.open(project_dir, read_only=True) as project:
        version = project.active_model()
        predictions = [project.get_prediction(i) for i in project.image_ids()]
        assert project.model_path(version).joinpath("model.safetensors").is_file()
    assert version == summary["model"]["version"]
    assert all(p is not None for p in predictions)
    xy = np.stack([p.xy for p in predictions])
    assert np.all(np.isfinite(xy))
    assert is_demo_ready(project_dir)


def test_headless_writes_every_file(headless):
    project_dir, summary, printed = headless
    assert len(summary["files"]) >= 3 + 3 * 2 + 3 * 3 + 3
    for key, path in summary["files"].items():
        assert Path(path).is_file(), key
        assert Path(path).stat().st_size > 0, key
        assert path in printed, key
    assert "model NME vs known landmarks" in printed


def test_headless_annotators_and_invisible(headless):
    project_dir, summary, _ = headless
    with Project.open(project_dir, read_only=True) as project:
        assert project.annotators() == list(ANNOTATOR_NOISE_PX)
        for counts in project.counts().values():
            assert counts["done"] == 100
    assert summary["consensus"]["images"] == 100
    assert summary["consensus"]["invisible_points"] >= 1
    alrf = Path(summary["files"]["consensus_alrf"]).read_text()
    assert " -1 -1" in alrf


@pytest.mark.parametrize("key", ["consensus_alrf", "consensus_csv", "consensus_coco"])
def test_consensus_exports_reimport(headless, tmp_path, key):
    project_dir, summary, _ = headless
    reference = formats.read_labels_csv(summary["files"]["consensus_csv"]).records
    expected = {r.image: r for r in reference}

    with Project.create(tmp_path / "reimport") as project:
        import_images(project, [FACES])
        result = import_label_file(project, summary["files"][key], annotator="consensus")
        assert result.images == 100
        ids, _, xy, state = project.labels_array(["consensus"])
        originals = {info.id: Path(info.original_path) for info in project.list_images()}
    for row, image_id in enumerate(ids):
        path = originals[int(image_id)]
        name = f"{path.parent.name}/{path.name}"
        if name not in expected:
            assert np.all(state[row, 0] == PointState.UNLABELLED)
            continue
        assert np.array_equal(state[row, 0], expected[name].state), name
        np.testing.assert_allclose(xy[row, 0], expected[name].xy, atol=1e-3, equal_nan=True)


def _by_file_name(project: Project, annotators: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return labels (N, A, 5, 2) and states (N, A, 5) ordered by image file name."""
    ids, _, xy, state = project.labels_array(annotators)
    names = {info.id: Path(info.original_path).name for info in project.list_images()}
    order = np.argsort([names[int(i)] for i in ids])
    return xy[order], state[order]


def test_annotator_exports_reimport(headless, tmp_path):
    project_dir, summary, _ = headless
    with Project.open(project_dir, read_only=True) as source:
        names = source.annotators()
        source_xy, source_state = _by_file_name(source, names)
    for fmt in ("alrf", "csv", "coco"):
        with Project.create(tmp_path / fmt) as project:
            import_images(project, [FACES])
            for name in names:
                import_label_file(project, summary["files"][f"annotator_{fmt}_{name}"], annotator=name)
            xy, state = _by_file_name(project, names)
        assert np.array_equal(state, source_state), fmt
        np.testing.assert_allclose(xy, source_xy, atol=1e-3, equal_nan=True, err_msg=fmt)


def test_model_nme_matches_direct_evaluation(headless, model_dir):
    _, summary, _ = headless
    images, truth_xy, truth_state = _known_truth()
    predictor = Predictor(model_dir, device="cpu", jit=False)
    xy, _, _ = predictor.predict_arrays([read_image(DEMO_ASSETS_DIR / image) for image in images])
    direct = nme(xy, truth_xy, truth_state)

    reported = summary["model_vs_known"]
    assert np.isfinite(reported["mean"])
    assert reported["n"] == 100
    assert reported["mean"] == pytest.approx(float(np.mean(direct)), abs=1e-4)
    assert sum(group["n"] for group in reported["by_size"].values()) == 100


def test_consensus_error_reflects_noise(headless):
    _, summary, _ = headless
    evaluation = pd.read_csv(summary["files"]["evaluation_csv"])
    assert len(evaluation) == 100
    # The mean of three annotators with 0.5-1.2 px noise stays within a few pixels of the truth.
    assert 0 < summary["consensus_vs_known"]["mean"] < 0.25


def test_build_keeps_existing_project(tmp_path, model_dir):
    Project.create(tmp_path / "mine").close()
    with pytest.raises(DemoError, match="already contains a project"):
        build_demo_project(tmp_path / "mine", model_dir)
    with pytest.raises(DemoError, match="already contains a project"):
        ensure_demo_project(tmp_path / "mine", model_dir)
    assert (tmp_path / "mine" / "project.sqlite").is_file()


def test_build_rejects_unrelated_folder(tmp_path, model_dir):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(DemoError, match="not empty"):
        build_demo_project(tmp_path, model_dir)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_build_without_model_names_fix(tmp_path):
    with pytest.raises(DemoError, match="train"):
        build_demo_project(tmp_path / "demo", tmp_path / "no-model")
    assert not (tmp_path / "demo").exists()


def test_build_cancel_removes_project(tmp_path, model_dir):
    seen = []

    def progress(stage, done, total):
        seen.append((stage, done, total))

    with pytest.raises(DemoCancelledError):
        build_demo_project(tmp_path / "demo", model_dir, progress=progress, cancel=lambda: len(seen) >= 10)
    assert not (tmp_path / "demo").exists()
    assert seen[0] == ("images", 1, 300)
