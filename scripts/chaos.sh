#!/usr/bin/env bash
# The fault suite in its full form (`make chaos`): more kill -9 rounds, longer database outages,
# more propagation samples. Same tests as the short form `make test` runs; each starts its own
# private PostgreSQL, server processes and (for the cluster) nginx, and stops them again.
# PORTCULLIS_BIN picks the server binary (default .build/debug/portcullis).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh
export PORTCULLIS_BIN="${PORTCULLIS_BIN:-$PWD/.build/debug/portcullis}"
export PORTCULLIS_CHAOS=full
report=$(mktemp /tmp/portcullis-chaos.XXXXXX)
export PORTCULLIS_CHAOS_REPORT="$report"

started=$SECONDS
status=0
python3 -m pytest -q -s -p no:cacheprovider Tests/blackbox/test_faults.py Tests/blackbox/test_cluster.py "$@" || status=$?

echo "chaos: measurements (also in $report):"
cat "$report"
echo "chaos: $((SECONDS - started)) s, pytest exit $status"
exit "$status"
