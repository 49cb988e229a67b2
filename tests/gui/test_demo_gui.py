"""Opening the demo project from the app: build behind a progress dialog, reuse, failure and cancel."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QProgressDialog

from alrf_studio import demo_gui, paths
from s2ld_core import predict
from s2ld_core.demo import is_demo_ready
from s2ld_core.store import Project
from tests.core.demo_fixtures import save_tiny_model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


def test_open_builds_then_reuses(tmp_path, tiny_model, monkeypatch, messages):
    target = tmp_path / "demo"
    folder = demo_gui.open_demo_project(None, target=target, model_dir=tiny_model)
    assert folder == str(target)
    assert is_demo_ready(target)
    with Project.open(target, read_only=True) as project:
        assert project.image_count() == 300
        assert project.active_model() == "tiny-demo-test"

    def fail(*_args, **_kwargs):
        raise AssertionError("a ready demo project must not be rebuilt")

    monkeypatch.setattr(demo_gui, "ensure_demo_project", fail)
    assert demo_gui.open_demo_project(None, target=target) == str(target)
    assert messages == []


def test_defaults_to_user_folder_and_model(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setattr(paths, "demo_project_dir", lambda: tmp_path / "user-demo")
    monkeypatch.setattr(predict, "DEFAULT_MODEL_DIR", tiny_model)
    folder = demo_gui.open_demo_project(None)
    assert folder == str(tmp_path / "user-demo")
    assert is_demo_ready(folder)


def test_missing_model_shows_error(tmp_path, monkeypatch, messages):
    monkeypatch.setattr(paths, "demo_project_dir", lambda: tmp_path / "user-demo")
    monkeypatch.setattr(predict, "DEFAULT_MODEL_DIR", tmp_path / "no-model")
    assert demo_gui.open_demo_project(None) is None
    assert [(kind, title) for kind, title, _ in messages] == [("error", "Demo project not built")]
    assert "card.json" in messages[0][2]
    assert not (tmp_path / "user-demo" / "project.sqlite").exists()


def test_cancel_leaves_no_project(tmp_path, tiny_model, monkeypatch, messages):
    monkeypatch.setattr(QProgressDialog, "wasCanceled", lambda _self: True)
    assert demo_gui.open_demo_project(None, target=tmp_path / "demo", model_dir=tiny_model) is None
    assert not (tmp_path / "demo").exists()
    assert messages == []


def test_cli_demo_builds_then_opens_app(tmp_path, tiny_model, monkeypatch, capsys):
    from alrf_studio import app
    from alrf_studio.cli import main

    opened = []
    monkeypatch.setenv("ALRF_STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(app, "run_gui", lambda project: opened.append(project) or 0)
    assert main(["demo", "--project", str(tmp_path / "demo"), "--model", str(tiny_model)]) == 0
    assert opened == [str(tmp_path / "demo")]
    assert is_demo_ready(tmp_path / "demo")
    assert "predictions: 300/300" in capsys.readouterr().out
