"""The model the demo tests pre-label with: the shipped default when present, else a tiny untrained G2."""

from __future__ import annotations

from pathlib import Path

import torch

from s2ld_core.checkpoint import CARD_NAME, WEIGHTS_NAME, ModelCard, save_checkpoint
from s2ld_core.model import G2, G2Config
from s2ld_core.predict import DEFAULT_MODEL_DIR


def default_model_present() -> bool:
    return (DEFAULT_MODEL_DIR / CARD_NAME).is_file() and (DEFAULT_MODEL_DIR / WEIGHTS_NAME).is_file()


def save_tiny_model(folder: Path) -> Path:
    """Write a small G2 with seeded random weights: its points are poor but finite, which the tests need."""
    torch.manual_seed(0)
    return save_checkpoint(G2(G2Config(widths=(8, 8, 16, 16))).eval(), ModelCard(model_id="tiny-demo-test", config={}), folder)


def demo_model_dir(folder: Path) -> Path:
    """Return the default model's folder, or a tiny model written into ``folder`` when it is missing."""
    return DEFAULT_MODEL_DIR if default_model_present() else save_tiny_model(folder)
