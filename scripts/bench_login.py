"""Login latency: N sequential logins against a fresh server on SQLite; prints percentiles.

    python3 scripts/bench_login.py BINARY N [RESULT_JSON]
"""
import json, statistics, sys, tempfile, time, urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "blackbox"))
from portcullis_server import running_server  # noqa: E402


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def main():
    # The per-address sign-in throttle (PORTCULLIS_IP_BURST, 50 by default) is off: this measures
    # the argon2id cost of one login, not the throttle (bench_flood.py measures that).
    binary, n = Path(sys.argv[1]).resolve(), int(sys.argv[2])
    credentials = {"email": "bench@example.com", "password": "correct horse battery"}
    with tempfile.TemporaryDirectory() as tmp, running_server(binary, Path(tmp), LOG_LEVEL="warning", IP_BURST="0") as base:
        post(base + "/v1/users", credentials)
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            post(base + "/v1/auth/login", credentials)
            samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    q = lambda p: samples[min(len(samples) - 1, int(p * len(samples)))]
    print(f"login latency over {n} sequential logins (the server's shipped argon2id parameters): "
          f"p50 {statistics.median(samples):.1f} ms, p90 {q(0.9):.1f} ms, p99 {q(0.99):.1f} ms")
    if len(sys.argv) > 3:
        Path(sys.argv[3]).write_text(json.dumps(
            {"logins": n, "p50_ms": statistics.median(samples), "p90_ms": q(0.9), "p99_ms": q(0.99)}, indent=2))


if __name__ == "__main__":
    main()
