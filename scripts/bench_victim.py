"""A hostile tenant against one node (issue 21): another tenant's authorize latency while a signed-up user
spends the server's CPU on decisions about its own grants, with wrk, against a release server on SQLite.

    python3 scripts/bench_victim.py BINARY [--duration S] [--bindings N]

The tenant makes an org and, for a second account of its own, N role bindings (default 1,000, the
per-principal quota) on long resource paths. Then, as that account, it asks as fast as it can:
  lookup     POST /v1/lookup over every object it holds
  batch      POST /v1/authorize/batch, 1,000 checks on long objects
The victim, another user in another org, sends a paced POST /v1/authorize load (8 connections,
a pause of up to 10 ms between requests). Two runs on fresh servers: quiet (victim only) and
hostile (victim plus both attacks). Also timed alone, one request at a time: one lookup and one batch.
Prints JSON on stdout.
"""
import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench_api import Api, running_server
from bench_http import say, wrk

PACE_MS = 5
DEPTH = 8


def long_path(i):
    return "/".join(f"level{d}:{'x' * 40}{i}" for d in range(DEPTH))


def setup(base, bindings):
    api = Api(base)
    _, attacker_token = api.signup_and_login("tenant@hostile.example")
    attacker = api.with_token(attacker_token)
    second_id, second_token = api.signup_and_login("puppet@hostile.example")
    _, org = attacker.call("POST", "/v1/orgs", {"name": "Hostile"})
    org_id = org["id"]
    for i in range(bindings):
        attacker.call("PUT", f"/v1/orgs/{org_id}/bindings", {
            "subject": {"user_id": second_id}, "resource": f"org:{org_id}/{long_path(i)}", "role": "viewer"})
    _, victim_token = api.signup_and_login("victim@calm.example")
    victim = api.with_token(victim_token)
    _, victim_org = victim.call("POST", "/v1/orgs", {"name": "Calm"})
    assert victim.authorize(f"org:{victim_org['id']}", "viewer")
    for a in (attacker, victim, api):
        a.close()
    return org_id, second_token, victim_org["id"], victim_token


def timed(base, path, token, body, rounds=5):
    data = json.dumps(body).encode()
    times = []
    for _ in range(rounds):
        request = urllib.request.Request(base + path, data=data, method="POST",
                                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as r:
            r.read()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def run(binary, tmp, name, duration, bindings, hostile):
    work = Path(tmp) / name
    work.mkdir()
    settings = {"LOG_LEVEL": "warning", "WRITES_PER_USER_PER_MINUTE": "0", "IP_BURST": "0"}
    with running_server(binary, work, **settings) as base:
        org, puppet, victim_org, victim = setup(base, bindings)
        lookup = {"permission": "viewer", "type": "level7", "limit": 100}
        batch = {"checks": [{"object": f"org:{org}/{long_path(i)}/leaf:{i}", "action": "viewer"} for i in range(1000)]}
        alone = {"lookup_ms": timed(base, "/v1/lookup", puppet, lookup), "batch_ms": timed(base, "/v1/authorize/batch", puppet, batch)}
        files = {}
        for label, body in (("victim", {"object": f"org:{victim_org}", "action": "viewer"}), ("lookup", lookup), ("batch", batch)):
            files[label] = work / f"{label}.json"
            files[label].write_text(json.dumps(body))
        attacks, threads = {}, []
        if hostile:
            for label, path in (("lookup", "/v1/lookup"), ("batch", "/v1/authorize/batch")):
                def go(label=label, path=path):
                    attacks[label] = wrk(base + path, connections=4, body_file=files[label], token=puppet, duration=duration + 2, threads=1)
                threads.append(threading.Thread(target=go))
            for t in threads:
                t.start()
            time.sleep(1)
        result = wrk(base + "/v1/authorize", connections=8, body_file=files["victim"], token=victim, pace_ms=PACE_MS, duration=duration, threads=1)
        for t in threads:
            t.join()
        result.update(alone)
        result["attacks"] = {k: {"requests_per_second": v["requests_per_second"], "latency_us": v["latency_us"]} for k, v in attacks.items()}
        lat = result["latency_us"]
        say(f"{name}: victim authorize p50 {lat['p50'] / 1000:.2f} ms, p99 {lat['p99'] / 1000:.2f} ms; alone: lookup "
            f"{alone['lookup_ms']:.1f} ms, 1,000-check batch {alone['batch_ms']:.1f} ms"
            + "".join(f"; {k} {v['requests_per_second']:,.0f} req/s" for k, v in attacks.items()))
        return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", type=Path)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--bindings", type=int, default=1000)
    args = ap.parse_args()
    binary = args.binary.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        quiet = run(binary, tmp, "quiet", args.duration, args.bindings, False)
        hostile = run(binary, tmp, "hostile", args.duration, args.bindings, True)
    result = {"quiet": quiet, "hostile": hostile, "bindings": args.bindings, "depth": DEPTH, "pace_ms": PACE_MS,
              "p99_hostile_to_quiet": hostile["latency_us"]["p99"] / quiet["latency_us"]["p99"]}
    say(f"victim authorize p99: quiet {quiet['latency_us']['p99'] / 1000:.2f} ms, with a hostile tenant "
        f"{hostile['latency_us']['p99'] / 1000:.2f} ms")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
