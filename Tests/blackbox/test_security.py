"""The security suite (issue 7): attacks and bad input against a real server, on SQLite and on
PostgreSQL. Every refused attack asserts the exact status, the problem `code` and
`application/problem+json`, and that nothing changed: the root admin's backup (users, orgs,
memberships, bindings, service accounts, keys, invites, audit log) is the same before and after,
apart from keys' `last_used_at` and the snapshots' own `backup.exported` events.

Tokens with a genuine signature but bad claims (expired, nbf ahead, wrong iss/aud/typ, no kid,
unknown session) are signed with the server's own key, read back from its database with the master
key the test gave it: the only way to prove the claim checks themselves, not just the signature.

Rate limits, CORS and the security headers run against servers of their own (small limits,
X-Forwarded-For from a trusted proxy so each case is its own client).
"""

import http.client
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
import hashlib
import hmac

from security_support import (BACKENDS, PASSWORD, ROOT_EMAIL, ROOT_PASSWORD, b64, diff, forge, instance,
                              sign_es256, snapshot, unverified)

PROBLEM = "application/problem+json"
NOT_SET = object()


# ------------------------------------------------------------------------------------------------
# The world: two orgs with owners, admins, editors, viewers, bindings, keys, service accounts, invites.
# ------------------------------------------------------------------------------------------------

class World:
    def __init__(self, inst, backend):
        self.inst = inst
        self.backend = backend
        self.tok = {}      # who -> access token
        self.refresh = {}  # who -> refresh token
        self.user = {}     # who -> user id
        self.email = {}    # who -> e-mail
        self.ids = {}      # named object ids
        self.keys = {}     # named API key secrets
        self.mail = {}     # named mailed tokens

    def req(self, method, path, token=None, **kw):
        return self.inst.request(method, path, token, **kw)

    def ok(self, method, path, who, expect=200, **kw):
        token = self.tok[who] if who in self.tok else who
        return self.inst.ok(method, path, token, expect, **kw)

    def fresh_login(self, who):
        """A new session of `who` (one argon2 verification): {access_token, refresh_token, ...}."""
        return self.inst.login(self.email[who])


def build_world(inst, backend) -> World:
    w = World(inst, backend)
    root = inst.login(ROOT_EMAIL, ROOT_PASSWORD)
    w.tok["root"] = root["access_token"]
    tag = uuid.uuid4().hex[:6]
    people = ["a_owner", "a_admin", "a_editor", "a_viewer", "b_owner", "b_admin",
              "inv1", "inv2", "inv3", "inv4", "inv5"]
    for who in people:
        email = f"{who}-{tag}@example.com"
        w.email[who] = email
        w.user[who] = inst.signup(email, name=who)["id"]
        tokens = inst.login(email)
        w.tok[who], w.refresh[who] = tokens["access_token"], tokens["refresh_token"]
    w.email["outsider"] = f"outsider-{tag}@example.com"
    w.user["outsider"] = inst.signup(w.email["outsider"], name="outsider")["id"]
    # Only proven addresses are added by e-mail, and invites to unverified accounts stay dormant:
    # everyone confirms their address first.
    for who in people:
        token = inst.wait_mailed_token(w.email[who], "/verify-email")
        assert w.req("POST", "/v1/auth/verify-email", json={"token": token}).status_code == 204

    A = w.ids["A"] = w.ok("POST", "/v1/orgs", "a_owner", 201, json={"name": "Org A"})["id"]
    B = w.ids["B"] = w.ok("POST", "/v1/orgs", "b_owner", 201, json={"name": "Org B", "metadata": {"secret": "b"}})["id"]
    for who, role in (("a_admin", "admin"), ("a_editor", "editor"), ("a_viewer", "viewer")):
        w.ok("POST", f"/v1/orgs/{A}/members", "a_owner", 201, json={"email": w.email[who], "role": role})
    w.ok("POST", f"/v1/orgs/{B}/members", "b_owner", 201, json={"email": w.email["b_admin"], "role": "admin"})
    # a_owner is also a viewer of B: lets a key scoped to A prove it cannot reach B.
    w.ok("POST", f"/v1/orgs/{B}/members", "b_owner", 201, json={"email": w.email["a_owner"], "role": "viewer"})

    def bind(org, who, owner, resource, role):
        return w.ok("PUT", f"/v1/orgs/{org}/bindings", owner, 201,
                    json={"subject": {"user_id": w.user[who]}, "resource": resource, "role": role})["id"]
    w.ids["bind_a"] = bind(A, "a_viewer", "a_owner", f"org:{A}/project:p1", "editor")
    w.ids["bind_a_owner_role"] = bind(A, "a_editor", "a_owner", f"org:{A}/project:vip", "owner")
    w.ids["bind_b"] = bind(B, "b_admin", "b_owner", f"org:{B}/project:x", "editor")

    w.ids["sa_a"] = w.ok("POST", f"/v1/orgs/{A}/service-accounts", "a_owner", 201, json={"name": "sync", "role": "editor"})["id"]
    w.ids["sa_a_owner"] = w.ok("POST", f"/v1/orgs/{A}/service-accounts", "a_owner", 201, json={"name": "boss", "role": "owner"})["id"]
    w.ids["sa_b"] = w.ok("POST", f"/v1/orgs/{B}/service-accounts", "b_owner", 201, json={"name": "b-sync", "role": "viewer"})["id"]
    key = w.ok("POST", f"/v1/orgs/{A}/service-accounts/{w.ids['sa_a']}/keys", "a_owner", 201, json={"name": "sa a"})
    w.keys["sa_a"] = key["key"]
    key = w.ok("POST", f"/v1/orgs/{B}/service-accounts/{w.ids['sa_b']}/keys", "b_owner", 201, json={"name": "sa b"})
    w.keys["sa_b"], w.ids["sa_b_key"] = key["key"], key["id"]

    def user_key(who, name, scopes=None):
        body = {"name": name} if scopes is None else {"name": name, "scopes": scopes}
        created = w.ok("POST", "/v1/keys", who, 201, json=body)
        return created["key"], created["id"]
    w.keys["a_owner"], w.ids["a_owner_key"] = user_key("a_owner", "full")
    w.keys["a_owner_ro"], _ = user_key("a_owner", "read only", [f"org:{A}", "role:viewer"])
    w.keys["a_owner_org_a"], _ = user_key("a_owner", "org a only", [f"org:{A}"])
    w.keys["root_scoped"], _ = user_key("root", "root scoped", ["role:owner"])
    w.keys["revoked"], revoked_id = user_key("a_owner", "revoked")
    w.ok("DELETE", f"/v1/keys/{revoked_id}", "a_owner", 204)

    def invite(org, inviter, who, role="viewer"):
        return w.ok("POST", f"/v1/orgs/{org}/invites", inviter, 201, json={"email": w.email[who], "role": role})["id"]
    for who in ("inv1", "inv2", "inv3", "inv4", "inv5"):
        w.ids[f"invite_{who}"] = invite(A, "a_owner", who)
    w.ids["invite_b"] = invite(B, "b_owner", "inv3", "editor")
    w.ok("POST", f"/v1/invites/{w.ids['invite_inv1']}/accept", "inv1")          # accepted: a second accept is the attack
    w.ok("DELETE", f"/v1/invites/{w.ids['invite_inv4']}", "a_owner", 204)       # revoked
    w.mail["inv2"] = inst.wait_mailed_token(w.email["inv2"], "/invites/accept")
    w.mail["inv3"] = inst.wait_mailed_token(w.email["inv3"], "/invites/accept")
    w.mail["inv5_old"] = inst.wait_mailed_token(w.email["inv5"], "/invites/accept")
    w.ok("POST", "/v1/invites/claim", "inv2", json={"token": w.mail["inv2"]})  # claimed: a second claim is the attack
    w.ok("POST", f"/v1/invites/{w.ids['invite_inv5']}/resend", "a_owner")      # the old link is dead now

    sessions = w.ok("GET", "/v1/me/sessions", "a_owner")["items"]
    w.ids["a_owner_session"] = next(s["id"] for s in sessions if s["current"])

    # The server's own signing key, for genuine signatures on bad claims.
    header, claims = unverified(w.tok["a_owner"])
    w.kid, w.claims = header["kid"], claims
    w.signing_key = inst.signing_key(header["kid"])
    jwks = w.req("GET", "/.well-known/jwks.json").json()["keys"]
    w.public_jwk = next(k for k in jwks if k["kid"] == w.kid)
    return w


