"""Headless command-line interface: ``alrf-studio <command> [options]``.

Each command is a thin wrapper over a ``s2ld_core`` function, so the GUI's menu actions and
these commands do the same work. Nothing here imports Qt; ``alrf-studio gui`` imports it
only when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import paths

log = logging.getLogger(__name__)


def configure_logging(verbose: bool = False) -> Path:
    """Send log records to the per-user log file and warnings (or everything with -v) to stderr."""
    logfile = paths.log_file()
    root = logging.getLogger()
    if getattr(root, "_alrf_configured", False):
        return logfile
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    file_handler = logging.FileHandler(logfile, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file_handler)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root.addHandler(console)
    root._alrf_configured = True  # type: ignore[attr-defined]
    return logfile


class CommandError(Exception):
    """A command failed for a reason the user can fix; the message says how."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alrf-studio",
        description="ALRF Studio: build landmark datasets of low-resolution faces. "
        "Run without a command to start the app.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from . import cli_data

    cli_data.register(sub)
    try:
        from . import cli_model
    except ImportError as exc:  # pragma: no cover - only while the model commands are missing
        log.debug("Model commands unavailable: %s", exc)
    else:
        cli_model.register(sub)
    from . import cli_demo

    cli_demo.register(sub)

    gui = sub.add_parser("gui", help="start the desktop app (the default when no command is given)")
    gui.add_argument("project", nargs="?", help="project folder to open (default: offer the demo project)")
    gui.set_defaults(func=_cmd_gui)
    return parser


def _cmd_gui(args: argparse.Namespace) -> int:
    from .app import run_gui

    return run_gui(args.project)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if args.command is None:
        return _cmd_gui(argparse.Namespace(project=None))
    from s2ld_core.store import StoreError

    try:
        return int(args.func(args) or 0)
    except (CommandError, StoreError, OSError) as exc:
        log.debug("Command %s failed", args.command, exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - last resort: a short message, the traceback in the log
        name = type(exc).__module__.split(".")[0]
        if name == "s2ld_core" or type(exc).__name__.endswith("Error"):
            log.debug("Command %s failed", args.command, exc_info=True)
            print(f"error: {exc}", file=sys.stderr)
            return 2
        log.exception("Command %s failed unexpectedly", args.command)
        print(f"error: {type(exc).__name__}: {exc} (traceback in {paths.log_file()})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
