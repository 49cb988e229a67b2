#!/usr/bin/env bash
# Set up the virtual environment when needed, then start the app or run the tests.
#
#   ./run.sh [PROJECT]          start ALRF Studio (the demo project when none is given)
#   ./run.sh test [PYTEST ARGS] run the test suite
#   ./run.sh cli COMMAND ...    run the headless CLI (alrf-studio COMMAND ...)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV="${ALRF_VENV:-.venv}"
STAMP="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"

if [ ! -f "$STAMP" ]; then
    echo "Setting up $VENV (first run only; a few minutes)..." >&2
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    # torch is installed first and pinned, so that no dependency pulls a multi-GB CUDA build.
    "$VENV/bin/pip" install --quiet "torch==2.13.0"
    "$VENV/bin/pip" install --quiet "torch==2.13.0" -e ".[test]"
    # facenet-pytorch only provides MTCNN's weights for the baseline comparison; its own
    # dependency pins conflict with ours, so it is installed without them.
    "$VENV/bin/pip" install --quiet --no-deps "facenet-pytorch==2.6.0"
    touch "$STAMP"
fi

case "${1:-}" in
    test)
        shift
        export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    cli)
        shift
        exec "$VENV/bin/alrf-studio" "$@"
        ;;
    *)
        exec "$VENV/bin/python" main.py "$@"
        ;;
esac