SERVER_SETTINGS = dict(
    ROOT_EMAIL=ROOT_EMAIL, ROOT_PASSWORD=ROOT_PASSWORD, SIGNUP="open", SMTP_URL="log", LOG_FORMAT="json",
    CORS_ORIGINS="https://app.example",
    # The world and these cases log in far more often than any person: no per-IP throttling here
    # (the rate-limit cases run against a server of their own).
    IP_BURST="0", IP_PER_MINUTE="0",
)


@pytest.fixture(scope="module", params=BACKENDS)
def world(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"security-{request.param}")
    with instance(request.param, workdir, **SERVER_SETTINGS) as inst:
        yield build_world(inst, request.param)


# ------------------------------------------------------------------------------------------------
# Cases: each builds one attack against the world; the test sends it and checks the answer and state.
# ------------------------------------------------------------------------------------------------

@dataclass
class Attack:
    method: str
    path: str
    token: str | None
    status: int
    code: str
    json: object = NOT_SET
    data: bytes | None = None
    headers: dict = field(default_factory=dict)
    check: Callable | None = None   # extra checks on the response
    after: Callable | None = None   # extra checks on the world after the attack


CASES: dict[str, Callable[[World], Attack]] = {}


def case(name):
    def register(fn):
        assert name not in CASES, name
        CASES[name] = fn
        return fn
    return register


def assert_problem(r, status, code):
    assert r.status_code == status, f"expected {status} {code}, got {r.status_code}: {r.text[:500]}"
    ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith(PROBLEM), f"Content-Type {ctype!r}, body {r.text[:200]}"
    body = r.json()
    assert body.get("code") == code, f"expected code {code}, got {body}"
    assert body.get("status") == status, body
    for field_name in ("type", "title"):
        assert field_name in body, body
    if status == 401:
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), r.headers


def rename_a(w, token) -> Attack:
    """The write every token attack tries: rename org A as its owner."""
    return Attack("PATCH", f"/v1/orgs/{w.ids['A']}", token, 401, "unauthenticated", json={"name": "pwned"})


# --- tokens ---------------------------------------------------------------------------------------

def _genuine_claims(w, **changes):
    now = int(time.time())
    claims = dict(w.claims, iat=now, nbf=now, exp=now + 600, jti=str(uuid.uuid4()))
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _real(w, claims=None, **header):
    head = {"kid": w.kid, "typ": "at+jwt", **header}
    head = {k: v for k, v in head.items() if v is not None}
    return sign_es256(w.signing_key, head, claims if claims is not None else _genuine_claims(w))


@case("tokens/alg_none")
def _(w):
    header, payload = unverified(w.tok["a_owner"])
    return rename_a(w, forge({**header, "alg": "none"}, payload, lambda _: ""))


@case("tokens/alg_none_keeps_signature")
def _(w):
    header, payload = unverified(w.tok["a_owner"])
    return rename_a(w, forge({**header, "alg": "none"}, payload, lambda _: w.tok["a_owner"].rsplit(".", 1)[1]))


@case("tokens/alg_None_mixed_case")
def _(w):
    header, payload = unverified(w.tok["a_owner"])
    return rename_a(w, forge({**header, "alg": "nOnE"}, payload, lambda _: ""))


def _hs256(w, secret: bytes):
    header, payload = unverified(w.tok["a_owner"])
    return forge({**header, "alg": "HS256"}, payload, lambda m: b64(hmac.new(secret, m, hashlib.sha256).digest()))


@case("tokens/hs256_signed_with_jwks_public_key_pem")
def _(w):
    public = jwt.PyJWK(w.public_jwk).key
    return rename_a(w, _hs256(w, public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)))


@case("tokens/hs256_signed_with_jwks_public_key_point")
def _(w):
    public = jwt.PyJWK(w.public_jwk).key
    return rename_a(w, _hs256(w, public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)))


@case("tokens/hs256_signed_with_jwk_json")
def _(w):
    return rename_a(w, _hs256(w, json.dumps(w.public_jwk).encode()))


@case("tokens/es256_attacker_key_with_our_kid")
def _(w):
    attacker = ec.generate_private_key(ec.SECP256R1())
    return rename_a(w, sign_es256(attacker, {"kid": w.kid, "typ": "at+jwt"}, _genuine_claims(w)))


@case("tokens/es256_attacker_key_unknown_kid")
def _(w):
    attacker = ec.generate_private_key(ec.SECP256R1())
    return rename_a(w, sign_es256(attacker, {"kid": "attacker-kid", "typ": "at+jwt"}, _genuine_claims(w)))


@case("tokens/embedded_jwk_header")
def _(w):
    attacker = ec.generate_private_key(ec.SECP256R1())
    embedded = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(attacker.public_key()))
    return rename_a(w, sign_es256(attacker, {"kid": "evil", "typ": "at+jwt", "jwk": embedded,
                                             "jku": "https://evil.example/jwks.json"}, _genuine_claims(w)))


@case("tokens/sql_in_kid")
def _(w):
    attacker = ec.generate_private_key(ec.SECP256R1())
    return rename_a(w, sign_es256(attacker, {"kid": "x' OR '1'='1", "typ": "at+jwt"}, _genuine_claims(w)))


@case("tokens/real_key_missing_kid")
def _(w):
    return rename_a(w, _real(w, kid=None))


@case("tokens/real_key_expired")
def _(w):
    now = int(time.time())
    return rename_a(w, _real(w, _genuine_claims(w, iat=now - 3600, nbf=now - 3600, exp=now - 120)))


@case("tokens/real_key_nbf_in_future")
def _(w):
    now = int(time.time())
    return rename_a(w, _real(w, _genuine_claims(w, nbf=now + 600, exp=now + 900)))


@case("tokens/real_key_wrong_iss")
def _(w):
    return rename_a(w, _real(w, _genuine_claims(w, iss="https://evil.example")))


@case("tokens/real_key_wrong_aud")
def _(w):
    return rename_a(w, _real(w, _genuine_claims(w, aud="https://evil.example")))


@case("tokens/real_key_wrong_typ")
def _(w):
    return rename_a(w, _real(w, typ="JWT"))


@case("tokens/real_key_unknown_session")
def _(w):
    return rename_a(w, _real(w, _genuine_claims(w, sid=str(uuid.uuid4()))))


@case("tokens/real_key_unknown_subject")
def _(w):
    return rename_a(w, _real(w, _genuine_claims(w, sub=str(uuid.uuid4()))))


@case("tokens/tampered_payload")
def _(w):
    head, _, sig = w.tok["a_admin"].split(".")
    payload = dict(unverified(w.tok["a_admin"])[1], sub=w.user["a_owner"])
    return rename_a(w, f"{head}.{b64(json.dumps(payload).encode())}.{sig}")


@case("tokens/truncated")
def _(w):
    return rename_a(w, w.tok["a_owner"][:-10])


@case("tokens/garbage")
def _(w):
    return rename_a(w, "not-a-token")


@case("tokens/three_empty_parts")
def _(w):
    return rename_a(w, "..")


@case("tokens/refresh_token_as_access_token")
def _(w):
    return rename_a(w, w.refresh["a_owner"])


@case("tokens/basic_scheme")
def _(w):
    attack = rename_a(w, None)
    attack.headers = {"Authorization": "Basic " + b64(f"{w.email['a_owner']}:{PASSWORD}".encode())}
    return attack


@case("tokens/access_token_after_logout")
def _(w):
    tokens = w.fresh_login("a_owner")
    assert w.req("POST", "/v1/auth/logout", tokens["access_token"], json={}).status_code == 204
    return rename_a(w, tokens["access_token"])


@case("tokens/access_token_after_session_deleted")
def _(w):
    tokens = w.fresh_login("a_owner")
    sid = unverified(tokens["access_token"])[1]["sid"]
    w.ok("DELETE", f"/v1/me/sessions/{sid}", "a_owner", 204)
    return rename_a(w, tokens["access_token"])


