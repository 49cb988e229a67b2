"""Killing the app while labelling loses no point that was shown as placed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from s2ld_core.schema import LANDMARK_NAMES, PointState
from s2ld_core.store import Project

from .conftest import make_project

CHILD = Path(__file__).with_name("crash_child.py")


def test_sigkill_loses_no_placed_point(tmp_path, faces):
    root = tmp_path / "project"
    make_project(root, faces[:8]).close()

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(root), "crash"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    placed = []
    # A child that hangs before printing enough points is killed, so the test cannot block.
    watchdog = threading.Timer(120, child.kill)
    watchdog.start()
    try:
        for line in child.stdout:
            if line.startswith("PLACED "):
                _, image_id, k, x, y = line.split()
                placed.append((int(image_id), int(k), float(x), float(y)))
            # 13 points: two finished faces and part of a third, so the kill lands mid-image.
            if len(placed) == 13:
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        watchdog.cancel()
        child.wait(timeout=30)
    stderr = child.stderr.read()
    assert child.returncode == -signal.SIGKILL, stderr
    assert len(placed) == 13, stderr

    with Project.open(root) as project:
        assert project.integrity_check() == "ok"
        for image_id, k, x, y in placed:
            label = project.get_label(image_id, "crash")
            assert label.state[k] == PointState.VISIBLE, (image_id, LANDMARK_NAMES[k])
            assert (label.xy[k, 0], label.xy[k, 1]) == (x, y)
        assert len({image_id for image_id, *_ in placed}) >= 3
