#!/usr/bin/env bash
# Benchmarks. For now: login latency (argon2id with the shipped OWASP parameters dominates it).
# The decision-engine and HTTP throughput benchmarks arrive with the Policy milestone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
config="${CONFIG:-debug}"
scripts/install-deps.sh
swift build -c "$config" --product portcullis
bin=".build/$config/portcullis"
exec python3 scripts/bench_login.py "$bin" "${LOGINS:-100}"
