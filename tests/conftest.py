"""Shared test fixtures: paths to committed fixtures and to the full data when it is present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = Path(os.environ.get("ALRF_SHARED_DATA", REPO.parent / "shared" / "data"))
CNN_FACEPOINT = SHARED_DATA / "cnn_facepoint"
CROWD_LR = SHARED_DATA / "crowd_lr"

# Qt must use the offscreen platform before any Qt module is imported by a test.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def cnn_facepoint_dir() -> Path:
    """The full cnn_facepoint data; the test is skipped when it is missing."""
    if not (CNN_FACEPOINT / "landmarks.csv").is_file():
        pytest.skip(f"full data not found at {CNN_FACEPOINT} (set ALRF_SHARED_DATA to its parent folder)")
    return CNN_FACEPOINT


@pytest.fixture
def crowd_lr_dir() -> Path:
    """The crowd_lr real tiny faces; the test is skipped when they are missing."""
    if not (CROWD_LR / "faces.csv").is_file():
        pytest.skip(f"full data not found at {CROWD_LR} (set ALRF_SHARED_DATA to its parent folder)")
    return CROWD_LR


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A small G2 trained once per test session on the fixture faces (model id ``tiny-fixture``)."""
    from tests.core.fixture_faces import train_tiny_checkpoint

    return train_tiny_checkpoint(tmp_path_factory.mktemp("models") / "tiny-fixture")
