"""Start ALRF Studio: ``python main.py [PROJECT]``."""

import sys

from alrf_studio.cli import configure_logging


def main() -> int:
    configure_logging()
    from alrf_studio.app import run_gui

    project = sys.argv[1] if len(sys.argv) > 1 else None
    return run_gui(project)


if __name__ == "__main__":
    sys.exit(main())
