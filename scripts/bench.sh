#!/usr/bin/env bash
# Placeholder so `make bench` exists from the start; the real load tests come with the Policy work.
set -euo pipefail
echo "benchmarks arrive with the Policy issue"
