"""Fault injection against the real server binary, on SQLite and on a private PostgreSQL (SPEC §2, §5, §7).

- kill -9 during a mixed write storm: every write acknowledged with 2xx is there after a restart on the
  same database, none is half-done, every one has its audit event, revisions keep increasing;
- a revoke (API key DELETE, logout) acknowledged just before kill -9 is still in force afterwards;
- PostgreSQL stopped (`pg_ctl stop -m immediate`) or hung (SIGSTOP on every PostgreSQL process) under
  load: 503 `unavailable` fast, /ready 503, never an allow that was not granted, bounded memory, and
  recovery without a restart of the server;
- clock skew with libfaketime: tokens from a node whose clock runs ahead, or checked by one, are taken
  within the 30 s leeway and refused beyond it.

Short form (`make test`): a few rounds, about a minute for everything. Full form: PORTCULLIS_CHAOS=full
(`make chaos`). Every measured number is printed (run pytest with -s to see them) and kept in
$PORTCULLIS_CHAOS_REPORT (a JSON-lines file) when that is set.
"""

import json
import os
import random
import signal
import statistics
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import DEFAULT_BIN
from faultkit import FULL, PGBIN, Node, Postgres, rounds, write_master_key

ROOT_EMAIL = "root@faults.test"
ROOT_PASSWORD = "root password for faults"
PASSWORD = "correct horse battery staple"
FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
DB_TIMEOUT_MS = 1000


def binary() -> Path:
    path = Path(os.environ.get("PORTCULLIS_BIN", DEFAULT_BIN))
    if not path.is_file():
        pytest.fail(f"server binary {path} not found; run `swift build` first", pytrace=False)
    return path


