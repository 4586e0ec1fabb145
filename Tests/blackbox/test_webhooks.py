"""Webhooks, black-box (SPEC §16): the real server binary posts to small receivers on loopback.

Every request a receiver gets is checked with the `standardwebhooks` library against the secrets
that must sign it at that moment; a bad or missing signature fails the test that owns the receiver.
Covered: the changed object in each event and the order of events per endpoint, filtering by
`event_types`, retries with backoff while other endpoints go on (a receiver answering 500, and one
not answering for seconds, hold up only themselves), secret rotation with and without
an overlap, test events and redelivery, 410 Gone, redirects not followed, the SSRF guard (at
registration and at send time), kill -9 during a storm of changes (SQLite), two nodes on one
PostgreSQL sharing the queue, who may manage endpoints, and the metrics.

The module's own server runs with PORTCULLIS_WEBHOOK_ALLOW_PRIVATE=true (receivers are plain http
on 127.0.0.1), a 50 ms idle poll and a 300 ms first retry wait, so the whole file takes well under
a minute and a half.
"""

import contextlib
import datetime
import http.server
import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import secrets_seen
from conftest import DEFAULT_BIN
from faultkit import Node, write_master_key
from portcullis_server import METRICS_TOKEN, ServerStartError, read_metrics, running_server
from security_support import backend_database

PASSWORD = "correct horse battery staple"
ROOT_EMAIL = "root@webhooks.test"
ROOT_PASSWORD = "root password for webhooks"
FIRST_RETRY_MS = 300
WEBHOOK_SETTINGS = {"WEBHOOK_POLL_MS": "50", "WEBHOOK_FIRST_RETRY_MS": str(FIRST_RETRY_MS)}
DELIVERY_TIMEOUT = 15.0  # seconds: a delivery that should happen in milliseconds
EVENT_KEYS = {"id", "type", "timestamp", "revision", "org_id", "actor", "target", "details", "data"}

secrets_seen.note(ROOT_PASSWORD)


def binary() -> Path:
    path = Path(os.environ.get("PORTCULLIS_BIN", DEFAULT_BIN))
    if not path.is_file():
        pytest.fail(f"server binary {path} not found; run `swift build` first", pytrace=False)
    return path


def wait_until(predicate, timeout: float, what: str, interval: float = 0.02):
    """Polls `predicate` until it returns something truthy (returned) or `timeout` passes (fails)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.1f}s waiting for {what}", pytrace=False)
        time.sleep(interval)


# ---------------------------------------------------------------------------------------- receiver

@dataclass
class Hit:
    method: str
    path: str
    headers: dict          # lowercased names
    raw: bytes
    body: object           # parsed JSON (None when not JSON)
    at: float              # time.monotonic() when it came in
    answered: int = 0
    answered_at: float = 0.0  # when the answer went out (later than `at` for a held request)
    verified_with: list = field(default_factory=list)

    @property
    def event_id(self):
        return self.body.get("id") if isinstance(self.body, dict) else None

    @property
    def type(self):
        return self.body.get("type") if isinstance(self.body, dict) else None

    @property
    def signatures(self) -> list[str]:
        return self.headers.get("webhook-signature", "").split()


class Receiver:
    """A threaded http.server on 127.0.0.1 that records every request in order, checks each one's
    Standard Webhooks signature against every secret in `secrets` (all of them must verify; the
    request waits while the receiver is paused or before the first secret is known, so a delivery
    racing a registration or rotation is judged against the right secrets), and answers as told:
    `answer_next(n, status)` for the next n requests, `answer_always(status)` from then on."""

    def __init__(self, name: str, verify: bool = True):
        self.name, self.verify = name, verify
        self.cond = threading.Condition()
        self.hits: list[Hit] = []
        self.bad: list[str] = []
        self.secrets: list[str] = []
        self.known: list[str] = []          # every secret it was ever told, for the failure message
        self.ready = threading.Event()      # set once the secrets are known and not paused
        if not verify:
            self.ready.set()
        self.script: list[tuple[int, dict, float]] = []
        self.default: tuple[int, dict, float] = (200, {}, 0.0)
        self.reported = 0                   # bad entries already failed a test through wait_for
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                receiver._serve(self, raw)

            do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"receiver-{name}", daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # --- what it expects and answers --------------------------------------------------------

    def expect_secrets(self, *secrets: str) -> None:
        """From now on every request must verify with each of `secrets`; also ends a pause."""
        with self.cond:
            self.secrets = list(secrets)
            self.known += [s for s in secrets if s not in self.known]
        self.ready.set()

    @contextlib.contextmanager
    def paused(self):
        """Requests arriving meanwhile wait (up to 8 s) until `expect_secrets` or the block's end."""
        self.ready.clear()
        try:
            yield
        finally:
            self.ready.set()

    def answer_next(self, n: int, status: int, headers: dict | None = None, delay: float = 0.0) -> None:
        """The next n requests get `status` (after holding the answer `delay` seconds)."""
        with self.cond:
            self.script.extend([(status, headers or {}, delay)] * n)

    def answer_always(self, status: int, headers: dict | None = None) -> None:
        with self.cond:
            self.script.clear()
            self.default = (status, headers or {}, 0.0)

    # --- serving ------------------------------------------------------------------------------

    def _serve(self, handler, raw: bytes) -> None:
        at = time.monotonic()
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        hit = Hit(handler.command, handler.path, headers, raw, body, at)
        if self.verify:
            if not self.ready.wait(timeout=8):
                self.bad.append(f"{self.name}: request {headers.get('webhook-id')} came while the receiver had no secret to check it with")
            if handler.command != "POST":
                self.bad.append(f"{self.name}: unexpected {handler.command} {handler.path}")
            if headers.get("content-type", "").split(";")[0].strip() != "application/json":
                self.bad.append(f"{self.name}: content-type {headers.get('content-type')!r}")
            if not isinstance(body, dict):
                self.bad.append(f"{self.name}: body is not a JSON object: {raw[:200]!r}")
            with self.cond:
                secrets, known = list(self.secrets), list(self.known)
            for secret in secrets:
                try:
                    Webhook(secret).verify(raw, headers)
                    hit.verified_with.append(secret)
                except WebhookVerificationError as error:
                    signers = [f"#{i}" for i, k in enumerate(known) if _verifies(k, raw, headers)]
                    self.bad.append(f"{self.name}: signature of {headers.get('webhook-id')} ({hit.type}) does not verify with "
                                    f"secret #{known.index(secret)} (of the secrets this receiver was given, oldest #0): {error}; "
                                    f"it verifies with {signers or 'none of them'}; header {headers.get('webhook-signature')!r}")
        with self.cond:
            status, extra, delay = self.script.pop(0) if self.script else self.default
            hit.answered = status
            self.hits.append(hit)
            self.cond.notify_all()
        if delay:
            time.sleep(delay)
        hit.answered_at = time.monotonic()
        payload = b'{"ok":true}' if 200 <= status < 300 else b"nope"
        handler.send_response(status)
        for name, value in extra.items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)

    # --- reading what came --------------------------------------------------------------------

    def snapshot(self) -> list[Hit]:
        with self.cond:
            return list(self.hits)

    def wait_for(self, predicate, timeout: float = DELIVERY_TIMEOUT, what: str = "deliveries") -> list[Hit]:
        """Waits until `predicate(hits)` holds; fails at once if a signature was bad."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.bad:
                    self.reported = len(self.bad)
                    raise AssertionError("\n".join(self.bad))
                hits = list(self.hits)
                if predicate(hits):
                    return hits
                left = deadline - time.monotonic()
                if left <= 0:
                    summary = [(h.type, h.event_id, h.answered) for h in hits]
                    pytest.fail(f"{self.name}: timed out after {timeout:.1f}s waiting for {what}; got {summary}", pytrace=False)
                self.cond.wait(timeout=min(left, 0.1))

    def wait_event(self, type_: str, target: str | None = None, timeout: float = DELIVERY_TIMEOUT) -> Hit:
        def match(h):
            return h.type == type_ and (target is None or h.body.get("target") == target) and 200 <= h.answered < 300
        hits = self.wait_for(lambda hs: any(match(h) for h in hs), timeout, f"{type_} {target or ''}")
        return next(h for h in hits if match(h))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _verifies(secret: str, raw: bytes, headers: dict) -> bool:
    try:
        Webhook(secret).verify(raw, headers)
        return True
    except WebhookVerificationError:
        return False


def first_arrivals(hits: list[Hit], delivered_only: bool = True) -> list[Hit]:
    """Each event once, at its first (2xx-answered) arrival, in arrival order."""
    seen, out = set(), []
    for h in hits:
        if delivered_only and not 200 <= h.answered < 300:
            continue
        if h.event_id not in seen:
            seen.add(h.event_id)
            out.append(h)
    return out


_ALL_RECEIVERS: list[Receiver] = []


@pytest.fixture(scope="module")
def _receiver_pool():
    """Receivers stay bound until the module ends, so no later receiver gets an old one's port
    (and with it retries meant for an endpoint that is gone)."""
    yield _ALL_RECEIVERS
    for r in _ALL_RECEIVERS:
        r.close()
    _ALL_RECEIVERS.clear()


@pytest.fixture
def receivers(_receiver_pool):
    """A factory of receivers; the test fails if any of them saw a bad signature."""
    made: list[Receiver] = []

    def make(name: str = "receiver", verify: bool = True) -> Receiver:
        r = Receiver(name, verify=verify)
        made.append(r)
        _receiver_pool.append(r)
        return r

    yield make
    bad = [b for r in made for b in r.bad[r.reported:]]  # those a wait_for already failed on are not told twice
    assert not bad, "bad webhook requests:\n" + "\n".join(bad)


# ---------------------------------------------------------------------------------------- API

class Api:
    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()

    def call(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        headers = dict(kw.pop("headers", None) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, self.base + path, headers=headers, timeout=30, **kw)

    def ok(self, method: str, path: str, token: str | None, expect=(200, 201, 202, 204), **kw) -> requests.Response:
        r = self.call(method, path, token, **kw)
        expected = (expect,) if isinstance(expect, int) else expect
        assert r.status_code in expected, (method, path, r.status_code, r.text[:500])
        return r

    def login(self, email: str, password: str = PASSWORD) -> dict:
        return self.ok("POST", "/v1/auth/login", None, 200, json={"email": email, "password": password}).json()

    def root(self) -> str:
        return self.login(ROOT_EMAIL, ROOT_PASSWORD)["access_token"]

    def person(self, label: str) -> tuple[dict, str]:
        """Signs someone up and in; (user, access token)."""
        email = f"{label}-{uuid.uuid4().hex[:8]}@webhooks.test"
        user = self.ok("POST", "/v1/users", None, 201, json={"email": email, "password": PASSWORD, "name": label.title()}).json()
        return user, self.login(email)["access_token"]

    def verify_email(self, workdir: Path, email: str) -> None:
        """Proves `email` with the token of its verification mail (PORTCULLIS_SMTP_URL=log: the mail is in the log)."""
        def token():
            for line in (workdir / "server.log").read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("to") == email and str(entry.get("msg", "")).startswith("mail"):
                    found = re.findall(r"/verify-email\?token=([A-Za-z0-9_-]+)", entry.get("text", ""))
                    if found:
                        return found[-1]
            return None
        self.ok("POST", "/v1/auth/verify-email", None, (200, 204), json={"token": wait_until(token, 10, f"the verification mail to {email}", 0.1)})

    def org(self, token: str, name: str = "hooks") -> str:
        return self.ok("POST", "/v1/orgs", token, 201, json={"name": name}).json()["id"]

    def register(self, token: str, prefix: str, receiver: Receiver, **body) -> tuple[dict, str]:
        """Registers `receiver` at `prefix` (/v1/orgs/{org}/webhooks or /v1/webhooks); the receiver
        holds any request until it knows the secret. Returns (endpoint, secret)."""
        body.setdefault("url", receiver.url())
        r = self.ok("POST", prefix, token, 201, json=body)
        made = r.json()
        secret = made.get("secret")
        assert isinstance(secret, str) and secret.startswith("whsec_"), made
        secrets_seen.note(secret)
        receiver.expect_secrets(secret)
        return made, secret

    def deliveries(self, token: str, prefix: str, endpoint_id: str) -> list[dict]:
        items, offset = [], 0
        while True:
            body = self.ok("GET", f"{prefix}/{endpoint_id}/deliveries?limit=100&offset={offset}", token, 200).json()
            items += body["items"]
            offset += len(body["items"])
            if not body["items"] or offset >= body["total"]:
                return items

    def audit(self, token: str, path: str) -> list[dict]:
        items, offset = [], 0
        while True:
            body = self.ok("GET", f"{path}?limit=100&offset={offset}", token, 200).json()
            items += body["items"]
            offset += len(body["items"])
            if not body["items"] or offset >= body["total"]:
                return items


def audit_since(audit: list[dict], webhook_id: str) -> list[dict]:
    """The audit events (newest first) from the endpoint's own webhook.created on: what it must hear."""
    for i, e in enumerate(audit):
        if e["action"] == "webhook.created" and e["target"] == f"webhook:{webhook_id}":
            return audit[:i + 1]
    pytest.fail(f"no webhook.created audit event for {webhook_id}", pytrace=False)


