#!/usr/bin/env bash
# Throwaway PostgreSQL 15 for the test suite: own data dir under /tmp, own loopback port,
# trust auth, durability off. Nothing here touches the machine's regular clusters.
#   pg-test.sh start   prints postgres://portcullis@127.0.0.1:PORT/portcullis_test
#   pg-test.sh env     prints `export PORTCULLIS_TEST_POSTGRES_URL=...` for the running one
#   pg-test.sh stop    stops it and deletes its data
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Inside .build so git ignores it; PGTEST_STATE lets two checkouts or runs keep apart.
state=${PGTEST_STATE:-$root/.build/pgtest}
pgbin=${PGBIN:-/usr/lib/postgresql/15/bin}
db_user=portcullis
db_name=portcullis_test

err() { echo "pg-test: error: $*" >&2; }

# initdb and postgres refuse to run as root, so as root they run as the postgres user.
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        # From / so the postgres user is never left in a directory it cannot read.
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

free_port() {
    # Bind to port 0 and let the kernel choose; a small race remains, start() retries on it.
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

stop() {
    [[ -f "$state/dir" ]] || return 0
    local dir
    dir=$(<"$state/dir")
    if [[ -d "$dir/data" ]]; then
        as_pg "$pgbin/pg_ctl" -D "$dir/data" -m immediate -s stop >/dev/null 2>&1 || true
    fi
    # Only ever delete what this script created.
    case "$dir" in
        /tmp/pgtest.*) rm -rf -- "$dir" ;;
        *) err "refusing to delete unexpected dir $dir" ;;
    esac
    rm -f "$state/dir" "$state/url"
}

start() {
    [[ -x "$pgbin/initdb" ]] || { err "$pgbin/initdb not found (run scripts/install-deps.sh)"; exit 1; }
    command -v python3 >/dev/null || { err "python3 is needed to pick a free port"; exit 1; }
    # A leftover from an interrupted run would hold its port and disk: clear it first.
    stop
    mkdir -p "$state"

    local dir
    dir=$(mktemp -d /tmp/pgtest.XXXXXX)
    echo "$dir" >"$state/dir"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres:postgres "$dir"
    fi

    # C locale with UTF8: the same collation everywhere, whatever LANG the machine has.
    if ! as_pg "$pgbin/initdb" --no-sync -D "$dir/data" -U "$db_user" --auth=trust \
        --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
        tail -n 30 "$dir/initdb.log" >&2
        err "initdb failed"
        stop
        exit 1
    fi

    local port attempt started=0
    for attempt in 1 2 3; do
        port=$(free_port)
        # -k: the socket goes to our dir (short path, always exists, unlike /var/run/postgresql).
        # max_connections: the Swift suite runs a hundred-odd tests at once, each with its own pools
        # (up to four connections, a follower's lane and its listen); a run peaked at 405 of 400.
        if as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -s start \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=1000" \
            >/dev/null 2>&1; then
            started=1
            break
        fi
        # Retry only when another process took the port between choosing and binding.
        grep -q "could not bind\|Address already in use" "$dir/server.log" 2>/dev/null || break
        echo "pg-test: port $port taken, retrying ($attempt)" >&2
    done
    if ((started == 0)); then
        echo "--- server log tail ($dir/server.log)" >&2
        tail -n 30 "$dir/server.log" >&2 2>/dev/null || true
        err "PostgreSQL did not start"
        stop
        exit 1
    fi

    # Over TCP, exactly as the tests will connect.
    if ! "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U "$db_user" "$db_name" >"$dir/createdb.log" 2>&1; then
        cat "$dir/createdb.log" >&2
        err "createdb $db_name failed"
        stop
        exit 1
    fi

    local url="postgres://$db_user@127.0.0.1:$port/$db_name"
    echo "$url" >"$state/url"
    echo "$url"
}

env_cmd() {
    [[ -f "$state/url" ]] || { err "not running (pg-test.sh start first)"; exit 1; }
    echo "export PORTCULLIS_TEST_POSTGRES_URL=$(<"$state/url")"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) env_cmd ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
