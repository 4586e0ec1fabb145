"""`GET /v1/watch`: the change stream sidecars follow, over a real connection (SPEC §5)."""

import json
import os
from pathlib import Path

import requests

from conftest import DEFAULT_BIN
from portcullis_server import running_server

ROOT = {"ROOT_EMAIL": "root@example.com", "ROOT_PASSWORD": "root password 123"}


def _events(lines, want):
    """Reads server-sent events from a line iterator until `want` of them arrived; returns
    (id, event, data) tuples."""
    got, current = [], {}
    for raw in lines:
        if raw is None:
            continue
        if raw == "":
            if "event" in current:
                got.append((int(current["id"]), current["event"], json.loads(current["data"])))
                if len(got) >= want:
                    return got
            current = {}
        elif not raw.startswith(":"):
            field, _, value = raw.partition(": ")
            current[field] = value
    return got


def test_watch_streams_changes_and_resumes(tmp_path):
    binary = Path(os.environ.get("PORTCULLIS_BIN", DEFAULT_BIN))
    with running_server(binary, tmp_path, **ROOT) as base:
        r = requests.post(f"{base}/v1/auth/login", json={"email": ROOT["ROOT_EMAIL"], "password": ROOT["ROOT_PASSWORD"]})
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}

        # Only the root (or its unscoped key) may watch.
        requests.post(f"{base}/v1/users", json={"email": "u@example.com", "password": "correct horse battery"})
        user = requests.post(f"{base}/v1/auth/login", json={"email": "u@example.com", "password": "correct horse battery"}).json()
        denied = requests.get(f"{base}/v1/watch", headers={"Authorization": f"Bearer {user['access_token']}"}, timeout=5)
        assert denied.status_code == 403
        assert requests.get(f"{base}/v1/watch?since=-1", headers=auth, timeout=5).status_code == 400

        org = requests.post(f"{base}/v1/orgs", json={"name": "Watched"}, headers=auth)
        assert org.status_code == 201
        revision = int(org.headers["Portcullis-Revision"])

        with requests.get(f"{base}/v1/watch?since={revision - 1}", headers=auth, stream=True, timeout=10) as stream:
            assert stream.status_code == 200
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            # One line iterator for the whole stream, unbuffered, so no event waits in a chunk.
            lines = stream.iter_lines(chunk_size=1, decode_unicode=True)
            first = _events(lines, 1)
            assert first[0][0] == revision
            assert first[0][1] == "org.created"
            assert first[0][2]["subject"] == org.json()["id"]

            # A change made while watching arrives on the open stream.
            renamed = requests.patch(f"{base}/v1/orgs/{org.json()['id']}", json={"name": "Renamed"}, headers=auth)
            assert renamed.status_code == 200
            live = _events(lines, 1)
            assert live[0][0] == int(renamed.headers["Portcullis-Revision"])
            assert live[0][1] == "org.updated"

        # Reconnecting with Last-Event-ID resumes after it, whatever `since` says.
        headers = dict(auth, **{"Last-Event-ID": str(revision)})
        with requests.get(f"{base}/v1/watch?since=0", headers=headers, stream=True, timeout=10) as again:
            resumed = _events(again.iter_lines(chunk_size=1, decode_unicode=True), 1)
            assert resumed[0][0] == revision + 1
