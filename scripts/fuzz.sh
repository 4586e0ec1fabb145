#!/usr/bin/env bash
# Property-based API fuzzing with schemathesis against a real `portcullis serve`, driven by the
# OpenAPI document the server itself serves at /openapi.yaml. The goal it enforces: no 5xx and no
# response that the document does not describe (status, content type, headers, body schema).
#
#   scripts/fuzz.sh                  full budget (`make fuzz`)
#   FUZZ_EXAMPLES=10 scripts/fuzz.sh short budget (`make test` runs this)
#
# Knobs (environment):
#   PORTCULLIS_BIN   server binary (default .build/debug/portcullis; this script builds nothing)
#   FUZZ_EXAMPLES    examples per operation and phase (default 100)
#   FUZZ_SEED        hypothesis seed (default 20250101): same binary + same seed = same run
#   FUZZ_WORKERS     concurrent schemathesis workers (default 1: a fixed order keeps the run
#                    deterministic, since operations change the state later ones see)
#   FUZZ_DATABASE    sqlite (default) or postgres: a fresh database on the server named by
#                    PORTCULLIS_TEST_POSTGRES_URL (scripts/pg-test.sh start), dropped afterwards
#   FUZZ_SCHEMA      fuzz against this OpenAPI file instead of the served one (to try edits of
#                    docs/openapi.yaml against a binary built before them)
#   FUZZ_REPORT_DIR  where the reports and server log go (default: a temp dir, kept on failure)
#   FUZZ_REPORTS     schemathesis report formats (default junit; e.g. junit,har records every request)
#
# Credentials: the root admin's access token for every operation, except those that would destroy
# it or the state the run works in (logout, deleting a session, changing the password, restore):
# each of those runs as a throwaway user of its own (scripts/fuzz_setup.py), so it is still fuzzed
# for real (restore up to its authorization check, since only root may restore).
# scripts/fuzz_hooks.py puts real seeded ids into some of the generated path ids (for deleting an
# org, the id of a spare org, so the org the run works in survives).
#
# Checks: all of schemathesis's (--checks all) except one:
#   positive_data_acceptance  demands an answer in 2xx/401/403/404/409/429 for every input that
#                             fits the schema, i.e. that the document states every rule the server
#                             checks. Many rules are not expressible in the schema or are not worth
#                             repeating there (object-string syntax, a time in the future, e-mail
#                             validity as the server parses it, rank rules that answer 400, 410 for
#                             an expired invite...), so it only reports 400s the document already
#                             describes in prose. Whether those 400s are documented at all is
#                             checked by status_code_conformance.
# negative_data_rejection stays on: SPEC §11 ignores unknown body fields, and the document allows
# them (no additionalProperties: false); where the server takes null as "left out", the document
# says so (type [..., "null"]). The five that carry the goal always stay on: not_a_server_error,
# status_code_conformance, content_type_conformance, response_schema_conformance,
# response_headers_conformance. Any failing check fails the run (exit 1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
python=${PYTHON:-python3}

bin=${PORTCULLIS_BIN:-$root/.build/debug/portcullis}
examples=${FUZZ_EXAMPLES:-100}
seed=${FUZZ_SEED:-20250101}
workers=${FUZZ_WORKERS:-1}
database=${FUZZ_DATABASE:-sqlite}

err() { echo "fuzz: error: $*" >&2; }
[[ -x "$bin" ]] || { err "server binary $bin not found; run \`make build\` (or set PORTCULLIS_BIN)"; exit 1; }
"$python" -c "import schemathesis" 2>/dev/null || { err "schemathesis not installed for $python; run scripts/install-deps.sh"; exit 1; }
[[ "$examples" =~ ^[1-9][0-9]*$ ]] || { err "FUZZ_EXAMPLES must be a positive number (got $examples)"; exit 1; }

work=$(mktemp -d /tmp/portcullis-fuzz.XXXXXX)
report=${FUZZ_REPORT_DIR:-$work/report}
mkdir -p "$report"
server_pid=""
pg_db=""
status=1
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n "$pg_db" ]]; then
        "$python" - "$PORTCULLIS_TEST_POSTGRES_URL" "$pg_db" <<'EOF' || true
import subprocess, sys
subprocess.run(["psql", "-q", "-X", sys.argv[1], "-c", f'DROP DATABASE IF EXISTS "{sys.argv[2]}"'], check=False)
EOF
    fi
    if ((status == 0)) && [[ -z "${FUZZ_REPORT_DIR:-}" ]]; then
        rm -rf -- "$work"
    else
        echo "fuzz: server log and report kept in $report" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

