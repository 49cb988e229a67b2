"""G2 checkpoints: weights in safetensors plus a JSON model card, never pickle.

A checkpoint is a folder with ``model.safetensors`` (the state dict as float32 tensors) and
``card.json``:

    {"format": "s2ld-g2", "format_version": 1, "model_id": ..., "config": {G2Config},
     "heatmap": {"sigma": ..., "visibility_threshold": ...}, "training": {...},
     "data_hash": ..., "metrics": {...}, "parent_model": ... or null,
     "code_version": ..., "created": ISO 8601 UTC}

Loading reads only these two files with safetensors and json, so no code from a checkpoint
ever runs. A PyTorch pickle (``.pt``, ``.pth``, ``.ckpt`` or ``.bin``) is rejected with
:class:`PickleCheckpointError` before anything is read.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

import s2ld_core
from s2ld_core.model import G2, G2Config

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "card.json"
CARD_FORMAT = "s2ld-g2"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete or does not match its card."""


class PickleCheckpointError(CheckpointError):
    """A pickle checkpoint was given; only safetensors weights with a JSON card are loaded."""


@dataclass
class ModelCard:
    """Metadata stored beside the weights."""

    model_id: str
    config: dict
    heatmap: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    data_hash: str = ""
    metrics: dict = field(default_factory=dict)
    parent_model: str | None = None
    code_version: str = s2ld_core.__version__
    created: str = ""

    def to_json(self) -> dict:
        return {"format": CARD_FORMAT, "format_version": 1, **self.__dict__}


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(model: G2, card: ModelCard, folder: str | Path) -> Path:
    """Write ``model``'s weights and ``card`` into ``folder`` (created if needed); returns the folder.

    Both files are written through temporary files and renamed into place. The card's
    ``config`` is replaced by the model's own configuration and ``created`` is set when empty.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items() if v.is_floating_point()}
    tensors.update({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not v.is_floating_point()})

    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": CARD_FORMAT})
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / WEIGHTS_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

    card.config = model.config.to_dict()
    if not card.created:
        card.created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    text = json.dumps(card.to_json(), indent=2, sort_keys=False) + "\n"
    _atomic_write_bytes(folder / CARD_NAME, text.encode("utf-8"))
    log.info("saved checkpoint %s to %s", card.model_id, folder)
    return folder


def _reject_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise PickleCheckpointError(
            f"{path} is a pickle checkpoint, which can run arbitrary code when loaded and is never read. "
            f"Convert it once in a trusted environment to a folder with {WEIGHTS_NAME} and {CARD_NAME} "
            "(s2ld_core.checkpoint.save_checkpoint)."
        )


def load_card(folder: str | Path) -> ModelCard:
    """Read ``card.json`` of a checkpoint folder."""
    folder = Path(folder)
    _reject_pickle(folder)
    path = folder / CARD_NAME
    if not path.is_file():
        raise CheckpointError(f"{path} not found: a checkpoint is a folder with {WEIGHTS_NAME} and {CARD_NAME}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if data.get("format") != CARD_FORMAT:
        raise CheckpointError(f"{path} has format {data.get('format')!r}, expected {CARD_FORMAT!r}")
    fields = {k: v for k, v in data.items() if k in ModelCard.__dataclass_fields__}
    return ModelCard(**fields)


def load_checkpoint(folder: str | Path, device: str | torch.device = "cpu") -> tuple[G2, ModelCard]:
    """Build a G2 from a checkpoint folder and return it in eval mode with its card.

    Raises :class:`PickleCheckpointError` for a pickle file and :class:`CheckpointError`
    when a file is missing or the weights do not fit the configuration in the card.
    """
    folder = Path(folder)
    _reject_pickle(folder)
    if folder.is_file():
        raise CheckpointError(f"{folder} is a file; pass the checkpoint folder that holds {WEIGHTS_NAME} and {CARD_NAME}")
    card = load_card(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{weights} not found beside {CARD_NAME}")

    model = G2(G2Config.from_dict(card.config))
    state = load_file(str(weights), device="cpu")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights} does not match the configuration in {CARD_NAME}: {exc}") from exc
    return model.to(device).eval(), card
