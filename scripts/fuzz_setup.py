"""Seeds a fresh Portcullis server for `scripts/fuzz.sh` and writes what schemathesis needs.

Usage: fuzz_setup.py BASE_URL OUT_DIR   (root e-mail and password in FUZZ_ROOT_EMAIL/FUZZ_ROOT_PASSWORD)

Creates, through the public API only: the root admin's login, an org it owns with a member,
a pending and a dormant invite, a role binding, an API key, a service account with a key, a
platform invite, and a group (with a child group, a member, a binding and an override); plus one
throwaway user per credential-destroying operation. Writes
  OUT_DIR/schemathesis.toml  per-operation Authorization headers (root's token by default)
  OUT_DIR/ids.json           real ids that scripts/fuzz_hooks.py puts into some generated paths
Standard library only.
"""

import json
import os
import sys
import urllib.error
import urllib.request

BASE, OUT = sys.argv[1].rstrip("/"), sys.argv[2]
PASSWORD = "fuzz-password-1"


def call(method, path, body=None, token=None, expect=(200, 201, 204)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode(errors="replace")
    if status not in expect:
        sys.exit(f"fuzz-setup: error: {method} {path} answered {status}: {text[:500]}")
    return json.loads(text) if text.strip() else None


def login(email, password=PASSWORD):
    return call("POST", "/v1/auth/login", {"email": email, "password": password})["access_token"]


def user(name):
    email = f"{name}@fuzz.example"
    uid = call("POST", "/v1/users", {"email": email, "password": PASSWORD, "name": name})["id"]
    return uid, login(email)


root = login(os.environ["FUZZ_ROOT_EMAIL"], os.environ["FUZZ_ROOT_PASSWORD"])
org = call("POST", "/v1/orgs", {"name": "Fuzz Org", "description": "seeded by fuzz_setup.py"}, root)["id"]
alice, _ = user("alice")
ivan, _ = user("ivan")
call("POST", f"/v1/orgs/{org}/members", {"user_id": alice, "role": "editor"}, root)
invite = call("POST", f"/v1/orgs/{org}/invites", {"email": "ivan@fuzz.example", "role": "viewer"}, root)["id"]
call("POST", f"/v1/orgs/{org}/invites", {"email": "nobody-yet@fuzz.example", "role": "viewer"}, root)
binding = call("PUT", f"/v1/orgs/{org}/bindings",
               {"subject": {"user_id": alice}, "resource": f"org:{org}/doc:1", "role": "admin"}, root)["id"]
key = call("POST", "/v1/keys", {"name": "fuzz key"}, root)["id"]
account = call("POST", f"/v1/orgs/{org}/service-accounts", {"name": "fuzz bot", "role": "viewer"}, root)["id"]
account_key = call("POST", f"/v1/orgs/{org}/service-accounts/{account}/keys", {"name": "bot key"}, root)["id"]
platform_invite = call("POST", "/v1/platform-invites", {"email": "platform@fuzz.example", "org_invites": []}, root)["id"]
# A group with a child group and a member, bound and overridden, so the group routes meet real ids.
group = call("POST", f"/v1/orgs/{org}/groups", {"name": "Fuzz Group"}, root)["id"]
call("POST", f"/v1/orgs/{org}/groups", {"name": "Fuzz Child", "parent_id": group}, root)
call("PUT", f"/v1/orgs/{org}/groups/{group}/members", {"user_id": alice}, root)
call("PUT", f"/v1/orgs/{org}/bindings", {"subject": {"group_id": group}, "resource": f"org:{org}/doc:2", "role": "editor"}, root)
override = call("POST", f"/v1/orgs/{org}/overrides", {"subject": {"group_id": group}, "resource": f"org:{org}/doc:2",
                                                      "permission": "org.read", "effect": "deny", "reason": "seeded by fuzz_setup.py"}, root)["id"]

# Operations that end the caller's session, change its password or replace the whole database each
# get a user of their own, so root's token lives through the run.
_, t_logout = user("logout")
_, t_password = user("password")
_, t_restore = user("restore")  # not root: restore is fuzzed up to its authorization check (403)
_, t_sessions = user("sessions")
session = next(s["id"] for s in call("GET", "/v1/me/sessions", token=t_sessions)["items"] if s["current"])
# deleteOrg runs as root, so that it can delete the orgs root creates in stateful chains; the real
# id fuzz_hooks.py gives it is this org's, never the one the rest of the run works in.
_, t_orgdel = user("orgdel")
org_to_delete = call("POST", "/v1/orgs", {"name": "Doomed Org"}, t_orgdel)["id"]

own_token = {
    "logout": t_logout,
    "changePassword": t_password,
    "restoreBackup": t_restore,
    "deleteMySession": t_sessions,
}

with open(os.path.join(OUT, "ids.json"), "w") as f:
    json.dump({
        "org_id": org, "user_id": alice, "invite_id": invite, "binding_id": binding,
        "account_id": account, "key_id": key, "account_key_id": account_key,
        "platform_invite_id": platform_invite, "session_id": session, "doomed_org_id": org_to_delete,
        "group_id": group, "member_id": alice, "override_id": override,
    }, f, indent=1)

with open(os.path.join(OUT, "schemathesis.toml"), "w") as f:
    f.write(f'headers = {{ Authorization = "Bearer {root}" }}\n')
    # No replay of failures stored by earlier runs (in ./.schemathesis): each run stands alone.
    f.write('cache = { enabled = false }\n')
    for op, token in own_token.items():
        f.write(f'\n[[operations]]\ninclude-operation-id = "{op}"\nheaders = {{ Authorization = "Bearer {token}" }}\n')
    # A change stream stays open until the client leaves: read a few events, then hang up; one that
    # has none to send costs the whole timeout, so the stream gets a smaller budget of its own.
    f.write('\n[[operations]]\ninclude-operation-id = "watchChanges"\nmax-stream-events = 3\nrequest-timeout = 2\n'
            f'generation = {{ max-examples = {max(1, min(20, int(os.environ.get("FUZZ_EXAMPLES", "20"))))} }}\n')
print(f"fuzz-setup: seeded org {org}", file=sys.stderr)
