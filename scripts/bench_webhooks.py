"""Webhook delivery throughput to local receivers.

    python3 scripts/bench_webhooks.py BINARY [--events N]

A server on SQLite with endpoints pointing at a threaded receiver on loopback (answers 204 at once,
checks one signature in 50 with the `standardwebhooks` library). First the server runs with its
sender asleep (PORTCULLIS_WEBHOOK_POLL_MS of a minute) while N changes are made, so N events wait
for each endpoint; then it restarts with a 10 ms poll and the time until every event has arrived is
measured: events delivered per second from a backlog, for one endpoint (strictly in order, one
request at a time) and for four endpoints side by side. Prints JSON on stdout.
"""
import argparse
import json
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench_api import Api, running_server
from standardwebhooks.webhooks import Webhook


def say(line):
    print(line, file=sys.stderr, flush=True)


class Receiver:
    def __init__(self):
        self.lock = threading.Lock()
        self.seen: dict[str, list[str]] = {}
        self.order: dict[str, list[int]] = {}
        self.secrets: dict[str, str] = {}
        self.bad = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                event_id = self.headers["webhook-id"]
                number = int(json.loads(body)["data"]["description"].split()[-1])
                with receiver.lock:
                    got = receiver.seen.setdefault(self.path, [])
                    got.append(event_id)
                    receiver.order.setdefault(self.path, []).append(number)
                    check = len(got) % 50 == 1
                if check:
                    try:
                        Webhook(receiver.secrets[self.path]).verify(body, dict(self.headers))
                    except Exception:  # noqa: BLE001
                        with receiver.lock:
                            receiver.bad += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, path):
        with self.lock:
            return len(set(self.seen.get(path, [])))


def run(binary: Path, events: int, endpoints: int, tmp: Path, receiver: Receiver) -> dict:
    settings = dict(WEBHOOK_ALLOW_PRIVATE="true", LOG_LEVEL="warning", ROOT_EMAIL="root@bench.example", ROOT_PASSWORD="bench root password 1")
    paths = [f"/run{endpoints}/hook{n}" for n in range(endpoints)]
    with running_server(binary, tmp, WEBHOOK_POLL_MS="60000", **settings) as base:
        api = Api(base)
        _, tokens = api.call("POST", "/v1/auth/login", {"email": settings["ROOT_EMAIL"], "password": settings["ROOT_PASSWORD"]})
        api = api.with_token(tokens["access_token"])
        _, org = api.call("POST", "/v1/orgs", {"name": f"bench-{endpoints}"})
        for path in paths:
            _, hook = api.call("POST", f"/v1/orgs/{org['id']}/webhooks",
                               {"url": f"http://127.0.0.1:{receiver.port}{path}", "event_types": ["org.updated"]})
            receiver.secrets[path] = hook["secret"]
        started = time.monotonic()
        for n in range(events):
            api.call("PATCH", f"/v1/orgs/{org['id']}", {"description": f"change {n}"})
        write_rate = events / (time.monotonic() - started)
        api.close()
    say(f"  {events} changes queued for {endpoints} endpoint(s) ({write_rate:.0f} writes/s); restarting with the sender on")
    with running_server(binary, tmp, WEBHOOK_POLL_MS="10", **settings):
        started = time.monotonic()
        deadline = started + 600
        while time.monotonic() < deadline and any(receiver.count(p) < events for p in paths):
            time.sleep(0.01)
        elapsed = time.monotonic() - started
    delivered = sum(receiver.count(p) for p in paths)
    # First arrivals in the order the changes were made (a retry may repeat one, never reorder).
    firsts = {p: list(dict.fromkeys(receiver.order[p])) for p in paths}
    in_order = all(f == sorted(f) for f in firsts.values())
    rate = delivered / elapsed
    say(f"  {delivered} deliveries in {elapsed:.2f} s: {rate:.0f} events/s")
    return {"endpoints": endpoints, "events": events, "delivered": delivered, "seconds": elapsed, "per_second": rate,
            "write_rate": write_rate, "bad_signatures": receiver.bad, "in_order": in_order}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", type=Path)
    ap.add_argument("--events", type=int, default=2000)
    args = ap.parse_args()
    receiver = Receiver()
    results = []
    for endpoints in (1, 4):
        with tempfile.TemporaryDirectory() as tmp:
            say(f"webhooks: {endpoints} endpoint(s)")
            results.append(run(args.binary.resolve(), args.events, endpoints, Path(tmp), receiver))
    receiver.server.shutdown()
    json.dump({"runs": results}, sys.stdout)


if __name__ == "__main__":
    main()
