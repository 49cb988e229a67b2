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

# 1. The first README command: sets up .venv, then starts the app. With no project given the app
#    shows its start dialog and waits for a person, so the check waits for the log line that reports
#    the dialog is shown (at most 900 s), records the time, and closes the app.
LOG="$ALRF_STUDIO_HOME/logs/alrf-studio.log"
before=$(du -sm "$WORK" | cut -f1)
start=$(date +%s.%N)
(cd "$CLONE" && QT_QPA_PLATFORM=offscreen exec ./run.sh) >"$WORK/app.log" 2>&1 &
APP=$!
for _ in $(seq 1800); do
    grep -q "Showing the start dialog" "$LOG" 2>/dev/null && break
    kill -0 "$APP" 2>/dev/null || break
    sleep 0.5
done
end=$(date +%s.%N)
after=$(du -sm "$WORK" | cut -f1)
if grep -q "Showing the start dialog" "$LOG" 2>/dev/null; then
    printf '%-28s shown    %8.1f s   disk +%s MB (set-up included)\n' "app-start-dialog" "$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')" "$((after - before))"
else
    echo "app-start-dialog             FAILED: the start dialog was not shown"; STATUS=1
    tail -n 30 "$WORK/app.log" | sed 's/^/    /'
fi
pkill -TERM -P "$APP" 2>/dev/null; kill "$APP" 2>/dev/null; wait "$APP" 2>/dev/null

# 2. The headless form of the main job.
step demo-headless ./run.sh cli demo --headless --project "$WORK/demo-project"
tail -n 25 "$WORK/demo-headless.log" | sed 's/^/    /'

# 3. The second README command: the tests.
step tests ./run.sh test -q "$@"
tail -n 3 "$WORK/tests.log" | sed 's/^/    /'

echo "venv size: $(du -sh "$CLONE/.venv" | cut -f1)"
if [ "$KEEP" -eq 0 ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
exit $STATUS
