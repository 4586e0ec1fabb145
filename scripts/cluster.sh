#!/usr/bin/env bash
# A throwaway three-node Portcullis cluster on loopback, for trying multi-node set-ups and for the
# cluster tests: one PostgreSQL (pg-test.sh with its own PGTEST_STATE), three `portcullis serve`
# nodes sharing it and one master key, and nginx round-robin in front (X-Forwarded-For set; the
# nodes trust 127.0.0.1 as their proxy). Everything lives under $CLUSTER_STATE; nothing touches the
# machine's own PostgreSQL or nginx configuration.
#   cluster.sh start    prints the nginx URL and the root credentials
#   cluster.sh status   which processes run, and each node's /ready
#   cluster.sh stop     stops everything and deletes the state (database included)
# Environment: PORTCULLIS_BIN (default .build/debug/portcullis), CLUSTER_STATE (default
# /tmp/portcullis-cluster), CLUSTER_NODES (default 3), CLUSTER_PORT (nginx port, default a free one);
# PORTCULLIS_* settings you export reach every node (except those set here).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${CLUSTER_STATE:-/tmp/portcullis-cluster}
bin=${PORTCULLIS_BIN:-$root/.build/debug/portcullis}
count=${CLUSTER_NODES:-3}
nginx=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

err() { echo "cluster: error: $*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

alive() { [[ -f "$1" ]] && kill -0 "$(<"$1")" 2>/dev/null; }

wait_http() {  # url seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        curl -sf -o /dev/null --max-time 1 "$1" && return 0
        sleep 0.1
    done
    return 1
}

stop() {
    [[ -d "$state" ]] || return 0
    local f pid i
    for f in "$state"/nginx.pid "$state"/node*.pid; do
        [[ -f "$f" ]] || continue
        pid=$(<"$f")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$f"
    done
    PGTEST_STATE="$state/pg" "$root/scripts/pg-test.sh" stop
    # Only ever delete what this script created.
    if [[ -f "$state/.portcullis-cluster" ]]; then
        rm -rf -- "$state"
    fi
}

start() {
    [[ -x "$bin" ]] || { err "server binary $bin not found (make build, or set PORTCULLIS_BIN)"; exit 1; }
    [[ -x "$nginx" ]] || { err "nginx not found (scripts/install-deps.sh installs it)"; exit 1; }
    stop
    mkdir -p "$state"
    touch "$state/.portcullis-cluster"
    # From here on a failure tears down what was started.
    trap 'status=$?; if ((status != 0)); then err "start failed; logs in $state were:"; tail -n 5 "$state"/*.log >&2 2>/dev/null; stop; fi' EXIT

    local db_url
    db_url=$(PGTEST_STATE="$state/pg" "$root/scripts/pg-test.sh" start)

    # One master key for every node: the signing keys in the database are sealed with it.
    python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())' >"$state/master.key"
    chmod 600 "$state/master.key"
    local root_email=${PORTCULLIS_ROOT_EMAIL:-root@cluster.local}
    local root_password=${PORTCULLIS_ROOT_PASSWORD:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')}
    local lb_port=${CLUSTER_PORT:-$(free_port)}
    # Clients, tokens and mailed links all name the balancer, so a token from any node verifies on every node.
    local public="http://127.0.0.1:$lb_port"

    # Migrations run at start-up under an advisory lock; the first node creates the root admin.
    local n port upstream=""
    for ((n = 1; n <= count; n++)); do
        port=$(free_port)
        echo "$port" >"$state/node$n.port"
        upstream+="        server 127.0.0.1:$port max_fails=1 fail_timeout=2s;"$'\n'
        (
            cd "$state"
            export PORTCULLIS_DATABASE_URL="$db_url" PORTCULLIS_HOST=127.0.0.1 PORTCULLIS_PORT="$port" \
                PORTCULLIS_MASTER_KEY_FILE="$state/master.key" PORTCULLIS_PUBLIC_URL="$public" \
                PORTCULLIS_ISSUER="$public" PORTCULLIS_TRUSTED_PROXIES=127.0.0.1 \
                PORTCULLIS_ROOT_EMAIL="$root_email" PORTCULLIS_ROOT_PASSWORD="$root_password" \
                PORTCULLIS_SMTP_URL="${PORTCULLIS_SMTP_URL:-log}"
            exec "$bin" serve </dev/null >"$state/node$n.log" 2>&1
        ) &
        echo $! >"$state/node$n.pid"
        wait_http "http://127.0.0.1:$port/health" 60 || { err "node $n did not start"; exit 1; }
    done

    mkdir -p "$state/nginx-temp"
    cat >"$state/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $state/nginx.pid;
error_log $state/nginx-error.log warn;
events { worker_connections 1024; }
http {
    log_format upstream '\$remote_addr "\$request" \$status \$upstream_addr \$request_time';
    access_log $state/nginx-access.log upstream;
    client_body_temp_path $state/nginx-temp/body;
    proxy_temp_path $state/nginx-temp/proxy;
    fastcgi_temp_path $state/nginx-temp/fastcgi;
    uwsgi_temp_path $state/nginx-temp/uwsgi;
    scgi_temp_path $state/nginx-temp/scgi;
    client_max_body_size 2m;
    upstream portcullis {
$upstream        keepalive 32;
    }
    server {
        listen 127.0.0.1:$lb_port;
        location / {
            proxy_pass http://portcullis;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            # Server-sent events (/v1/watch) go through unbuffered.
            proxy_buffering off;
            proxy_read_timeout 1h;
            # Only idempotent requests move to another node when one is down.
            proxy_next_upstream error timeout http_502;
        }
    }
}
EOF
    "$nginx" -t -q -p "$state" -c "$state/nginx.conf" -e "$state/nginx-error.log" 2>>"$state/nginx-error.log" \
        || { err "nginx configuration rejected"; exit 1; }
    "$nginx" -p "$state" -c "$state/nginx.conf" -e "$state/nginx-error.log" </dev/null >>"$state/nginx-error.log" 2>&1 &
    wait_http "$public/health" 30 || { err "nginx did not come up"; exit 1; }
    trap - EXIT

    printf '%s\n' "$public" >"$state/url"
    printf 'email=%s\npassword=%s\n' "$root_email" "$root_password" >"$state/root"
    chmod 600 "$state/root"
    echo "cluster: $count nodes on PostgreSQL $db_url, nginx in front; state in $state" >&2
    echo "URL=$public"
    echo "ROOT_EMAIL=$root_email"
    echo "ROOT_PASSWORD=$root_password"
}

status() {
    [[ -d "$state" && -f "$state/url" ]] || { echo "cluster: not running"; return 1; }
    local url n ok=0
    url=$(<"$state/url")
    for ((n = 1; n <= count; n++)); do
        [[ -f "$state/node$n.pid" ]] || continue
        if alive "$state/node$n.pid"; then
            printf 'node%d pid %s port %s ready %s\n' "$n" "$(<"$state/node$n.pid")" "$(<"$state/node$n.port")" \
                "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$(<"$state/node$n.port")/ready")"
        else
            printf 'node%d down\n' "$n"; ok=1
        fi
    done
    if alive "$state/nginx.pid"; then
        printf 'nginx pid %s %s ready %s\n' "$(<"$state/nginx.pid")" "$url" \
            "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$url/ready")"
    else
        echo "nginx down"; ok=1
    fi
    printf 'postgres %s\n' "$(cat "$state/pg/url" 2>/dev/null || echo down)"
    return $ok
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