@case("tokens/refresh_replay_revokes_session_family")
def _(w):
    first = w.fresh_login("a_owner")
    second = w.inst.ok("POST", "/v1/auth/refresh", None, json={"refresh_token": first["refresh_token"]})

    def after(w):
        assert w.req("GET", "/v1/me", second["access_token"]).status_code == 401
        r = w.req("POST", "/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
        assert_problem(r, 401, "unauthenticated")
    return Attack("POST", "/v1/auth/refresh", None, 401, "unauthenticated",
                  json={"refresh_token": first["refresh_token"]}, after=after)


@case("tokens/refresh_after_logout")
def _(w):
    tokens = w.fresh_login("a_owner")
    assert w.req("POST", "/v1/auth/logout", tokens["access_token"], json={}).status_code == 204
    return Attack("POST", "/v1/auth/refresh", None, 401, "unauthenticated", json={"refresh_token": tokens["refresh_token"]})


@case("tokens/access_token_as_refresh_token")
def _(w):
    return Attack("POST", "/v1/auth/refresh", None, 401, "unauthenticated", json={"refresh_token": w.tok["a_owner"]})


# --- API keys -------------------------------------------------------------------------------------

@case("keys/revoked_key")
def _(w):
    return rename_a(w, w.keys["revoked"])


@case("keys/wrong_secret_right_prefix")
def _(w):
    prefix = w.keys["a_owner"].rsplit("_", 1)[0]
    return rename_a(w, prefix + "_" + b64(uuid.uuid4().bytes * 2))


@case("keys/right_secret_extra_character")
def _(w):
    return rename_a(w, w.keys["a_owner"] + "A")


@case("keys/unknown_prefix")
def _(w):
    return rename_a(w, "pcl_000000000000_" + b64(uuid.uuid4().bytes * 2))


@case("keys/scoped_key_outside_its_org")
def _(w):
    return Attack("GET", f"/v1/orgs/{w.ids['B']}/members", w.keys["a_owner_org_a"], 404, "not_found")


@case("keys/role_capped_key_writes")
def _(w):
    return Attack("PATCH", f"/v1/orgs/{w.ids['A']}", w.keys["a_owner_ro"], 403, "forbidden", json={"name": "pwned"})


@case("keys/role_capped_key_adds_member")
def _(w):
    return Attack("POST", f"/v1/orgs/{w.ids['A']}/members", w.keys["a_owner_ro"], 403, "forbidden",
                  json={"email": w.email["outsider"], "role": "viewer"})


@case("keys/key_creates_key")
def _(w):
    return Attack("POST", "/v1/keys", w.keys["a_owner"], 403, "forbidden", json={"name": "successor"})


@case("keys/key_creates_service_account_key")
def _(w):
    return Attack("POST", f"/v1/orgs/{w.ids['A']}/service-accounts/{w.ids['sa_a']}/keys", w.keys["a_owner"], 403,
                  "forbidden", json={"name": "successor"})


@case("keys/key_changes_password")
def _(w):
    return Attack("POST", "/v1/me/password", w.keys["a_owner"], 403, "forbidden",
                  json={"current_password": PASSWORD, "new_password": "attacker chosen password"})


@case("keys/key_ends_sessions")
def _(w):
    return Attack("DELETE", f"/v1/me/sessions/{w.ids['a_owner_session']}", w.keys["a_owner"], 403, "forbidden")


@case("keys/key_logs_out_everything")
def _(w):
    return Attack("POST", "/v1/auth/logout", w.keys["a_owner"], 403, "forbidden", json={"all": True})


@case("keys/org_scoped_key_creates_org")
def _(w):
    return Attack("POST", "/v1/orgs", w.keys["a_owner_org_a"], 403, "forbidden", json={"name": "new"})


@case("keys/service_account_key_in_other_org")
def _(w):
    return Attack("GET", f"/v1/orgs/{w.ids['B']}", w.keys["sa_a"], 404, "not_found")


@case("keys/service_account_key_as_user")
def _(w):
    return Attack("PATCH", "/v1/me", w.keys["sa_a"], 403, "forbidden", json={"name": "pwned"})


@case("keys/unscoped_key_asks_about_others")
def _(w):
    return Attack("POST", "/v1/authorize", w.keys["a_owner"], 403, "forbidden",
                  json={"subject": {"user_id": w.user["b_owner"]}, "object": f"org:{w.ids['B']}", "action": "owner"})


@case("keys/scoped_root_key_has_no_root_powers")
def _(w):
    return Attack("GET", "/v1/admin/backup", w.keys["root_scoped"], 403, "forbidden")


@case("keys/scoped_root_key_cannot_restore")
def _(w):
    return Attack("POST", "/v1/admin/restore", w.keys["root_scoped"], 403, "forbidden", json={"version": 1})


# --- BOLA: an admin of A against B's things (non-members get 404) ---------------------------------

def _bola(method, path_fn, status=404, code="not_found", body=NOT_SET, who="a_admin"):
    def build(w):
        payload = body(w) if callable(body) else body
        return Attack(method, path_fn(w), w.tok[who], status, code, json=payload)
    return build


BOLA = {
    "read_org": ("GET", lambda w: f"/v1/orgs/{w.ids['B']}"),
    "rename_org": ("PATCH", lambda w: f"/v1/orgs/{w.ids['B']}", {"name": "pwned"}),
    "delete_org": ("DELETE", lambda w: f"/v1/orgs/{w.ids['B']}"),
    "list_members": ("GET", lambda w: f"/v1/orgs/{w.ids['B']}/members"),
    "add_self_as_owner": ("POST", lambda w: f"/v1/orgs/{w.ids['B']}/members",
                          lambda w: {"user_id": w.user["a_admin"], "role": "owner"}),
    "read_member": ("GET", lambda w: f"/v1/orgs/{w.ids['B']}/members/{w.user['b_admin']}"),
    "change_member_role": ("PATCH", lambda w: f"/v1/orgs/{w.ids['B']}/members/{w.user['b_admin']}", {"role": "viewer"}),
    "remove_owner": ("DELETE", lambda w: f"/v1/orgs/{w.ids['B']}/members/{w.user['b_owner']}"),
    "list_invites": ("GET", lambda w: f"/v1/orgs/{w.ids['B']}/invites"),
    "create_invite": ("POST", lambda w: f"/v1/orgs/{w.ids['B']}/invites", {"email": "spy@example.com", "role": "admin"}),
    "read_invite_by_id": ("GET", lambda w: f"/v1/invites/{w.ids['invite_b']}"),
    "revoke_invite_by_id": ("DELETE", lambda w: f"/v1/invites/{w.ids['invite_b']}"),
    "resend_invite_by_id": ("POST", lambda w: f"/v1/invites/{w.ids['invite_b']}/resend"),
    "accept_invite_by_id": ("POST", lambda w: f"/v1/invites/{w.ids['invite_b']}/accept"),
    "list_bindings": ("GET", lambda w: f"/v1/orgs/{w.ids['B']}/bindings"),
    "set_binding": ("PUT", lambda w: f"/v1/orgs/{w.ids['B']}/bindings",
                    lambda w: {"subject": {"user_id": w.user["a_admin"]}, "resource": f"org:{w.ids['B']}", "role": "owner"}),
    "delete_binding": ("DELETE", lambda w: f"/v1/orgs/{w.ids['B']}/bindings/{w.ids['bind_b']}"),
    "delete_binding_via_own_org": ("DELETE", lambda w: f"/v1/orgs/{w.ids['A']}/bindings/{w.ids['bind_b']}"),
    "list_service_accounts": ("GET", lambda w: f"/v1/orgs/{w.ids['B']}/service-accounts"),
    "delete_service_account": ("DELETE", lambda w: f"/v1/orgs/{w.ids['B']}/service-accounts/{w.ids['sa_b']}"),
    "delete_service_account_via_own_org": ("DELETE", lambda w: f"/v1/orgs/{w.ids['A']}/service-accounts/{w.ids['sa_b']}"),
    "key_for_service_account_via_own_org": ("POST", lambda w: f"/v1/orgs/{w.ids['A']}/service-accounts/{w.ids['sa_b']}/keys",
                                            {"name": "stolen"}),
    "list_service_account_keys": ("GET", lambda w: f"/v1/orgs/{w.ids['B']}/service-accounts/{w.ids['sa_b']}/keys"),
    "delete_service_account_key": ("DELETE", lambda w: f"/v1/orgs/{w.ids['B']}/service-accounts/{w.ids['sa_b']}/keys/{w.ids['sa_b_key']}"),
    "read_audit": ("GET", lambda w: f"/v1/orgs/{w.ids['B']}/audit"),
    "read_key_of_other_user": ("GET", lambda w: f"/v1/keys/{w.ids['a_owner_key']}"),
    "delete_key_of_other_user": ("DELETE", lambda w: f"/v1/keys/{w.ids['a_owner_key']}"),
    "delete_session_of_other_user": ("DELETE", lambda w: f"/v1/me/sessions/{w.ids['a_owner_session']}"),
}
for _name, (_method, _path, *_body) in BOLA.items():
    case(f"bola/{_name}")(_bola(_method, _path, body=_body[0] if _body else NOT_SET))


@case("bola/bind_other_orgs_service_account")
def _(w):
    return Attack("PUT", f"/v1/orgs/{w.ids['A']}/bindings", w.tok["a_admin"], 400, "invalid_request",
                  json={"subject": {"service_account_id": w.ids["sa_b"]}, "resource": f"org:{w.ids['A']}/project:p9", "role": "viewer"})


@case("bola/binding_resource_in_other_org")
def _(w):
    return Attack("PUT", f"/v1/orgs/{w.ids['A']}/bindings", w.tok["a_admin"], 400, "invalid_request",
                  json={"subject": {"user_id": w.user["a_admin"]}, "resource": f"org:{w.ids['B']}/project:x", "role": "admin"})


@case("bola/non_root_backup")
def _(w):
    return Attack("GET", "/v1/admin/backup", w.tok["a_owner"], 403, "forbidden")


@case("bola/non_root_instance_audit")
def _(w):
    return Attack("GET", "/v1/audit", w.tok["a_owner"], 403, "forbidden")


@case("bola/non_root_platform_invite")
def _(w):
    return Attack("POST", "/v1/platform-invites", w.tok["a_owner"], 403, "forbidden",
                  json={"email": "newbie@example.com", "org_invites": [{"org_id": w.ids["B"], "role": "owner"}]})


@case("bola/non_root_rotates_signing_key")
def _(w):
    return Attack("POST", "/v1/admin/signing-keys/rotate", w.tok["a_owner"], 403, "forbidden")


@case("bola/non_root_lists_every_org")
def _(w):
    return Attack("GET", "/v1/orgs?scope=all", w.tok["a_owner"], 403, "forbidden")


# --- escalation -----------------------------------------------------------------------------------

def _as(who, method, path_fn, status, code, body=NOT_SET):
    def build(w):
        return Attack(method, path_fn(w), w.tok[who], status, code, json=body(w) if callable(body) else body)
    return build


ESCALATION = {
    "admin_grants_owner": ("a_admin", "PATCH", lambda w: f"/v1/orgs/{w.ids['A']}/members/{w.user['a_viewer']}", 403, "forbidden", {"role": "owner"}),
    "admin_adds_owner": ("a_admin", "POST", lambda w: f"/v1/orgs/{w.ids['A']}/members", 403, "forbidden",
                         lambda w: {"email": w.email["outsider"], "role": "owner"}),
    "admin_promotes_self": ("a_admin", "PATCH", lambda w: f"/v1/orgs/{w.ids['A']}/members/{w.user['a_admin']}", 403, "forbidden", {"role": "owner"}),
    "admin_demotes_owner": ("a_admin", "PATCH", lambda w: f"/v1/orgs/{w.ids['A']}/members/{w.user['a_owner']}", 403, "forbidden", {"role": "viewer"}),
    "admin_removes_owner": ("a_admin", "DELETE", lambda w: f"/v1/orgs/{w.ids['A']}/members/{w.user['a_owner']}", 403, "forbidden"),
    "admin_deletes_org": ("a_admin", "DELETE", lambda w: f"/v1/orgs/{w.ids['A']}", 403, "forbidden"),
    "admin_invites_owner": ("a_admin", "POST", lambda w: f"/v1/orgs/{w.ids['A']}/invites", 403, "forbidden",
                            {"email": "boss@example.com", "role": "owner"}),
    "admin_binds_owner": ("a_admin", "PUT", lambda w: f"/v1/orgs/{w.ids['A']}/bindings", 403, "forbidden",
                          lambda w: {"subject": {"user_id": w.user["a_admin"]}, "resource": f"org:{w.ids['A']}/project:p1", "role": "owner"}),
    "admin_removes_owner_binding": ("a_admin", "DELETE", lambda w: f"/v1/orgs/{w.ids['A']}/bindings/{w.ids['bind_a_owner_role']}", 403, "forbidden"),
    "admin_creates_owner_service_account": ("a_admin", "POST", lambda w: f"/v1/orgs/{w.ids['A']}/service-accounts", 403, "forbidden",
                                            {"name": "boss 2", "role": "owner"}),
    "admin_keys_owner_service_account": ("a_admin", "POST", lambda w: f"/v1/orgs/{w.ids['A']}/service-accounts/{w.ids['sa_a_owner']}/keys",
                                         403, "forbidden", {"name": "borrowed"}),
    "admin_deletes_owner_service_account": ("a_admin", "DELETE", lambda w: f"/v1/orgs/{w.ids['A']}/service-accounts/{w.ids['sa_a_owner']}",
                                            403, "forbidden"),
    "editor_sets_binding": ("a_editor", "PUT", lambda w: f"/v1/orgs/{w.ids['A']}/bindings", 403, "forbidden",
                            lambda w: {"subject": {"user_id": w.user["a_editor"]}, "resource": f"org:{w.ids['A']}/project:p2", "role": "editor"}),
    "editor_lists_invites": ("a_editor", "GET", lambda w: f"/v1/orgs/{w.ids['A']}/invites", 403, "forbidden"),
    "viewer_adds_member": ("a_viewer", "POST", lambda w: f"/v1/orgs/{w.ids['A']}/members", 403, "forbidden",
                           lambda w: {"email": w.email["outsider"], "role": "viewer"}),
    "viewer_renames_org": ("a_viewer", "PATCH", lambda w: f"/v1/orgs/{w.ids['A']}", 403, "forbidden", {"name": "pwned"}),
    "viewer_reads_audit": ("a_viewer", "GET", lambda w: f"/v1/orgs/{w.ids['A']}/audit", 403, "forbidden"),
    "viewer_creates_service_account": ("a_viewer", "POST", lambda w: f"/v1/orgs/{w.ids['A']}/service-accounts", 403, "forbidden",
                                       {"name": "mine", "role": "viewer"}),
    "viewer_invites": ("a_viewer", "POST", lambda w: f"/v1/orgs/{w.ids['A']}/invites", 403, "forbidden",
                       {"email": "friend@example.com", "role": "viewer"}),
    "viewer_removes_admin": ("a_viewer", "DELETE", lambda w: f"/v1/orgs/{w.ids['A']}/members/{w.user['a_admin']}", 403, "forbidden"),
    "user_asks_about_other_subject": ("a_viewer", "POST", lambda w: "/v1/authorize", 403, "forbidden",
                                      lambda w: {"subject": {"user_id": w.user["a_owner"]}, "object": f"org:{w.ids['A']}", "action": "owner"}),
    "user_watches_changes": ("a_owner", "GET", lambda w: "/v1/watch?since=0", 403, "forbidden"),
    "last_owner_demotes_self": ("a_owner", "PATCH", lambda w: f"/v1/orgs/{w.ids['A']}/members/{w.user['a_owner']}", 409, "last_owner",
                                {"role": "admin"}),
    "last_owner_leaves": ("a_owner", "DELETE", lambda w: f"/v1/orgs/{w.ids['A']}/members/{w.user['a_owner']}", 409, "last_owner"),
}
for _name, (_who, _method, _path, _status, _code, *_body) in ESCALATION.items():
    case(f"escalation/{_name}")(_as(_who, _method, _path, _status, _code, _body[0] if _body else NOT_SET))


# --- invites --------------------------------------------------------------------------------------

INVITES = {
    "accept_twice": ("inv1", "POST", lambda w: f"/v1/invites/{w.ids['invite_inv1']}/accept", 409, "conflict"),
    "decline_after_accept": ("inv1", "POST", lambda w: f"/v1/invites/{w.ids['invite_inv1']}/decline", 409, "conflict"),
    "claim_token_twice": ("inv2", "POST", lambda w: "/v1/invites/claim", 409, "conflict", lambda w: {"token": w.mail["inv2"]}),
    "accept_someone_elses_invite": ("a_viewer", "POST", lambda w: f"/v1/invites/{w.ids['invite_inv3']}/accept", 404, "not_found"),
    "decline_someone_elses_invite": ("inv2", "POST", lambda w: f"/v1/invites/{w.ids['invite_inv3']}/decline", 404, "not_found"),
    "claim_someone_elses_token": ("inv2", "POST", lambda w: "/v1/invites/claim", 404, "not_found", lambda w: {"token": w.mail["inv3"]}),
    "accept_revoked_invite": ("inv4", "POST", lambda w: f"/v1/invites/{w.ids['invite_inv4']}/accept", 409, "conflict"),
    "revoke_twice": ("a_owner", "DELETE", lambda w: f"/v1/invites/{w.ids['invite_inv4']}", 409, "conflict"),
    "claim_token_replaced_by_resend": ("inv5", "POST", lambda w: "/v1/invites/claim", 404, "not_found", lambda w: {"token": w.mail["inv5_old"]}),
    "claim_unknown_token": ("inv3", "POST", lambda w: "/v1/invites/claim", 404, "not_found", {"token": "A" * 43}),
    "claim_overlong_token": ("inv3", "POST", lambda w: "/v1/invites/claim", 404, "not_found", {"token": "A" * 5000}),
    "invite_existing_member": ("a_owner", "POST", lambda w: f"/v1/orgs/{w.ids['A']}/invites", 409, "already_member",
                               lambda w: {"email": w.email["a_viewer"], "role": "viewer"}),
    "second_pending_invite": ("a_owner", "POST", lambda w: f"/v1/orgs/{w.ids['A']}/invites", 409, "conflict",
                              lambda w: {"email": w.email["inv3"], "role": "admin"}),
    "claim_tampered_token": ("inv3", "POST", lambda w: "/v1/invites/claim", 404, "not_found",
                                             lambda w: {"token": w.mail["inv2"] + "x"}),
}
for _name, (_who, _method, _path, _status, _code, *_body) in INVITES.items():
    case(f"invites/{_name}")(_as(_who, _method, _path, _status, _code, _body[0] if _body else NOT_SET))


@case("invites/claim_with_service_account_key")
def _(w):
    return Attack("POST", "/v1/invites/claim", w.keys["sa_a"], 403, "forbidden", json={"token": w.mail["inv3"]})


# --- input ----------------------------------------------------------------------------------------

def _raw(who, method, path_fn, status, code, data, ctype="application/json"):
    def build(w):
        payload = data(w) if callable(data) else data
        headers = {"Content-Type": ctype} if ctype else {}
        return Attack(method, path_fn(w), w.tok[who], status, code,
                      data=payload.encode() if isinstance(payload, str) else payload, headers=headers)
    return build


_org_a = lambda w: f"/v1/orgs/{w.ids['A']}"  # noqa: E731
_members_a = lambda w: f"/v1/orgs/{w.ids['A']}/members"  # noqa: E731

INPUT_RAW = {
    "body_over_64_kib": ("a_owner", "PATCH", _org_a, 413, "payload_too_large",
                         json.dumps({"description": "x" * (65 * 1024)})),
    "batch_over_1_mib": ("a_owner", "POST", lambda w: "/v1/authorize/batch", 413, "payload_too_large",
                         lambda w: json.dumps({"checks": [{"object": f"org:{w.ids['A']}", "action": "viewer", "pad": "x" * 1000}] * 1100})),
    "deeply_nested_arrays": ("a_owner", "PATCH", _org_a, 400, "invalid_request", "[" * 10000),
    "deeply_nested_objects": ("a_owner", "PATCH", _org_a, 400, "invalid_request",
                              '{"metadata": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}"),
    "metadata_nested_past_limit": ("a_owner", "PATCH", _org_a, 400, "invalid_request",
                                   '{"metadata": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}"),
    "text_plain_content_type": ("a_owner", "PATCH", _org_a, 415, "unsupported_media_type", '{"name": "pwned"}', "text/plain"),
    "form_content_type": ("a_owner", "PATCH", _org_a, 415, "unsupported_media_type", "name=pwned", "application/x-www-form-urlencoded"),
    "missing_content_type": ("a_owner", "PATCH", _org_a, 415, "unsupported_media_type", '{"name": "pwned"}', None),
    "json_lookalike_content_type": ("a_owner", "PATCH", _org_a, 415, "unsupported_media_type", '{"name": "pwned"}', "application/jsonx"),
    "truncated_json": ("a_owner", "PATCH", _org_a, 400, "invalid_request", '{"name": "pwn'),
    "array_instead_of_object": ("a_owner", "PATCH", _org_a, 400, "invalid_request", '[{"name": "pwned"}]'),
    "invalid_utf8": ("a_owner", "PATCH", _org_a, 400, "invalid_request", b'{"name": "\xff\xfe pwned"}'),
    "lone_surrogate_escape": ("a_owner", "PATCH", _org_a, 400, "invalid_request", '{"name": "\\ud800 pwned"}'),
    "nul_in_org_name": ("a_owner", "PATCH", _org_a, 400, "invalid_request", '{"name": "pw\\u0000ned"}'),
    "nul_in_org_description": ("a_owner", "PATCH", _org_a, 400, "invalid_request", '{"description": "pw\\u0000ned"}'),
    "nul_in_user_name": ("a_viewer", "PATCH", lambda w: "/v1/me", 400, "invalid_request", '{"name": "pw\\u0000ned"}'),
    "nul_in_signup_name": ("a_viewer", "POST", lambda w: "/v1/users", 400, "invalid_request",
                           '{"email": "nul-name@example.com", "password": "correct horse battery staple", "name": "a\\u0000b"}'),
    "nul_in_signup_email": ("a_viewer", "POST", lambda w: "/v1/users", 400, "invalid_request",
                            '{"email": "nul\\u0000@example.com", "password": "correct horse battery staple"}'),
    "nul_in_key_name": ("a_owner", "POST", lambda w: "/v1/keys", 400, "invalid_request", '{"name": "pw\\u0000ned"}'),
    "nul_in_service_account_name": ("a_owner", "POST", lambda w: f"/v1/orgs/{w.ids['A']}/service-accounts", 400, "invalid_request",
                                    '{"name": "pw\\u0000ned", "role": "viewer"}'),
    "nul_in_binding_resource": ("a_owner", "PUT", lambda w: f"/v1/orgs/{w.ids['A']}/bindings", 400, "invalid_request",
                                lambda w: '{"subject": {"user_id": "%s"}, "resource": "org:%s/project:p\\u0000x", "role": "viewer"}'
                                % (w.user["a_viewer"], w.ids["A"])),
    "nul_in_invite_email": ("a_owner", "POST", lambda w: f"/v1/orgs/{w.ids['A']}/invites", 400, "invalid_request",
                            '{"email": "x\\u0000@example.com", "role": "viewer"}'),
    "wrong_type_for_name": ("a_owner", "PATCH", _org_a, 400, "invalid_request", '{"name": 12345}'),
    "name_over_200_characters": ("a_owner", "PATCH", _org_a, 400, "invalid_request", json.dumps({"name": "n" * 201})),
    "metadata_over_16_kib": ("a_owner", "PATCH", _org_a, 400, "invalid_request", json.dumps({"metadata": {"k": "v" * 17000}})),
    "unknown_role": ("a_owner", "POST", _members_a, 400, "invalid_request",
                     lambda w: json.dumps({"email": w.email["outsider"], "role": "superowner"})),
    "email_with_crlf_injection": ("a_owner", "POST", lambda w: "/v1/users", 400, "invalid_request",
                                  json.dumps({"email": "evil@example.com\r\nBcc: victim@example.com", "password": PASSWORD})),
    "email_over_254_characters": ("a_owner", "POST", lambda w: "/v1/users", 400, "invalid_request",
                                  json.dumps({"email": "a" * 250 + "@example.com", "password": PASSWORD})),
    "password_over_256_characters": ("a_owner", "POST", lambda w: "/v1/users", 400, "weak_password",
                                     json.dumps({"email": "long-password@example.com", "password": "p" * 257})),
    "invalid_key_scope": ("a_owner", "POST", lambda w: "/v1/keys", 400, "invalid_request",
                          json.dumps({"name": "bad", "scopes": ["org:*"]})),
    "key_scope_sql": ("a_owner", "POST", lambda w: "/v1/keys", 400, "invalid_request",
                      json.dumps({"name": "bad", "scopes": ["org:' OR 1=1 --"]})),
    "negative_key_lifetime": ("a_owner", "POST", lambda w: "/v1/keys", 400, "invalid_request",
                              json.dumps({"name": "bad", "expires_in": -60})),
    "authorize_object_does_not_parse": ("a_owner", "POST", lambda w: "/v1/authorize", 400, "invalid_request",
                                        json.dumps({"object": "org:not-a-uuid", "action": "viewer"})),
    "authorize_object_path_traversal": ("a_owner", "POST", lambda w: "/v1/authorize", 400, "invalid_request",
                                        lambda w: json.dumps({"object": f"org:{w.ids['A']}/../org:{w.ids['B']}", "action": "viewer"})),
    "authorize_unknown_action": ("a_owner", "POST", lambda w: "/v1/authorize", 400, "invalid_request",
                                 lambda w: json.dumps({"object": f"org:{w.ids['A']}", "action": "god_mode"})),
    "authorize_bad_consistency": ("a_owner", "POST", lambda w: "/v1/authorize", 400, "invalid_request",
                                  lambda w: json.dumps({"object": f"org:{w.ids['A']}", "action": "viewer", "consistency": "eventual"})),
    "batch_over_1000_checks": ("a_owner", "POST", lambda w: "/v1/authorize/batch", 400, "invalid_request",
                               lambda w: json.dumps({"checks": [{"object": f"org:{w.ids['A']}", "action": "viewer"}] * 1001})),
}
for _name, (_who, _method, _path, _status, _code, _data, *_ctype) in INPUT_RAW.items():
    case(f"input/{_name}")(_raw(_who, _method, _path, _status, _code, _data, *_ctype))


QUERY = {
    "duplicate_query_key": "/v1/orgs?limit=1&limit=2",
    "limit_101": "/v1/orgs?limit=101",
    "limit_negative": "/v1/orgs?limit=-1",
    "offset_negative": "/v1/orgs?offset=-1",
    "limit_huge": "/v1/orgs?limit=99999999999999999999999",
    "limit_not_a_number": "/v1/orgs?limit=1%20OR%201=1",
    "name_filter_over_200": "/v1/orgs?name=" + "n" * 201,
    "limit_zero": "/v1/orgs?limit=0",
    "offset_huge": "/v1/orgs?offset=99999999999999999999999",
    "duplicate_key_different_case_kept_apart": "/v1/orgs?limit=1&LIMIT=500&limit=2",
}
for _name, _path in QUERY.items():
    case(f"input/{_name}")(_as("a_owner", "GET", (lambda p: lambda w: p)(_path), 400, "invalid_request"))


@case("input/members_duplicate_offset")
def _(w):
    return Attack("GET", f"/v1/orgs/{w.ids['A']}/members?offset=0&offset=1", w.tok["a_owner"], 400, "invalid_request")


for _name, _path in {
    "malformed_org_id": lambda w: "/v1/orgs/not-a-uuid",
    "malformed_member_id": lambda w: f"/v1/orgs/{w.ids['A']}/members/123",
    "sql_in_invite_id": lambda w: "/v1/invites/1%27%20OR%20%271%27=%271",
    "malformed_key_id": lambda w: "/v1/keys/..%2F..%2Fadmin",
    "uuid_with_trailing_garbage": lambda w: f"/v1/orgs/{w.ids['A']}x",
}.items():
    case(f"input/{_name}")(_as("a_owner", "DELETE", _path, 404, "not_found"))


@case("input/unknown_route")
def _(w):
    return Attack("GET", "/v1/secrets", w.tok["a_owner"], 404, "not_found")


@case("input/unknown_route_unauthenticated")
def _(w):
    return Attack("GET", "/v1/admin/backdoor", None, 404, "not_found")


def _allow(*methods):
    def check(r):
        allow = {m.strip() for m in r.headers.get("Allow", "").split(",") if m.strip()}
        assert set(methods) <= allow, r.headers.get("Allow")
    return check


@case("input/method_not_allowed")
def _(w):
    return Attack("PUT", "/v1/orgs", w.tok["a_owner"], 405, "method_not_allowed", json={"name": "x"}, check=_allow("GET", "POST"))


@case("input/method_not_allowed_on_org")
def _(w):
    return Attack("POST", f"/v1/orgs/{w.ids['A']}", w.tok["a_owner"], 405, "method_not_allowed", json={},
                  check=_allow("GET", "PATCH", "DELETE"))


@case("input/sql_in_login_email")
def _(w):
    return Attack("POST", "/v1/auth/login", None, 401, "unauthenticated",
                  json={"email": f"{w.email['a_owner']}' OR '1'='1", "password": "' OR '1'='1' --"})



@case("input/capabilities_over_1_mib")
def _(w):
    body = json.dumps({"objects": [f"org:{w.ids['A']}/doc:{'x' * 200}"] * 5000})
    return Attack("POST", "/v1/capabilities", w.tok["a_owner"], 413, "payload_too_large", data=body.encode(),
                  headers={"Content-Type": "application/json"})


@case("input/authorize_at_least_overflow")
def _(w):
    return Attack("POST", "/v1/authorize", w.tok["a_owner"], 400, "invalid_request",
                  data=('{"object": "org:%s", "action": "viewer", "at_least": 1000000000000000000000000000000}' % w.ids["A"]).encode(),
                  headers={"Content-Type": "application/json"})


@case("input/authorize_at_least_negative")
def _(w):
    return Attack("POST", "/v1/authorize", w.tok["a_owner"], 400, "invalid_request",
                  json={"object": f"org:{w.ids['A']}", "action": "viewer", "at_least": -1})


@case("input/content_type_checked_before_authentication")
def _(w):
    return Attack("PATCH", f"/v1/orgs/{w.ids['A']}", None, 415, "unsupported_media_type", data=b'{"name": "pwned"}',
                  headers={"Content-Type": "text/plain"})


@case("input/body_parsed_before_authentication")
def _(w):
    return Attack("PATCH", f"/v1/orgs/{w.ids['A']}", "garbage", 400, "invalid_request", data=b'{"name": ',
                  headers={"Content-Type": "application/json"})


@case("input/authentication_before_field_validation")
def _(w):
    return Attack("PATCH", f"/v1/orgs/{w.ids['A']}", "garbage", 401, "unauthenticated", json={"name": "n" * 500})

@case("input/login_password_not_a_string")
def _(w):
    return Attack("POST", "/v1/auth/login", None, 400, "invalid_request", json={"email": w.email["a_owner"], "password": ["x"]})


@case("tokens/identify_without_credentials")
def _(w):
    return Attack("POST", "/v1/identify", None, 401, "unauthenticated", json={"token": w.tok["a_owner"]})


@case("escalation/authzen_asks_about_other_subject")
def _(w):
    return Attack("POST", "/access/v1/evaluation", w.tok["a_viewer"], 403, "forbidden",
                  json={"subject": {"type": "user", "id": w.user["a_owner"]}, "resource": {"type": "org", "id": w.ids["A"]},
                        "action": {"name": "owner"}})


@case("invites/signup_with_bogus_invite_token")
def _(w):
    return Attack("POST", "/v1/users", None, 400, "invalid_invite_token",
                  json={"email": f"bogus-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD, "invite_token": "A" * 43})


@case("invites/signup_with_someone_elses_invite_token")
def _(w):
    return Attack("POST", "/v1/users", None, 400, "invalid_invite_token",
                  json={"email": f"thief-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD, "invite_token": w.mail["inv3"]})


@case("invites/password_reset_with_bogus_token")
def _(w):
    return Attack("POST", "/v1/auth/password-reset/confirm", None, 400, "invalid_token",
                  json={"token": "A" * 43, "new_password": "attacker chosen password"})


@case("invites/verify_email_with_invite_token")
def _(w):
    return Attack("POST", "/v1/auth/verify-email", None, 400, "invalid_token", json={"token": w.mail["inv3"]})

# ------------------------------------------------------------------------------------------------
# The test: every case, on every backend.
# ------------------------------------------------------------------------------------------------

def send(w, attack: Attack):
    kw = {"headers": dict(attack.headers)}
    if attack.json is not NOT_SET:
        kw["json"] = attack.json
    elif attack.data is not None:
        kw["data"] = attack.data
    return w.req(attack.method, attack.path, attack.token, **kw)


@pytest.mark.parametrize("name", list(CASES))
def test_attack_is_refused_and_changes_nothing(world, name):
    attack = CASES[name](world)
    before = snapshot(world.inst, world.tok["root"])
    r = send(world, attack)
    assert_problem(r, attack.status, attack.code)
    if attack.check:
        attack.check(r)
    if attack.after:
        attack.after(world)
    after = snapshot(world.inst, world.tok["root"])
    assert before == after, "state changed:\n" + diff(before, after)


# --- input that is accepted must be stored verbatim and stay harmless ------------------------------

STRANGE_NAMES = {
    "sql": "Robert'); DROP TABLE orgs;--",
    "sql_comment_union": "x' UNION SELECT password_hash FROM users --",
    "rtl_override": "\u202eexe.txt",
    "zero_width": "ad\u200bmin\u200d\ufeff",
    "emoji_and_cjk": "組織 🚀 Ωmega",
    "combining_marks": "Z\u0351\u0352\u0353a\u0354lgo",
    "percent_and_backslash": "100% \\ %s %n {{name}} ${jndi:ldap://x}",
}


@pytest.mark.parametrize("label", list(STRANGE_NAMES))
def test_strange_org_names_are_stored_verbatim(world, label):
    name = STRANGE_NAMES[label]
    before = snapshot(world.inst, world.tok["root"])
    created = world.ok("POST", "/v1/orgs", "a_owner", 201, json={"name": name, "description": name, "metadata": {name: name}})
    assert created["name"] == name and created["description"] == name and created["metadata"] == {name: name}
    read = world.ok("GET", f"/v1/orgs/{created['id']}", "a_owner")
    assert (read["name"], read["description"], read["metadata"]) == (name, name, {name: name})
    # Only the new org (with its owner and audit event) came into being; everything else is as it was.
    after = snapshot(world.inst, world.tok["root"])
    assert [o for o in after["orgs"] if o["id"] != created["id"]] == before["orgs"]
    assert len(after["users"]) == len(before["users"])
    world.ok("DELETE", f"/v1/orgs/{created['id']}", "a_owner", 204)


def test_sql_in_name_filter_matches_nothing(world):
    for hostile in ("' OR '1'='1", "%", "_", "%' --", "\\"):
        r = world.req("GET", "/v1/orgs", world.tok["a_admin"], params={"name": hostile})
        assert r.status_code == 200, r.text
        assert r.json()["total"] == 0, (hostile, r.json())
    # The filter does work: a_admin's one org is found by part of its name.
    assert world.ok("GET", "/v1/orgs?name=rg%20a", "a_admin")["total"] == 1


def test_unknown_fields_are_ignored_never_applied(world):
    email = f"sneaky-{uuid.uuid4().hex[:8]}@example.com"
    r = world.req("POST", "/v1/users", json={"email": email, "password": PASSWORD, "is_root": True,
                                             "email_verified": True, "id": str(uuid.uuid4())})
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["is_root"] is False and user["email_verified"] is False
    r = world.req("PATCH", "/v1/me", world.tok["a_viewer"], json={"is_root": True, "email": "root@example.com"})
    assert r.status_code == 200, r.text
    assert r.json()["is_root"] is False and r.json()["email"] == world.email["a_viewer"]
    assert world.req("GET", "/v1/admin/backup", world.tok["a_viewer"]).status_code == 403


def test_genuine_resigned_token_is_accepted(world):
    """The control for the real-key cases: the same key and claims, unmodified, work; so each
    refusal above is about the one claim that case changed."""
    token = sign_es256(world.signing_key, {"kid": world.kid, "typ": "at+jwt"}, world.claims)
    r = world.req("GET", "/v1/me", token)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == world.user["a_owner"]


def test_nul_inside_metadata_round_trips(world):
    """Metadata is free JSON: a NUL inside a string is data, kept exactly (not cut off, not a 500)."""
    org = world.ok("POST", "/v1/orgs", "a_owner", 201, json={"name": "nul meta", "metadata": {"k\u0000": "a\u0000b"}})
    assert org["metadata"] == {"k\u0000": "a\u0000b"}
    assert world.ok("GET", f"/v1/orgs/{org['id']}", "a_owner")["metadata"] == {"k\u0000": "a\u0000b"}
    world.ok("DELETE", f"/v1/orgs/{org['id']}", "a_owner", 204)


# ------------------------------------------------------------------------------------------------
# Response headers: security headers, request ids, CORS.
# ------------------------------------------------------------------------------------------------

def _responses(w):
    return {
        "ok_read": w.req("GET", "/v1/me", w.tok["a_viewer"]),
        "decision": w.req("POST", "/v1/authorize", w.tok["a_viewer"], json={"object": f"org:{w.ids['A']}", "action": "viewer"}),
        "unauthenticated": w.req("GET", "/v1/me", "garbage"),
        "not_found": w.req("GET", "/v1/nowhere"),
        "bad_request": w.req("GET", "/v1/orgs?limit=101", w.tok["a_viewer"]),
    }


def test_security_headers_on_every_api_response(world):
    for label, r in _responses(world).items():
        h = r.headers
        assert h.get("X-Content-Type-Options") == "nosniff", (label, dict(h))
        assert h.get("X-Frame-Options") == "DENY", (label, dict(h))
        assert h.get("Referrer-Policy") == "no-referrer", (label, dict(h))
        assert "no-store" in h.get("Cache-Control", ""), (label, dict(h))


def test_request_id_is_echoed_or_generated(world):
    given = "sec-" + uuid.uuid4().hex
    r = world.req("GET", "/v1/me", world.tok["a_viewer"], headers={"X-Request-ID": given})
    assert r.status_code == 200
    assert r.headers.get("X-Request-ID") == given, dict(r.headers)
    r = world.req("GET", "/v1/nowhere", headers={"X-Request-ID": given + "-2"})
    assert r.status_code == 404 and r.headers.get("X-Request-ID") == given + "-2", dict(r.headers)
    generated = {world.req("GET", "/health").headers.get("X-Request-ID") for _ in range(2)}
    assert None not in generated and "" not in generated and len(generated) == 2, generated


def _preflight(w, origin):
    return w.req("OPTIONS", "/v1/orgs", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})


def test_cors_preflight_from_allowed_origin(world):
    r = _preflight(world, "https://app.example")
    assert 200 <= r.status_code < 300, (r.status_code, r.text)
    assert r.headers.get("Access-Control-Allow-Origin") == "https://app.example", dict(r.headers)
    allowed = r.headers.get("Access-Control-Allow-Methods", "").upper()
    assert "POST" in allowed, dict(r.headers)
    r = world.req("GET", "/v1/me", world.tok["a_viewer"], headers={"Origin": "https://app.example"})
    assert r.status_code == 200
    assert r.headers.get("Access-Control-Allow-Origin") == "https://app.example", dict(r.headers)


@pytest.mark.parametrize("origin", ["https://evil.example", "https://app.example.evil.example", "null", "http://app.example"])
def test_cors_other_origins_get_no_allow_origin(world, origin):
    for r in (_preflight(world, origin),
              world.req("GET", "/v1/me", world.tok["a_viewer"], headers={"Origin": origin})):
        assert "Access-Control-Allow-Origin" not in r.headers, (origin, dict(r.headers))
        assert "Access-Control-Allow-Credentials" not in r.headers, (origin, dict(r.headers))


# ------------------------------------------------------------------------------------------------
# Rate limits, on a server of their own with small budgets. The test connects from 127.0.0.1, a
# trusted proxy there, so each X-Forwarded-For address is a client of its own; 127.0.0.2 is not
# trusted, so what it claims in X-Forwarded-For does not count.
# ------------------------------------------------------------------------------------------------

LIMITS = dict(ROOT_EMAIL=ROOT_EMAIL, ROOT_PASSWORD=ROOT_PASSWORD, SIGNUP="open", SMTP_URL="log", LOG_FORMAT="json",
              ACCOUNT_FAILURES_PER_HOUR="5", IP_BURST="10", IP_PER_MINUTE="1", TRUSTED_PROXIES="127.0.0.1")
BURST, FAILURES = 10, 5


@pytest.fixture(scope="module", params=BACKENDS)
def limited(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"limits-{request.param}")
    with instance(request.param, workdir, **LIMITS) as inst:
        yield inst


_ip_counter = iter(range(1, 1_000_000))


def client_ip() -> str:
    n = next(_ip_counter)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def post_as(inst, ip, path, body, token=None, xff=None):
    headers = {"X-Forwarded-For": xff if xff is not None else ip}
    return inst.request("POST", path, token, json=body, headers=headers)


def assert_rate_limited(r):
    assert_problem(r, 429, "rate_limited")
    retry = r.headers.get("Retry-After", "")
    assert re.fullmatch(r"[0-9]+", retry) and int(retry) >= 1, f"Retry-After {retry!r}"


def unknown_email():
    return f"nobody-{uuid.uuid4().hex[:10]}@example.com"


def test_login_is_limited_per_client_ip_and_other_clients_are_not(limited):
    ip = client_ip()
    for i in range(BURST):
        r = post_as(limited, ip, "/v1/auth/login", {"email": unknown_email(), "password": "wrong password 1"})
        assert_problem(r, 401, "unauthenticated")
    assert_rate_limited(post_as(limited, ip, "/v1/auth/login", {"email": unknown_email(), "password": "wrong password 1"}))
    # A different client (another X-Forwarded-For from the trusted proxy) has its own budget.
    r = post_as(limited, client_ip(), "/v1/auth/login", {"email": unknown_email(), "password": "wrong password 1"})
    assert_problem(r, 401, "unauthenticated")


def test_signup_is_limited_per_client_ip_and_the_refused_signup_creates_nothing(limited):
    ip = client_ip()
    for _ in range(BURST):
        r = post_as(limited, ip, "/v1/users", {"email": unknown_email(), "password": PASSWORD})
        assert r.status_code == 201, r.text
    email = unknown_email()
    assert_rate_limited(post_as(limited, ip, "/v1/users", {"email": email, "password": PASSWORD}))
    # Nothing was made: the same address signs up from another client.
    r = post_as(limited, client_ip(), "/v1/users", {"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text


def test_password_reset_request_is_limited_per_client_ip(limited):
    ip = client_ip()
    for _ in range(BURST):
        r = post_as(limited, ip, "/v1/auth/password-reset", {"email": unknown_email()})
        assert r.status_code == 202, r.text
    assert_rate_limited(post_as(limited, ip, "/v1/auth/password-reset", {"email": unknown_email()}))


def test_invite_claim_is_limited(limited):
    email = unknown_email()
    assert post_as(limited, client_ip(), "/v1/users", {"email": email, "password": PASSWORD}).status_code == 201
    token = post_as(limited, client_ip(), "/v1/auth/login", {"email": email, "password": PASSWORD}).json()["access_token"]
    ip = client_ip()
    statuses = []
    for _ in range(BURST + 1):
        r = post_as(limited, ip, "/v1/invites/claim", {"token": "A" * 43}, token=token)
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert_rate_limited(r)
            break
        assert_problem(r, 404, "not_found")
    assert statuses[-1] == 429, f"no 429 within {BURST + 1} bad claims: {statuses}"


def test_account_lockout_spares_a_client_that_logged_in_before(limited):
    email = unknown_email()
    assert post_as(limited, client_ip(), "/v1/users", {"email": email, "password": PASSWORD}).status_code == 201
    home = client_ip()
    assert post_as(limited, home, "/v1/auth/login", {"email": email, "password": PASSWORD}).status_code == 200
    for _ in range(FAILURES):  # an attacker spreading guesses over many addresses
        r = post_as(limited, client_ip(), "/v1/auth/login", {"email": email, "password": "guess guess guess"})
        assert_problem(r, 401, "unauthenticated")
    # Now refused before the password is looked at, even the right one, from anywhere new ...
    assert_rate_limited(post_as(limited, client_ip(), "/v1/auth/login", {"email": email, "password": PASSWORD}))
    assert_rate_limited(post_as(limited, client_ip(), "/v1/auth/login", {"email": email, "password": "guess guess guess"}))
    # ... but the owner, from where they signed in before, is not locked out.
    r = post_as(limited, home, "/v1/auth/login", {"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text


def test_unknown_email_is_throttled_like_a_known_one(limited):
    email = unknown_email()
    for _ in range(FAILURES):
        r = post_as(limited, client_ip(), "/v1/auth/login", {"email": email, "password": "guess guess guess"})
        assert_problem(r, 401, "unauthenticated")
    r = post_as(limited, client_ip(), "/v1/auth/login", {"email": email, "password": "guess guess guess"})
    assert_rate_limited(r)


def test_forwarded_for_from_a_trusted_proxy_uses_the_rightmost_untrusted_address(limited):
    ip = client_ip()
    for i in range(BURST):  # spoofed left-hand entries change nothing: the client is `ip`
        r = post_as(limited, ip, "/v1/auth/login", {"email": unknown_email(), "password": "wrong password 1"},
                    xff=f"203.0.113.{i}, {ip}")
        assert_problem(r, 401, "unauthenticated")
    body = {"email": unknown_email(), "password": "wrong password 1"}
    assert_rate_limited(post_as(limited, ip, "/v1/auth/login", body, xff=f"198.51.100.7, {ip}"))
    # A trusted proxy at the end of the chain is skipped: still `ip`.
    assert_rate_limited(post_as(limited, ip, "/v1/auth/login", body, xff=f"{ip}, 127.0.0.1"))


def _post_from(inst, source_ip, path, body, headers):
    """POST from a chosen loopback source address (127.0.0.2 is not a trusted proxy)."""
    host, port = inst.base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source_ip, 0))
    try:
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json", **headers})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def test_forwarded_for_from_an_untrusted_peer_is_ignored(limited):
    source = f"127.0.{next(_ip_counter) % 250 + 1}.2"
    statuses = []
    for _ in range(BURST):  # a fresh X-Forwarded-For every time does not buy a fresh budget
        status, _, body = _post_from(limited, source, "/v1/auth/login",
                                     {"email": unknown_email(), "password": "wrong password 1"},
                                     {"X-Forwarded-For": client_ip()})
        statuses.append(status)
        assert status == 401 and body["code"] == "unauthenticated", (status, body)
    status, headers, body = _post_from(limited, source, "/v1/auth/login",
                                       {"email": unknown_email(), "password": "wrong password 1"},
                                       {"X-Forwarded-For": client_ip()})
    assert status == 429 and body["code"] == "rate_limited", (status, body)
    assert re.fullmatch(r"[0-9]+", headers.get("retry-after", "")), headers


def test_the_snapshot_sees_a_change(world):
    """The "nothing changed" guard can fail: a real write shows up in it."""
    before = snapshot(world.inst, world.tok["root"])
    org = world.ok("GET", f"/v1/orgs/{world.ids['A']}", "a_owner")
    world.ok("PATCH", f"/v1/orgs/{world.ids['A']}", "a_owner", json={"description": "changed by the guard check"})
    changed = snapshot(world.inst, world.tok["root"])
    assert changed != before
    world.ok("PATCH", f"/v1/orgs/{world.ids['A']}", "a_owner", json={"description": org["description"]})



def test_nul_inside_a_password_is_part_of_it(world):
    """The password goes to argon2 with its length: nothing after a NUL is cut off."""
    email = f"nulpass-{uuid.uuid4().hex[:8]}@example.com"
    r = world.req("POST", "/v1/users", json={"email": email, "password": "correct horse\u0000AAAA"})
    assert r.status_code == 201, r.text
    r = world.req("POST", "/v1/auth/login", json={"email": email, "password": "correct horse\u0000BBBB"})
    assert_problem(r, 401, "unauthenticated")
    r = world.req("POST", "/v1/auth/login", json={"email": email, "password": "correct horse"})
    assert_problem(r, 401, "unauthenticated")
    assert world.req("POST", "/v1/auth/login", json={"email": email, "password": "correct horse\u0000AAAA"}).status_code == 200
