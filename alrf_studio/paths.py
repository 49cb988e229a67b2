"""Locations of ALRF Studio's per-user files (the demo project, logs and settings) and of its assets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "ALRF Studio"


def user_data_dir() -> Path:
    """Return the per-user data folder, creating it on first use.

    Linux: ``$XDG_DATA_HOME/alrf-studio`` (default ``~/.local/share/alrf-studio``);
    macOS: ``~/Library/Application Support/ALRF Studio``; Windows: ``%LOCALAPPDATA%\\ALRF Studio``.
    ``ALRF_STUDIO_HOME`` overrides all of them.
    """
    override = os.environ.get("ALRF_STUDIO_HOME")
    if override:
        path = Path(override)
    elif sys.platform == "darwin":
        path = Path.home() / "Library" / "Application Support" / APP_NAME
    elif sys.platform == "win32":
        path = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / APP_NAME
    else:
        path = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "alrf-studio"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_file() -> Path:
    """Return the log file that the GUI and the CLI append to."""
    folder = user_data_dir() / "logs"
    folder.mkdir(exist_ok=True)
    return folder / "alrf-studio.log"


def demo_project_dir() -> Path:
    """Return the folder of the demo project: inside the user's data folder, never inside the package."""
    return user_data_dir() / "demo-project"


def repo_root() -> Path:
    """Return the folder that contains ``assets/`` (the source checkout or the installed tree)."""
    return Path(__file__).resolve().parents[1]


def assets_dir() -> Path:
    return repo_root() / "assets"


def default_model_dir() -> Path:
    """Return the folder of the shipped default model (weights and card)."""
    return assets_dir() / "models" / "default"