def report(name: str, **numbers) -> None:
    line = json.dumps({"test": name, "full": FULL, **numbers}, sort_keys=True)
    print(f"\nFAULTS {line}")
    path = os.environ.get("PORTCULLIS_CHAOS_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


# ---------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def private_pg(tmp_path_factory):
    """One private PostgreSQL for this module (never the shared PORTCULLIS_TEST_POSTGRES_URL one: these
    tests stop and freeze it). Each test takes a fresh database in it."""
    if not (PGBIN / "initdb").exists():
        pytest.fail(f"{PGBIN}/initdb not found (scripts/install-deps.sh installs postgresql-15)", pytrace=False)
    pg = Postgres(tmp_path_factory.mktemp("pgstate"))
    try:
        yield pg
    finally:
        pg.destroy()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:{tmp_path}/portcullis.db"
    return request.getfixturevalue("private_pg").new_database()


@pytest.fixture
def nodes():
    """Every Node a test starts; all are killed at the end, whatever happened."""
    started: list[Node] = []
    yield started
    for node in started:
        node.kill9()


def new_node(nodes, tmp_path, database_url, name="node", **kw) -> Node:
    key = tmp_path / "master.key"
    if not key.exists():
        write_master_key(key)
    env = {"ROOT_EMAIL": ROOT_EMAIL, "ROOT_PASSWORD": ROOT_PASSWORD, "ACCESS_TOKEN_TTL": "1h"}
    env.update(kw.pop("env", {}))
    node = Node(binary(), tmp_path, name, database_url, key, env=env, **kw)
    nodes.append(node)
    return node


# ---------------------------------------------------------------------------------------- helpers

def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def login(base: str, email: str, password: str = PASSWORD) -> dict:
    r = requests.post(f"{base}/v1/auth/login", json={"email": email, "password": password}, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def signup_and_login(base: str, label: str) -> tuple[str, dict]:
    email = f"{label}-{uuid.uuid4().hex[:10]}@faults.test"
    r = requests.post(f"{base}/v1/users", json={"email": email, "password": PASSWORD, "name": label}, timeout=10)
    assert r.status_code == 201, (r.status_code, r.text)
    return r.json()["id"], login(base, email)


def pages(session: requests.Session, url: str, headers: dict) -> list:
    items, offset = [], 0
    while True:
        sep = "&" if "?" in url else "?"
        r = session.get(f"{url}{sep}limit=100&offset={offset}", headers=headers, timeout=30)
        assert r.status_code == 200, (url, r.status_code, r.text)
        body = r.json()
        items += body["items"]
        offset += len(body["items"])
        if not body["items"] or offset >= body["total"]:
            return items


def is_problem(r: requests.Response, status: int, code: str | None = None) -> bool:
    if r.status_code != status or not r.headers.get("content-type", "").startswith("application/problem+json"):
        return False
    return code is None or r.json().get("code") == code


# ---------------------------------------------------------------------------------- 1. kill -9 storm

class Worker:
    """One user hammering the server with writes on its own orgs and keys; remembers what was
    acknowledged, and what may or may not have happened (no answer: the server died)."""

    def __init__(self, index: int, user_id: str, token: str, helpers: list[str], seed: int):
        self.index, self.user_id, self.token, self.helpers = index, user_id, token, helpers
        self.rng = random.Random(seed)
        self.orgs: list[str] = []                  # acknowledged org ids
        self.members: dict[str, set] = {}         # org -> helper ids whose add was acknowledged
        self.member_tried: dict[str, set] = {}    # org -> helper ids tried at all (no 409 noise)
        self.bindings: dict[str, dict] = {}       # binding id -> {org, resource, role}
        self.keys: dict[str, str] = {}            # acknowledged live key id -> secret
        self.revoked: dict[str, str] = {}         # acknowledged revoked key id -> secret
        self.revoke_unknown: dict[str, str] = {}  # revoke sent, no answer
        self.touched: set = set()                 # orgs written (or maybe written) since the last check
        self.fresh_keys: set = set()              # key ids to test for usability at the next check
        self.next_project = 0

    def step(self, s: requests.Session, base: str, history: list) -> None:
        h = bearer(self.token)
        roll = self.rng.random()
        if not self.orgs or roll < 0.15:
            op, call = "org.create", lambda: s.post(f"{base}/v1/orgs", json={"name": f"storm-{self.index}"}, headers=h, timeout=10)
            target = None
        elif roll < 0.40:
            org = self.rng.choice(self.orgs)
            free = [u for u in self.helpers if u not in self.member_tried.setdefault(org, set())]
            if not free:
                return
            uid = self.rng.choice(free)
            self.member_tried[org].add(uid)
            self.touched.add(org)
            op, target = "member.add", (org, uid)
            call = lambda: s.post(f"{base}/v1/orgs/{org}/members", json={"user_id": uid, "role": "viewer"}, headers=h, timeout=10)
        elif roll < 0.65:
            org = self.rng.choice(self.orgs)
            self.next_project += 1
            resource = f"org:{org}/project:w{self.index}-{self.next_project}"
            self.touched.add(org)
            subject = self.rng.choice(self.helpers)
            op, target = "binding.set", (org, resource, subject)
            body = {"subject": {"user_id": subject}, "resource": resource, "role": "editor"}
            call = lambda: s.put(f"{base}/v1/orgs/{org}/bindings", json=body, headers=h, timeout=10)
        elif roll < 0.85 or not self.keys:
            op, target = "key.create", None
            call = lambda: s.post(f"{base}/v1/keys", json={"name": f"storm-{self.index}"}, headers=h, timeout=10)
        else:
            kid = self.rng.choice(sorted(self.keys))
            secret = self.keys.pop(kid)
            op, target = "key.revoke", (kid, secret)
            call = lambda: s.delete(f"{base}/v1/keys/{kid}", headers=h, timeout=10)

        try:
            r = call()
        except requests.RequestException as error:
            history.append({"op": op, "worker": self.index, "outcome": "unknown", "error": type(error).__name__})
            if op == "key.revoke":
                self.revoke_unknown[target[0]] = target[1]
                self.fresh_keys.add(target[0])
            return
        ok = 200 <= r.status_code < 300
        entry = {"op": op, "worker": self.index, "status": r.status_code, "outcome": "acked" if ok else "refused"}
        if ok:
            entry["revision"] = int(r.headers["Portcullis-Revision"])
        history.append(entry)
        if not ok:
            if op == "key.revoke" and r.status_code < 500:  # refused: still a live key
                self.keys[target[0]] = target[1]
            elif op == "key.revoke":  # a server error acknowledges nothing: either state is fine
                self.revoke_unknown[target[0]] = target[1]
                self.fresh_keys.add(target[0])
            return
        body = r.json() if r.content else {}
        if op == "org.create":
            self.orgs.append(body["id"])
            self.touched.add(body["id"])
            entry["target"] = ("org.created", body["id"], f"org:{body['id']}")
        elif op == "member.add":
            self.members.setdefault(target[0], set()).add(target[1])
            entry["target"] = ("member.added", target[0], f"user:{target[1]}")
        elif op == "binding.set":
            self.bindings[body["id"]] = {"org": target[0], "resource": target[1], "subject": target[2]}
            entry["target"] = ("binding.set", target[0], f"binding:{body['id']}")
        elif op == "key.create":
            self.keys[body["id"]] = body["key"]
            self.fresh_keys.add(body["id"])
            entry["target"] = ("key.created", None, f"key:{body['id']}")
        elif op == "key.revoke":
            self.revoked[target[0]] = target[1]
            self.fresh_keys.add(target[0])
            entry["target"] = ("key.revoked", None, f"key:{target[0]}")


def storm(base: str, workers: list[Worker], history: list, stop: threading.Event) -> list[threading.Thread]:
    def run(worker: Worker):
        with requests.Session() as s:
            while not stop.is_set():
                worker.step(s, base, history)

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    return threads


def verify(base: str, root_token: str, workers: list[Worker], history: list, everything: bool) -> dict:
    """Checks the server's state against the recorded history. Returns counts and the list of
    acknowledged writes that are missing (`lost`) and of states that are half-done or inconsistent."""
    s = requests.Session()
    lost, broken = [], []
    audit = {(e["action"], e["org_id"], e["target"]) for e in pages(s, f"{base}/v1/audit", bearer(root_token))}
    acked = [e for e in history if e["outcome"] == "acked"]
    for e in acked:
        if tuple(e["target"]) not in audit:
            lost.append(("audit event missing", e))

    for w in workers:
        h = bearer(w.token)
        listed = {o["id"]: o["role"] for o in pages(s, f"{base}/v1/orgs", h)}
        for org in w.orgs:
            if listed.get(org) != "owner":
                lost.append(("org missing or creator not owner", org, listed.get(org)))
        for org, role in listed.items():
            if role != "owner":
                broken.append(("org without its owner membership", org, role))
            if ("org.created", org, f"org:{org}") not in audit:
                broken.append(("org without org.created audit event", org))
        new_orgs = set(listed) - set(w.orgs)  # created by a request that never got its answer
        detail = set(listed) if everything else (w.touched | new_orgs) & set(listed)
        for org in detail:
            members = {m["user_id"]: m["role"] for m in pages(s, f"{base}/v1/orgs/{org}/members", h)}
            if members.get(w.user_id) != "owner":
                broken.append(("creator not an owner member", org, members.get(w.user_id)))
            for uid in w.members.get(org, ()):
                if members.get(uid) != "viewer":
                    lost.append(("member missing", org, uid, members.get(uid)))
            for uid in members:
                if uid != w.user_id and ("member.added", org, f"user:{uid}") not in audit:
                    broken.append(("member without member.added audit event", org, uid))
            bindings = {b["id"]: b for b in pages(s, f"{base}/v1/orgs/{org}/bindings", h)}
            for bid, want in w.bindings.items():
                if want["org"] == org and (bid not in bindings or bindings[bid]["resource"] != want["resource"]):
                    lost.append(("binding missing", org, bid))
            for bid in bindings:
                if ("binding.set", org, f"binding:{bid}") not in audit:
                    broken.append(("binding without binding.set audit event", org, bid))
        w.touched = set()

        keys = {k["id"] for k in pages(s, f"{base}/v1/keys", h)}
        for kid in w.keys:
            if kid not in keys:
                lost.append(("key missing", kid))
        for kid in w.revoked:
            if kid in keys:
                lost.append(("revoked key listed again", kid))
        for kid in keys:
            if ("key.created", None, f"key:{kid}") not in audit:
                broken.append(("key without key.created audit event", kid))
        # Usability: the keys acknowledged or revoked since the last check (all of them at the end).
        check = set(w.keys) | set(w.revoked) | set(w.revoke_unknown) if everything else set(w.fresh_keys)
        for kid in check:
            secret = w.keys.get(kid) or w.revoked.get(kid) or w.revoke_unknown.get(kid)
            status = s.get(f"{base}/v1/me", headers=bearer(secret), timeout=10).status_code
            if kid in w.keys and status != 200:
                lost.append(("acknowledged key not usable", kid, status))
            elif kid in w.revoked and status != 401:
                lost.append(("acknowledged revoke not in force", kid, status))
            elif kid in w.revoke_unknown and (status == 200) != (kid in keys):
                broken.append(("key listed and usable disagree", kid, status, kid in keys))
        w.fresh_keys = set()

    # Decisions, not only listings: a sample of acknowledged grants answers allowed, strong and cached.
    if everything:
        grants = [(uid, f"org:{org}", "viewer") for w in workers for org, uids in w.members.items() for uid in uids]
        grants += [(b["subject"], b["resource"] + "/doc:1", "editor") for w in workers for b in w.bindings.values()]
        for uid, obj, role in random.Random(1).sample(grants, min(60, len(grants))):
            for consistency in ("strong", "cached"):
                r = s.post(f"{base}/v1/authorize", json={"subject": {"user_id": uid}, "object": obj, "action": role,
                                                         "consistency": consistency}, headers=bearer(root_token), timeout=10)
                if r.status_code != 200 or r.json()["allowed"] is not True:
                    lost.append(("acknowledged grant not in force", consistency, uid, obj, role, r.status_code, r.text[:200]))

    # Revisions: unique among acknowledged writes, and a write after the restart is newer than all of them.
    revisions = [e["revision"] for e in acked]
    if len(revisions) != len(set(revisions)):
        broken.append(("a revision was acknowledged twice", len(revisions) - len(set(revisions))))
    r = s.post(f"{base}/v1/orgs", json={"name": "after-restart"}, headers=bearer(root_token), timeout=10)
    assert r.status_code == 201, r.text
    if revisions and int(r.headers["Portcullis-Revision"]) <= max(revisions):
        broken.append(("revision went backwards after restart", int(r.headers["Portcullis-Revision"]), max(revisions)))
    s.close()
    return {"acked": len(acked), "lost": lost, "broken": broken}


def test_kill9_during_write_storm_loses_no_acknowledged_write(database, tmp_path, nodes):
    node = new_node(nodes, tmp_path, database).start()
    root = login(node.base, ROOT_EMAIL, ROOT_PASSWORD)["access_token"]
    helpers = [signup_and_login(node.base, f"helper{i}")[0] for i in range(6)]
    workers = []
    for i in range(3):
        uid, tokens = signup_and_login(node.base, f"worker{i}")
        workers.append(Worker(i, uid, tokens["access_token"], helpers, seed=i))

    history: list = []
    kills = rounds(3, 20)
    rng = random.Random(7)
    started = time.monotonic()
    restart_times = []
    for n in range(kills):
        stop = threading.Event()
        threads = storm(node.base, workers, history, stop)
        time.sleep(rng.uniform(0.4, 1.5) if not FULL else rng.uniform(0.3, 3.0))
        # No new request after this, but those in flight stay in flight: SIGKILL lands mid-request.
        stop.set()
        node.kill9()
        for t in threads:
            t.join(timeout=30)
        t0 = time.monotonic()
        node.start()
        restart_times.append(time.monotonic() - t0)
        result = verify(node.base, root, workers, history, everything=(n == kills - 1))
        assert not result["lost"], f"after kill {n + 1}: acknowledged writes lost: {result['lost'][:10]}"
        assert not result["broken"], f"after kill {n + 1}: half-done state: {result['broken'][:10]}"

    acked = [e for e in history if e["outcome"] == "acked"]
    unknown = [e for e in history if e["outcome"] == "unknown"]
    refused = [e for e in history if e["outcome"] == "refused"]
    by_op = {op: sum(1 for e in acked if e["op"] == op) for op in sorted({e["op"] for e in history})}
    report("kill9_storm", backend=database.split(":")[0], kills=kills, writes_sent=len(history),
           acked_checked=len(acked), lost=0, unknown_outcome=len(unknown), refused=len(refused),
           acked_by_op=by_op, restart_s_max=round(max(restart_times), 2), seconds=round(time.monotonic() - started, 1))
    assert refused == [] or all(e["status"] < 500 for e in refused), [e for e in refused if e["status"] >= 500][:5]
    assert all(by_op.get(op, 0) > 0 for op in ("org.create", "member.add", "binding.set", "key.create", "key.revoke")), by_op


# ------------------------------------------------------------------ 2. revoke acknowledged, then kill

def test_revoke_acknowledged_just_before_kill9_stays_in_force(database, tmp_path, nodes):
    node = new_node(nodes, tmp_path, database).start()
    n = rounds(3, 10)
    for i in range(n):
        _, tokens = signup_and_login(node.base, f"revoker{i}")
        h = bearer(tokens["access_token"])
        key = requests.post(node.url("/v1/keys"), json={"name": "doomed"}, headers=h, timeout=10)
        assert key.status_code == 201, key.text
        secret = key.json()["key"]
        assert requests.get(node.url("/v1/me"), headers=bearer(secret), timeout=10).status_code == 200

        # Both revokes acknowledged, then SIGKILL at once (microseconds after the last answer).
        r = requests.delete(node.url(f"/v1/keys/{key.json()['id']}"), headers=h, timeout=10)
        assert r.status_code == 204, r.text
        r = requests.post(node.url("/v1/auth/logout"), json={}, headers=h, timeout=10)
        os.kill(node.pid, signal.SIGKILL)
        assert r.status_code == 204, r.text
        node.kill9()
        node.start()

        assert requests.get(node.url("/v1/me"), headers=bearer(secret), timeout=10).status_code == 401, "revoked key works again"
        me = requests.get(node.url("/v1/me"), headers=h, timeout=10)
        assert me.status_code == 401, f"access token of a logged-out session works again: {me.status_code}"
        again = requests.post(node.url("/v1/auth/refresh"), json={"refresh_token": tokens["refresh_token"]}, timeout=10)
        assert again.status_code == 401, f"refresh token of a logged-out session works again: {again.status_code}"
    report("revoke_then_kill9", backend=database.split(":")[0], rounds=n, lost=0)


# ------------------------------------------------------------------------- 3./4. PostgreSQL outages

class Load:
    """Client threads asking for decisions and writing while PostgreSQL goes away; every answer is kept
    as (kind, started, seconds, status, body-or-None)."""

    def __init__(self, base: str, user_token: str, root_token: str, allowed_org: str, denied_org: str, threads: int):
        self.base, self.user, self.root = base, user_token, root_token
        self.allowed_org, self.denied_org = allowed_org, denied_org
        self.samples: list = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def run(self, i: int):
        rng = random.Random(i)
        with requests.Session() as s:
            while not self.stop.is_set():
                kind = rng.choice(["allowed", "denied", "cold", "write", "read"])
                if kind == "allowed":
                    call = lambda: s.post(f"{self.base}/v1/authorize", json={"object": f"org:{self.allowed_org}", "action": "org.read"}, headers=bearer(self.user), timeout=30)
                elif kind == "denied":
                    call = lambda: s.post(f"{self.base}/v1/authorize", json={"object": f"org:{self.allowed_org}", "action": "org.delete"}, headers=bearer(self.user), timeout=30)
                elif kind == "cold":  # an org this node never loaded: cannot come from the cache
                    org = str(uuid.uuid4())
                    call = lambda: s.post(f"{self.base}/v1/authorize", json={"object": f"org:{org}", "action": "org.read"}, headers=bearer(self.user), timeout=30)
                elif kind == "write":
                    call = lambda: s.post(f"{self.base}/v1/orgs", json={"name": "under-outage"}, headers=bearer(self.root), timeout=30)
                else:
                    call = lambda: s.get(f"{self.base}/v1/orgs/{self.allowed_org}/members", headers=bearer(self.root), timeout=30)
                t0 = time.monotonic()
                try:
                    r = call()
                    elapsed = time.monotonic() - t0
                    body = r.json() if r.content else None
                    self.samples.append((kind, t0, elapsed, r.status_code, body, r.headers.get("Retry-After"),
                                         r.headers.get("content-type", "")))
                except (requests.RequestException, ValueError) as error:
                    self.samples.append((kind, t0, time.monotonic() - t0, type(error).__name__, None, None, ""))
                time.sleep(0.01)


def outage_setup(node: Node):
    root = login(node.base, ROOT_EMAIL, ROOT_PASSWORD)["access_token"]
    uid, tokens = signup_and_login(node.base, "viewer")
    orgs = []
    for name in ("allowed", "denied"):
        r = requests.post(node.url("/v1/orgs"), json={"name": name}, headers=bearer(root), timeout=10)
        assert r.status_code == 201
        orgs.append(r.json()["id"])
    r = requests.post(node.url(f"/v1/orgs/{orgs[0]}/members"), json={"user_id": uid, "role": "viewer"}, headers=bearer(root), timeout=10)
    assert r.status_code == 201
    return root, tokens["access_token"], orgs[0], orgs[1]


def check_no_false_allow(samples):
    """Whatever the database does: no allow for something not granted, and never a 500."""
    for kind, _, _, status, body, _, _ in samples:
        if kind in ("denied", "cold") and status == 200:
            assert body["allowed"] is False, f"allowed a {kind} check during a database outage: {body}"
        assert not (isinstance(status, int) and status >= 500 and status != 503), f"{kind} answered {status}: {body}"


def wait_ready(node: Node, root: str, limit: float) -> float:
    """Seconds until /ready says 200 and a write goes through again."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            if requests.get(node.url("/ready"), timeout=3).status_code == 200:
                w = requests.post(node.url("/v1/orgs"), json={"name": "recovered"}, headers=bearer(root), timeout=5)
                if w.status_code == 201:
                    return time.monotonic() - t0
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return float("inf")


def outage_numbers(samples, t_from, t_to, timeout_s):
    during = [s for s in samples if t_from <= s[1] and s[1] + s[2] <= t_to]
    failed = [s for s in during if s[3] == 503]
    lat = sorted(s[2] for s in failed)
    cached = [s for s in during if s[0] == "allowed" and s[3] == 200 and s[4] and s[4].get("allowed")]
    other = [(s[0], s[3]) for s in during if s[3] not in (200, 503)]
    return during, failed, lat, cached, other


def assert_outage_answers(during, failed, timeout_s):
    assert failed, "no request failed while the database was down"
    for kind, _, elapsed, status, body, retry, ctype in during:
        if kind in ("write", "read", "cold"):
            assert status == 503, f"{kind} answered {status} {body} while the database was down"
        if status == 503:
            assert ctype.startswith("application/problem+json"), ctype
            assert body and body.get("code") == "unavailable", body
            assert retry, "503 without Retry-After"
            assert elapsed <= timeout_s + 1.5, f"{kind} took {elapsed:.2f}s to fail (deadline {timeout_s}s)"


@pytest.mark.parametrize("how", ["stopped", "hung"])
def test_postgres_outage_fails_fast_and_recovers(private_pg, tmp_path, nodes, how):
    timeout_s = DB_TIMEOUT_MS / 1000
    node = new_node(nodes, tmp_path, private_pg.new_database(), env={"DATABASE_TIMEOUT_MS": str(DB_TIMEOUT_MS)}).start()
    root, user, allowed_org, denied_org = outage_setup(node)
    # Warm the decision cache for the allowed org.
    r = requests.post(node.url("/v1/authorize"), json={"object": f"org:{allowed_org}", "action": "org.read"}, headers=bearer(user), timeout=10)
    assert r.status_code == 200 and r.json()["allowed"] is True, r.text

    load = Load(node.base, user, root, allowed_org, denied_org, threads=3 if how == "stopped" else 12).start()
    outage = rounds(4, 12)
    rss_before = node.rss_kib()
    rss_max = rss_before
    try:
        time.sleep(1.0)
        t_down = time.monotonic()
        if how == "stopped":
            private_pg.stop_immediate()
        else:
            frozen = private_pg.signal_all(signal.SIGSTOP)
            assert len(frozen) >= 2, frozen
        ready_t0 = time.monotonic()
        ready = requests.get(node.url("/ready"), timeout=30)
        ready_latency = time.monotonic() - ready_t0
        deadline = time.monotonic() + outage
        while time.monotonic() < deadline:
            rss_max = max(rss_max, node.rss_kib())
            time.sleep(0.2)
        t_up = time.monotonic()
        ready_late = requests.get(node.url("/ready"), timeout=30)
    finally:
        if how == "stopped":
            private_pg.start_again()
        else:
            private_pg.signal_all(signal.SIGCONT)
    recovery = wait_ready(node, root, 30)
    time.sleep(0.5)
    load.finish()
    # Nothing poisoned is left behind (a connection stuck in a transaction, a lock held): a run of writes
    # and strong reads right after recovery all succeed.
    after = []
    with requests.Session() as s:
        for i in range(30):
            w = s.post(node.url("/v1/orgs"), json={"name": f"after-{i}"}, headers=bearer(root), timeout=10)
            a = s.post(node.url("/v1/authorize"), json={"object": f"org:{allowed_org}", "action": "org.read", "consistency": "strong"},
                       headers=bearer(user), timeout=10)
            after += [w.status_code, a.status_code]

    # Judge the window after the first second (requests already in flight when it went down may still finish).
    during, failed, lat, cached, other = outage_numbers(load.samples, t_down + timeout_s + 0.2, t_up, timeout_s)
    report(f"postgres_{how}", requests_during_outage=len(during), answered_503=len(failed),
           latency_503_p50_s=round(statistics.median(lat), 3) if lat else None,
           latency_503_max_s=round(max(lat), 3) if lat else None,
           cached_allows_from_memory=len(cached), other_statuses=sorted(set(map(str, other)))[:10],
           ready_status=ready.status_code, ready_latency_s=round(ready_latency, 3),
           recovery_s=round(recovery, 2), rss_before_mib=rss_before // 1024, rss_max_mib=rss_max // 1024,
           outage_s=outage)
    check_no_false_allow(load.samples)
    assert is_problem(ready, 503), (ready.status_code, ready.headers, ready.text)
    assert ready_latency <= 1.5, f"/ready took {ready_latency:.2f}s to say 503"
    assert is_problem(ready_late, 503), (ready_late.status_code, ready_late.text)
    assert_outage_answers(during, failed, timeout_s)
    assert recovery <= 10, f"not recovered {recovery}s after PostgreSQL came back"
    assert set(after) <= {200, 201}, f"after recovery: {sorted(set(after))}"
    assert rss_max - rss_before < 200 * 1024, f"RSS grew from {rss_before} KiB to {rss_max} KiB"
    assert node.alive()


def test_sqlite_locked_fails_fast_and_recovers(tmp_path, nodes):
    """SQLite's counterpart of a hung database: another process holds the write lock."""
    import sqlite3

    timeout_s = DB_TIMEOUT_MS / 1000
    node = new_node(nodes, tmp_path, f"sqlite:{tmp_path}/portcullis.db", env={"DATABASE_TIMEOUT_MS": str(DB_TIMEOUT_MS)}).start()
    root, user, allowed_org, _ = outage_setup(node)
    holder = sqlite3.connect(tmp_path / "portcullis.db", timeout=10, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        t0 = time.monotonic()
        r = requests.post(node.url("/v1/orgs"), json={"name": "locked"}, headers=bearer(root), timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    report("sqlite_locked", write_status=r.status_code, latency_s=round(elapsed, 3))
    assert is_problem(r, 503, "unavailable"), (r.status_code, r.text)
    assert r.headers.get("Retry-After")
    assert elapsed <= timeout_s + 1.5, f"took {elapsed:.2f}s"
    # Once the lock is gone, writes work again (within a few seconds, without a restart).
    t0, statuses = time.monotonic(), []
    while time.monotonic() - t0 < 5:
        after = requests.post(node.url("/v1/orgs"), json={"name": "unlocked"}, headers=bearer(root), timeout=10)
        statuses.append(after.status_code)
        if after.status_code == 201:
            break
        time.sleep(0.2)
    report("sqlite_locked_recovery", statuses=statuses[:5], attempts=len(statuses), recovery_s=round(time.monotonic() - t0, 2))
    assert statuses[-1] == 201, f"writes still fail after the lock was released: {statuses[:5]}… {after.text}"


# ----------------------------------------------------------------------------------- 5. clock skew

@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_clock_skew_within_leeway_accepted_beyond_refused(backend, tmp_path, nodes, request):
    if not FAKETIME_LIB.exists():
        pytest.fail(f"{FAKETIME_LIB} missing (scripts/install-deps.sh installs faketime)", pytrace=False)
    url = f"sqlite:{tmp_path}/portcullis.db" if backend == "sqlite" else request.getfixturevalue("private_pg").new_database()
    public = "http://portcullis.skew.test"  # one issuer and audience for every node
    env = {"ACCESS_TOKEN_TTL": "60"}

    def skewed(name, seconds):
        fake = {} if seconds == 0 else {"LD_PRELOAD": str(FAKETIME_LIB), "FAKETIME": f"{seconds:+d}s",
                                        "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_NO_CACHE": "1"}
        node = new_node(nodes, tmp_path, url, name=name, public_url=public, env=env)
        node.env.update(fake)
        return node.start()

    right = skewed("right", 0)  # first: it creates the schema and the signing key
    ahead20, ahead75, ahead120 = skewed("ahead20", 20), skewed("ahead75", 75), skewed("ahead120", 120)
    email = f"skew-{uuid.uuid4().hex[:8]}@faults.test"
    assert requests.post(right.url("/v1/users"), json={"email": email, "password": PASSWORD}, timeout=10).status_code == 201

    def me(node, token):
        return requests.get(node.url("/v1/me"), headers=bearer(token), timeout=10)

    # Issued by a node whose clock is ahead: iat/nbf lie in the right node's future.
    t20 = login(ahead20.base, email)["access_token"]
    t120 = login(ahead120.base, email)["access_token"]
    within_nbf, beyond_nbf = me(right, t20), me(right, t120)
    # Issued by the right node with a 60 s lifetime, checked by nodes already 75 s / 120 s later.
    t0 = login(right.base, email)["access_token"]
    within_exp, beyond_exp = me(ahead75, t0), me(ahead120, t0)
    report("clock_skew", backend=backend, nbf_plus20=within_nbf.status_code, nbf_plus120=beyond_nbf.status_code,
           exp_past15=within_exp.status_code, exp_past60=beyond_exp.status_code)
    assert within_nbf.status_code == 200, f"token from a node 20 s ahead refused: {within_nbf.text}"
    assert is_problem(beyond_nbf, 401, "unauthenticated"), f"token from a node 120 s ahead: {beyond_nbf.status_code} {beyond_nbf.text}"
    assert within_exp.status_code == 200, f"token 15 s past exp refused: {within_exp.text}"
    assert is_problem(beyond_exp, 401, "unauthenticated"), f"token 60 s past exp: {beyond_exp.status_code} {beyond_exp.text}"
