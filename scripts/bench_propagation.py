"""Cross-node propagation: two `portcullis serve` nodes on one PostgreSQL database.

    python3 scripts/bench_propagation.py BINARY POSTGRES_URL [--trials N]

Node A takes the writes, node B answers the decisions. An owner (on A) creates an org and adds
a member M as viewer. Each trial removes M (DELETE /v1/orgs/{org}/members/{M}) or adds it back
(POST …/members) on A; from A's 2xx on, M asks B about itself (POST /v1/authorize, object
org:<id>, action viewer) in a tight loop until B's answer flips. The time from A's answer to
B's flipped answer is one sample. Trials start at random offsets (0-100 ms apart) so they do
not line up with B's change-log polling. B's follower is woken by PostgreSQL's NOTIFY at A's
commit; its poll (every 50 ms, the server's default) is only the fallback. Prints JSON on stdout,
human lines on stderr.
"""
import argparse
import base64
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_api import Api, running_server


def say(line):
    print(line, file=sys.stderr, flush=True)


# Lets the benchmark read B's /metrics (a token is 32 characters at least).
METRICS_TOKEN = "bench-metrics-" + "0" * 32


def org_loads(base: str) -> int:
    """How many times the node has loaded an org's grants from the database (its /metrics)."""
    # /metrics is text, not JSON: one plain request on the client's connection.
    api = Api(base)
    api.conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    text = api.conn.getresponse().read().decode()
    api.close()
    for line in text.splitlines():
        if line.startswith("portcullis_grant_cache_misses_total"):
            return int(float(line.split()[-1]))
    sys.exit("bench_propagation: node B's /metrics has no portcullis_grant_cache_misses_total")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", type=Path)
    ap.add_argument("postgres_url")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=5.0, help="give up on one trial after this many seconds")
    args = ap.parse_args()
    binary = args.binary.resolve()
    # Both nodes must unseal the same signing keys and issue tokens with the same issuer.
    shared = dict(
        DATABASE_URL=args.postgres_url,
        MASTER_KEY=base64.b64encode(os.urandom(32)).decode(),
        ISSUER="http://portcullis.bench",
        LOG_LEVEL="warning",
        METRICS_TOKEN=METRICS_TOKEN,
    )
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "a").mkdir()
        (Path(tmp) / "b").mkdir()
        with running_server(binary, Path(tmp) / "a", **shared) as base_a, \
                running_server(binary, Path(tmp) / "b", **shared) as base_b:
            a = Api(base_a)
            _, owner_token = a.signup_and_login(f"owner-{os.getpid()}@bench.example")
            owner = a.with_token(owner_token)
            _, org = owner.call("POST", "/v1/orgs", {"name": "Propagation"})
            org_id = org["id"]
            member_id, _ = a.signup_and_login(f"member-{os.getpid()}@bench.example")
            owner.call("POST", f"/v1/orgs/{org_id}/members", {"user_id": member_id, "role": "viewer"})
            # M signs in on B and only ever talks to B.
            b = Api(base_b)
            _, tokens = b.call("POST", "/v1/auth/login", {"email": f"member-{os.getpid()}@bench.example",
                                                          "password": "correct horse battery"})
            asker = b.with_token(tokens["access_token"])
            obj = f"org:{org_id}"
            deadline = time.monotonic() + 5
            while not asker.authorize(obj, "viewer"):
                if time.monotonic() > deadline:
                    sys.exit("bench_propagation: node B never saw the membership")
            say(f"propagation: nodes {base_a} (writes) and {base_b} (decisions) on PostgreSQL, org {org_id}")

            member = True
            samples, polls, failures = [], [], 0
            loads_before = org_loads(base_b)
            for _ in range(args.trials):
                time.sleep(rng.uniform(0, 0.1))
                if member:
                    owner.call("DELETE", f"/v1/orgs/{org_id}/members/{member_id}")
                else:
                    owner.call("POST", f"/v1/orgs/{org_id}/members", {"user_id": member_id, "role": "viewer"})
                written = time.perf_counter()
                member = not member
                n = 0
                while True:
                    n += 1
                    allowed = asker.authorize(obj, "viewer")
                    now = time.perf_counter()
                    if allowed == member:
                        samples.append((now - written) * 1000)
                        polls.append(n)
                        break
                    if now - written > args.timeout:
                        failures += 1
                        # Wait for B to catch up before the next trial.
                        while asker.authorize(obj, "viewer") != member:
                            time.sleep(0.01)
                        break
            b_org_loads = org_loads(base_b) - loads_before
            for c in (a, b, owner, asker):
                c.close()

    samples.sort()

    def q(p):
        return samples[min(len(samples) - 1, int(p * len(samples)))]

    result = {
        "trials": args.trials,
        "failures": failures,
        "poll_interval_ms": 50,
        "wake": "LISTEN/NOTIFY",
        "p50_ms": statistics.median(samples),
        "p90_ms": q(0.90),
        "p99_ms": q(0.99),
        "max_ms": samples[-1],
        "min_ms": samples[0],
        "mean_polls_per_trial": statistics.mean(polls),
        # Loads of the org's grants on B during the trials: each change is patched in, not reloaded.
        "b_org_loads": b_org_loads,
        "target": "p99 <= 10 ms",
    }
    say(f"propagation over {len(samples)} trials ({failures} gave up after {args.timeout:.0f} s): "
        f"p50 {result['p50_ms']:.1f} ms, p90 {result['p90_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
        f"max {result['max_ms']:.1f} ms ({result['mean_polls_per_trial']:.0f} authorize calls per trial on average; "
        f"B loaded the org {b_org_loads} times)")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
