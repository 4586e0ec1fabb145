"""Authorize latency while someone floods the login endpoint, with wrk, against a release server on SQLite.

    python3 scripts/bench_flood.py BINARY [--duration S]

Three runs, each on a fresh server, each the same paced `POST /v1/authorize` load (8 connections,
a random 0..10 ms pause between requests per connection):
  1. quiet        nothing else runs
  2. flood        a second wrk sends wrong-password logins for one account as fast as it can
                  (32 connections, one client address): the shipped abuse limits apply
  3. unthrottled  the same flood with the per-IP bucket off and the account limit at its maximum:
                  every attempt costs an argon2id hash, which shows what the limits save
The login counts per status come from the server's own /metrics. Prints JSON on stdout.
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

from bench_api import Api, running_server
from portcullis_server import read_metrics
from bench_http import say, wrk

PACE_MS = 5


def login_counts(base):
    text = read_metrics(base)
    counts = {}
    for m in re.finditer(r'portcullis_http_requests_total\{method="POST",route="/v1/auth/login",status="(\d+)"\} (\d+)', text):
        counts[m.group(1)] = int(m.group(2))
    return counts


def run(binary, tmp, name, duration, flood, settings):
    work = Path(tmp) / name
    work.mkdir()
    with running_server(binary, work, LOG_LEVEL="warning", **settings) as base:
        api = Api(base)
        _, token = api.signup_and_login(f"owner@{name}.example")
        owner = api.with_token(token)
        _, org = owner.call("POST", "/v1/orgs", {"name": "Flood"})
        assert owner.authorize(f"org:{org['id']}", "admin")
        owner.close()
        api.close()
        check = work / "authorize.json"
        check.write_text(json.dumps({"object": f"org:{org['id']}", "action": "viewer"}))
        attempt = work / "login.json"
        attempt.write_text(json.dumps({"email": f"owner@{name}.example", "password": "not the password"}))
        flood_result = {}
        flooder = None
        if flood:
            def go():
                flood_result.update(wrk(base + "/v1/auth/login", connections=32, body_file=attempt, duration=duration + 2, threads=1))
            flooder = threading.Thread(target=go)
            flooder.start()
        result = wrk(base + "/v1/authorize", connections=8, body_file=check, token=token, pace_ms=PACE_MS, duration=duration, threads=1)
        if flooder:
            flooder.join()
        result["login_statuses"] = login_counts(base)
        if flood_result:
            result["flood_requests_per_second"] = flood_result["requests_per_second"]
        lat = result["latency_us"]
        say(f"{name}: authorize {result['requests_per_second']:,.0f} req/s, p50 {lat['p50'] / 1000:.2f} ms, "
            f"p99 {lat['p99'] / 1000:.2f} ms; logins by status {result['login_statuses']}"
            + (f", flood {flood_result['requests_per_second']:,.0f} req/s" if flood_result else ""))
        return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", type=Path)
    ap.add_argument("--duration", type=int, default=15)
    args = ap.parse_args()
    binary = args.binary.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        quiet = run(binary, tmp, "quiet", args.duration, False, {})
        flood = run(binary, tmp, "flood", args.duration, True, {})
        open_ = run(binary, tmp, "unthrottled", args.duration, True, {"IP_BURST": "0", "ACCOUNT_FAILURES_PER_HOUR": "1000000"})
    result = {
        "quiet": quiet, "flood": flood, "unthrottled": open_,
        "p99_flood_to_quiet": flood["latency_us"]["p99"] / quiet["latency_us"]["p99"],
        "p99_unthrottled_to_quiet": open_["latency_us"]["p99"] / quiet["latency_us"]["p99"],
        "pace_ms": PACE_MS,
    }
    say(f"authorize p99: quiet {quiet['latency_us']['p99'] / 1000:.2f} ms, under a throttled login flood "
        f"{flood['latency_us']['p99'] / 1000:.2f} ms, under an unthrottled flood {open_['latency_us']['p99'] / 1000:.2f} ms")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
