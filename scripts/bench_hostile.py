"""A hostile tenant (issue 21), against one server on SQLite.

    python3 scripts/bench_hostile.py BINARY [--bindings N]

A user makes an org and writes N (default 5,000) bindings with long resource paths (four
levels, ~800 characters, sharing a long prefix) for a second account; then, as that account:
  lookup        POST /v1/lookup over everything it holds (one page; total = N)
  batch         POST /v1/authorize/batch, 1,000 checks on long objects (cached, then strong)
  capabilities  POST /v1/capabilities, 1,000 long objects
  evaluations   POST /access/v1/evaluations, 1,000 long objects
Each is timed over a few runs (median ms). The quota per principal is raised to N for the
set-up: the engine must stay cheap even for a tenant at its quota. Prints JSON on stdout.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_api import Api, running_server

PREFIX = "/doc:" + "a" * 200 + "/page:" + "b" * 200 + "/sec:" + "c" * 200


def path(i: int) -> str:
    return f"{PREFIX}/para:{'d' * 180}-{i}"


def timed(runs, fn):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--bindings", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    n = args.bindings
    with tempfile.TemporaryDirectory() as tmp, running_server(
        Path(args.binary), Path(tmp), LOG_LEVEL="warning",
        MAX_BINDINGS_PER_PRINCIPAL=str(max(n, 1000)), MAX_BINDINGS_PER_ORG=str(max(n, 10000)),
        WRITES_PER_USER_PER_MINUTE="0",
    ) as base:
        api = Api(base)
        _, owner_token = api.signup_and_login("mallory@hostile.example")
        victim_id, victim_token = api.signup_and_login("victim@hostile.example")
        owner, victim = api.with_token(owner_token), api.with_token(victim_token)
        _, org = owner.call("POST", "/v1/orgs", {"name": "Hostile"})
        o = org["id"]
        t = time.perf_counter()
        for i in range(n):
            owner.call("PUT", f"/v1/orgs/{o}/bindings",
                       {"subject": {"user_id": victim_id}, "resource": f"org:{o}{path(i)}", "role": "viewer"})
        setup_s = round(time.perf_counter() - t, 1)
        print(f"bench_hostile: {n} bindings written in {setup_s} s", file=sys.stderr)
        objects = [f"org:{o}{path(i)}/line:{'e' * 150}" for i in range(1000)]
        results = {"bindings": n, "setup_s": setup_s}

        def lookup():
            _, r = victim.call("POST", "/v1/lookup", {"permission": "viewer", "type": "para"})
            assert r["total"] == n, r.get("total")
        results["lookup_ms"] = timed(args.runs, lookup)

        def batch(consistency):
            def go():
                _, r = victim.call("POST", "/v1/authorize/batch", {
                    "checks": [{"object": x, "action": "viewer"} for x in objects], "consistency": consistency})
                assert all(d["allowed"] for d in r["results"])
            return go
        results["batch_cached_ms"] = timed(args.runs, batch("cached"))
        results["batch_strong_ms"] = timed(args.runs, batch("strong"))

        def capabilities():
            _, r = victim.call("POST", "/v1/capabilities", {"objects": objects})
            assert all(c["role"] == "viewer" for c in r["results"])
        results["capabilities_ms"] = timed(args.runs, capabilities)

        def evaluations():
            _, r = victim.call("POST", "/access/v1/evaluations", {
                "subject": {"type": "user", "id": victim_id}, "action": {"name": "viewer"},
                "evaluations": [{"resource": {"type": "line", "id": x}} for x in objects]})
            assert all(e["decision"] for e in r["evaluations"])
        results["evaluations_ms"] = timed(args.runs, evaluations)
        for c in (owner, victim, api):
            c.close()
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
