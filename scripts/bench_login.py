"""Login latency: N sequential logins against a fresh server on SQLite; prints percentiles."""
import json, os, socket, statistics, subprocess, sys, tempfile, time, urllib.request

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status

def main():
    binary, n = sys.argv[1], int(sys.argv[2])
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
        env.update(PORTCULLIS_DATABASE_URL=f"sqlite:{tmp}/p.db", PORTCULLIS_PORT=str(port),
                   PORTCULLIS_MASTER_KEY_FILE=f"{tmp}/master.key", PORTCULLIS_LOG_LEVEL="warning")
        server = subprocess.Popen([os.path.abspath(binary), "serve"], cwd=tmp, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    urllib.request.urlopen(base + "/health", timeout=1)
                    break
                except Exception:
                    time.sleep(0.1)
            post(base + "/v1/users", {"email": "bench@example.com", "password": "correct horse battery"})
            samples = []
            for _ in range(n):
                t = time.perf_counter()
                post(base + "/v1/auth/login", {"email": "bench@example.com", "password": "correct horse battery"})
                samples.append((time.perf_counter() - t) * 1000)
            samples.sort()
            q = lambda p: samples[min(len(samples) - 1, int(p * len(samples)))]
            print(f"login latency over {n} sequential logins (argon2id m=19456 KiB, t=2, p=1): "
                  f"p50 {statistics.median(samples):.1f} ms, p90 {q(0.9):.1f} ms, p99 {q(0.99):.1f} ms")
        finally:
            server.terminate()
            server.wait(timeout=10)

if __name__ == "__main__":
    main()