def revision_of(r: requests.Response) -> int | None:
    value = r.headers.get("Portcullis-Revision")
    return int(value) if value else None


def metric_samples(text: str) -> dict:
    """{(sample name, frozenset(labels)): value} from Prometheus text."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def deliveries_counter(base: str, result: str) -> float:
    return metric_samples(read_metrics(base)).get(
        ("portcullis_webhook_deliveries_total", frozenset({("result", result)})), 0.0)


# ---------------------------------------------------------------------------------------- the module's server

class Server:
    def __init__(self, base: str, workdir: Path):
        self.base, self.workdir = base, workdir
        self.api = Api(base)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("webhooks")
    try:
        with running_server(binary(), workdir, ROOT_EMAIL=ROOT_EMAIL, ROOT_PASSWORD=ROOT_PASSWORD, SIGNUP="open",
                            IP_BURST="1000", WEBHOOK_ALLOW_PRIVATE="true", **WEBHOOK_SETTINGS) as base:
            yield Server(base, workdir)
    except ServerStartError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="module")
def root(server) -> str:
    return server.api.root()


# ---------------------------------------------------------------------------------------- 1. events and their objects

def test_changes_arrive_in_order_with_the_changed_object_and_filtered(server, root, receivers):
    api = server.api
    alice, ha = api.person("alice")
    bob, hb = api.person("bob")
    carol, hc = api.person("carol")
    erin, _ = api.person("erin")
    api.verify_email(server.workdir, carol["email"])  # an invite to a proven address is not dormant: it can be accepted
    org = api.org(ha, "events")
    prefix = f"/v1/orgs/{org}/webhooks"
    # Before any endpoint exists: never sent to the endpoints registered below.
    api.ok("POST", f"/v1/orgs/{org}/members", ha, 201, json={"user_id": erin["id"], "role": "viewer"})

    r1, r2, rp = receivers("org-all"), receivers("org-bindings"), receivers("platform-keys")
    e1, secret1 = api.register(ha, prefix, r1, event_types=["member.*", "invite.*", "binding.*", "key.created", "webhook.created"],
                               description="everything about people")
    assert e1["event_types"] == ["member.*", "invite.*", "binding.*", "key.created", "webhook.created"]
    assert e1["org_id"] == org and e1["enabled"] is True and e1["url"] == r1.url() and e1["description"] == "everything about people"
    e2, _ = api.register(ha, prefix, r2, event_types=["binding.set"])
    ep, _ = api.register(root, "/v1/webhooks", rp, event_types=["key.*", "user.created"])
    assert ep["org_id"] is None
    try:
        steps = {}  # name -> (response, revision)

        def step(name, method, path, token, expect, **kw):
            r = api.ok(method, path, token, expect, **kw)
            steps[name] = (r.json() if r.content else {}, revision_of(r))
            return steps[name][0]

        m_bob = step("add_bob", "POST", f"/v1/orgs/{org}/members", ha, 201, json={"user_id": bob["id"], "role": "viewer"})
        m_bob2 = step("promote_bob", "PATCH", f"/v1/orgs/{org}/members/{bob['id']}", ha, 200, json={"role": "editor"})
        inv = step("invite_carol", "POST", f"/v1/orgs/{org}/invites", ha, 201, json={"email": carol["email"], "role": "viewer"})
        assert inv["dormant"] is False, inv
        accepted = step("accept", "POST", f"/v1/invites/{inv['id']}/accept", hc, 200)
        m_carol = api.ok("GET", f"/v1/orgs/{org}/members/{carol['id']}", ha, 200).json()
        inv2 = step("invite_frank", "POST", f"/v1/orgs/{org}/invites", ha, 201,
                    json={"email": f"frank-{uuid.uuid4().hex[:8]}@webhooks.test", "role": "editor"})
        step("revoke_frank", "DELETE", f"/v1/invites/{inv2['id']}", ha, 204)
        resource = f"org:{org}/project:alpha"
        b1 = step("bind", "PUT", f"/v1/orgs/{org}/bindings", ha, 201,
                  json={"subject": {"user_id": bob["id"]}, "resource": resource, "role": "editor"})
        b1b = step("rebind", "PUT", f"/v1/orgs/{org}/bindings", ha, 200,
                   json={"subject": {"user_id": bob["id"]}, "resource": resource, "role": "viewer"})
        assert b1b["id"] == b1["id"]
        step("unbind", "DELETE", f"/v1/orgs/{org}/bindings/{b1['id']}", ha, 204)
        sa = step("sa", "POST", f"/v1/orgs/{org}/service-accounts", ha, 201, json={"name": "robot", "role": "viewer"})
        sak = step("sa_key", "POST", f"/v1/orgs/{org}/service-accounts/{sa['id']}/keys", ha, 201, json={"name": "robot key"})
        step("sa_key_revoke", "DELETE", f"/v1/orgs/{org}/service-accounts/{sa['id']}/keys/{sak['id']}", ha, 204)
        own_key = step("own_key", "POST", "/v1/keys", ha, 201, json={"name": "alice key"})
        dave = step("dave", "POST", "/v1/users", None, 201,
                    json={"email": f"dave-{uuid.uuid4().hex[:8]}@webhooks.test", "password": PASSWORD, "name": "Dave"})
        step("remove_carol", "DELETE", f"/v1/orgs/{org}/members/{carol['id']}", ha, 204)
        b2 = step("bind_omega", "PUT", f"/v1/orgs/{org}/bindings", ha, 201,
                  json={"subject": {"user_id": bob["id"]}, "resource": f"org:{org}/project:omega", "role": "viewer"})
        own_key2 = step("own_key2", "POST", "/v1/keys", ha, 201, json={"name": "alice key 2"})
        for k in (sak, own_key, own_key2):
            secrets_seen.note(k["key"])

        # --- the org endpoint that wants people, invites, bindings and created keys --------------------
        last = r1.wait_event("binding.set", f"binding:{b2['id']}")
        groups = [
            ("register_e1", {("webhook.created", f"webhook:{e1['id']}")}),
            ("register_e2", {("webhook.created", f"webhook:{e2['id']}")}),
            ("add_bob", {("member.added", f"user:{bob['id']}")}),
            ("promote_bob", {("member.role_changed", f"user:{bob['id']}")}),
            ("invite_carol", {("invite.created", f"invite:{inv['id']}")}),
            ("accept", {("member.added", f"user:{carol['id']}"), ("invite.accepted", f"invite:{inv['id']}")}),
            ("invite_frank", {("invite.created", f"invite:{inv2['id']}")}),
            ("revoke_frank", {("invite.revoked", f"invite:{inv2['id']}")}),
            ("bind", {("binding.set", f"binding:{b1['id']}")}),
            ("rebind", {("binding.set", f"binding:{b1['id']}")}),
            ("unbind", {("binding.removed", f"binding:{b1['id']}")}),
            ("sa_key", {("key.created", f"key:{sak['id']}")}),
            ("remove_carol", {("member.removed", f"user:{carol['id']}")}),
            ("bind_omega", {("binding.set", f"binding:{b2['id']}")}),
        ]
        got = first_arrivals(r1.snapshot())
        assert got[-1].event_id == last.event_id
        summary = [(h.type, h.body["target"]) for h in got]
        assert len(got) == sum(len(g) for _, g in groups), f"the org endpoint got {summary}"
        by_step, i = {}, 0
        for name, want in groups:
            chunk = got[i:i + len(want)]
            i += len(want)
            assert {(h.type, h.body["target"]) for h in chunk} == want, f"at {name}: expected {want}, the whole sequence was {summary}"
            by_step[name] = {h.type: h for h in chunk}

        # Every event: the documented shape, webhook-id = body id = the audit record's id, about this org.
        audit = {e["id"]: e for e in api.audit(ha, f"/v1/orgs/{org}/audit")}
        for h in got:
            assert set(h.body) == EVENT_KEYS, h.body
            assert h.headers["webhook-id"] == h.event_id
            assert h.body["org_id"] == org
            record = audit.get(h.event_id)
            assert record is not None, f"{h.type} {h.event_id} is not an audit event of the org"
            assert (record["action"], record["target"], record["actor"], record["details"], record["at"]) == \
                (h.type, h.body["target"], h.body["actor"], h.body["details"], h.body["timestamp"]), (record, h.body)
            by_carol = h in by_step["accept"].values()  # the invitee accepts
            actor = carol["id"] if by_carol else alice["id"]
            assert h.body["actor"] == {"type": "user", "id": actor}, (h.type, h.body["actor"])

        # Revisions: each change's event carries its transaction's revision (the Portcullis-Revision of its answer).
        revisions = []
        for name, _ in groups:
            events = list(by_step[name].values())
            if name in steps:
                rev = steps[name][1]
                assert rev is not None, f"{name}: no Portcullis-Revision on the answer"
                for h in events:
                    assert h.body["revision"] == rev, f"{name}: event {h.type} revision {h.body['revision']}, answer said {rev}"
                revisions.append(rev)
        assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions), revisions

        # The changed object, as the API answered it.
        def member_data(m):
            return {"org_id": org, **{k: m[k] for k in ("user_id", "email", "name", "role", "expires_at", "created_at", "updated_at")}}

        assert by_step["add_bob"]["member.added"].body["data"] == member_data(m_bob)
        assert by_step["promote_bob"]["member.role_changed"].body["data"] == member_data(m_bob2)
        assert by_step["promote_bob"]["member.role_changed"].body["data"]["role"] == "editor"
        invite_keys = {"id", "org_id", "email", "role", "state", "dormant", "inviter_id", "created_at", "expires_at"}
        d = by_step["invite_carol"]["invite.created"].body["data"]
        assert d == {k: inv[k] for k in invite_keys}, (d, inv)
        d = by_step["accept"]["invite.accepted"].body["data"]
        assert d == {k: accepted[k] for k in invite_keys} and d["state"] == "accepted", (d, accepted)
        added = by_step["accept"]["member.added"].body
        d = by_step["invite_frank"]["invite.created"].body["data"]
        assert d == {k: inv2[k] for k in invite_keys} and d["dormant"] is True, (d, inv2)
        d = by_step["revoke_frank"]["invite.revoked"].body["data"]
        assert d["id"] == inv2["id"] and d["state"] == "revoked", d
        assert added["data"] == member_data(m_carol) and added["details"].get("invite_id") == inv["id"], added

        def binding_data(b):
            # Exactly the binding as the API answered it.
            return {k: b[k] for k in ("id", "org_id", "subject", "resource", "role", "expires_at", "created_at", "updated_at")}

        assert by_step["bind"]["binding.set"].body["data"] == binding_data(b1)
        assert by_step["rebind"]["binding.set"].body["data"] == binding_data(b1b)
        assert by_step["rebind"]["binding.set"].body["data"]["role"] == "viewer"
        assert by_step["unbind"]["binding.removed"].body["data"]["id"] == b1["id"]  # gone: its id (and the details)
        assert by_step["remove_carol"]["member.removed"].body["data"]["id"] == carol["id"]

        def key_data(k, user_id, sa_id, org_id):
            return {"id": k["id"], "prefix": k["prefix"], "name": k["name"], "user_id": user_id, "service_account_id": sa_id, "org_id": org_id,
                    "scopes": k["scopes"], "created_at": k["created_at"], "expires_at": k["expires_at"], "revoked_at": None}

        kc = by_step["sa_key"]["key.created"]
        assert kc.body["data"] == key_data(sak, None, sa["id"], org), kc.body["data"]
        assert sak["key"].encode() not in kc.raw, "the key's secret is in the event"

        # Never: the member added before registration, service_account.*, key.revoked (only key.created is wanted),
        # the user's own keys (instance-wide, not this org's), the platform endpoint's registration.
        types = {h.type for h in r1.snapshot()}
        assert not types & {"service_account.created", "key.revoked", "org.created", "user.created"}, types
        assert all(h.body["target"] != f"user:{erin['id']}" for h in r1.snapshot())
        assert all(h.body["target"] not in (f"key:{own_key['id']}", f"key:{own_key2['id']}", f"webhook:{ep['id']}") for h in r1.snapshot())
        # No secret in any event, its own registration included.
        assert secret1.encode() not in by_step["register_e1"]["webhook.created"].raw
        assert by_step["register_e1"]["webhook.created"].body["data"]["id"] == e1["id"]

        # --- the org endpoint that wants binding.set alone ---------------------------------------------
        r2.wait_event("binding.set", f"binding:{b2['id']}")
        got2 = first_arrivals(r2.snapshot())
        assert [(h.type, h.body["target"]) for h in got2] == [("binding.set", f"binding:{b1['id']}")] * 2 + [("binding.set", f"binding:{b2['id']}")]
        assert [h.event_id for h in got2] == [by_step["bind"]["binding.set"].event_id, by_step["rebind"]["binding.set"].event_id, last.event_id]

        # --- the platform endpoint: every key of the instance, and new users ---------------------------
        rp.wait_event("key.created", f"key:{own_key2['id']}")
        gotp = first_arrivals(rp.snapshot())
        assert [(h.type, h.body["target"]) for h in gotp] == [
            ("key.created", f"key:{sak['id']}"), ("key.revoked", f"key:{sak['id']}"), ("key.created", f"key:{own_key['id']}"),
            ("user.created", f"user:{dave['id']}"), ("key.created", f"key:{own_key2['id']}")]
        assert gotp[0].event_id == kc.event_id
        mine = gotp[2].body
        assert mine["org_id"] is None and mine["data"] == key_data(own_key, alice["id"], None, None), mine
        assert gotp[1].body["data"]["revoked_at"] is not None, gotp[1].body
        assert gotp[3].body["data"] == {k: dave[k] for k in ("id", "email", "name", "email_verified", "created_at", "updated_at")}, gotp[3].body
        for h, name in zip(gotp, ("sa_key", "sa_key_revoke", "own_key", "dave", "own_key2")):
            if steps[name][1] is not None:
                assert h.body["revision"] == steps[name][1], (name, h.body["revision"], steps[name][1])
        platform_revisions = [h.body["revision"] for h in gotp if h.body["revision"] is not None]
        assert platform_revisions == sorted(platform_revisions), platform_revisions
    finally:
        for path in (f"{prefix}/{e1['id']}", f"{prefix}/{e2['id']}", f"/v1/webhooks/{ep['id']}"):
            api.call("DELETE", path, root)


# ---------------------------------------------------------------------------------------- 2. retries without blocking others

def test_failing_endpoint_retries_in_order_while_a_healthy_one_goes_on(server, root, receivers):
    api = server.api
    me = api.ok("GET", "/v1/me", root, 200).json()
    org = api.org(root, "retries")
    prefix = f"/v1/orgs/{org}/webhooks"
    flaky, healthy = receivers("flaky"), receivers("healthy")
    flaky.answer_next(2, 500)
    ef, _ = api.register(root, prefix, flaky, event_types=["binding.set"])
    eh, _ = api.register(root, prefix, healthy, event_types=["binding.set"])
    try:
        t0 = time.monotonic()
        bindings = [api.ok("PUT", f"/v1/orgs/{org}/bindings", root, 201,
                           json={"subject": {"user_id": me["id"]}, "resource": f"org:{org}/project:p{i}", "role": "viewer"}).json()
                    for i in range(5)]
        targets = [f"binding:{b['id']}" for b in bindings]

        # The failing endpoint's delivery log while it waits: attempts, the status and the error, still pending.
        flaky.wait_for(lambda hs: len(hs) >= 2, what="two failed attempts")
        second = flaky.snapshot()[1]

        def logged_twice():
            rows = [d for d in api.deliveries(root, prefix, ef["id"]) if d["event_id"] == second.event_id]
            return rows and rows[0]["attempts"] >= 2 and rows[0]
        row = wait_until(logged_twice, 5, "the second failed attempt in the delivery log")
        assert row["attempts"] == 2, (row, "the third attempt came before the log showed the second; first retry waits are too short?")
        assert row["state"] == "pending" and row["last_status"] == 500 and row["next_attempt_at"] is not None, row
        assert "500" in (row["last_error"] or ""), row
        assert row["last_latency_ms"] is not None and row["last_attempt_at"] is not None, row

        healthy_hits = healthy.wait_for(lambda hs: [h.body["target"] for h in first_arrivals(hs)] == targets, what="all five on the healthy endpoint")
        flaky_hits = flaky.wait_for(lambda hs: len(hs) >= 7, what="the flaky endpoint's 7 requests")
        time.sleep(0.3)  # nothing more may come
        flaky_hits = flaky.snapshot()
        ids = [h.event_id for h in first_arrivals(healthy_hits)]
        # In order: the first event three times (500, 500, 200), then the rest; nothing overtakes the failing one.
        assert [h.event_id for h in flaky_hits] == [ids[0]] * 3 + ids[1:], [(h.body["target"], h.answered) for h in flaky_hits]
        assert [h.answered for h in flaky_hits] == [500, 500] + [200] * 5
        # The same event id and body on every retry.
        assert flaky_hits[0].raw == flaky_hits[1].raw == flaky_hits[2].raw
        # Backoff: the retries waited (jitter 50-100% of 300 ms, then of 600 ms).
        assert flaky_hits[1].at - flaky_hits[0].at >= FIRST_RETRY_MS / 2000 - 0.02, flaky_hits[1].at - flaky_hits[0].at
        assert flaky_hits[2].at - flaky_hits[1].at >= FIRST_RETRY_MS / 1000 - 0.02, flaky_hits[2].at - flaky_hits[1].at
        # The healthy endpoint had everything before the flaky one's first success.
        assert first_arrivals(healthy_hits)[-1].at < flaky_hits[2].at, "the healthy endpoint waited for the failing one"
        print(f"\nWEBHOOKS healthy done after {first_arrivals(healthy_hits)[-1].at - t0:.3f}s, flaky recovered after {flaky_hits[2].at - t0:.3f}s")

        log = api.deliveries(root, prefix, ef["id"])
        assert [d["event_id"] for d in log] == list(reversed(ids)), "the delivery log is not newest first"
        first = log[-1]
        assert (first["state"], first["attempts"], first["last_status"], first["event_type"]) == ("delivered", 3, 200, "binding.set"), first
        assert first["next_attempt_at"] is None and first["last_error"] is None, first
        assert all((d["state"], d["attempts"], d["last_status"]) == ("delivered", 1, 200) for d in log[:-1]), log
        assert all(d["state"] == "delivered" and d["attempts"] == 1 for d in api.deliveries(root, prefix, eh["id"]))
    finally:
        api.call("DELETE", f"{prefix}/{ef['id']}", root)
        api.call("DELETE", f"{prefix}/{eh['id']}", root)


def test_a_receiver_that_does_not_answer_holds_up_only_itself(server, root, receivers):
    """No answer for seconds (the server waits up to its timeout): changes made meanwhile still reach
    the other endpoints at once."""
    api = server.api
    me = api.ok("GET", "/v1/me", root, 200).json()
    org = api.org(root, "stalled")
    prefix = f"/v1/orgs/{org}/webhooks"
    stalled, healthy = receivers("stalled"), receivers("healthy-beside-stalled")
    hold = 3.0
    stalled.answer_next(1, 200, delay=hold)
    es, _ = api.register(root, prefix, stalled, event_types=["binding.set"])
    eh, _ = api.register(root, prefix, healthy, event_types=["binding.set"])

    def bind(i):
        return api.ok("PUT", f"/v1/orgs/{org}/bindings", root, 201,
                      json={"subject": {"user_id": me["id"]}, "resource": f"org:{org}/project:s{i}", "role": "viewer"}).json()

    try:
        first = bind(0)
        stalled.wait_for(lambda hs: len(hs) == 1, what="the request that will hang")
        healthy.wait_event("binding.set", f"binding:{first['id']}")
        later = []
        for i in range(1, 4):
            time.sleep(0.3)  # the healthy endpoint's queue is empty and sent: the next change is new work
            t = time.monotonic()
            b = bind(i)
            h = healthy.wait_event("binding.set", f"binding:{b['id']}", timeout=hold + 5)
            later.append(h.at - t)
        hung = stalled.snapshot()[0]
        print(f"\nWEBHOOKS beside a receiver holding its answer {hold:.0f}s: the healthy one got each later change after "
              f"{', '.join(f'{x * 1000:.0f} ms' for x in later)}")
        assert max(later) < 1.0, f"the healthy endpoint waited for the stalled one: {later}"
        assert all(h.at < hung.answered_at or hung.answered_at == 0 for h in healthy.snapshot()), "healthy deliveries came only after the stall"
        # The stalled endpoint then gets the rest, in order.
        stalled.wait_for(lambda hs: len(first_arrivals(hs)) == 4, timeout=hold + 10, what="the stalled endpoint's four events")
        assert [h.event_id for h in first_arrivals(stalled.snapshot())] == [h.event_id for h in first_arrivals(healthy.snapshot())]
    finally:
        api.call("DELETE", f"{prefix}/{es['id']}", root)
        api.call("DELETE", f"{prefix}/{eh['id']}", root)


# ---------------------------------------------------------------------------------------- 3. secret rotation

def test_secret_rotation_signs_with_both_during_the_overlap_and_only_the_new_after(server, root, receivers):
    api = server.api
    me = api.ok("GET", "/v1/me", root, 200).json()
    org = api.org(root, "rotation")
    prefix = f"/v1/orgs/{org}/webhooks"
    rr = receivers("rotation")
    ep, s0 = api.register(root, prefix, rr, event_types=["binding.set", "webhook.secret_rotated"])
    n = [0]

    def change() -> Hit:
        n[0] += 1
        b = api.ok("PUT", f"/v1/orgs/{org}/bindings", root, 201,
                   json={"subject": {"user_id": me["id"]}, "resource": f"org:{org}/project:r{n[0]}", "role": "viewer"}).json()
        return rr.wait_event("binding.set", f"binding:{b['id']}")

    try:
        # Bad overlaps change nothing.
        for bad in (-1, 604801, "a day"):
            r = api.call("POST", f"{prefix}/{ep['id']}/secret", root, json={"overlap_seconds": bad})
            assert r.status_code == 400, (bad, r.status_code, r.text)
        h = change()
        assert h.verified_with == [s0] and len(h.signatures) == 1, h.signatures

        # Each rotation follows a delivery at once, as a person rotating after seeing one would: the
        # deliveries queued after the rotation's answer must carry the new secret's signature.

        # Default overlap (a day): the new secret and the old one both sign.
        with rr.paused():
            r = api.ok("POST", f"{prefix}/{ep['id']}/secret", root, 200)
            s1 = r.json()["secret"]
            secrets_seen.note(s1)
            rr.expect_secrets(s1, s0)
        assert s1.startswith("whsec_") and s1 != s0
        rotated = r.json()
        until = rotated["previous_secret_expires_at"]
        assert until is not None, rotated
        got = api.ok("GET", f"{prefix}/{ep['id']}", root, 200).json()
        assert got["previous_secret_expires_at"] == until and "secret" not in got, got
        expires = datetime.datetime.fromisoformat(until.replace("Z", "+00:00")).timestamp()
        assert abs(expires - (time.time() + 86400)) < 120, until
        event = rr.wait_event("webhook.secret_rotated", f"webhook:{ep['id']}")
        assert event.body["details"].get("overlap_seconds") == 86400, event.body
        assert s0.encode() not in event.raw and s1.encode() not in event.raw
        h = change()
        assert len(h.signatures) == 2 and set(h.verified_with) == {s0, s1}, h.signatures
        Webhook(s0).verify(h.raw, h.headers)  # the old one alone, as a receiver not yet switched checks it
        Webhook(s1).verify(h.raw, h.headers)

        # No overlap: from now on only the newest secret signs.
        with rr.paused():
            r = api.ok("POST", f"{prefix}/{ep['id']}/secret", root, 200, json={"overlap_seconds": 0})
            s2 = r.json()["secret"]
            secrets_seen.note(s2)
            rr.expect_secrets(s2)
        rr.wait_for(lambda hs: sum(1 for x in hs if x.type == "webhook.secret_rotated") == 2, what="the second rotation's event")
        h = change()
        assert len(h.signatures) == 1 and h.verified_with == [s2], h.signatures
        for old in (s1, s0):
            with pytest.raises(WebhookVerificationError):
                Webhook(old).verify(h.raw, h.headers)
    finally:
        api.call("DELETE", f"{prefix}/{ep['id']}", root)


# ---------------------------------------------------------------------------------------- 4. test event, redelivery

def test_test_event_and_redelivery(server, root, receivers):
    api = server.api
    me = api.ok("GET", "/v1/me", root, 200).json()
    org = api.org(root, "redeliver")
    prefix = f"/v1/orgs/{org}/webhooks"
    rr = receivers("redeliver")
    ep, _ = api.register(root, prefix, rr, event_types=["binding.set"])  # webhook.test is not filtered: it is asked for
    other, _ = api.register(root, prefix, receivers("other"), event_types=["binding.set"])
    try:
        r = api.ok("POST", f"{prefix}/{ep['id']}/test", root, 202)
        queued = r.json()
        test_hit = rr.wait_event("webhook.test")
        assert test_hit.event_id == queued["event_id"] == test_hit.headers["webhook-id"]
        assert test_hit.body["data"]["endpoint_id"] == ep["id"] and test_hit.body["org_id"] == org, test_hit.body
        row = wait_until(lambda: next((d for d in api.deliveries(root, prefix, ep["id"])
                                       if d["id"] == queued["delivery_id"] and d["state"] == "delivered"), None), 5, "the test delivery logged")
        assert row["event_type"] == "webhook.test" and row["event_id"] == queued["event_id"] and row["last_status"] == 200, row

        b = api.ok("PUT", f"/v1/orgs/{org}/bindings", root, 201,
                   json={"subject": {"user_id": me["id"]}, "resource": f"org:{org}/project:x", "role": "viewer"}).json()
        original = rr.wait_event("binding.set", f"binding:{b['id']}")
        row = wait_until(lambda: next((d for d in api.deliveries(root, prefix, ep["id"])
                                       if d["event_id"] == original.event_id and d["state"] == "delivered"), None), 5, "binding.set logged")

        for delivery in (row, {"id": queued["delivery_id"], "event_id": queued["event_id"]}):
            before = len(rr.snapshot())
            again = api.ok("POST", f"{prefix}/{ep['id']}/deliveries/{delivery['id']}/redeliver", root, 202).json()
            assert again["delivery_id"] != delivery["id"], again
            hits = rr.wait_for(lambda hs: len(hs) > before, what="the redelivery")
            repeat = hits[before]
            assert repeat.event_id == delivery["event_id"] == repeat.headers["webhook-id"]
            first = original if delivery is row else test_hit
            assert repeat.raw == first.raw, "a redelivery sends the event as it was"
            # The receiver may see the redelivery before the sender records it as delivered: wait for
            # the redelivery's own row, not just any delivered row of the event (the first one is).
            def delivered():
                rows = [d for d in api.deliveries(root, prefix, ep["id"]) if d["event_id"] == delivery["event_id"] and d["state"] == "delivered"]
                return rows if again["delivery_id"] in {d["id"] for d in rows} else None
            log = wait_until(delivered, 5, "the redelivery logged")
            assert len(log) == 2 and again["delivery_id"] in {d["id"] for d in log}, log

        # Unknown deliveries, and another endpoint's, are 404 through this endpoint.
        assert api.call("POST", f"{prefix}/{ep['id']}/deliveries/{uuid.uuid4()}/redeliver", root).status_code == 404
        assert api.call("POST", f"{prefix}/{other['id']}/deliveries/{row['id']}/redeliver", root).status_code == 404
        assert api.call("POST", f"{prefix}/{uuid.uuid4()}/test", root).status_code == 404
    finally:
        api.call("DELETE", f"{prefix}/{ep['id']}", root)
        api.call("DELETE", f"{prefix}/{other['id']}", root)


# ---------------------------------------------------------------------------------------- 5. 410 Gone

def test_gone_disables_the_endpoint_and_enabling_resumes_the_pending_delivery(server, root, receivers):
    api = server.api
    me = api.ok("GET", "/v1/me", root, 200).json()
    org = api.org(root, "gone")
    prefix = f"/v1/orgs/{org}/webhooks"
    rr = receivers("gone")
    ep, _ = api.register(root, prefix, rr, event_types=["binding.set"])
    try:
        gone_before = deliveries_counter(server.base, "gone")
        rr.answer_next(1, 410)
        b = api.ok("PUT", f"/v1/orgs/{org}/bindings", root, 201,
                   json={"subject": {"user_id": me["id"]}, "resource": f"org:{org}/project:g", "role": "viewer"}).json()
        rr.wait_for(lambda hs: len(hs) == 1, what="the request answered 410")
        off = wait_until(lambda: (e := api.ok("GET", f"{prefix}/{ep['id']}", root, 200).json())["enabled"] is False and e, 5, "the endpoint turned off")
        assert off["disabled_reason"] and "410" in off["disabled_reason"], off
        listed = api.ok("GET", prefix, root, 200).json()["items"]
        assert [e["enabled"] for e in listed if e["id"] == ep["id"]] == [False]
        row = wait_until(lambda: (d := api.deliveries(root, prefix, ep["id"])) and d[0]["attempts"] == 1 and d[0], 5, "the 410 logged")
        assert (row["state"], row["last_status"]) == ("pending", 410), row  # kept: nothing is lost
        assert deliveries_counter(server.base, "gone") >= gone_before + 1
        time.sleep(2.5 * FIRST_RETRY_MS / 1000)  # past any retry wait: a turned-off endpoint gets nothing
        assert len(rr.snapshot()) == 1, [(h.type, h.answered) for h in rr.snapshot()]

        on = api.ok("PATCH", f"{prefix}/{ep['id']}", root, 200, json={"enabled": True}).json()
        assert on["enabled"] is True and on["disabled_reason"] is None, on
        hits = rr.wait_for(lambda hs: len(hs) >= 2 and 200 <= hs[1].answered < 300, what="the pending delivery after re-enabling")
        assert hits[1].event_id == hits[0].event_id and hits[1].body["target"] == f"binding:{b['id']}"
        row = wait_until(lambda: next((d for d in api.deliveries(root, prefix, ep["id"]) if d["id"] == row["id"] and d["state"] == "delivered"), None),
                         5, "the delivery delivered")
        assert row["attempts"] == 2 and row["last_status"] == 200, row
    finally:
        api.call("DELETE", f"{prefix}/{ep['id']}", root)


# ---------------------------------------------------------------------------------------- 6. redirects

def test_redirect_is_not_followed(server, root, receivers):
    api = server.api
    me = api.ok("GET", "/v1/me", root, 200).json()
    org = api.org(root, "redirect")
    prefix = f"/v1/orgs/{org}/webhooks"
    bouncer, elsewhere = receivers("bouncer"), receivers("elsewhere", verify=False)
    bouncer.answer_always(302, {"Location": elsewhere.url("/stolen")})
    ep, _ = api.register(root, prefix, bouncer, event_types=["binding.set"])
    try:
        api.ok("PUT", f"/v1/orgs/{org}/bindings", root, 201,
               json={"subject": {"user_id": me["id"]}, "resource": f"org:{org}/project:r", "role": "viewer"})
        # A 3xx is a failed attempt: retried after its wait, to the same URL.
        hits = bouncer.wait_for(lambda hs: len(hs) >= 2, what="a retry after the 302")
        assert hits[0].event_id == hits[1].event_id and hits[0].type == "binding.set"
        row = wait_until(lambda: (d := api.deliveries(root, prefix, ep["id"])) and d[0]["attempts"] >= 2 and d[0], 5, "the attempts logged")
        assert row["state"] == "pending" and row["last_status"] == 302, row
        time.sleep(0.2)
        assert elsewhere.snapshot() == [], [(h.method, h.path) for h in elsewhere.snapshot()]
    finally:
        api.call("DELETE", f"{prefix}/{ep['id']}", root)


# ---------------------------------------------------------------------------------------- 7. SSRF guard

def test_private_destinations_refused_at_registration_and_at_send_time(tmp_path, receivers):
    listener = receivers("localhost", verify=False)
    try:
        with running_server(binary(), tmp_path, ROOT_EMAIL=ROOT_EMAIL, ROOT_PASSWORD=ROOT_PASSWORD, **WEBHOOK_SETTINGS) as base:
            api = Api(base)
            root = api.root()
            me = api.ok("GET", "/v1/me", root, 200).json()
            org = api.org(root, "ssrf")
            prefix = f"/v1/orgs/{org}/webhooks"
            for url in ("http://example.com/hook", f"http://127.0.0.1:{listener.port}/hook", "https://127.0.0.1/x",
                        "https://169.254.169.254/latest", "https://10.1.2.3/", "https://192.168.1.1/x", "https://[::1]/x",
                        "https://0.0.0.0/x", "https://[::ffff:127.0.0.1]/x"):
                for path in (prefix, "/v1/webhooks"):
                    r = api.call("POST", path, root, json={"url": url})
                    assert r.status_code == 400, (path, url, r.status_code, r.text)
            assert api.ok("GET", prefix, root, 200).json()["total"] == 0

            # A name is judged when it is sent to: accepted now, refused at every attempt, nothing sent.
            made = api.ok("POST", prefix, root, 201, json={"url": f"https://localhost:{listener.port}/hook"}).json()
            secrets_seen.note(made["secret"])
            r = api.call("PATCH", f"{prefix}/{made['id']}", root, json={"url": "https://10.0.0.7/hook"})
            assert r.status_code == 400, (r.status_code, r.text)
            api.ok("PUT", f"/v1/orgs/{org}/bindings", root, 201,
                   json={"subject": {"user_id": me["id"]}, "resource": f"org:{org}/project:s", "role": "viewer"})

            def refused_twice():
                log = api.deliveries(root, prefix, made["id"])
                return log and log[-1]["attempts"] >= 2 and log
            log = wait_until(refused_twice, 10, "two refused attempts")
            tried = [d for d in log if d["attempts"] > 0]
            assert {d["event_type"] for d in log} >= {"webhook.created"}, log
            for d in tried:
                assert (d["last_error"] or "").startswith("refused:"), d
                assert d["last_status"] is None and d["state"] == "pending", d
            assert listener.snapshot() == [], [(h.method, h.path) for h in listener.snapshot()]
    except ServerStartError as error:
        pytest.fail(str(error), pytrace=False)


# ---------------------------------------------------------------------------------------- 8. kill -9 in a storm

def _storm(api: Api, token: str, helpers: list[str], stop: threading.Event, budget: int, acked: list, errors: list) -> None:
    """Orgs, members and bindings as fast as one client goes, until `budget` changes were sent,
    `stop` is set, or the server stops answering."""
    sent = 0
    try:
        while sent < budget and not stop.is_set():
            r = api.call("POST", "/v1/orgs", token, json={"name": "storm"})
            sent += 1
            assert r.status_code == 201, r.text
            acked.append(("org", r.json()["id"]))
            org = r.json()["id"]
            for uid in helpers:
                if sent >= budget or stop.is_set():
                    return
                r = api.call("POST", f"/v1/orgs/{org}/members", token, json={"user_id": uid, "role": "viewer"})
                sent += 1
                assert r.status_code == 201, r.text
                acked.append(("member", org))
            for i in range(4):
                if sent >= budget or stop.is_set():
                    return
                r = api.call("PUT", f"/v1/orgs/{org}/bindings", token,
                             json={"subject": {"user_id": helpers[i % len(helpers)]}, "resource": f"org:{org}/project:s{i}", "role": "editor"})
                sent += 1
                assert r.status_code == 201, r.text
                acked.append(("binding", org))
    except requests.RequestException as error:
        errors.append(type(error).__name__)
    except AssertionError as error:
        errors.append(str(error)[:300])


def test_kill9_during_a_storm_loses_no_event_and_keeps_order(tmp_path, receivers):
    write_master_key(tmp_path / "master.key")
    node = Node(binary(), tmp_path, "storm", f"sqlite:{tmp_path}/p.db", tmp_path / "master.key",
                env={"ROOT_EMAIL": ROOT_EMAIL, "ROOT_PASSWORD": ROOT_PASSWORD, "WEBHOOK_ALLOW_PRIVATE": "true",
                     "METRICS_TOKEN": METRICS_TOKEN, **WEBHOOK_SETTINGS})
    rr = receivers("storm")
    node.start()
    try:
        api = Api(node.base)
        root = api.root()
        ep, _ = api.register(root, "/v1/webhooks", rr)  # the platform's: every event of the instance
        helpers = [api.person(f"helper{i}")[0]["id"] for i in range(3)]

        acked, errors, stop = [], [], threading.Event()
        worker = threading.Thread(target=_storm, args=(Api(node.base), root, helpers, stop, 200, acked, errors), daemon=True)
        t0 = time.monotonic()
        worker.start()
        wait_until(lambda: len(acked) >= 100 or not worker.is_alive(), 30, "100 acknowledged changes")
        sent_before_kill = len(rr.snapshot())
        node.kill9()  # mid-storm: requests and deliveries in flight
        worker.join(timeout=30)
        acked_before = len(acked)
        node.start()
        root = api.root()
        worker = threading.Thread(target=_storm, args=(Api(node.base), root, helpers, threading.Event(), 100, acked, errors), daemon=True)
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), "the storm after the restart did not finish"
        assert len(acked) >= acked_before + 90, (len(acked), acked_before, errors)

        def drained():
            samples = metric_samples(read_metrics(node.base))
            return samples.get(("portcullis_webhook_queue_depth", frozenset())) == 0
        wait_until(drained, 30, "the webhook queue to drain", interval=0.1)
        elapsed = time.monotonic() - t0

        audit = audit_since(api.audit(root, "/v1/audit"), ep["id"])
        hits = rr.snapshot()
        delivered = [h for h in hits if 200 <= h.answered < 300]
        received = {h.event_id for h in delivered}
        missing = [(e["action"], e["target"]) for e in audit if e["id"] not in received]
        assert not missing, f"{len(missing)} audited changes never arrived: {missing[:10]}"
        audit_ids = {e["id"] for e in audit}
        phantoms = [(h.type, h.body["target"]) for h in delivered if h.event_id not in audit_ids and not h.type.startswith("user.")]
        assert not phantoms, f"events for changes that are not in the audit log: {phantoms[:10]}"
        firsts = first_arrivals(hits)
        revisions = [h.body["revision"] for h in firsts if h.body["revision"] is not None]
        backwards = [(a, b) for a, b in zip(revisions, revisions[1:]) if b < a]
        assert not backwards, f"first arrivals out of revision order: {backwards[:10]}"
        # Every event body is the same on every arrival (a retry sends the stored event).
        bodies = {}
        for h in delivered:
            assert bodies.setdefault(h.event_id, h.raw) == h.raw, f"{h.event_id} arrived with two different bodies"
        log = api.deliveries(root, "/v1/webhooks", ep["id"])
        assert all(d["state"] == "delivered" for d in log), [d for d in log if d["state"] != "delivered"][:5]
        assert {d["event_id"] for d in log} == received
        print(f"\nWEBHOOKS storm: {len(acked)} changes acknowledged ({acked_before} before kill -9, {sent_before_kill} requests had "
              f"reached the receiver), {len(audit)} audit events, {len(delivered)} deliveries of {len(received)} events "
              f"({len(delivered) - len(received)} duplicates), drained {elapsed:.1f}s after the storm began")
    finally:
        node.kill9()


# ---------------------------------------------------------------------------------------- 9. two nodes, one PostgreSQL

def test_two_nodes_on_postgres_deliver_each_event_once_in_order(tmp_path, receivers):
    with backend_database("postgres", tmp_path) as database_url:
        write_master_key(tmp_path / "master.key")
        env = {"ROOT_EMAIL": ROOT_EMAIL, "ROOT_PASSWORD": ROOT_PASSWORD, "WEBHOOK_ALLOW_PRIVATE": "true",
               "METRICS_TOKEN": METRICS_TOKEN, **WEBHOOK_SETTINGS}
        first = Node(binary(), tmp_path, "pg0", database_url, tmp_path / "master.key", env=env)
        # One instance: one issuer (its public URL), so a token from either node works on both.
        nodes = [first, Node(binary(), tmp_path, "pg1", database_url, tmp_path / "master.key", public_url=first.base, env=env)]
        try:
            nodes[0].start()
            nodes[1].start()
            apis = [Api(n.base) for n in nodes]
            root = apis[0].root()
            org = apis[0].org(root, "two nodes")
            rr = receivers("two-nodes")
            prefix = f"/v1/orgs/{org}/webhooks"
            ep, _ = apis[1].register(root, prefix, rr, event_types=["member.*", "binding.*"])
            helpers = [apis[i % 2].person(f"pg{i}")[0]["id"] for i in range(4)]
            for i, uid in enumerate(helpers):
                apis[i % 2].ok("POST", f"/v1/orgs/{org}/members", root, 201, json={"user_id": uid, "role": "viewer"})

            def writer(i: int) -> None:
                api = Api(nodes[i].base)
                for j in range(15):
                    api.ok("PUT", f"/v1/orgs/{org}/bindings", root, 201,
                           json={"subject": {"user_id": helpers[j % 4]}, "resource": f"org:{org}/project:n{i}-{j}", "role": "editor"})

            threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            apis[1].ok("DELETE", f"/v1/orgs/{org}/members/{helpers[0]}", root, 204)

            expected = [e for e in audit_since(apis[0].audit(root, f"/v1/orgs/{org}/audit"), ep["id"])
                        if e["action"].split(".")[0] in ("member", "binding")]
            assert len(expected) == 4 + 30 + 1, len(expected)
            want = {e["id"] for e in expected}
            rr.wait_for(lambda hs: want <= {h.event_id for h in hs}, timeout=20, what="every member and binding event")
            time.sleep(1.0)  # a duplicate would come now
            hits = rr.snapshot()
            ids = [h.event_id for h in hits]
            duplicates = {i for i in ids if ids.count(i) > 1}
            assert not duplicates, f"{len(duplicates)} events arrived more than once: {[(h.type, h.answered) for h in hits if h.event_id in duplicates][:10]}"
            assert set(ids) == want, set(ids) ^ want
            revisions = [h.body["revision"] for h in hits]
            assert None not in revisions and revisions == sorted(revisions) and len(set(revisions)) == len(revisions), revisions
            log = apis[0].deliveries(root, prefix, ep["id"])
            assert all(d["state"] == "delivered" and d["attempts"] == 1 for d in log), [d for d in log if d["attempts"] != 1][:5]
        finally:
            for n in nodes:
                n.kill9()


# ---------------------------------------------------------------------------------------- 10. who may

def test_only_org_admins_and_root_manage_webhooks_and_the_secret_is_shown_once(server, root, receivers):
    api = server.api
    owner, ho = api.person("owner")
    admin, had = api.person("admin")
    viewer, hv = api.person("viewer")
    outsider, hx = api.person("outsider")
    org = api.org(ho, "access")
    other_org = api.org(hx, "elsewhere")
    api.ok("POST", f"/v1/orgs/{org}/members", ho, 201, json={"user_id": admin["id"], "role": "admin"})
    api.ok("POST", f"/v1/orgs/{org}/members", ho, 201, json={"user_id": viewer["id"], "role": "viewer"})
    prefix = f"/v1/orgs/{org}/webhooks"
    rr, rp = receivers("access"), receivers("access-platform")
    ep, secret = api.register(ho, prefix, rr, event_types=["binding.set"])
    pe, psecret = api.register(root, "/v1/webhooks", rp, event_types=["org.deleted"])
    try:
        wid = ep["id"]
        calls = [("GET", prefix, None), ("POST", prefix, {"url": rr.url("/x")}), ("GET", f"{prefix}/{wid}", None),
                 ("PATCH", f"{prefix}/{wid}", {"description": "mine now"}), ("POST", f"{prefix}/{wid}/secret", {}),
                 ("POST", f"{prefix}/{wid}/test", None), ("GET", f"{prefix}/{wid}/deliveries", None), ("DELETE", f"{prefix}/{wid}", None)]
        for method, path, body in calls:
            assert api.call(method, path, None, json=body).status_code == 401, (method, path)
            r = api.call(method, path, hv, json=body)  # a member without the right: 403, as everywhere in the API
            assert r.status_code == 403, ("viewer", method, path, r.status_code, r.text)
            r = api.call(method, path, hx, json=body)
            assert r.status_code == 404, ("non-member", method, path, r.status_code, r.text)
        # The other org's admin cannot reach this endpoint through its own org either.
        assert api.call("GET", f"/v1/orgs/{other_org}/webhooks/{wid}", hx).status_code == 404
        assert api.call("GET", f"/v1/orgs/{other_org}/webhooks/{wid}/deliveries", hx).status_code == 404
        assert api.call("GET", f"/v1/webhooks/{wid}", root).status_code == 404  # an org's endpoint is not a platform one

        # Platform endpoints: root only.
        for token in (ho, had, hx):
            assert api.call("GET", "/v1/webhooks", token).status_code == 403
            assert api.call("POST", "/v1/webhooks", token, json={"url": rr.url("/p")}).status_code == 403
            assert api.call("GET", f"/v1/webhooks/{pe['id']}", token).status_code == 403
            assert api.call("POST", f"/v1/webhooks/{pe['id']}/test", token).status_code == 403
        assert api.call("GET", f"{prefix}/{pe['id']}", ho).status_code == 404

        # Admins manage; nothing after the registration shows the secret.
        shown = [api.ok("GET", prefix, had, 200), api.ok("GET", f"{prefix}/{wid}", had, 200),
                 api.ok("PATCH", f"{prefix}/{wid}", had, 200, json={"description": "admin was here"}),
                 api.ok("GET", f"{prefix}/{wid}/deliveries", had, 200), api.ok("GET", "/v1/webhooks", root, 200),
                 api.ok("GET", f"/v1/webhooks/{pe['id']}", root, 200), api.ok("GET", f"{prefix}/{wid}", root, 200)]
        for r in shown:
            assert secret not in r.text and psecret not in r.text and '"secret"' not in r.text, r.text[:300]
        got = shown[1].json()
        assert got["id"] == wid and got["url"] == rr.url() and got["event_types"] == ["binding.set"] and "secret" not in got
        assert shown[2].json()["description"] == "admin was here"
        assert api.ok("POST", f"{prefix}/{wid}/test", had, 202).json()["delivery_id"]
        rr.wait_event("webhook.test")
        # The secret reached no log.
        log = (server.workdir / "server.log").read_text(errors="replace")
        for s in (secret, psecret):
            assert s not in log and s[len("whsec_"):] not in log, "a webhook secret is in the server log"
    finally:
        api.call("DELETE", f"{prefix}/{ep['id']}", root)
        api.call("DELETE", f"/v1/webhooks/{pe['id']}", root)


# ---------------------------------------------------------------------------------------- 11. metrics

def test_delivery_metrics(server, root, receivers):
    api = server.api
    org = api.org(root, "metrics")
    prefix = f"/v1/orgs/{org}/webhooks"
    rr = receivers("metrics")
    rr.answer_always(503)
    delivered0, failed0 = deliveries_counter(server.base, "delivered"), deliveries_counter(server.base, "failed")
    ep, _ = api.register(root, prefix, rr, event_types=["binding.set"])
    try:
        api.ok("POST", f"{prefix}/{ep['id']}/test", root, 202)
        rr.wait_for(lambda hs: len(hs) >= 1, what="the first (failing) attempt")
        time.sleep(0.05)
        samples = metric_samples(read_metrics(server.base))
        depth = samples.get(("portcullis_webhook_queue_depth", frozenset()))
        oldest = samples.get(("portcullis_webhook_oldest_pending_seconds", frozenset()))
        assert depth is not None and depth >= 1, depth
        assert oldest is not None and oldest > 0, oldest
        assert samples.get(("portcullis_webhook_deliveries_total", frozenset({("result", "failed")})), 0) >= failed0 + 1

        rr.answer_always(200)
        rr.wait_for(lambda hs: any(h.answered == 200 for h in hs), what="the retry that succeeds")
        wait_until(lambda: deliveries_counter(server.base, "delivered") >= delivered0 + 1, 5, "the delivered counter")

        def settled():
            s = metric_samples(read_metrics(server.base))
            return s.get(("portcullis_webhook_queue_depth", frozenset())) == 0 and s
        samples = wait_until(settled, 10, "queue depth 0", interval=0.1)
        assert samples[("portcullis_webhook_oldest_pending_seconds", frozenset())] == 0
        families = {f.name: f.type for f in text_string_to_metric_families(read_metrics(server.base))}
        assert families.get("portcullis_webhook_deliveries") == "counter", families
        assert families.get("portcullis_webhook_queue_depth") == "gauge"
        assert families.get("portcullis_webhook_oldest_pending_seconds") == "gauge"
    finally:
        api.call("DELETE", f"{prefix}/{ep['id']}", root)
