#!/usr/bin/env bash
# Whole test suite, as `make test` and CI run it: Swift tests against a real, throwaway
# PostgreSQL (never skipped), then the black-box tests against the built server binary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# CI's fresh shell may not have the toolchain on PATH.
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
command -v swift >/dev/null || { echo "test: error: swift not found" >&2; exit 1; }

scripts/install-deps.sh

# The EXIT trap stops PostgreSQL and the SMTP sink on every path; INT/TERM go through exit so it also runs then.
sink_pid=""
trap 'scripts/pg-test.sh stop; [[ -n "$sink_pid" ]] && kill "$sink_pid" 2>/dev/null || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Start failing fails the run: the PostgreSQL half of the storage tests must never be skipped.
url=$(scripts/pg-test.sh start)
export PORTCULLIS_TEST_POSTGRES_URL="$url"
export PORTCULLIS_REQUIRE_POSTGRES=1  # the black-box suites fail, not skip, without PostgreSQL
echo "test: PostgreSQL at $url" >&2

# A real SMTP server (aiosmtpd, with AUTH) that keeps every message it accepts as a file.
sink_dir=$(mktemp -d)
python3 scripts/smtp_sink.py --dir "$sink_dir/mail" --port 0 --user portcullis --password sink-secret >"$sink_dir/log" 2>&1 &
sink_pid=$!
for _ in $(seq 1 100); do grep -q '^ready ' "$sink_dir/log" && break; sleep 0.1; done
sink_port=$(sed -n 's/^ready //p' "$sink_dir/log")
[[ -n "$sink_port" ]] || { cat "$sink_dir/log" >&2; echo "test: error: the SMTP sink did not start" >&2; exit 1; }
export PORTCULLIS_TEST_SMTP_URL="smtp://portcullis:sink-secret@127.0.0.1:$sink_port?insecure_auth=1"
export PORTCULLIS_TEST_SMTP_DIR="$sink_dir/mail"
echo "test: SMTP sink at 127.0.0.1:$sink_port" >&2

# One build for both halves: the test bundle and the server binary the black-box tests start.
swift build --build-tests

# A run that goes silent for minutes is stopped with the tests it left open (scripts/swift-test-watchdog.sh).
status=0
scripts/swift-test-watchdog.sh || status=$?

# Black-box tests run even when swift test failed: both reports are worth having.
export PORTCULLIS_BIN="${PORTCULLIS_BIN:-$PWD/.build/debug/portcullis}"
py_status=0
python3 -m pytest -q Tests/blackbox || py_status=$?

# A short schemathesis run against the same binary (scripts/fuzz.sh; `make fuzz` is the full budget;
# FUZZ_TEST_EXAMPLES changes this one).
# Both backends, like the rest of the suite.
fuzz_status=0
for backend in sqlite postgres; do
    FUZZ_DATABASE=$backend FUZZ_EXAMPLES="${FUZZ_TEST_EXAMPLES:-10}" scripts/fuzz.sh || fuzz_status=$?
done
# libFuzzer over the object-string, e-mail and IP-address parsers (Fuzz/ParserTargets.swift).
FUZZ_NATIVE_RUNS="${FUZZ_NATIVE_TEST_RUNS:-100000}" scripts/fuzz-native.sh || fuzz_status=$?

if ((status != 0)); then
    echo "test: swift test failed (exit $status)" >&2
    exit "$status"
fi
if ((py_status != 0)); then
    echo "test: black-box tests failed (exit $py_status)" >&2
    exit "$py_status"
fi
if ((fuzz_status != 0)); then
    echo "test: fuzz failed (exit $fuzz_status)" >&2
fi
exit "$fuzz_status"
