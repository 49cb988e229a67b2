"""CLI command ``demo``: build the demo project from assets/demo."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build the demo project of real tiny faces")
    p.add_argument("--headless", action="store_true", help="run the whole main job without a display")
    p.add_argument("--project", help="where to build the demo project")
    p.add_argument("--overwrite", action="store_true", help="replace an existing demo project")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    raise NotImplementedError("the demo project is not built yet")
