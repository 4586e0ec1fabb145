#!/usr/bin/env bash
# Benchmarks, on a release build kept apart from the debug one (scratch path .build-release):
#   engine       portcullis-bench: decisions/s in process (parsed, from strings), RSS per cached
#                membership, cold load from SQLite and PostgreSQL (1M memberships)
#   casbin       scripts/bench_casbin.py: the same dataset and checks in pycasbin and plain Python dicts
#   http         scripts/bench_http.py: wrk against /health, /v1/authorize, /v1/authorize/batch
#   propagation  scripts/bench_propagation.py: two nodes on one PostgreSQL, write on A, flip seen on B
#   login        scripts/bench_login.py: login latency (argon2id)
#   flood        scripts/bench_flood.py: authorize latency while the login endpoint is flooded
#   victim       scripts/bench_victim.py: another tenant's authorize latency while a hostile one runs
#                lookups and 1,000-check batches over its own long-path bindings
#   hostile      scripts/bench_hostile.py: lookup, batch, capabilities, AuthZEN over 5,000 long-path
#                bindings a hostile tenant wrote for another account (issue 21)
# BENCH_ONLY="engine http" runs a subset. Results: .build-release/bench/*.json and report.md; a full
# run also rewrites the generated section of BENCHMARKS.md. PORTCULLIS_BENCH_POSTGRES_URL points the
# engine's cold load at another PostgreSQL (a throwaway schema there); otherwise, like propagation,
# it uses a throwaway server from scripts/pg-test.sh, stopped at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v swift >/dev/null || export PATH="$PATH:/opt/swift/usr/bin"
root=$PWD
scratch=.build-release
all="engine casbin http propagation login flood hostile victim webhooks"
only=" ${BENCH_ONLY:-$all} "
want() { [[ "$only" == *" $1 "* ]]; }
python=${PYTHON:-python3}

scripts/install-deps.sh

# Tools only the benchmarks need, installed here so that `make test` never needs them.
if { want http || want flood || want victim; } && ! command -v wrk >/dev/null; then
    echo "bench: apt installing wrk" >&2
    sudo=(); [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq >/dev/null
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if want casbin && ! "$python" -c "import casbin" 2>/dev/null; then
    echo "bench: pip installing casbin" >&2
    "$python" -m pip install -q --disable-pip-version-check --break-system-packages casbin
fi

swift build -c release --scratch-path "$scratch" --product portcullis
swift build -c release --scratch-path "$scratch" --product portcullis-bench
bin=$(swift build -c release --scratch-path "$scratch" --show-bin-path)
out="$scratch/bench"
mkdir -p "$out"
rm -f "$out"/*.json "$out"/report.md "$out"/loadavg.txt

pg_url=""
if want engine || want propagation; then
    # Its own state dir, so the test suite's throwaway PostgreSQL is left alone.
    export PGTEST_STATE="$root/$scratch/pgbench"
    trap 'scripts/pg-test.sh stop' EXIT
    pg_url=$(scripts/pg-test.sh start)
fi

# The machines are shared: the load average at the start of each part goes into the report.
mark() { echo "$1 $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/loadavg.txt"; }
started=$SECONDS
if want engine; then
    mark engine
    echo "== engine (in process)" >&2
    PORTCULLIS_BENCH_POSTGRES_URL="${PORTCULLIS_BENCH_POSTGRES_URL:-$pg_url}" "$bin/portcullis-bench" >"$out/engine.json"
fi
if want casbin; then
    mark casbin
    echo "== pycasbin and Python dicts" >&2
    "$python" scripts/bench_casbin.py >"$out/casbin.json"
fi
if want http; then
    mark http
    echo "== HTTP (wrk)" >&2
    "$python" scripts/bench_http.py "$bin/portcullis" >"$out/http.json"
fi
if want propagation; then
    mark propagation
    echo "== propagation (two nodes, PostgreSQL)" >&2
    "$python" scripts/bench_propagation.py "$bin/portcullis" "$pg_url" >"$out/propagation.json"
fi
if want login; then
    mark login
    echo "== login" >&2
    "$python" scripts/bench_login.py "$bin/portcullis" "${LOGINS:-100}" "$out/login.json"
fi
if want flood; then
    mark flood
    echo "== authorize under a login flood" >&2
    "$python" scripts/bench_flood.py "$bin/portcullis" >"$out/flood.json"
fi
if want victim; then
    mark victim
    echo "== a victim's authorize latency while a hostile tenant runs" >&2
    "$python" scripts/bench_victim.py "$bin/portcullis" >"$out/victim.json"
fi
if want hostile; then
    mark hostile
    echo "== a hostile tenant's 5,000 long-path bindings" >&2
    "$python" scripts/bench_hostile.py "$bin/portcullis" >"$out/hostile.json"
fi
if want webhooks; then
    mark webhooks
    echo "== webhook deliveries to local receivers" >&2
    "$python" scripts/bench_webhooks.py "$bin/portcullis" >"$out/webhooks.json"
fi
mark end
echo "bench: done in $((SECONDS - started)) s" >&2

if [[ "$only" == " $all " ]]; then
    "$python" scripts/bench_report.py "$out" --update BENCHMARKS.md
else
    "$python" scripts/bench_report.py "$out" >/dev/null
    echo "bench: partial run; report in $out/report.md (BENCHMARKS.md is rewritten by full runs only)" >&2
fi
