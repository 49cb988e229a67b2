#!/usr/bin/env bash
# Clone this repository into a temporary folder and run the README's commands exactly as a new
# user would: the app (offscreen, with a time limit), the headless demo and the test command.
# Prints the wall time and disk space each step took.
#
#   bench/fresh_clone_check.sh [--keep] [PYTEST ARGS...]
#
# --keep leaves the clone in place (its path is printed). The user data folder is redirected
# into the clone (ALRF_STUDIO_HOME), so nothing outside it is touched.
set -uo pipefail

KEEP=0
if [ "${1:-}" = "--keep" ]; then KEEP=1; shift; fi
SRC="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/alrf-fresh-XXXXXX")"
CLONE="$WORK/alrf-studio"
export ALRF_STUDIO_HOME="$WORK/user-data"
STATUS=0

step() {  # step NAME COMMAND...: run COMMAND in the clone, report time, exit status and disk use
    local name="$1"; shift
    local before after start end rc
    before=$(du -sm "$WORK" | cut -f1)
    start=$(date +%s.%N)
    (cd "$CLONE" && "$@") >"$WORK/$name.log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    after=$(du -sm "$WORK" | cut -f1)
    printf '%-28s exit %-3s %8.1f s   disk +%s MB\n' "$name" "$rc" "$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')" "$((after - before))"
    if [ "$rc" -ne 0 ] && [ "$name" != "app-offscreen" ]; then
        STATUS=1
        tail -n 30 "$WORK/$name.log" | sed 's/^/    /'
    fi
    return 0
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sm), $(python3 --version 2>&1)"
echo "clone:   $CLONE"
git clone --quiet "$SRC" "$CLONE" || exit 1

# 1. The first README command: starts the app. Offscreen and limited to 45 s, because the
#    window waits for a person; exit 124 (the time limit) means it was still running.
step app-offscreen env QT_QPA_PLATFORM=offscreen timeout 45 ./run.sh
echo "    (exit 124 = the app was still running when the time limit stopped it)"
grep -m3 -iE "error|traceback" "$WORK/app-offscreen.log" | sed 's/^/    /'

# 2. The headless form of the main job.
step demo-headless ./run.sh cli demo --headless --project "$WORK/demo-project"
tail -n 25 "$WORK/demo-headless.log" | sed 's/^/    /'

# 3. The second README command: the tests.
step tests ./run.sh test -q "$@"
tail -n 3 "$WORK/tests.log" | sed 's/^/    /'

echo "venv size: $(du -sh "$CLONE/.venv" | cut -f1)"
if [ "$KEEP" -eq 0 ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
exit $STATUS