case "$database" in
    sqlite) db_url="sqlite:$work/p.db" ;;
    postgres)
        [[ -n "${PORTCULLIS_TEST_POSTGRES_URL:-}" ]] || { err "FUZZ_DATABASE=postgres needs PORTCULLIS_TEST_POSTGRES_URL (scripts/pg-test.sh start)"; exit 1; }
        command -v psql >/dev/null || { err "psql not found"; exit 1; }
        pg_db="fuzz_$$_$RANDOM"
        psql -q -X "$PORTCULLIS_TEST_POSTGRES_URL" -c "CREATE DATABASE \"$pg_db\"" >/dev/null
        db_url="${PORTCULLIS_TEST_POSTGRES_URL%/*}/$pg_db"
        ;;
    *) err "FUZZ_DATABASE must be sqlite or postgres (got $database)"; exit 1 ;;
esac

port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"
root_email="root@fuzz.example"
root_password="fuzz-root-password-1"
# Only these PORTCULLIS_* reach the server, so a developer's shell cannot steer it. Per-IP and
# per-account throttling are off or generous: every request comes from 127.0.0.1 and the fuzzer
# logs in and fails logins far more often than any person would. Its cwd is the temp dir.
env -i -C "$work" PATH="$PATH" HOME="${HOME:-/tmp}" \
    PORTCULLIS_DATABASE_URL="$db_url" \
    PORTCULLIS_HOST=127.0.0.1 \
    PORTCULLIS_PORT="$port" \
    PORTCULLIS_PUBLIC_URL="$base" \
    PORTCULLIS_MASTER_KEY_FILE="$work/master.key" \
    PORTCULLIS_ROOT_EMAIL="$root_email" \
    PORTCULLIS_ROOT_PASSWORD="$root_password" \
    PORTCULLIS_SIGNUP=open \
    PORTCULLIS_SMTP_URL=log \
    PORTCULLIS_LOG_LEVEL=warning \
    PORTCULLIS_IP_BURST=0 \
    PORTCULLIS_IP_PER_MINUTE=0 \
    PORTCULLIS_ACCOUNT_FAILURES_PER_HOUR=1000000 \
    "$bin" serve >"$report/server.log" 2>&1 </dev/null &
server_pid=$!
for _ in $(seq 1 300); do
    kill -0 "$server_pid" 2>/dev/null || { tail -n 40 "$report/server.log" >&2; err "the server exited during start-up"; exit 1; }
    curl -fsS -o /dev/null "$base/health" 2>/dev/null && break
    sleep 0.1
done
curl -fsS -o /dev/null "$base/health" || { tail -n 40 "$report/server.log" >&2; err "the server never became healthy"; exit 1; }

FUZZ_ROOT_EMAIL="$root_email" FUZZ_ROOT_PASSWORD="$root_password" FUZZ_EXAMPLES="$examples" \
    "$python" scripts/fuzz_setup.py "$base" "$work"

schema=${FUZZ_SCHEMA:-$base/openapi.yaml}
# The server names itself in `servers`; everything else must be the file as it is.
without_servers() { sed '/^servers:$/,/^[a-z]/{/^servers:$/d;/^  /d}'; }
if [[ -z "${FUZZ_SCHEMA:-}" ]] && ! cmp -s <(curl -fsS "$base/openapi.yaml" | without_servers) <(without_servers < docs/openapi.yaml); then
    echo "fuzz: warning: the served /openapi.yaml differs from docs/openapi.yaml (binary built before the last edit?)" >&2
fi

echo "fuzz: schemathesis against $schema on $database, $examples examples per operation, seed $seed" >&2
started=$SECONDS
st_status=0
# Hypothesis keeps caches in ./.hypothesis unless told otherwise: keep them out of the checkout.
HYPOTHESIS_STORAGE_DIRECTORY="$work/hypothesis" \
SCHEMATHESIS_HOOKS=fuzz_hooks PYTHONPATH="$root/scripts${PYTHONPATH:+:$PYTHONPATH}" \
FUZZ_IDS_FILE="$work/ids.json" \
    "$python" -m schemathesis.cli --config-file "$work/schemathesis.toml" --no-color run "$schema" \
    --url "$base" \
    --checks all \
    --exclude-checks positive_data_acceptance \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$examples" \
    --seed "$seed" \
    --generation-database none \
    --workers "$workers" \
    --request-timeout 10 \
    --continue-on-failure \
    --suppress-health-check too_slow,filter_too_much \
    --report "${FUZZ_REPORTS:-junit}" --report-dir "$report" \
    || st_status=$?
echo "fuzz: schemathesis finished in $((SECONDS - started))s with exit $st_status" >&2

if ! kill -0 "$server_pid" 2>/dev/null; then
    tail -n 40 "$report/server.log" >&2
    err "the server died during the run"
    st_status=1
fi
status=$st_status
exit "$status"
