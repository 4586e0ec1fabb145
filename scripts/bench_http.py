"""HTTP throughput of the decision API with wrk, against a release `portcullis serve` on SQLite.

    python3 scripts/bench_http.py BINARY [--duration S] [--threads N] [--connections N]

Sets up one org through the API (an owner, three members with different roles, one binding),
then runs wrk (scripts/wrk/bench.lua) in this order:
  1. GET /health                          saturating: the framework's ceiling on this machine
  2. POST /v1/authorize                   saturating: the caller (a viewer member) asking about itself
  3. POST /v1/authorize/batch             saturating: 1000 checks per request
  4. POST /v1/authorize paced             about half of run 2's rate (wrk's delay() hook)
     GET /health paced                    the same connections and pace: the p99 floor of the
                                          framework and the scheduler at that rate, no decision in it
  5. POST /v1/authorize, 1 connection     one request at a time: the floor latency
wrk and the server share the machine's cores. Prints JSON on stdout, human lines on stderr.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_api import Api, running_server

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "bench.lua"


def say(line):
    print(line, file=sys.stderr, flush=True)


def wrk(url, *, duration, threads, connections, body_file=None, token=None, pace_ms=None):
    env = dict(os.environ)
    env.update(WRK_BODY_FILE=str(body_file or ""), WRK_TOKEN=token or "", WRK_PACE_MS=str(pace_ms or ""))
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "-s", str(WRK_SCRIPT), url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    m = re.search(r"^WRKJSON (.*)$", out, re.M)
    if not m:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    r = json.loads(m.group(1))
    r["requests_per_second"] = r["requests"] / (r["duration_us"] / 1e6)
    r["threads"], r["connections"], r["duration_s"] = threads, connections, duration
    if pace_ms:
        r["pace_ms"] = pace_ms
    bad = sum(r["errors"].values())
    if bad:
        say(f"WARNING: {url}: {r['errors']}")
    return r


def line(name, r, unit="req/s", scale=1):
    lat = r["latency_us"]
    return (f"{name}: {r['requests_per_second'] * scale:,.0f} {unit} ({r['connections']} connections); latency p50 "
            f"{lat['p50'] / 1000:.2f} ms, p90 {lat['p90'] / 1000:.2f} ms, p99 {lat['p99'] / 1000:.2f} ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", type=Path)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--batch-connections", type=int, default=16)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench_http: wrk is not installed (scripts/bench.sh installs it)")
    common = dict(duration=args.duration, threads=args.threads)

    with tempfile.TemporaryDirectory() as tmp, running_server(args.binary.resolve(), Path(tmp), LOG_LEVEL="warning") as base:
        api = Api(base)
        owner_id, owner_token = api.signup_and_login("owner@bench.example")
        owner = api.with_token(owner_token)
        _, org = owner.call("POST", "/v1/orgs", {"name": "Bench"})
        org_id = org["id"]
        members = {}
        for role in ("viewer", "editor", "admin"):
            uid, token = api.signup_and_login(f"{role}@bench.example")
            owner.call("POST", f"/v1/orgs/{org_id}/members", {"user_id": uid, "role": role})
            members[role] = (uid, token)
        viewer_id, viewer_token = members["viewer"]
        owner.call("PUT", f"/v1/orgs/{org_id}/bindings",
                   {"subject": {"user_id": viewer_id}, "resource": f"org:{org_id}/project:1", "role": "editor"})
        caller = api.with_token(viewer_token)
        assert caller.authorize(f"org:{org_id}", "viewer"), "the viewer member should be allowed"
        assert caller.authorize(f"org:{org_id}/project:1/doc:7", "editor"), "the binding should apply below project:1"
        assert not caller.authorize(f"org:{org_id}", "editor"), "the viewer member is not an editor of the org"

        single = Path(tmp) / "authorize.json"
        single.write_text(json.dumps({"object": f"org:{org_id}", "action": "viewer"}))
        actions = ["viewer", "editor", "org.read", "admin"]
        objects = [f"org:{org_id}", f"org:{org_id}/project:1", f"org:{org_id}/project:1/doc:{{i}}", f"org:{org_id}/project:2/doc:{{i}}"]
        checks = [{"object": objects[i % 4].format(i=i % 50), "action": actions[(i // 4) % 4]} for i in range(1000)]
        batch = Path(tmp) / "batch.json"
        batch.write_text(json.dumps({"checks": checks}))
        _, answer = caller.call("POST", "/v1/authorize/batch", {"checks": checks})
        assert len(answer["results"]) == 1000
        batch_allowed = sum(r["allowed"] for r in answer["results"])
        caller.close()
        api.close()
        owner.close()
        say(f"http: server up on {base}, org {org_id}, caller {viewer_id} (viewer, editor binding on project:1)")

        health = wrk(base + "/health", connections=args.connections, **common)
        say(line("GET /health", health))
        authorize = wrk(base + "/v1/authorize", connections=args.connections, body_file=single, token=viewer_token, **common)
        say(line("POST /v1/authorize", authorize))
        batched = wrk(base + "/v1/authorize/batch", connections=args.batch_connections, body_file=batch, token=viewer_token, **common)
        say(line("POST /v1/authorize/batch (1000 checks)", batched, "decisions/s", 1000))

        # About half of the saturating rate: connections × 1000 / (mean pace + latency) requests/s.
        target = authorize["requests_per_second"] / 2
        pace = 10
        connections = max(2, round(target * (pace + 0.3) / 1000))
        paced = wrk(base + "/v1/authorize", connections=connections, body_file=single, token=viewer_token, pace_ms=pace, **common)
        paced["target_requests_per_second"] = target
        say(line(f"POST /v1/authorize paced (target {target:,.0f} req/s)", paced))
        health_paced = wrk(base + "/health", connections=connections, pace_ms=pace, **common)
        say(line("GET /health paced (same connections and pace)", health_paced))
        one = wrk(base + "/v1/authorize", connections=1, body_file=single, token=viewer_token,
                  duration=max(3, args.duration // 2), threads=1)
        say(line("POST /v1/authorize, one connection", one))

    result = {
        "health": health,
        "authorize": authorize,
        "authorize_to_health": authorize["requests_per_second"] / health["requests_per_second"],
        "batch": batched,
        "batch_checks_per_request": 1000,
        "batch_allowed_per_request": batch_allowed,
        "batch_decisions_per_second": batched["requests_per_second"] * 1000,
        "authorize_paced": paced,
        "paced_fraction_of_max": paced["requests_per_second"] / authorize["requests_per_second"],
        "health_paced": health_paced,
        "authorize_one_connection": one,
        "wrk_version": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip(),
    }
    say(f"authorize / health = {result['authorize_to_health']:.2f}; paced run at "
        f"{100 * result['paced_fraction_of_max']:.0f} % of the saturating rate")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
