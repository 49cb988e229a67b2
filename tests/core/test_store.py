"""Project store: images, labels, edit log, undo, predictions, registry, crash safety."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from s2ld_core.schema import LANDMARK_NAMES, PointState
from s2ld_core.store import (
    SCHEMA_VERSION,
    ImageStatus,
    InvalidEditError,
    PointValue,
    Project,
    ProjectLockedError,
    ProjectNotFoundError,
    ProjectReadOnlyError,
    StoreError,
    _SCHEMA_V1,
)
from tests.conftest import REPO


def _face(seed: int, w: int = 24, h: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(buf.tobytes())
    return path


@pytest.fixture
def project(tmp_path: Path) -> Project:
    files = [_write_png(tmp_path / "src" / f"id{k}_0.png", _face(k, 20 + k, 24)) for k in range(3)]
    p = Project.create(tmp_path / "proj")
    summary = p.add_images(files, identity=lambda path: path.stem.split("_")[0])
    assert len(summary.added) == 3
    p.add_annotator("ann")
    yield p
    p.close()


def test_images_copied_and_relocatable(project: Project, tmp_path: Path):
    info = project.list_images()[1]
    assert (info.width, info.height) == (21, 24)
    assert info.identity == "id1"
    original = cv2.cvtColor(cv2.imread(info.original_path), cv2.COLOR_BGR2RGB)
    project.close()

    moved = tmp_path / "moved"
    os.rename(tmp_path / "proj", moved)
    with Project.open(moved) as p:
        np.testing.assert_array_equal(p.load_image(info.id), original)


def test_duplicate_images_reported(project: Project, tmp_path: Path):
    again = project.add_images([tmp_path / "src" / "id0_0.png"])
    assert again.added == []
    assert again.duplicates == [(str(tmp_path / "src" / "id0_0.png"), 1)]
    assert project.image_count() == 3


def test_import_goes_on_after_bad_file(project: Project, tmp_path: Path):
    bad = tmp_path / "src" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    good = _write_png(tmp_path / "src" / "id9_0.png", _face(9))
    summary = project.add_images([bad, good])
    assert len(summary.added) == 1
    assert summary.errors[0][0] == str(bad)
    assert "broken.png" in summary.errors[0][1]


def test_point_states_roundtrip(project: Project):
    project.set_point(1, "ann", "left_eye", PointState.VISIBLE, 3.25, 4.5)
    project.set_point(1, "ann", "nose", PointState.INVISIBLE)
    label = project.get_label(1, "ann")
    assert label.xy[0].tolist() == [3.25, 4.5]
    assert label.state.tolist() == [1, 0, 2, 0, 0]
    assert np.isnan(label.xy[2]).all()
    assert np.isnan(label.xy[1]).all()


def test_out_of_image_point_rejected(project: Project):
    with pytest.raises(InvalidEditError, match=r"outside the 20x24 image"):
        project.set_point(1, "ann", "left_eye", PointState.VISIBLE, 19.6, 3.0)
    with pytest.raises(InvalidEditError, match="not a finite number"):
        project.set_point(1, "ann", "left_eye", PointState.VISIBLE, float("nan"), 3.0)
    # The pixel-edge limits themselves are inside.
    project.set_point(1, "ann", "left_eye", PointState.VISIBLE, 19.5, -0.5)
    assert project.get_label(1, "ann").xy[0].tolist() == [19.5, -0.5]


def test_unknown_annotator_rejected(project: Project):
    with pytest.raises(InvalidEditError, match="Unknown annotator 'nobody'"):
        project.set_point(1, "nobody", "nose", PointState.INVISIBLE)


def test_undo_redo_replay_exact_values(project: Project):
    first = project.set_point(2, "ann", "nose", PointState.VISIBLE, 5.1, 6.2)
    move = project.set_point(2, "ann", "nose", PointState.VISIBLE, 7.3, 8.4)
    assert first.before["nose"].state == PointState.UNLABELLED
    project.undo(move)
    assert project.get_label(2, "ann").xy[2].tolist() == [5.1, 6.2]
    project.redo(move)
    assert project.get_label(2, "ann").xy[2].tolist() == [7.3, 8.4]
    project.undo(move)
    project.undo(first)
    assert project.get_label(2, "ann").state[2] == PointState.UNLABELLED
    actions = [row["action"] for row in project.edit_log(image_id=2)]
    assert actions == ["edit", "edit", "undo", "redo", "undo", "undo"]


def test_edit_log_is_append_only(project: Project):
    project.set_point(1, "ann", "nose", PointState.INVISIBLE)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        project._conn.execute("DELETE FROM edit_log")
    log = project.edit_log()
    assert log[0]["annotator"] == "ann"
    assert log[0]["before_state"] == 0
    assert log[0]["after_state"] == 2


def test_status_per_annotator(project: Project):
    for k in range(5):
        state = PointState.INVISIBLE if k == 2 else PointState.VISIBLE
        project.set_point(1, "ann", k, state, 5.0, 5.0)
    project.set_point(2, "ann", 0, PointState.VISIBLE, 1.0, 1.0)
    status = project.status("ann")
    assert status[1].status == ImageStatus.DONE
    assert status[1].has_invisible
    assert status[2].status == ImageStatus.PARTIAL
    assert 3 not in status
    assert project.counts() == {"ann": {"done": 1, "partial": 1, "not_started": 1}}


def test_labels_array_keyed_by_name(project: Project):
    project.add_annotator("second")
    project.set_point(3, "second", "mouth_right", PointState.VISIBLE, 10.0, 11.0)
    project.set_point(1, "ann", "right_eye", PointState.INVISIBLE)
    ids, names, xy, state = project.labels_array()
    assert ids.tolist() == [1, 2, 3]
    assert names == ["ann", "second"]
    assert xy[2, 1, 4].tolist() == [10.0, 11.0]
    assert state[0, 0, 1] == PointState.INVISIBLE
    assert np.isnan(xy[0, 0, 1]).all()
    assert np.count_nonzero(state) == 2


def test_import_labels_is_all_or_nothing(project: Project):
    good = (np.full((5, 2), 3.0), np.ones(5, dtype=np.int8))
    bad_xy = np.full((5, 2), 3.0)
    bad_xy[4] = (50.0, 3.0)
    with pytest.raises(InvalidEditError, match="mouth_right"):
        project.import_labels("imp", {1: good, 2: (bad_xy, np.ones(5, dtype=np.int8))})
    assert project.get_label(1, "imp").n_labelled == 0
    assert project.import_labels("imp", {1: good, 2: (bad_xy, np.ones(5, dtype=np.int8))}, allow_outside=True) == 2


def test_predictions_apart_from_labels(project: Project, tmp_path: Path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "card.json").write_text("{}")
    project.register_model("m1", ckpt, {"nme": 0.05}, activate=True)
    xy = np.arange(20, dtype=float).reshape(2, 5, 2) / 2
    conf = np.full((2, 5), 0.9)
    conf[1, 3] = 0.2
    project.set_predictions("m1", [1, 2], xy, conf, conf > 0.5)
    pred = project.get_prediction(2)
    assert pred.model_version == "m1"
    assert pred.xy.tolist() == xy[1].tolist()
    assert pred.visible.tolist() == [True, True, True, False, True]
    assert project.get_label(2, "ann").n_labelled == 0
    assert project.prediction_confidence() == {1: pytest.approx(0.9), 2: pytest.approx(0.2)}
    assert project.models()[0]["active"]
    with pytest.raises(StoreError, match="already registered"):
        project.register_model("m1", ckpt, {})


def test_open_missing_project(tmp_path: Path):
    with pytest.raises(ProjectNotFoundError, match="No project found"):
        Project.open(tmp_path / "nothing")


def test_migration_from_version_1(tmp_path: Path):
    root = tmp_path / "old"
    root.mkdir()
    conn = sqlite3.connect(root / "project.sqlite")
    conn.executescript(_SCHEMA_V1)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute("INSERT INTO meta VALUES ('name', 'old')")
    conn.commit()
    conn.close()
    with Project.open(root) as p:
        assert p.schema_version == SCHEMA_VERSION
        assert p.reviews() == []


@contextlib.contextmanager
def _read_only_folder(root: Path):
    """Make ``root`` and its files unwritable, even for root (chattr +i), for the duration."""
    paths = sorted(root.rglob("*"), reverse=True) + [root]
    if os.geteuid() == 0:
        result = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, text=True)
        if result.returncode != 0:
            subprocess.run(["chattr", "-i", *map(str, paths)], capture_output=True)
            pytest.skip(f"running as root and chattr +i failed ({result.stderr.strip()}), so a read-only disk cannot be simulated")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", *map(str, paths)], check=True)
    else:
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            os.chmod(p, 0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p in reversed(paths):
                os.chmod(p, modes[p])


def test_read_only_project_opens_for_viewing(project: Project):
    root = project.root
    project.set_point(1, "ann", "nose", PointState.INVISIBLE)
    project.close()
    with _read_only_folder(root):
        p = Project.open(root)
        assert p.read_only
        assert "viewing only" in p.read_only_reason
        assert p.get_label(1, "ann").state[2] == PointState.INVISIBLE
        with pytest.raises(ProjectReadOnlyError, match="Cannot save"):
            p.set_point(1, "ann", "nose", PointState.UNLABELLED)
        p.close()


def test_read_only_request_blocks_writes(project: Project):
    root = project.root
    project.set_point(1, "ann", "nose", PointState.INVISIBLE)
    project.close()
    with Project.open(root, read_only=True) as p:
        assert p.get_label(1, "ann").state[2] == PointState.INVISIBLE
        with pytest.raises(ProjectReadOnlyError):
            p.set_point(1, "ann", "nose", PointState.UNLABELLED)


def test_locked_database_gives_clear_error(project: Project):
    other = sqlite3.connect(project.root / "project.sqlite", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(ProjectLockedError, match="locked by another process"):
            project.set_point(1, "ann", "nose", PointState.INVISIBLE)
    finally:
        other.execute("ROLLBACK")
        other.close()
    project.set_point(1, "ann", "nose", PointState.INVISIBLE)
    assert project.get_label(1, "ann").state[2] == PointState.INVISIBLE


def test_killed_writer_keeps_committed_edits(project: Project):
    """A process killed with SIGKILL in the middle of many edits loses none that were committed."""
    root = project.root
    project.close()
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from s2ld_core.store import Project
        from s2ld_core.schema import PointState
        p = Project.open({str(root)!r})
        n = 0
        while True:
            image_id = n % 3 + 1
            p.set_point(image_id, "ann", n % 5, PointState.VISIBLE, (n % 17) + 0.25, (n % 19) * 0.5)
            n += 1
            print(n, flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    committed = 0
    deadline = time.monotonic() + 60
    while committed < 200 and time.monotonic() < deadline:
        committed = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert committed >= 200

    with Project.open(root) as p:
        assert p.integrity_check() == "ok"
        log = p.edit_log()
        assert len(log) >= committed
        # The last edit printed as committed is on disk with its exact value.
        n = committed - 1
        label = p.get_label(n % 3 + 1, "ann")
        entries = [row for row in log if row["image_id"] == n % 3 + 1 and row["landmark"] == LANDMARK_NAMES[n % 5]]
        assert entries[len(entries) - 1]["after_x"] == label.xy[n % 5, 0]
        assert label.xy[n % 5].tolist() in ([(n % 17) + 0.25, (n % 19) * 0.5], [((n + 15) % 17) + 0.25, ((n + 15) % 19) * 0.5])


def test_reviews_send_back(project: Project):
    for k in range(5):
        project.set_point(1, "ann", k, PointState.VISIBLE, 5.0, 5.0)
    assert project.status("ann")[1].status == ImageStatus.DONE
    project.add_review(1, "rev", "send_back", annotator="ann", note="eyes swapped")
    assert project.status("ann")[1].status == ImageStatus.PARTIAL
    project.set_point(1, "ann", 0, PointState.VISIBLE, 6.0, 5.0)
    assert project.status("ann")[1].status == ImageStatus.DONE
    project.add_review(1, "rev", "send_back", annotator="ann", note="still swapped")
    project.add_review(2, "rev", "accept")
    assert project.sent_back("ann") == {1}
    with pytest.raises(InvalidEditError, match="annotator's name"):
        project.add_review(1, "rev", "send_back")
