#!/usr/bin/env bash
# Whole test suite, as `make test` and CI run it: Swift tests against a real, throwaway
# PostgreSQL (never skipped), then the black-box tests against the built server binary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# CI's fresh shell may not have the toolchain on PATH.
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
command -v swift >/dev/null || { echo "test: error: swift not found" >&2; exit 1; }

scripts/install-deps.sh

# The EXIT trap stops PostgreSQL on every path; INT/TERM go through exit so it also runs then.
trap 'scripts/pg-test.sh stop' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Start failing fails the run: the PostgreSQL half of the storage tests must never be skipped.
url=$(scripts/pg-test.sh start)
export PORTCULLIS_TEST_POSTGRES_URL="$url"
echo "test: PostgreSQL at $url" >&2

# One build for both halves: the test bundle and the server binary the black-box tests start.
swift build --build-tests

status=0
swift test --skip-build || status=$?

# Black-box tests run even when swift test failed: both reports are worth having.
export PORTCULLIS_BIN="${PORTCULLIS_BIN:-$PWD/.build/debug/portcullis}"
py_status=0
python3 -m pytest -q Tests/blackbox || py_status=$?

if ((status != 0)); then
    echo "test: swift test failed (exit $status)" >&2
    exit "$status"
fi
exit "$py_status"
