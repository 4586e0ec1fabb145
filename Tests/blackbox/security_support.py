"""Helpers for test_security.py: a server per backend (SQLite, or a fresh PostgreSQL database),
hand-built tokens, mailed tokens read from the server's log, and the "nothing changed" snapshot."""

import base64
import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from conftest import DEFAULT_BIN
from portcullis_server import ServerStartError, running_server

PASSWORD = "correct horse battery staple"
ROOT_EMAIL = "root@example.com"
ROOT_PASSWORD = "root password 123"
BACKENDS = ["sqlite", "postgres"]


def binary() -> Path:
    path = Path(os.environ.get("PORTCULLIS_BIN", DEFAULT_BIN))
    if not path.is_file():
        pytest.fail(f"server binary {path} not found; run `swift build` first", pytrace=False)
    return path


def postgres_url_or_fail() -> str | None:
    """The base PostgreSQL URL, or None (then the PG half skips), unless PORTCULLIS_REQUIRE_POSTGRES=1
    (make test), where a missing URL is a failure: the PostgreSQL half must never silently vanish."""
    url = os.environ.get("PORTCULLIS_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("PORTCULLIS_REQUIRE_POSTGRES") == "1":
        pytest.fail("PORTCULLIS_REQUIRE_POSTGRES=1 but PORTCULLIS_TEST_POSTGRES_URL is not set", pytrace=False)
    pytest.skip("PORTCULLIS_TEST_POSTGRES_URL not set (make test sets it)")
    return None


def _psql_binary() -> str:
    # Debian puts psql on PATH through postgresql-client-common; the server package's own copy also works.
    for candidate in (shutil.which("psql"), os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin") + "/psql"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("psql not found (scripts/install-deps.sh installs PostgreSQL)", pytrace=False)


def _psql(url: str, sql: str) -> str:
    done = subprocess.run([_psql_binary(), url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"psql failed: {done.stderr.strip()}")
    return done.stdout


def _with_database(url: str, name: str) -> str:
    """`url` with its database name replaced by `name` (query string kept)."""
    head, sep, query = url.partition("?")
    scheme_host, _, _ = head.rpartition("/")
    return f"{scheme_host}/{name}" + (sep + query if sep else "")


@contextlib.contextmanager
def backend_database(backend: str, workdir: Path):
    """Yields the DATABASE_URL setting for one server: a new SQLite file, or a new PostgreSQL database
    (created, and dropped afterwards), so runs and servers never share state."""
    if backend == "sqlite":
        yield f"sqlite:{workdir}/p.db"
        return
    base = postgres_url_or_fail()
    name = "sec_" + uuid.uuid4().hex[:16]
    _psql(base, f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(base, name)
    finally:
        with contextlib.suppress(Exception):
            _psql(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Instance:
    """A running server: base URL, working dir (log, master key), database URL."""

    def __init__(self, base: str, workdir: Path, database_url: str):
        self.base = base
        self.workdir = workdir
        self.database_url = database_url
        self.http = requests.Session()

    def url(self, path: str) -> str:
        return self.base + path

    def request(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        headers = dict(kw.pop("headers", None) or {})
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        return self.http.request(method, self.url(path), headers=headers, timeout=30, **kw)

    # --- accounts ---------------------------------------------------------------------------

    def signup(self, email: str, name: str = "Someone") -> dict:
        r = self.request("POST", "/v1/users", json={"email": email, "password": PASSWORD, "name": name})
        assert r.status_code == 201, r.text
        return r.json()

    def login(self, email: str, password: str = PASSWORD) -> dict:
        r = self.request("POST", "/v1/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        return r.json()

    def ok(self, method: str, path: str, token: str, expect: int = 200, **kw) -> dict:
        r = self.request(method, path, token, **kw)
        assert r.status_code == expect, (method, path, r.status_code, r.text)
        return r.json() if r.content else {}

    # --- mailed tokens (PORTCULLIS_SMTP_URL=log, PORTCULLIS_LOG_FORMAT=json) --------------------

    def mailed_tokens(self, to: str, path: str) -> list[str]:
        found = []
        for line in (self.workdir / "server.log").read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("to") == to and str(entry.get("msg", "")).startswith("mail"):
                found += re.findall(re.escape(path) + r"\?[a-z_]+=([A-Za-z0-9_-]+)", entry.get("text", ""))
        return found

    def wait_mailed_token(self, to: str, path: str, count: int = 1, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            tokens = self.mailed_tokens(to, path)
            if len(tokens) >= count:
                return tokens[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no mail #{count} to {to} with {path} within {timeout}s")
            time.sleep(0.1)

    # --- the signing key, read back from the database with the master key ----------------------

    def signing_key(self, kid: str) -> ec.EllipticCurvePrivateKey:
        """The server's private ES256 key for `kid`: the sealed row from the database, opened with
        the master key this test gave the server (AES-GCM, nonce | ciphertext | tag, raw P-256 scalar).
        Only so tokens with a genuine signature but bad claims can be built by hand."""
        sql = f"SELECT sealed_private_key FROM signing_keys WHERE kid = '{kid}'"
        if self.database_url.startswith("sqlite:"):
            db = sqlite3.connect(f"file:{self.database_url[len('sqlite:'):]}?mode=ro", uri=True)
            try:
                sealed = db.execute(sql).fetchone()[0]
            finally:
                db.close()
        else:
            sealed = _psql(self.database_url, sql).strip()
        master = base64.b64decode((self.workdir / "master.key").read_text().strip())
        blob = base64.b64decode(sealed)
        raw = AESGCM(master).decrypt(blob[:12], blob[12:], None)
        return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())


@contextlib.contextmanager
def instance(backend: str, workdir: Path, **settings: str):
    with backend_database(backend, workdir) as database_url:
        try:
            with running_server(binary(), workdir, DATABASE_URL=database_url, **settings) as base:
                inst = Instance(base, workdir, database_url)
                try:
                    yield inst
                finally:
                    inst.http.close()
        except ServerStartError as error:
            pytest.fail(str(error), pytrace=False)


# --- hand-built tokens --------------------------------------------------------------------------

def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, payload: dict, sign) -> str:
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    return signing_input + "." + sign(signing_input.encode())


def sign_es256(key, header: dict, payload: dict) -> str:
    return jwt.encode(payload, key, algorithm="ES256", headers=header)


def unverified(token: str) -> tuple[dict, dict]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


# --- "nothing changed" ----------------------------------------------------------------------------

VOLATILE_KEYS = {"last_used_at"}


def _scrub(value):
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def snapshot(inst: Instance, root_token: str) -> dict:
    """The whole instance as the root admin's backup shows it, minus what reads legitimately change:
    keys' last_used_at and the `backup.exported` audit events these snapshots write themselves."""
    r = inst.request("GET", "/v1/admin/backup", root_token)
    assert r.status_code == 200, r.text
    doc = r.json()
    events = doc.get("audit_events")
    assert isinstance(events, list), f"backup has no audit_events list: {list(doc)}"
    doc["audit_events"] = [e for e in events if e.get("action") != "backup.exported"]
    doc.pop("created_at", None)  # when the document was made
    return _scrub(doc)


def diff(before: dict, after: dict) -> str:
    lines = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            b, a = before.get(key), after.get(key)
            if isinstance(b, list) and isinstance(a, list):
                added = [x for x in a if x not in b]
                removed = [x for x in b if x not in a]
                lines.append(f"{key}: added {added} removed {removed}")
            else:
                lines.append(f"{key}: {b!r} -> {a!r}")
    return "\n".join(lines)
