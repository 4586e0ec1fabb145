#!/usr/bin/env bash
# Runs `swift test --skip-build` (extra arguments pass through) and stops it when it has printed
# nothing for SWIFT_TEST_STALL seconds (default 300). No test here is silent for that long, and the
# whole suite takes about three minutes, so such a run is stuck: it is reported with the tests that
# started and never finished, and every thread's stack where gdb is installed, then stopped. Without
# this a stuck run holds CI until its own limit and says nothing about where it stopped.
set -uo pipefail
stall="${SWIFT_TEST_STALL:-300}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Line-buffered, so the log (and CI's output) ends where the run really is.
stdbuf -oL -eL swift test --skip-build "$@" > >(tee "$log") 2>&1 &
pid=$!

stuck=0
while kill -0 "$pid" 2>/dev/null; do
    sleep 5
    silent=$(( $(date +%s) - $(stat -c %Y "$log") ))
    ((silent < stall)) && continue
    stuck=1
    echo "swift-test-watchdog: no output for ${silent} s; these tests started and did not finish:" >&2
    python3 - "$log" >&2 <<'EOF'
import re, sys
started, ended, cases = [], set(), {}
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    line = line.rstrip()
    if m := re.search(r"◇ Test case passing (.+?) to (.+?) started\.$", line):
        cases.setdefault(m.group(2), []).append(m.group(1))
    elif (m := re.search(r"◇ Test (.+?) started\.$", line)) and m.group(1) != "run":
        started.append(m.group(1))
    elif m := re.search(r"[✔✘] Test (.+?)(?: with \d+ test cases?)? (?:passed|failed) after ", line):
        ended.add(m.group(1))
for name in started:
    if name not in ended:
        print("  " + name + "".join("\n    case: " + c for c in cases.get(name, [])))
EOF
    # swift test runs the suite in a child process (the .xctest bundle).
    tests=$(pgrep -P "$pid" -f xctest | head -1)
    if [[ -n "$tests" ]] && command -v gdb >/dev/null; then
        echo "swift-test-watchdog: thread stacks of process $tests:" >&2
        gdb -p "$tests" -batch -ex "thread apply all bt 12" 2>/dev/null | grep -E '^(Thread|#)' >&2
    fi
    [[ -n "$tests" ]] && kill -9 "$tests" 2>/dev/null
    kill "$pid" 2>/dev/null
    break
done
wait "$pid"
status=$?
if ((stuck)); then
    echo "swift-test-watchdog: swift test was stuck and has been stopped" >&2
    exit 124
fi
exit "$status"
