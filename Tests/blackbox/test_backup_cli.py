"""`portcullis backup` and `portcullis restore` as an operator runs them: a real server, a real
SQLite file, the CLI in between (SPEC §1, §8)."""

import json
import os
import subprocess
from pathlib import Path

import requests

from conftest import DEFAULT_BIN
from portcullis_server import running_server

PASSWORD = "correct horse battery staple"
ROOT = {"ROOT_EMAIL": "root@example.com", "ROOT_PASSWORD": "root password 123"}


def _binary() -> Path:
    return Path(os.environ.get("PORTCULLIS_BIN", DEFAULT_BIN))


def _cli(workdir: Path, *args: str, stdin=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env.update(
        PORTCULLIS_DATABASE_URL=f"sqlite:{workdir}/p.db",
        PORTCULLIS_MASTER_KEY_FILE=f"{workdir}/master.key",
        PORTCULLIS_LOG_LEVEL="error",
    )
    return subprocess.run([str(_binary()), *args], cwd=workdir, env=env, input=stdin, capture_output=True, timeout=60)


def _login(base: str, email: str, password: str = PASSWORD) -> str:
    r = requests.post(f"{base}/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def _view(base: str, token: str) -> dict:
    auth = {"Authorization": f"Bearer {token}"}
    orgs = requests.get(f"{base}/v1/orgs", headers=auth).json()
    view = {"orgs": orgs}
    for org in orgs["items"]:
        view[org["id"]] = requests.get(f"{base}/v1/orgs/{org['id']}/members", headers=auth).json()
    return view


def test_backup_then_restore_into_a_fresh_instance(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()

    with running_server(_binary(), source, **ROOT) as base:
        ids = {}
        for email in ("alice@example.com", "bob@example.com"):
            r = requests.post(f"{base}/v1/users", json={"email": email, "password": PASSWORD})
            assert r.status_code == 201, r.text
            ids[email] = r.json()["id"]
        alice = _login(base, "alice@example.com")
        auth = {"Authorization": f"Bearer {alice}"}
        org = requests.post(f"{base}/v1/orgs", json={"name": "Acme", "metadata": {"plan": "pro"}}, headers=auth).json()
        r = requests.post(f"{base}/v1/orgs/{org['id']}/members", json={"user_id": ids["bob@example.com"], "role": "editor"}, headers=auth)
        assert r.status_code == 201, r.text
        before = _view(base, alice)

    dump = _cli(source, "backup")
    assert dump.returncode == 0, dump.stderr.decode()
    doc = json.loads(dump.stdout)
    assert {u["email"] for u in doc["users"]} == {"root@example.com", "alice@example.com", "bob@example.com"}
    assert PASSWORD.encode() not in dump.stdout
    assert all(u["password_hash"].startswith("$argon2id$") for u in doc["users"])

    loaded = _cli(target, "restore", stdin=dump.stdout)
    assert loaded.returncode == 0, loaded.stderr.decode()
    assert b"restored 3 users, 1 orgs, 2 memberships" in loaded.stderr

    # The same people sign in with the same passwords and see the same orgs and members.
    with running_server(_binary(), target) as base:
        assert _view(base, _login(base, "alice@example.com")) == before
        _login(base, "root@example.com", ROOT["ROOT_PASSWORD"])

    again = _cli(target, "restore", stdin=dump.stdout)
    assert again.returncode == 1
    assert b"restore needs an empty instance" in again.stderr


def test_restore_refuses_a_broken_document(tmp_path):
    result = _cli(tmp_path, "restore", stdin=b'{"version": 1}')
    assert result.returncode == 1
    assert b"not a Portcullis backup" in result.stderr


def test_admin_outbox_shows_mail_that_could_not_be_sent(tmp_path):
    # Nothing listens on port 9: every send fails, and the mail must wait, visibly.
    with running_server(_binary(), tmp_path, SMTP_URL="smtp://127.0.0.1:9") as base:
        r = requests.post(f"{base}/v1/users", json={"email": "waiting@example.com", "password": PASSWORD})
        assert r.status_code == 201, r.text
        import time
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            shown = _cli(tmp_path, "admin", "outbox")
            if b"attempts 1" in shown.stdout:
                break
            time.sleep(0.3)
    assert shown.returncode == 0, shown.stderr.decode()
    out = shown.stdout.decode()
    assert "outbox: 1 pending, 0 given up, 0 sent" in out
    assert "verify_email  to waiting@example.com  attempts 1" in out
    assert "SMTP error" in out
    assert PASSWORD not in out
