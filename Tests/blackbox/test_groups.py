"""Groups and overrides, black-box (SPEC §17): the real server binary on SQLite and on PostgreSQL.

Covered: nested groups reaching every decision endpoint (authorize, batch, explain with the `via`
chain, capabilities, lookup, AuthZEN evaluation(s) and searches), moves in the tree changing answers;
overrides (a deny beats a role and an allow, an allow grants what the role lacks, role-name actions
untouched, key scopes narrow last, expiry, the last-owner rule, who may lift a deny); the rank rules
both ways; refusals that change nothing; quotas and pages; concurrent writes that together would make
a cycle, a tree too deep or two siblings of one name (two nodes on one PostgreSQL, one SQLite node);
leaving the org (or a lapsed membership, a deleted service account, a deleted org) ending group
access; propagation between nodes; the change stream, the audit log, webhooks; and backup/restore
across backends.

Each backend runs one deployment for the whole module: SQLite one node, PostgreSQL two nodes
sharing the database, master key and issuer (as test_webhooks.py's two-node test starts them).
A small permission file adds `docs.write` (editor) and `reports.export` (admin).
"""

import contextlib
import datetime
import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from faultkit import Node, write_master_key
from security_support import BACKENDS, backend_database
from test_watch import _events
from test_webhooks import (  # noqa: F401  (_receiver_pool and receivers are fixtures used here)
    ROOT_EMAIL,
    ROOT_PASSWORD,
    WEBHOOK_SETTINGS,
    Api,
    _receiver_pool,
    binary,
    first_arrivals,
    receivers,
    revision_of,
    wait_until,
)

POLICY = "permissions:\n  docs.write: editor\n  reports.export: admin\n"
NODE_ENV = {"ROOT_EMAIL": ROOT_EMAIL, "ROOT_PASSWORD": ROOT_PASSWORD, "SIGNUP": "open", "WEBHOOK_ALLOW_PRIVATE": "true",
            **WEBHOOK_SETTINGS}
QUOTA = 30  # PORTCULLIS_MAX_GROUPS_PER_ORG and PORTCULLIS_MAX_OVERRIDES_PER_ORG here; no other org comes near it
NODE_ENV = {**NODE_ENV, "MAX_GROUPS_PER_ORG": str(QUOTA), "MAX_OVERRIDES_PER_ORG": str(QUOTA)}
PROPAGATION_TIMEOUT = 3.0  # seconds; the documented bound is ~100 ms (a 50 ms poll)


# ---------------------------------------------------------------------------------------- deployments

@dataclass
class Deployment:
    backend: str
    nodes: list
    workdir: Path
    database_url: str
    policy_file: Path
    apis: list = field(default_factory=list)
    root: str = ""

    @property
    def api(self) -> Api:
        """Node A: where writes go."""
        return self.apis[0]

    @property
    def reader(self) -> Api:
        """Node B on PostgreSQL (another process on the same database); the one node on SQLite."""
        return self.apis[-1]


def _policy_file(workdir: Path) -> Path:
    path = workdir / "policy.yaml"
    path.write_text(POLICY)
    return path


@contextlib.contextmanager
def deploy(backend: str, workdir: Path, nodes: int | None = None, env: dict | None = None):
    """A running deployment on a fresh database of `backend`: one node on SQLite, two on PostgreSQL."""
    count = nodes or (1 if backend == "sqlite" else 2)
    with backend_database(backend, workdir) as database_url:
        key = workdir / "master.key"
        write_master_key(key)
        policy = _policy_file(workdir)
        settings = {**NODE_ENV, "POLICY_FILE": str(policy), **(env or {})}
        first = Node(binary(), workdir, f"{backend}0", database_url, key, env=settings)
        # One instance: one issuer (the first node's public URL), so a token from either node works on both.
        started = [first] + [Node(binary(), workdir, f"{backend}{i}", database_url, key, public_url=first.base, env=settings)
                             for i in range(1, count)]
        try:
            for n in started:
                n.start()
            d = Deployment(backend, started, workdir, database_url, policy, apis=[Api(n.base) for n in started])
            yield d
        finally:
            for n in started:
                n.stop()


@pytest.fixture(scope="module")
def deployments(tmp_path_factory):
    """Starts each backend's deployment on first use and keeps it for the module."""
    started: dict[str, Deployment] = {}
    with contextlib.ExitStack() as stack:
        def get(backend: str) -> Deployment:
            if backend not in started:
                d = stack.enter_context(deploy(backend, tmp_path_factory.mktemp(f"groups-{backend}")))
                d.root = d.api.root()
                started[backend] = d
            return started[backend]
        yield get


@pytest.fixture(params=BACKENDS)
def deployment(request, deployments) -> Deployment:
    return deployments(request.param)


@pytest.fixture
def pg(deployments) -> Deployment:
    return deployments("postgres")


# ---------------------------------------------------------------------------------------- helpers

@dataclass
class Org:
    id: str
    people: dict  # label -> (user, token)

    @property
    def obj(self) -> str:
        return f"org:{self.id}"

    def uid(self, label: str) -> str:
        return self.people[label][0]["id"]

    def token(self, label: str) -> str:
        return self.people[label][1]


def new_org(api: Api, *members: tuple[str, str]) -> Org:
    """An org owned by "owner" (its creator) with the (label, role) members given."""
    owner, ho = api.person("owner")
    org = api.org(ho, "groups")
    people = {"owner": (owner, ho)}
    for label, role in members:
        user, token = api.person(label)
        api.ok("POST", f"/v1/orgs/{org}/members", ho, 201, json={"user_id": user["id"], "role": role})
        people[label] = (user, token)
    return Org(org, people)


def create_group(api: Api, token: str, org: str, name: str, **body) -> dict:
    r = api.ok("POST", f"/v1/orgs/{org}/groups", token, 201, json={"name": name, **body})
    assert revision_of(r) is not None, "a group write without Portcullis-Revision"
    return r.json()


def put_member(api: Api, token: str, org: str, group: str, expect=(200, 201), **member) -> requests.Response:
    return api.ok("PUT", f"/v1/orgs/{org}/groups/{group}/members", token, expect, json=member)


def bind_group(api: Api, token: str, org: str, group: str, resource: str, role: str) -> requests.Response:
    return api.ok("PUT", f"/v1/orgs/{org}/bindings", token, (200, 201),
                  json={"subject": {"group_id": group}, "resource": resource, "role": role})


def override(api: Api, token: str, org: str, subject: dict, resource: str, permission: str, effect: str,
             expect=201, **extra) -> requests.Response:
    body = {"subject": subject, "resource": resource, "permission": permission, "effect": effect,
            "reason": extra.pop("reason", f"test: {effect} {permission}"), **extra}
    return api.ok("POST", f"/v1/orgs/{org}/overrides", token, expect, json=body)


def decide(api: Api, token: str, obj: str, action: str, **kw) -> dict:
    r = api.ok("POST", "/v1/authorize", token, 200, json={"object": obj, "action": action, **kw})
    return r.json()


def allowed(api: Api, token: str, obj: str, action: str, **kw) -> bool:
    return decide(api, token, obj, action, **kw)["allowed"]


def explain(api: Api, token: str, obj: str, action: str, **kw) -> dict:
    return api.ok("POST", "/v1/authorize/explain", token, 200, json={"object": obj, "action": action, **kw}).json()


def set_subject(subject: dict) -> dict:
    """A subject as the API shows it, without the kinds that are not set."""
    return {k: v for k, v in subject.items() if v is not None}


def in_future(seconds: float) -> str:
    at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def refused(r: requests.Response, status: int, code: str | None = None) -> dict:
    """A problem answer with `status` (and `code`)."""
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text[:400])
    assert r.headers.get("Content-Type", "").startswith("application/problem+json"), r.headers.get("Content-Type")
    body = r.json()
    assert body.get("status") == status, body
    if code is not None:
        assert body.get("code") == code, body
    return body


def listing(api: Api, token: str, path: str) -> list[dict]:
    """Every item of a paged list (Api.audit pages through any `{items, total}` list)."""
    return api.audit(token, path)


def parents(api: Api, token: str, org: str) -> dict:
    return {g["id"]: g["parent_id"] for g in listing(api, token, f"/v1/orgs/{org}/groups")}


def assert_a_tree(tree: dict, max_depth: int = 8) -> None:
    """Every group's chain of parents ends at the top, within the depth limit, through groups that exist."""
    for g in tree:
        seen, at = [], g
        while at is not None:
            assert at not in seen, f"cycle through {seen + [at]}"
            assert at in tree, f"{g}'s ancestry names a group that is not listed: {at}"
            seen.append(at)
            at = tree[at]
        assert len(seen) <= max_depth, f"{g} is {len(seen)} deep"


def org_state(api: Api, token: str, org: str) -> dict:
    """Everything a group or override write could change in one org, as its owner sees it."""
    groups = listing(api, token, f"/v1/orgs/{org}/groups")
    return {
        "groups": groups,
        "members": {g["id"]: listing(api, token, f"/v1/orgs/{org}/groups/{g['id']}/members") for g in groups},
        "bindings": listing(api, token, f"/v1/orgs/{org}/bindings"),
        "overrides": listing(api, token, f"/v1/orgs/{org}/overrides"),
        "org_members": listing(api, token, f"/v1/orgs/{org}/members"),
        "audit_total": api.ok("GET", f"/v1/orgs/{org}/audit?limit=1", token, 200).json()["total"],
    }


# ---------------------------------------------------------------------------------------- 1. the walk through

def test_nested_groups_reach_every_decision_endpoint(deployment):
    api, reader, root = deployment.api, deployment.reader, deployment.root
    o = new_org(api, ("user", "viewer"))
    org, ho, hu, u = o.id, o.token("owner"), o.token("user"), o.uid("user")
    p1, p2 = f"{o.obj}/project:p1", f"{o.obj}/project:p2"

    top = create_group(api, ho, org, "Top", description="everyone", metadata={"cost_center": "42"})
    assert (top["org_id"], top["name"], top["description"], top["metadata"], top["parent_id"]) == (org, "Top", "everyone", {"cost_center": "42"}, None)
    child = create_group(api, ho, org, "Child", parent_id=top["id"])
    assert child["parent_id"] == top["id"]
    grand = create_group(api, ho, org, "Grand")
    assert grand["parent_id"] is None
    # A group as a member of another: it moves under it.
    moved = put_member(api, ho, org, child["id"], group_id=grand["id"]).json()
    assert (moved["type"], moved["id"], set_subject(moved["member"])) == ("group", grand["id"], {"group_id": grand["id"]}), moved
    assert api.ok("GET", f"/v1/orgs/{org}/groups/{grand['id']}", ho, 200).json()["parent_id"] == child["id"]
    listed = api.ok("GET", f"/v1/orgs/{org}/groups", hu, 200).json()  # any member may read the groups
    assert [g["name"] for g in listed["items"]] == ["Child", "Grand", "Top"] and listed["total"] == 3, listed

    added = put_member(api, ho, org, grand["id"], 201, user_id=u)
    m = added.json()
    assert (m["group_id"], m["type"], m["id"], set_subject(m["member"]), m["label"], m["expires_at"]) == \
        (grand["id"], "user", u, {"user_id": u}, o.people["user"][0]["email"], None), m
    again = put_member(api, ho, org, grand["id"], 200, user_id=u)  # the same member again: updated, not added
    assert again.json()["created_at"] == m["created_at"]
    members = api.ok("GET", f"/v1/orgs/{org}/groups/{grand['id']}/members", ho, 200).json()
    assert [(x["type"], x["id"]) for x in members["items"]] == [("user", u)] and members["total"] == 1
    kids = api.ok("GET", f"/v1/orgs/{org}/groups/{top['id']}/members", ho, 200).json()["items"]
    assert [(x["type"], x["id"]) for x in kids] == [("group", child["id"])]

    before = decide(reader, hu, f"{p1}/doc:d1", "editor")
    assert before["allowed"] is False and before["role"] == "viewer", before
    bound = bind_group(api, ho, org, top["id"], p1, "editor")
    binding, rev = bound.json(), revision_of(bound)
    assert bound.status_code == 201 and set_subject(binding["subject"]) == {"group_id": top["id"]}, binding
    assert rev is not None

    # authorize: below the bound resource yes, beside it and above it no.
    d = decide(reader, hu, f"{p1}/doc:d1", "editor", at_least=rev)
    assert (d["allowed"], d["role"]) == (True, "editor"), d
    d = decide(reader, hu, p2, "editor", at_least=rev)
    assert (d["allowed"], d["role"]) == (False, "viewer"), d
    assert allowed(reader, hu, o.obj, "editor", at_least=rev) is False

    batch = reader.ok("POST", "/v1/authorize/batch", hu, 200, json={"at_least": rev, "checks": [
        {"object": f"{p1}/doc:d1", "action": "editor"}, {"object": p2, "action": "editor"},
        {"object": o.obj, "action": "editor"}, {"object": p1, "action": "org.read"}]}).json()
    assert [x["allowed"] for x in batch["results"]] == [True, False, False, True], batch

    why = explain(reader, hu, f"{p1}/doc:d1", "editor", at_least=rev)
    assert why["allowed"] is True and why["role"] == "editor" and why["required_role"] == "editor", why
    via_group = [g for g in why["grants"] if g["group_id"] is not None]
    assert len(via_group) == 1, why["grants"]
    g = via_group[0]
    assert (g["kind"], g["role"], g["resource"], g["binding_id"], g["group_id"], g["group_name"], g["decisive"]) == \
        ("binding", "editor", p1, binding["id"], top["id"], "Top", True), g
    assert g["via"] == [grand["id"], child["id"], top["id"]], g["via"]
    own = [g for g in why["grants"] if g["kind"] == "membership"]
    assert len(own) == 1 and own[0]["role"] == "viewer" and own[0]["decisive"] is False and own[0]["via"] == [], own

    caps = reader.ok("POST", "/v1/capabilities", hu, 200, json={"objects": [f"{p1}/doc:d1", p2], "at_least": rev}).json()["results"]
    assert [(c["object"], c["role"]) for c in caps] == [(f"{p1}/doc:d1", "editor"), (p2, "viewer")], caps

    found = reader.ok("POST", "/v1/lookup", hu, 200, json={"permission": "editor", "type": "project"}).json()
    assert [(i["object"], i["role"]) for i in found["items"]] == [(p1, "editor")] and found["total"] == 1, found

    # AuthZEN: the same engine.
    def entity(project):
        return {"type": "project", "id": project, "properties": {"org_id": org}}
    subject = {"type": "user", "id": u}
    ev = reader.ok("POST", "/access/v1/evaluation", hu, 200, headers={"Portcullis-Revision": str(rev)},
                   json={"subject": subject, "resource": entity("p1"), "action": {"name": "editor"}}).json()
    assert ev["decision"] is True and ev["context"]["role"] == "editor", ev
    ev = reader.ok("POST", "/access/v1/evaluation", hu, 200,
                   json={"subject": subject, "resource": entity("p2"), "action": {"name": "editor"}}).json()
    assert ev["decision"] is False, ev
    evs = reader.ok("POST", "/access/v1/evaluations", hu, 200, json={
        "subject": subject, "action": {"name": "editor"}, "evaluations": [
            {"resource": {"type": "doc", "id": f"{p1}/doc:d1"}}, {"resource": entity("p2")},
            {"resource": {"type": "org", "id": org}, "action": {"name": "org.read"}}]}).json()
    assert [e["decision"] for e in evs["evaluations"]] == [True, False, True], evs

    def holders(project):
        body = {"subject": {"type": "user"}, "action": {"name": "editor"}, "resource": entity(project)}
        return {r["id"] for r in reader.ok("POST", "/access/v1/search/subject", root, 200, json=body).json()["results"]}
    assert holders("p1") == {o.uid("owner"), u}
    assert holders("p2") == {o.uid("owner")}
    res = reader.ok("POST", "/access/v1/search/resource", hu, 200,
                    json={"subject": subject, "action": {"name": "editor"}, "resource": {"type": "project"}}).json()
    assert [r["id"] for r in res["results"]] == [p1], res
    acts = reader.ok("POST", "/access/v1/search/action", hu, 200, json={"subject": subject, "resource": entity("p1")}).json()
    names = [a["name"] for a in acts["results"]]
    assert "editor" in names and "admin" not in names, names
    acts = reader.ok("POST", "/access/v1/search/action", hu, 200, json={"subject": subject, "resource": entity("p2")}).json()
    assert "editor" not in [a["name"] for a in acts["results"]], acts

    # Moves in the tree change the answers at once.
    def editor_on_p1(r):
        return allowed(reader, hu, f"{p1}/doc:d1", "editor", at_least=revision_of(r))
    assert editor_on_p1(api.ok("PATCH", f"/v1/orgs/{org}/groups/{child['id']}", ho, 200, json={"parent_id": None})) is False
    assert holders("p1") == {o.uid("owner")}
    assert editor_on_p1(put_member(api, ho, org, top["id"], group_id=child["id"])) is True
    assert editor_on_p1(api.ok("DELETE", f"/v1/orgs/{org}/groups/{top['id']}/members/{child['id']}", ho, 204)) is False
    assert api.ok("GET", f"/v1/orgs/{org}/groups/{child['id']}", ho, 200).json()["parent_id"] is None
    assert editor_on_p1(api.ok("PATCH", f"/v1/orgs/{org}/groups/{child['id']}", ho, 200, json={"parent_id": top["id"]})) is True
    # Leaving the group ends it too; a second removal finds nothing.
    assert editor_on_p1(api.ok("DELETE", f"/v1/orgs/{org}/groups/{grand['id']}/members/{u}", ho, 204)) is False
    refused(api.call("DELETE", f"/v1/orgs/{org}/groups/{grand['id']}/members/{u}", ho), 404)
    assert api.ok("GET", f"/v1/orgs/{org}/groups/{grand['id']}/members", ho, 200).json()["items"] == []

    # Deleting, leaves first: the group's binding and overrides go with it.
    g_ovr = override(api, ho, org, {"group_id": top["id"]}, p2, "org.read", "deny").json()
    for g in (grand, child, top):
        api.ok("DELETE", f"/v1/orgs/{org}/groups/{g['id']}", ho, 204)
        refused(api.call("GET", f"/v1/orgs/{org}/groups/{g['id']}", ho), 404)
    assert [b for b in listing(api, ho, f"/v1/orgs/{org}/bindings") if b["id"] == binding["id"]] == []
    assert [x for x in listing(api, ho, f"/v1/orgs/{org}/overrides") if x["id"] == g_ovr["id"]] == []
    assert listing(api, ho, f"/v1/orgs/{org}/groups") == []


def test_deleting_an_org_takes_its_groups_and_overrides(deployment):
    api, root = deployment.api, deployment.root
    o = new_org(api, ("user", "viewer"))
    org, ho = o.id, o.token("owner")
    top = create_group(api, ho, org, "Top")
    sub = create_group(api, ho, org, "Sub", parent_id=top["id"])
    put_member(api, ho, org, sub["id"], 201, user_id=o.uid("user"))
    bind_group(api, ho, org, top["id"], f"{o.obj}/project:p", "editor")
    override(api, ho, org, {"group_id": sub["id"]}, o.obj, "org.read", "deny")
    override(api, ho, org, {"user_id": o.uid("user")}, o.obj, "docs.write", "allow")
    sa = api.ok("POST", f"/v1/orgs/{org}/service-accounts", ho, 201, json={"name": "robot", "role": "viewer"}).json()
    put_member(api, ho, org, top["id"], 201, service_account_id=sa["id"])
    gone = api.ok("DELETE", f"/v1/orgs/{org}", ho, 204)
    refused(api.call("GET", f"/v1/orgs/{org}/groups", ho), 404)
    assert allowed(deployment.reader, o.token("user"), f"{o.obj}/project:p", "viewer", at_least=revision_of(gone)) is False
    doc = api.ok("GET", "/v1/admin/backup", root, 200).json()
    assert [g for g in doc["groups"] if g["org_id"] == org] == []
    assert [m for m in doc["group_members"] if m["group_id"] in (top["id"], sub["id"])] == []
    assert [x for x in doc["overrides"] if x["org_id"] == org] == []


def test_a_member_is_answered_as_the_list_shows_it(deployment):
    """PUT .../members answers with the member as GET .../members then lists it, 201 when it is new and
    200 when it was already there: a person and a child group alike."""
    api = deployment.api
    o = new_org(api, ("user", "viewer"))
    org, ho = o.id, o.token("owner")
    parent = create_group(api, ho, org, "Parent")
    kid = create_group(api, ho, org, "Kid")
    answers = {
        "user, new": put_member(api, ho, org, parent["id"], user_id=o.uid("user")),
        "user, again": put_member(api, ho, org, parent["id"], user_id=o.uid("user")),
        "child group, new": put_member(api, ho, org, parent["id"], group_id=kid["id"]),
        "child group, again": put_member(api, ho, org, parent["id"], group_id=kid["id"]),
    }
    listed = {m["id"]: m for m in listing(api, ho, f"/v1/orgs/{org}/groups/{parent['id']}/members")}
    assert [m["type"] for m in listed.values()] == ["user", "group"], listed  # people first, then child groups
    assert listed[o.uid("user")]["label"] == o.people["user"][0]["email"]
    assert listed[kid["id"]]["label"] == "Kid" and set_subject(listed[kid["id"]]["member"]) == {"group_id": kid["id"]}
    wrong = []
    for name, r in answers.items():
        want_status = 201 if name.endswith("new") else 200
        if r.status_code != want_status:
            wrong.append(f"PUT ({name}) answered {r.status_code}, expected {want_status}")
    for name, member in (("user, again", o.uid("user")), ("child group, again", kid["id"])):
        got, want = answers[name].json(), listed[member]
        # updated_at aside: a repeated PUT may count as an update.
        diffs = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if k != "updated_at" and got.get(k) != want.get(k)}
        if diffs:
            wrong.append(f"PUT ({name}) answered a member unlike the list's, (answered, listed): {diffs}")
    assert not wrong, "\n".join(wrong)


def test_group_members_page_people_first(deployment):
    api = deployment.api
    o = new_org(api, ("u1", "viewer"), ("u2", "editor"), ("u3", "admin"))
    org, ho = o.id, o.token("owner")
    parent = create_group(api, ho, org, "Parent")
    kids = [create_group(api, ho, org, f"Kid {i}", parent_id=parent["id"]) for i in range(3)]
    for label in ("u1", "u2", "u3"):
        put_member(api, ho, org, parent["id"], 201, user_id=o.uid(label))
    path = f"/v1/orgs/{org}/groups/{parent['id']}/members"
    full = api.ok("GET", f"{path}?limit=100", ho, 200).json()
    assert full["total"] == 6 and [m["type"] for m in full["items"]] == ["user"] * 3 + ["group"] * 3, full
    assert {m["id"] for m in full["items"]} == {o.uid(x) for x in ("u1", "u2", "u3")} | {k["id"] for k in kids}
    for size in (1, 2, 4):
        pages, offset = [], 0
        while offset < full["total"]:
            page = api.ok("GET", f"{path}?limit={size}&offset={offset}", ho, 200).json()
            assert page["total"] == 6 and len(page["items"]) == min(size, 6 - offset), (size, offset, page)
            pages += page["items"]
            offset += size
        assert [m["id"] for m in pages] == [m["id"] for m in full["items"]], size


# ---------------------------------------------------------------------------------------- 2. overrides

def test_overrides_deny_allow_scopes_expiry_and_the_last_owner(deployment):
    api, reader, root = deployment.api, deployment.reader, deployment.root
    o = new_org(api, ("admin", "admin"), ("viewer", "viewer"), ("other", "viewer"))
    org, ho, ha, hv = o.id, o.token("owner"), o.token("admin"), o.token("viewer")
    proj, q = f"{o.obj}/project:p", f"{o.obj}/project:q"

    # A deny beats the admin's role, on the object and below it; role names are not overridden.
    assert allowed(reader, ha, o.obj, "org.update") is True
    deny = override(api, ho, org, {"user_id": o.uid("admin")}, o.obj, "org.update", "deny", reason="change freeze")
    d_rev = revision_of(deny)
    made = deny.json()
    assert (made["org_id"], set_subject(made["subject"]), made["resource"], made["permission"], made["effect"], made["reason"], made["expires_at"]) == \
        (org, {"user_id": o.uid("admin")}, o.obj, "org.update", "deny", "change freeze", None), made
    d = decide(reader, ha, f"{proj}/doc:1", "org.update", at_least=d_rev)
    assert (d["allowed"], d["role"]) == (False, "admin") and "override" in d["reason"], d
    assert allowed(reader, ha, o.obj, "org.update", at_least=d_rev) is False
    assert allowed(reader, ha, o.obj, "admin", at_least=d_rev) is True        # the role itself stands
    assert allowed(reader, ha, o.obj, "members.write", at_least=d_rev) is True  # and its other permissions
    why = explain(reader, ha, o.obj, "org.update", at_least=d_rev)
    decisive = [g for g in why["grants"] if g["decisive"]]
    assert len(decisive) == 1 and (decisive[0]["kind"], decisive[0]["override_id"], decisive[0]["effect"], decisive[0]["permission"],
                                   decisive[0]["override_reason"], decisive[0]["role"]) == \
        ("override", made["id"], "deny", "org.update", "change freeze", None), why["grants"]
    caps = reader.ok("POST", "/v1/capabilities", ha, 200, json={"objects": [o.obj]}).json()["results"][0]
    assert caps["role"] == "admin" and "org.update" not in caps["permissions"] and "members.write" in caps["permissions"], caps
    # The searches agree with the decisions: whoever they name may, and a denied permission is not named.
    holders = reader.ok("POST", "/access/v1/search/subject", root, 200, headers={"Portcullis-Revision": str(d_rev)}, json={
        "subject": {"type": "user"}, "action": {"name": "org.update"}, "resource": {"type": "org", "id": org}}).json()["results"]
    assert {h["id"] for h in holders} == {o.uid("owner")}, holders
    assert reader.ok("POST", "/v1/lookup", ha, 200, json={"permission": "org.update"}).json()["items"] == []
    assert reader.ok("POST", "/v1/lookup", ha, 200, json={"permission": "members.write"}).json()["total"] == 1
    acts = reader.ok("POST", "/access/v1/search/action", ha, 200, json={
        "subject": {"type": "user", "id": o.uid("admin")}, "resource": {"type": "org", "id": org}}).json()["results"]
    names = [a["name"] for a in acts]
    assert "admin" in names and "members.write" in names and "org.update" not in names, names
    # Overrides act in decisions only: the org's own routes follow the membership.
    api.ok("PATCH", f"/v1/orgs/{org}", ha, 200, json={"description": "admins still administer"})

    # A deny on a sub-resource holds there and below, not above.
    sub = override(api, ho, org, {"user_id": o.uid("admin")}, proj, "members.write", "deny")
    assert allowed(reader, ha, f"{proj}/doc:1", "members.write", at_least=revision_of(sub)) is False
    assert allowed(reader, ha, q, "members.write", at_least=revision_of(sub)) is True

    # An allow grants a permission the role lacks, there and below only; the role name is not.
    allow = override(api, ha, org, {"user_id": o.uid("viewer")}, proj, "docs.write", "allow")
    a_rev = revision_of(allow)
    d = decide(reader, hv, f"{proj}/doc:1", "docs.write", at_least=a_rev)
    assert (d["allowed"], d["role"]) == (True, "viewer") and "override" in d["reason"], d
    assert allowed(reader, hv, q, "docs.write", at_least=a_rev) is False
    assert allowed(reader, hv, o.obj, "docs.write", at_least=a_rev) is False
    assert allowed(reader, hv, proj, "editor", at_least=a_rev) is False
    assert allowed(reader, o.token("other"), proj, "docs.write", at_least=a_rev) is False  # only the subject named
    caps = reader.ok("POST", "/v1/capabilities", hv, 200, json={"objects": [proj, q]}).json()["results"]
    assert "docs.write" in caps[0]["permissions"] and "docs.write" not in caps[1]["permissions"], caps
    found = reader.ok("POST", "/v1/lookup", hv, 200, json={"permission": "docs.write", "type": "project"}).json()
    assert [i["object"] for i in found["items"]] == [proj], found
    holders = reader.ok("POST", "/access/v1/search/subject", root, 200, json={
        "subject": {"type": "user"}, "action": {"name": "docs.write"}, "resource": {"type": "doc", "id": f"{proj}/doc:1"}}).json()["results"]
    assert {h["id"] for h in holders} == {o.uid("owner"), o.uid("admin"), o.uid("viewer")}, holders
    holders = reader.ok("POST", "/access/v1/search/subject", root, 200, json={
        "subject": {"type": "user"}, "action": {"name": "docs.write"}, "resource": {"type": "project", "id": "q", "properties": {"org_id": org}}}).json()["results"]
    assert {h["id"] for h in holders} == {o.uid("owner"), o.uid("admin")}, holders
    acts = reader.ok("POST", "/access/v1/search/action", hv, 200, json={
        "subject": {"type": "user", "id": o.uid("viewer")}, "resource": {"type": "doc", "id": f"{proj}/doc:1"}}).json()["results"]
    names = [a["name"] for a in acts]
    assert "docs.write" in names and "editor" not in names, names
    ev = reader.ok("POST", "/access/v1/evaluation", hv, 200, json={
        "subject": {"type": "user", "id": o.uid("viewer")}, "resource": {"type": "doc", "id": f"{proj}/doc:1"},
        "action": {"name": "docs.write"}}).json()
    assert ev["decision"] is True, ev

    # Key scopes narrow last: a role:viewer key gets no editor-level permission, allowed or not;
    # an unscoped key of the same person does.
    capped = api.ok("POST", "/v1/keys", hv, 201, json={"name": "read only", "scopes": ["role:viewer"]}).json()["key"]
    full = api.ok("POST", "/v1/keys", hv, 201, json={"name": "everything"}).json()["key"]
    d = decide(reader, capped, f"{proj}/doc:1", "docs.write")
    assert d["allowed"] is False and d["role"] == "viewer", d
    assert allowed(reader, capped, f"{proj}/doc:1", "org.read") is True
    assert allowed(reader, full, f"{proj}/doc:1", "docs.write") is True
    elsewhere = api.ok("POST", "/v1/keys", hv, 201, json={"name": "other org", "scopes": [f"org:{uuid.uuid4()}"]}).json()["key"]
    assert allowed(reader, elsewhere, f"{proj}/doc:1", "docs.write") is False

    # A group's override reaches its members (and its subgroups' members).
    team = create_group(api, ho, org, "Team")
    sub_team = create_group(api, ho, org, "Sub", parent_id=team["id"])
    put_member(api, ho, org, sub_team["id"], 201, user_id=o.uid("other"))
    g_deny = override(api, ho, org, {"group_id": team["id"]}, f"{o.obj}/project:secret", "org.read", "deny")
    g_made = g_deny.json()
    assert set_subject(g_made["subject"]) == {"group_id": team["id"]}
    secret = f"{o.obj}/project:secret/doc:1"
    assert allowed(reader, o.token("other"), secret, "org.read", at_least=revision_of(g_deny)) is False
    assert allowed(reader, o.token("other"), q, "org.read", at_least=revision_of(g_deny)) is True
    assert allowed(reader, hv, secret, "org.read", at_least=revision_of(g_deny)) is True  # not in the group
    why = explain(reader, o.token("other"), secret, "org.read", at_least=revision_of(g_deny))
    g = [x for x in why["grants"] if x["kind"] == "override"]
    assert len(g) == 1 and (g[0]["group_id"], g[0]["group_name"], g[0]["via"], g[0]["override_id"], g[0]["decisive"]) == \
        (team["id"], "Team", [sub_team["id"], team["id"]], g_made["id"], True), why["grants"]

    # A deny beats an allow, whichever is nearer the object, and whoever's it is (own or a group's).
    blockers = create_group(api, ho, org, "Blockers")
    put_member(api, ho, org, blockers["id"], 201, user_id=o.uid("viewer"))
    locked = override(api, ho, org, {"group_id": blockers["id"]}, f"{proj}/doc:locked", "docs.write", "deny")
    assert allowed(reader, hv, f"{proj}/doc:locked", "docs.write", at_least=revision_of(locked)) is False
    assert allowed(reader, hv, f"{proj}/doc:open", "docs.write", at_least=revision_of(locked)) is True
    high = override(api, ho, org, {"group_id": blockers["id"]}, o.obj, "reports.export", "deny")
    near = override(api, ho, org, {"user_id": o.uid("viewer")}, f"{o.obj}/project:x", "reports.export", "allow")
    d = decide(reader, hv, f"{o.obj}/project:x/doc:1", "reports.export", at_least=max(revision_of(high), revision_of(near)))
    assert d["allowed"] is False and "override" in d["reason"], d
    caps = reader.ok("POST", "/v1/capabilities", hv, 200, json={"objects": [f"{proj}/doc:locked", f"{o.obj}/project:x"]}).json()["results"]
    assert "docs.write" not in caps[0]["permissions"] and "reports.export" not in caps[1]["permissions"], caps

    # Time-bound: an allow and a group membership that expire stop counting on their own.
    team_bind = bind_group(api, ho, org, team["id"], f"{o.obj}/project:rota", "admin")
    joined = put_member(api, ho, org, team["id"], 201, user_id=o.uid("viewer"), expires_at=in_future(3))
    assert joined.json()["expires_at"] is not None
    temp = override(api, ha, org, {"user_id": o.uid("viewer")}, f"{o.obj}/project:tmp", "docs.write", "allow", expires_at=in_future(3))
    assert temp.json()["expires_at"] is not None
    t_rev = max(revision_of(temp), revision_of(joined), revision_of(team_bind))
    tmp_doc, rota_doc = f"{o.obj}/project:tmp/doc:1", f"{o.obj}/project:rota/doc:1"
    assert allowed(reader, hv, tmp_doc, "docs.write", at_least=t_rev) is True
    assert allowed(reader, hv, rota_doc, "admin", at_least=t_rev) is True  # through the team, for now
    t0 = time.monotonic()
    wait_until(lambda: not allowed(reader, hv, tmp_doc, "docs.write"), 10, "the expiring allow to stop counting", 0.1)
    wait_until(lambda: not allowed(reader, hv, rota_doc, "admin"), 10, "the expiring group membership to stop counting", 0.1)
    assert time.monotonic() - t0 < 8
    assert allowed(reader, hv, rota_doc, "viewer") is True  # the org membership stays
    tmp_entity = {"type": "project", "id": "rota", "properties": {"org_id": org}}
    holders = reader.ok("POST", "/access/v1/search/subject", root, 200, json={
        "subject": {"type": "user"}, "action": {"name": "admin"}, "resource": tmp_entity}).json()["results"]
    assert o.uid("viewer") not in {h["id"] for h in holders}, holders
    assert allowed(reader, hv, f"{proj}/doc:1", "docs.write") is True  # the permanent allow stays

    # Deleting an override ends it.
    gone = api.ok("DELETE", f"/v1/orgs/{org}/overrides/{made['id']}", ho, 204)
    assert allowed(reader, ha, o.obj, "org.update", at_least=revision_of(gone)) is True
    refused(api.call("DELETE", f"/v1/orgs/{org}/overrides/{made['id']}", ho), 404)

    # Lifting a deny gives the permission back, so it takes a role that holds it: the admin may deny a
    # viewer members.owners but not lift that; the owner may.
    owner_level = override(api, ha, org, {"user_id": o.uid("viewer")}, o.obj, "members.owners", "deny").json()
    refused(api.call("DELETE", f"/v1/orgs/{org}/overrides/{owner_level['id']}", ha), 403, "forbidden")
    assert owner_level["id"] in {x["id"] for x in listing(api, ha, f"/v1/orgs/{org}/overrides")}
    api.ok("DELETE", f"/v1/orgs/{org}/overrides/{owner_level['id']}", ho, 204)
    low = override(api, ho, org, {"user_id": o.uid("viewer")}, o.obj, "reports.export", "deny").json()
    api.ok("DELETE", f"/v1/orgs/{org}/overrides/{low['id']}", ha, 204)

    # The last-owner rule: a deny never takes an owner-level permission from a current owner, though a
    # deny of a lower permission does bind the owner. Only the root may set overrides on an owner.
    owner_id = o.uid("owner")
    keep = override(api, root, org, {"user_id": owner_id}, o.obj, "members.owners", "deny")
    k_rev = revision_of(keep)
    d = decide(reader, ho, o.obj, "members.owners", at_least=k_rev)
    assert (d["allowed"], d["role"]) == (True, "owner"), d
    assert allowed(reader, ho, f"{proj}/doc:1", "members.owners", at_least=k_rev) is True
    caps = reader.ok("POST", "/v1/capabilities", ho, 200, json={"objects": [o.obj], "at_least": k_rev}).json()["results"][0]
    assert "members.owners" in caps["permissions"], caps
    board = create_group(api, root, org, "Board")
    put_member(api, root, org, board["id"], 201, user_id=owner_id)
    g_keep = override(api, root, org, {"group_id": board["id"]}, o.obj, "org.delete", "deny")
    assert allowed(reader, ho, o.obj, "org.delete", at_least=revision_of(g_keep)) is True
    lower = override(api, root, org, {"user_id": owner_id}, o.obj, "org.update", "deny")
    d = decide(reader, ho, o.obj, "org.update", at_least=revision_of(lower))
    assert (d["allowed"], d["role"]) == (False, "owner"), d
    assert allowed(reader, ho, o.obj, "owner", at_least=revision_of(lower)) is True
    # An admin may set no override on the owner.
    refused(api.call("POST", f"/v1/orgs/{org}/overrides", ha, json={
        "subject": {"user_id": owner_id}, "resource": o.obj, "permission": "org.read", "effect": "deny", "reason": "no"}), 403)

    listed = {x["id"] for x in listing(api, ha, f"/v1/orgs/{org}/overrides")}
    assert {sub.json()["id"], allow.json()["id"], g_made["id"], temp.json()["id"], keep.json()["id"], lower.json()["id"]} <= listed
    assert made["id"] not in listed


def test_admins_manage_groups_within_their_rank(deployment):
    """The rank rules refuse only what reaches above: an admin runs admin-level groups end to end."""
    api, reader = deployment.api, deployment.reader
    o = new_org(api, ("admin", "admin"), ("editor", "editor"))
    org, ha, he = o.id, o.token("admin"), o.token("editor")
    ops = create_group(api, ha, org, "Ops")
    oncall = create_group(api, ha, org, "On call", parent_id=ops["id"])
    bind_group(api, ha, org, ops["id"], f"{o.obj}/project:infra", "admin")  # up to the admin's own role
    put_member(api, ha, org, oncall["id"], 201, user_id=o.uid("editor"))
    rev = revision_of(override(api, ha, org, {"group_id": oncall["id"]}, f"{o.obj}/project:infra/db:prod", "reports.export", "deny"))
    assert allowed(reader, he, f"{o.obj}/project:infra/db:staging", "admin", at_least=rev) is True
    assert allowed(reader, he, f"{o.obj}/project:infra/db:prod", "reports.export", at_least=rev) is False
    assert allowed(reader, he, f"{o.obj}/project:infra/db:prod", "members.write", at_least=rev) is True
    # Joining a group that reaches no higher than oneself is fine; then its overrides are not one's to set.
    put_member(api, ha, org, oncall["id"], 201, user_id=o.uid("admin"))
    refused(api.call("POST", f"/v1/orgs/{org}/overrides", ha, json={
        "subject": {"group_id": oncall["id"]}, "resource": o.obj, "permission": "org.read", "effect": "deny", "reason": "no"}), 403, "forbidden")
    api.ok("PATCH", f"/v1/orgs/{org}/groups/{oncall['id']}", ha, 200, json={"name": "Pager", "description": "nights"})
    r = api.ok("DELETE", f"/v1/orgs/{org}/groups/{oncall['id']}/members/{o.uid('editor')}", ha, 204)
    assert allowed(reader, he, f"{o.obj}/project:infra/db:staging", "admin", at_least=revision_of(r)) is False
    api.ok("DELETE", f"/v1/orgs/{org}/groups/{oncall['id']}", ha, 204)
    api.ok("DELETE", f"/v1/orgs/{org}/groups/{ops['id']}", ha, 204)
    # An editor reads the groups but does not write them.
    assert api.ok("GET", f"/v1/orgs/{org}/groups", he, 200).json()["total"] == 0


# ---------------------------------------------------------------------------------------- 3. refusals

def test_refusals_change_nothing(deployment):
    api, root = deployment.api, deployment.root
    o = new_org(api, ("admin", "admin"), ("admin2", "admin"), ("editor", "editor"), ("viewer", "viewer"))
    org, ho, ha, hv = o.id, o.token("owner"), o.token("admin"), o.token("viewer")
    other = new_org(api)
    outsider, hx = api.person("outsider")
    foreign = create_group(api, other.token("owner"), other.id, "Foreign")

    # The tree: a → b → c, and a chain of eight levels.
    a = create_group(api, ho, org, "A")
    b = create_group(api, ho, org, "B", parent_id=a["id"])
    c = create_group(api, ho, org, "C", parent_id=b["id"])
    chain = [create_group(api, ho, org, "L1")]
    for level in range(2, 9):
        chain.append(create_group(api, ho, org, f"L{level}", parent_id=chain[-1]["id"]))
    loose = create_group(api, ho, org, "Loose")
    create_group(api, ho, org, "Kid", parent_id=loose["id"])  # Loose is two levels high
    twin = create_group(api, ho, org, "Twin", parent_id=a["id"])
    create_group(api, ho, org, "twin")  # the same name at the top is fine
    create_group(api, ho, org, "Équipe")
    # An owner-reaching group and one with people in it.
    owners = create_group(api, ho, org, "Owners")
    bind_group(api, ho, org, owners["id"], o.obj, "owner")
    admins = create_group(api, ho, org, "Admins")
    put_member(api, ho, org, admins["id"], 201, user_id=o.uid("admin2"))
    put_member(api, ho, org, admins["id"], 201, user_id=o.uid("viewer"))
    viewers = create_group(api, ho, org, "Viewers")
    put_member(api, ho, org, viewers["id"], 201, user_id=o.uid("viewer"))
    mine = create_group(api, ho, org, "Mine")
    put_member(api, ho, org, mine["id"], 201, user_id=o.uid("admin"))
    deputies = create_group(api, ho, org, "Deputies", parent_id=owners["id"])  # reaches owner through its parent
    keyholders = create_group(api, ho, org, "Keyholders")  # reaches owner through an override of an owner-level permission
    override(api, ho, org, {"group_id": keyholders["id"]}, f"{o.obj}/project:vault", "org.delete", "allow")
    first = override(api, ha, org, {"user_id": o.uid("viewer")}, o.obj, "org.read", "deny").json()

    before = org_state(api, ho, org)
    other_before = org_state(api, other.token("owner"), other.id)
    groups = f"/v1/orgs/{org}/groups"

    def path(g):
        return f"{groups}/{g['id']}"

    def members(g):
        return f"{groups}/{g['id']}/members"

    ovr = f"/v1/orgs/{org}/overrides"

    def o_body(**kw):
        body = {"subject": {"user_id": o.uid("viewer")}, "resource": o.obj, "permission": "reports.export", "effect": "allow",
                "reason": "because"}
        body.update(kw)
        return {k: v for k, v in body.items() if v is not Ellipsis}

    cases = [
        # cycles
        ("PATCH", path(a), ho, {"parent_id": c["id"]}, 409, "group_cycle"),
        ("PATCH", path(a), ho, {"parent_id": b["id"]}, 409, "group_cycle"),
        ("PATCH", path(b), ho, {"parent_id": b["id"]}, 409, "group_cycle"),
        ("PUT", members(c), ho, {"group_id": a["id"]}, 409, "group_cycle"),
        ("PUT", members(b), ho, {"group_id": b["id"]}, 409, "group_cycle"),
        # depth: a ninth level, or a two-level group under the seventh
        ("POST", groups, ho, {"name": "L9", "parent_id": chain[-1]["id"]}, 409, "group_too_deep"),
        ("PATCH", path(loose), ho, {"parent_id": chain[6]["id"]}, 409, "group_too_deep"),
        ("PUT", members(chain[-1]), ho, {"group_id": loose["id"]}, 409, "group_too_deep"),
        # another org's group, a user who is not a member
        ("POST", groups, ho, {"name": "Adopted", "parent_id": foreign["id"]}, 400, "invalid_request"),
        ("PATCH", path(a), ho, {"parent_id": foreign["id"]}, 400, "invalid_request"),
        ("PUT", members(a), ho, {"group_id": foreign["id"]}, 400, "invalid_request"),
        ("PUT", f"/v1/orgs/{other.id}/groups/{foreign['id']}/members", other.token("owner"), {"group_id": a["id"]}, 400, "invalid_request"),
        ("PUT", f"/v1/orgs/{org}/bindings", ho, {"subject": {"group_id": foreign["id"]}, "resource": o.obj, "role": "viewer"}, 400, None),
        ("POST", ovr, ho, o_body(subject={"group_id": foreign["id"]}), 400, "invalid_request"),
        ("PUT", members(a), ho, {"user_id": outsider["id"]}, 400, "invalid_request"),
        ("PUT", members(a), ho, {"user_id": other.uid("owner")}, 400, "invalid_request"),
        ("POST", ovr, ho, o_body(subject={"user_id": outsider["id"]}), 400, "invalid_request"),
        # sibling names, case-insensitively: create, rename, move
        ("POST", groups, ho, {"name": "b", "parent_id": a["id"]}, 409, "conflict"),
        ("POST", groups, ho, {"name": "LOOSE"}, 409, "conflict"),
        ("POST", groups, ho, {"name": "éQUIPE"}, 409, "conflict"),
        ("PATCH", path(twin), ho, {"name": "B"}, 409, "conflict"),
        ("PATCH", path(twin), ho, {"parent_id": None}, 409, "conflict"),
        ("DELETE", f"{members(a)}/{twin['id']}", ho, None, 409, "conflict"),
        # not empty
        ("DELETE", path(a), ho, None, 409, "group_not_empty"),
        ("DELETE", path(chain[0]), ho, None, 409, "group_not_empty"),
        # an admin's rank: binding owner to a group, joining or managing an owner-reaching group, moving under it
        ("PUT", f"/v1/orgs/{org}/bindings", ha, {"subject": {"group_id": a["id"]}, "resource": o.obj, "role": "owner"}, 403, "forbidden"),
        ("PUT", members(owners), ha, {"user_id": o.uid("admin")}, 403, "forbidden"),
        ("PUT", members(owners), ha, {"user_id": o.uid("viewer")}, 403, "forbidden"),
        ("PATCH", path(owners), ha, {"name": "Mine now"}, 403, "forbidden"),
        ("DELETE", path(owners), ha, None, 403, "forbidden"),
        ("PATCH", path(loose), ha, {"parent_id": owners["id"]}, 403, "forbidden"),
        ("PUT", members(owners), ha, {"group_id": loose["id"]}, 403, "forbidden"),
        ("POST", groups, ha, {"name": "Under owners", "parent_id": owners["id"]}, 403, "forbidden"),
        ("PUT", members(deputies), ha, {"user_id": o.uid("viewer")}, 403, "forbidden"),
        ("PATCH", path(deputies), ha, {"parent_id": None}, 403, "forbidden"),
        ("PUT", members(keyholders), ha, {"user_id": o.uid("viewer")}, 403, "forbidden"),
        ("DELETE", path(keyholders), ha, None, 403, "forbidden"),
        # ... and managing a peer's group membership
        ("PUT", members(a), ha, {"user_id": o.uid("admin2")}, 403, "forbidden"),
        ("DELETE", f"{members(admins)}/{o.uid('admin2')}", ha, None, 403, "forbidden"),
        # overrides: on a peer, on the owner, on oneself, on a group holding a peer or oneself, an owner-only allow
        ("POST", ovr, ha, o_body(subject={"user_id": o.uid("admin2")}, permission="org.read", effect="deny"), 403, "forbidden"),
        ("POST", ovr, ha, o_body(subject={"user_id": o.uid("owner")}, permission="org.read", effect="deny"), 403, "forbidden"),
        ("POST", ovr, ha, o_body(subject={"user_id": o.uid("admin")}), 403, "forbidden"),
        ("POST", ovr, ha, o_body(subject={"group_id": admins["id"]}, permission="org.read", effect="deny"), 403, "forbidden"),
        ("POST", ovr, ha, o_body(subject={"group_id": mine["id"]}, permission="org.read", effect="deny"), 403, "forbidden"),
        ("POST", ovr, ha, o_body(subject={"group_id": owners["id"]}, permission="org.read", effect="deny"), 403, "forbidden"),
        ("POST", ovr, ha, o_body(permission="members.owners"), 403, "forbidden"),
        ("POST", ovr, ha, o_body(subject={"group_id": viewers["id"]}, permission="org.delete"), 403, "forbidden"),
        ("POST", ovr, o.token("editor"), o_body(), 403, "forbidden"),
        # viewers read groups but do not write them; overrides are for admins
        ("POST", groups, hv, {"name": "Mine"}, 403, "forbidden"),
        ("PATCH", path(a), hv, {"name": "Renamed"}, 403, "forbidden"),
        ("DELETE", path(c), hv, None, 403, "forbidden"),
        ("PUT", members(c), hv, {"user_id": o.uid("viewer")}, 403, "forbidden"),
        ("DELETE", f"{members(viewers)}/{o.uid('viewer')}", o.token("editor"), None, 403, "forbidden"),
        ("GET", ovr, hv, None, 403, "forbidden"),
        ("POST", groups, o.token("editor"), {"name": "Editors"}, 403, "forbidden"),
        # non-members: 404 for the org, whatever they try
        ("GET", groups, hx, None, 404, None),
        ("POST", groups, hx, {"name": "Intruders"}, 404, None),
        ("GET", path(a), hx, None, 404, None),
        ("PATCH", path(a), hx, {"name": "Mine"}, 404, None),
        ("PUT", members(a), hx, {"user_id": outsider["id"]}, 404, None),
        ("GET", ovr, hx, None, 404, None),
        ("POST", ovr, hx, o_body(), 404, None),
        ("DELETE", f"{ovr}/{first['id']}", hx, None, 404, None),
        # a group of another org through this org's path
        ("GET", f"{groups}/{foreign['id']}", ho, None, 404, None),
        ("DELETE", f"{groups}/{foreign['id']}", ho, None, 404, None),
        ("DELETE", f"/v1/orgs/{other.id}/overrides/{first['id']}", other.token("owner"), None, 404, None),
        # unknown and malformed ids
        ("GET", f"{groups}/{uuid.uuid4()}", ho, None, 404, None),
        ("PATCH", f"{groups}/{uuid.uuid4()}", ho, {"name": "Ghost"}, 404, None),
        ("PUT", f"{groups}/{uuid.uuid4()}/members", ho, {"user_id": o.uid("viewer")}, 404, None),
        ("DELETE", f"{members(a)}/{uuid.uuid4()}", ho, None, 404, None),
        ("DELETE", f"{members(a)}/{o.uid('viewer')}", ho, None, 404, None),
        ("DELETE", f"{members(a)}/{c['id']}", ho, None, 404, None),  # a grandchild, not a child
        ("DELETE", f"{ovr}/{uuid.uuid4()}", ho, None, 404, None),
        ("GET", f"{groups}/not-a-uuid", ho, None, 404, None),
        ("DELETE", f"{groups}/not-a-uuid", ho, None, 404, None),
        ("GET", f"{groups}/not-a-uuid/members", ho, None, 404, None),
        ("DELETE", f"{members(a)}/not-a-uuid", ho, None, 404, None),
        ("DELETE", f"{ovr}/not-a-uuid", ho, None, 404, None),
        ("GET", "/v1/orgs/not-a-uuid/groups", ho, None, 404, None),
        ("POST", "/v1/orgs/not-a-uuid/overrides", ho, o_body(), 404, None),
        # bad bodies
        ("POST", groups, ho, {}, 400, "invalid_request"),
        ("POST", groups, ho, {"name": None}, 400, "invalid_request"),
        ("POST", groups, ho, {"name": ""}, 400, "invalid_request"),
        ("POST", groups, ho, {"name": 7}, 400, "invalid_request"),
        ("POST", groups, ho, {"name": "x" * 1000}, 400, "invalid_request"),
        ("POST", groups, ho, {"name": "Ok", "parent_id": "nope"}, 400, "invalid_request"),
        ("POST", groups, ho, {"name": "Ok", "parent_id": str(uuid.uuid4())}, 400, "invalid_request"),
        ("POST", groups, ho, {"name": "Ok", "metadata": "not an object"}, 400, "invalid_request"),
        ("POST", groups, ho, [{"name": "Ok"}], 400, "invalid_request"),
        ("PATCH", path(a), ho, {"name": None}, 400, "invalid_request"),
        ("PATCH", path(a), ho, {"parent_id": 12}, 400, "invalid_request"),
        ("PUT", members(a), ho, {}, 400, "invalid_request"),
        ("PUT", members(a), ho, {"user_id": o.uid("viewer"), "group_id": c["id"]}, 400, "invalid_request"),
        ("PUT", members(a), ho, {"user_id": "nope"}, 400, "invalid_request"),
        ("PUT", members(a), ho, {"user_id": o.uid("viewer"), "expires_at": "2001-01-01T00:00:00Z"}, 400, "invalid_request"),
        ("PUT", members(a), ho, {"user_id": o.uid("viewer"), "expires_at": "tomorrow"}, 400, "invalid_request"),
        ("PUT", members(loose), ho, {"group_id": twin["id"], "expires_at": in_future(3600)}, 400, "invalid_request"),
        ("PUT", members(a), ho, {"service_account_id": str(uuid.uuid4())}, 400, "invalid_request"),
        ("POST", ovr, ho, o_body(reason=...), 400, "invalid_request"),
        ("POST", ovr, ho, o_body(reason="   "), 400, "invalid_request"),
        ("POST", ovr, ho, o_body(reason="r" * 501), 400, "invalid_request"),
        ("POST", ovr, ho, o_body(effect="maybe"), 400, "invalid_request"),
        ("POST", ovr, ho, o_body(permission="editor"), 400, "invalid_request"),
        ("POST", ovr, ho, o_body(permission="no.such"), 400, "invalid_request"),
        ("POST", ovr, ho, o_body(permission=...), 400, "invalid_request"),
        ("POST", ovr, ho, o_body(resource=other.obj), 400, "invalid_request"),
        ("POST", ovr, ho, o_body(resource="project:p"), 400, "invalid_request"),
        ("POST", ovr, ho, o_body(subject={}), 400, "invalid_request"),
        ("POST", ovr, ho, o_body(subject={"user_id": o.uid("viewer"), "group_id": a["id"]}), 400, "invalid_request"),
        ("POST", ovr, ho, o_body(subject={"group_id": str(uuid.uuid4())}), 400, "invalid_request"),
        ("POST", ovr, ho, o_body(expires_at="2001-01-01T00:00:00Z"), 400, "invalid_request"),
        # one override per subject, resource and permission
        ("POST", ovr, ho, o_body(permission="org.read", effect="deny"), 409, "conflict"),
        ("POST", ovr, ho, o_body(permission="org.read", effect="allow"), 409, "conflict"),
    ]
    failures = []
    for method, url, token, body, status, code in cases:
        kw = {} if body is None else {"json": body}
        r = api.call(method, url, token, **kw)
        try:
            refused(r, status, code)
        except AssertionError as error:
            failures.append(f"{method} {url.replace(org, '{org}')} {body}: expected {status} {code or ''}, got {r.status_code} {r.text[:200]} ({error})")
    # The root, as an owner where it is not a member, is refused the same way by the tree's rules.
    refused(api.call("PATCH", path(a), root, json={"parent_id": c["id"]}), 409, "group_cycle")
    refused(api.call("POST", groups, root, json={"name": "L9", "parent_id": chain[-1]["id"]}), 409, "group_too_deep")
    assert not failures, f"{len(failures)} of {len(cases)} refusals were wrong:\n" + "\n".join(failures)

    after = org_state(api, ho, org)
    for key in before:
        assert after[key] == before[key], f"a refused request changed {key}"
    assert org_state(api, other.token("owner"), other.id) == other_before
    assert_a_tree(parents(api, ho, org))


def test_quotas_refuse_the_one_too_many(deployment):
    api = deployment.api
    o = new_org(api, ("viewer", "viewer"))
    org, ho = o.id, o.token("owner")
    for i in range(QUOTA):
        create_group(api, ho, org, f"G{i:02}")
        override(api, ho, org, {"user_id": o.uid("viewer")}, f"{o.obj}/project:p{i}", "org.read", "deny")
    before = org_state(api, ho, org)
    assert [g["name"] for g in before["groups"]] == [f"G{i:02}" for i in range(QUOTA)]  # by name, every page
    page = api.ok("GET", f"/v1/orgs/{org}/groups?limit=7&offset={QUOTA - 2}", ho, 200).json()
    assert ([g["name"] for g in page["items"]], page["total"], page["limit"], page["offset"]) == ([f"G{QUOTA - 2}", f"G{QUOTA - 1}"], QUOTA, 7, QUOTA - 2), page
    page = api.ok("GET", f"/v1/orgs/{org}/overrides?limit=5", ho, 200).json()
    assert len(page["items"]) == 5 and page["total"] == QUOTA, page
    for bad in ("limit=0", "limit=1000", "offset=-1", "limit=abc"):
        refused(api.call("GET", f"/v1/orgs/{org}/groups?{bad}", ho), 400)
    refused(api.call("POST", f"/v1/orgs/{org}/groups", ho, json={"name": "One more"}), 409, "quota_exceeded")
    refused(api.call("POST", f"/v1/orgs/{org}/overrides", ho, json={
        "subject": {"user_id": o.uid("viewer")}, "resource": f"{o.obj}/project:more", "permission": "org.read", "effect": "deny",
        "reason": "one more"}), 409, "quota_exceeded")
    assert org_state(api, ho, org) == before
    # Per org: another org is not affected, and room made is room to use.
    other = new_org(api)
    create_group(api, other.token("owner"), other.id, "Elsewhere")
    api.ok("DELETE", f"/v1/orgs/{org}/groups/{before['groups'][0]['id']}", ho, 204)
    create_group(api, ho, org, "One more")


# ---------------------------------------------------------------------------------------- 4. races

def at_once(deployment: Deployment, token: str, calls: list[tuple[str, str, dict | None]]) -> list[requests.Response]:
    """Sends `calls` (method, path, body) at the same moment, each from its own thread and session, the
    k-th to node k (mod the number of nodes): on PostgreSQL neighbours go to different nodes."""
    clients = [Api(deployment.nodes[k % len(deployment.nodes)].base) for k in range(len(calls))]
    barrier, results = threading.Barrier(len(calls)), [None] * len(calls)

    def send(k):
        method, path, body = calls[k]
        barrier.wait(timeout=10)
        results[k] = clients[k].call(method, path, token, json=body)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert all(r is not None for r in results), "a request did not come back"
    return results


def _statuses(results: list[requests.Response]) -> list:
    return [(r.status_code, r.json().get("code") if r.status_code >= 400 else None) for r in results]


def test_concurrent_moves_that_would_make_a_cycle(deployment):
    """A under B and B under A at the same moment (on PostgreSQL each to another node): exactly one wins."""
    api = deployment.api
    o = new_org(api)
    org, ho = o.id, o.token("owner")
    x, y = create_group(api, ho, org, "X"), create_group(api, ho, org, "Y")
    rounds, winners = 10, []
    for i in range(rounds):
        pair = [(x, y), (y, x)] if i % 2 == 0 else [(y, x), (x, y)]
        results = at_once(deployment, ho, [("PATCH", f"/v1/orgs/{org}/groups/{g['id']}", {"parent_id": p["id"]}) for g, p in pair])
        assert sorted(_statuses(results), key=str) == [(200, None), (409, "group_cycle")], (i, _statuses(results))
        won = next(r for r in results if r.status_code == 200).json()
        for client in deployment.apis:  # every node shows the same tree, and it is a tree
            tree = parents(client, ho, org)
            assert_a_tree(tree)
            assert tree[won["id"]] == won["parent_id"] and tree[won["parent_id"]] is None, (i, tree)
        winners.append(won["id"])
        api.ok("PATCH", f"/v1/orgs/{org}/groups/{won['id']}", ho, 200, json={"parent_id": None})
    print(f"\nGROUPS race ({deployment.backend}, {len(deployment.nodes)} node(s)): X won {winners.count(x['id'])} of {rounds}")


def test_concurrent_moves_around_a_three_cycle(deployment):
    """Three groups, three moves that together close a ring: exactly one is refused, the rest is a tree."""
    api = deployment.api
    o = new_org(api)
    org, ho = o.id, o.token("owner")
    gs = [create_group(api, ho, org, n) for n in ("R0", "R1", "R2")]
    for i in range(5):
        results = at_once(deployment, ho, [("PATCH", f"/v1/orgs/{org}/groups/{gs[k]['id']}", {"parent_id": gs[(k + 1) % 3]["id"]})
                                           for k in range(3)])
        statuses = _statuses(results)
        assert sorted(statuses, key=str) == [(200, None), (200, None), (409, "group_cycle")], (i, statuses)
        assert_a_tree(parents(api, ho, org))
        for g in gs:
            api.ok("PATCH", f"/v1/orgs/{org}/groups/{g['id']}", ho, 200, json={"parent_id": None})


def test_concurrent_moves_that_together_are_too_deep(deployment):
    """Q (four levels) under P's leaf, and P (four levels) under S, at once: alone each stays within eight
    levels, together they would make nine, so exactly one is refused."""
    api = deployment.api
    o = new_org(api)
    org, ho = o.id, o.token("owner")

    def chain(prefix):
        made = [create_group(api, ho, org, f"{prefix}1")]
        for level in range(2, 5):
            made.append(create_group(api, ho, org, f"{prefix}{level}", parent_id=made[-1]["id"]))
        return made

    p, q, single = chain("P"), chain("Q"), create_group(api, ho, org, "S")
    for i in range(6):
        calls = [("PATCH", f"/v1/orgs/{org}/groups/{q[0]['id']}", {"parent_id": p[-1]["id"]}),
                 ("PATCH", f"/v1/orgs/{org}/groups/{p[0]['id']}", {"parent_id": single["id"]})]
        results = at_once(deployment, ho, calls if i % 2 == 0 else calls[::-1])
        assert sorted(_statuses(results), key=str) == [(200, None), (409, "group_too_deep")], (i, _statuses(results))
        tree = parents(api, ho, org)
        assert_a_tree(tree)  # at most eight deep
        api.ok("PATCH", f"/v1/orgs/{org}/groups/{q[0]['id']}", ho, 200, json={"parent_id": None})
        api.ok("PATCH", f"/v1/orgs/{org}/groups/{p[0]['id']}", ho, 200, json={"parent_id": None})


def test_concurrent_siblings_of_one_name(deployment):
    """Two creates of the same name (in two cases), and two renames to one name, at once: one wins."""
    api = deployment.api
    o = new_org(api)
    org, ho = o.id, o.token("owner")
    parent = create_group(api, ho, org, "Parent")
    for i in range(5):
        results = at_once(deployment, ho, [("POST", f"/v1/orgs/{org}/groups", {"name": f"Team {i}", "parent_id": parent["id"]}),
                                           ("POST", f"/v1/orgs/{org}/groups", {"name": f"TEAM {i}", "parent_id": parent["id"]})])
        assert sorted(_statuses(results), key=str) == [(201, None), (409, "conflict")], (i, _statuses(results))
        a, b = create_group(api, ho, org, f"a{i}"), create_group(api, ho, org, f"b{i}")
        results = at_once(deployment, ho, [("PATCH", f"/v1/orgs/{org}/groups/{a['id']}", {"name": f"Same {i}"}),
                                           ("PATCH", f"/v1/orgs/{org}/groups/{b['id']}", {"name": f"same {i}"})])
        assert sorted(_statuses(results), key=str) == [(200, None), (409, "conflict")], (i, _statuses(results))
    names = [g["name"].lower() for g in listing(api, ho, f"/v1/orgs/{org}/groups") if g["parent_id"] is None]
    assert len(names) == len(set(names)), names


# ---------------------------------------------------------------------------------------- 5. leaving the org

def test_removing_a_member_from_the_org_removes_them_from_its_groups(deployment):
    api, reader, root = deployment.api, deployment.reader, deployment.root
    o = new_org(api, ("user", "viewer"), ("stays", "viewer"))
    org, ho, u, hu = o.id, o.token("owner"), o.uid("user"), o.token("user")
    team = create_group(api, ho, org, "Team")
    inner = create_group(api, ho, org, "Inner", parent_id=team["id"])
    put_member(api, ho, org, inner["id"], 201, user_id=u)
    put_member(api, ho, org, inner["id"], 201, user_id=o.uid("stays"))
    put_member(api, ho, org, team["id"], 201, user_id=u)
    rev = revision_of(bind_group(api, ho, org, team["id"], f"{o.obj}/project:p", "editor"))
    own = override(api, ho, org, {"user_id": u}, f"{o.obj}/project:q", "docs.write", "allow").json()
    doc = f"{o.obj}/project:p/doc:1"

    def about(user, obj, action, **kw):
        return reader.ok("POST", "/v1/authorize", root, 200, json={"subject": {"user_id": user}, "object": obj, "action": action, **kw}).json()

    assert about(u, doc, "editor", at_least=rev)["allowed"] is True
    assert allowed(reader, hu, f"{o.obj}/project:q", "docs.write") is True

    gone = api.ok("DELETE", f"/v1/orgs/{org}/members/{u}", ho, 204)
    g_rev = revision_of(gone)
    assert about(u, doc, "editor", at_least=g_rev)["allowed"] is False
    assert allowed(reader, hu, doc, "editor", at_least=g_rev) is False
    assert about(o.uid("stays"), doc, "editor", at_least=g_rev)["allowed"] is True  # the others keep theirs
    for g in (team, inner):
        ids = [m["id"] for m in listing(api, ho, f"/v1/orgs/{org}/groups/{g['id']}/members")]
        assert u not in ids, (g["name"], ids)
    assert o.uid("stays") in [m["id"] for m in listing(api, ho, f"/v1/orgs/{org}/groups/{inner['id']}/members")]
    assert own["id"] not in [x["id"] for x in listing(api, ho, f"/v1/orgs/{org}/overrides")]

    # A service account in a group holds what the group holds; deleting the account takes it out.
    sa = api.ok("POST", f"/v1/orgs/{org}/service-accounts", ho, 201, json={"name": "robot", "role": "viewer"}).json()
    sa_key = api.ok("POST", f"/v1/orgs/{org}/service-accounts/{sa['id']}/keys", ho, 201, json={"name": "robot key"}).json()["key"]
    m = put_member(api, ho, org, inner["id"], 201, service_account_id=sa["id"]).json()
    assert (m["type"], m["id"], set_subject(m["member"]), m["label"]) == ("service_account", sa["id"], {"service_account_id": sa["id"]}, "robot"), m
    made = override(api, ho, org, {"service_account_id": sa["id"]}, doc, "org.read", "deny")
    sa_ovr, s_rev = made.json(), revision_of(made)
    assert allowed(reader, sa_key, f"{o.obj}/project:p/doc:2", "editor", at_least=s_rev) is True  # through Inner, under Team
    assert allowed(reader, sa_key, doc, "org.read", at_least=s_rev) is False
    d_rev = revision_of(api.ok("DELETE", f"/v1/orgs/{org}/service-accounts/{sa['id']}", ho, 204))
    assert sa["id"] not in [x["id"] for x in listing(api, ho, f"/v1/orgs/{org}/groups/{inner['id']}/members")]
    assert sa_ovr["id"] not in [x["id"] for x in listing(api, ho, f"/v1/orgs/{org}/overrides")]
    r = reader.ok("POST", "/v1/authorize", root, 200, json={"subject": {"service_account_id": sa["id"]}, "object": doc, "action": "viewer", "at_least": d_rev}).json()
    assert r["allowed"] is False, r

    # Coming back does not bring the groups back: they were left, not lapsed.
    back = api.ok("POST", f"/v1/orgs/{org}/members", ho, 201, json={"user_id": u, "role": "viewer"})
    b_rev = revision_of(back)
    assert allowed(reader, hu, doc, "editor", at_least=b_rev) is False
    assert allowed(reader, hu, f"{o.obj}/project:q", "docs.write", at_least=b_rev) is False
    assert allowed(reader, hu, doc, "viewer", at_least=b_rev) is True


def test_a_lapsed_membership_lapses_its_groups(deployment):
    api, reader, root = deployment.api, deployment.reader, deployment.root
    o = new_org(api)
    org, ho = o.id, o.token("owner")
    user, _ = api.person("short")
    team = create_group(api, ho, org, "Team")
    bind_group(api, ho, org, team["id"], f"{o.obj}/project:p", "admin")
    api.ok("POST", f"/v1/orgs/{org}/members", ho, 201, json={"user_id": user["id"], "role": "viewer", "expires_at": in_future(3)})
    rev = revision_of(put_member(api, ho, org, team["id"], 201, user_id=user["id"]))

    def admin_on_p(**kw):
        return reader.ok("POST", "/v1/authorize", root, 200, json={
            "subject": {"user_id": user["id"]}, "object": f"{o.obj}/project:p", "action": "admin", **kw}).json()["allowed"]

    assert admin_on_p(at_least=rev) is True
    wait_until(lambda: not admin_on_p(), 10, "the group's binding to lapse with the org membership", 0.1)


# ---------------------------------------------------------------------------------------- 6. several nodes

def test_group_changes_reach_the_other_node(pg):
    a, b = pg.apis[0], pg.apis[1]
    o = new_org(a, ("user", "viewer"))
    org, ho, u, hu = o.id, o.token("owner"), o.uid("user"), o.token("user")
    team = create_group(a, ho, org, "Team")
    doc, other = f"{o.obj}/project:p/doc:1", f"{o.obj}/project:q"
    # Node B has the org cached (denials), so what follows measures invalidation, not a first load.
    assert allowed(b, hu, doc, "editor") is False and allowed(b, hu, other, "admin") is False

    def seen_on_b(check, what):
        t0 = time.monotonic()
        wait_until(check, PROPAGATION_TIMEOUT, f"node B to see {what}", 0.01)
        return time.monotonic() - t0

    timings = {}
    # Bind the group, then add the member: read your writes on B with the header and with at_least.
    r = bind_group(a, ho, org, team["id"], f"{o.obj}/project:p", "editor")
    assert allowed(b, hu, doc, "editor", at_least=revision_of(r)) is False  # not in the group yet
    r = put_member(a, ho, org, team["id"], 201, user_id=u)
    rev = revision_of(r)
    h = b.ok("POST", "/v1/authorize", hu, 200, headers={"Portcullis-Revision": str(rev)}, json={"object": doc, "action": "editor"}).json()
    assert h["allowed"] is True, h
    # A deny on the group.
    r = override(a, ho, org, {"group_id": team["id"]}, f"{o.obj}/project:p", "docs.write", "deny")
    deny_id, rev = r.json()["id"], revision_of(r)
    assert allowed(b, hu, doc, "docs.write", at_least=rev) is False
    assert allowed(b, hu, doc, "editor", at_least=rev) is True
    # Without a revision: within a short poll.
    a.ok("DELETE", f"/v1/orgs/{org}/overrides/{deny_id}", ho, 204)
    timings["deny lifted"] = seen_on_b(lambda: allowed(b, hu, doc, "docs.write"), "the lifted deny")
    bind_group(a, ho, org, team["id"], other, "admin")
    timings["group bound"] = seen_on_b(lambda: allowed(b, hu, other, "admin"), "the new group binding")
    override(a, ho, org, {"group_id": team["id"]}, other, "reports.export", "deny")
    timings["deny added"] = seen_on_b(lambda: not allowed(b, hu, other, "reports.export"), "the new deny")
    sub = create_group(a, ho, org, "Sub")
    put_member(a, ho, org, team["id"], group_id=sub["id"])
    a.ok("DELETE", f"/v1/orgs/{org}/groups/{team['id']}/members/{u}", ho, 204)
    timings["member removed"] = seen_on_b(lambda: not allowed(b, hu, doc, "editor"), "the removed member")
    put_member(a, ho, org, sub["id"], 201, user_id=u)
    timings["added to a subgroup"] = seen_on_b(lambda: allowed(b, hu, doc, "editor"), "the member of the subgroup")
    print("\nGROUPS propagation to node B: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items()))


# ---------------------------------------------------------------------------------------- 7. watch and audit

def _next_events(lines, kinds: set, limit: int = 50) -> list:
    """Server-sent events until one of each of `kinds` arrived (at most `limit` events)."""
    got = []
    while len(got) < limit and not kinds <= {e[1] for e in got}:
        more = _events(lines, 1)
        assert more, f"the stream ended; had {[(e[0], e[1]) for e in got]}"
        got += more
    return got


def test_watch_and_audit_record_group_and_override_changes(deployment):
    api, root = deployment.api, deployment.root
    o = new_org(api, ("user", "viewer"))
    org, ho, u = o.id, o.token("owner"), o.uid("user")
    created = api.ok("POST", f"/v1/orgs/{org}/groups", ho, 201, json={"name": "Watched"})
    group, rev = created.json(), revision_of(created)
    # Watched on the other node where there is one.
    with deployment.reader.http.get(deployment.reader.base + f"/v1/watch?since={rev - 1}", headers={"Authorization": f"Bearer {root}"},
                                    stream=True, timeout=10) as stream:
        assert stream.status_code == 200, stream.text
        lines = stream.iter_lines(chunk_size=1, decode_unicode=True)
        first = _events(lines, 1)[0]
        assert first[:2] == (rev, "group.changed") and first[2]["subject"] == org and first[2]["revision"] == rev, first

        steps = {}
        steps["renamed"] = api.ok("PATCH", f"/v1/orgs/{org}/groups/{group['id']}", ho, 200, json={"name": "Watched too"})
        steps["member_set"] = put_member(api, ho, org, group["id"], 201, user_id=u)
        steps["override"] = override(api, ho, org, {"group_id": group["id"]}, o.obj, "org.read", "deny")
        got = _next_events(lines, {"override.changed"})
        by_rev = {e[0]: e for e in got}
        for name, kind in (("renamed", "group.changed"), ("member_set", "group.changed"), ("override", "override.changed")):
            r_rev = revision_of(steps[name])
            assert r_rev in by_rev, (name, r_rev, [(e[0], e[1]) for e in got])
            assert by_rev[r_rev][1] == kind and by_rev[r_rev][2]["subject"] == org, by_rev[r_rev]
        steps["override_removed"] = api.ok("DELETE", f"/v1/orgs/{org}/overrides/{steps['override'].json()['id']}", ho, 204)
        steps["member_removed"] = api.ok("DELETE", f"/v1/orgs/{org}/groups/{group['id']}/members/{u}", ho, 204)
        steps["deleted"] = api.ok("DELETE", f"/v1/orgs/{org}/groups/{group['id']}", ho, 204)
        got = []
        while revision_of(steps["deleted"]) not in {e[0] for e in got}:
            more = _events(lines, 1)
            assert more, "the stream ended"
            got += more
        kinds = {e[0]: e[1] for e in got}
        assert kinds[revision_of(steps["override_removed"])] == "override.changed"
        assert kinds[revision_of(steps["member_removed"])] == "group.changed"
        assert kinds[revision_of(steps["deleted"])] == "group.changed"
        ids = [e[0] for e in got]
        assert ids == sorted(ids), ids

    audit = listing(api, ho, f"/v1/orgs/{org}/audit")
    gt, ot = f"group:{group['id']}", f"override:{steps['override'].json()['id']}"
    mine = [(e["action"], e["target"]) for e in reversed(audit) if e["target"] in (gt, ot)]
    assert mine == [("group.created", gt), ("group.updated", gt), ("group.member_set", gt), ("override.created", ot),
                    ("override.removed", ot), ("group.member_removed", gt), ("group.deleted", gt)], mine
    by_action = {e["action"]: e for e in audit if e["target"] in (gt, ot)}
    assert by_action["group.created"]["details"].get("name") == "Watched"
    assert by_action["group.updated"]["details"].get("name") == "Watched too"
    assert by_action["group.member_set"]["details"].get("member") == f"user:{u}"
    assert by_action["group.member_removed"]["details"].get("member") == f"user:{u}"
    assert by_action["override.created"]["details"].get("permission") == "org.read"
    assert by_action["override.created"]["details"].get("effect") == "deny"
    for e in by_action.values():
        assert e["actor"] == {"type": "user", "id": o.uid("owner")}, e


# ---------------------------------------------------------------------------------------- 8. webhooks

def test_webhooks_carry_group_and_override_events(deployment, receivers):  # noqa: F811  (the fixture imported above)
    api = deployment.api
    o = new_org(api, ("user", "viewer"))
    org, ho, u = o.id, o.token("owner"), o.uid("user")
    rr = receivers(f"groups-{deployment.backend}")
    prefix = f"/v1/orgs/{org}/webhooks"
    ep, _ = api.register(ho, prefix, rr, event_types=["group.*", "override.*"])
    try:
        steps = []

        def step(name, r):
            steps.append((name, r))
            return r.json() if r.content else None

        g = step("created", api.ok("POST", f"/v1/orgs/{org}/groups", ho, 201, json={"name": "Hooked", "metadata": {"k": "v"}}))
        g2 = step("updated", api.ok("PATCH", f"/v1/orgs/{org}/groups/{g['id']}", ho, 200, json={"description": "now described"}))
        step("member_set", put_member(api, ho, org, g["id"], 201, user_id=u))
        g_after_member = api.ok("GET", f"/v1/orgs/{org}/groups/{g['id']}", ho, 200).json()
        # Not subscribed: a binding and a new member of the org.
        bind_group(api, ho, org, g["id"], o.obj, "viewer")
        extra, _ = api.person("extra")
        api.ok("POST", f"/v1/orgs/{org}/members", ho, 201, json={"user_id": extra["id"], "role": "viewer"})
        ov = step("override_created", override(api, ho, org, {"group_id": g["id"]}, f"{o.obj}/project:p", "docs.write", "allow",
                                                expires_at=in_future(3600), reason="pilot"))
        step("override_removed", api.ok("DELETE", f"/v1/orgs/{org}/overrides/{ov['id']}", ho, 204))
        step("member_removed", api.ok("DELETE", f"/v1/orgs/{org}/groups/{g['id']}/members/{u}", ho, 204))
        step("deleted", api.ok("DELETE", f"/v1/orgs/{org}/groups/{g['id']}", ho, 204))

        gt, ot = f"group:{g['id']}", f"override:{ov['id']}"
        rr.wait_event("group.deleted", gt)
        got = first_arrivals(rr.snapshot())
        summary = [(h.type, h.body["target"]) for h in got]
        assert summary == [("group.created", gt), ("group.updated", gt), ("group.member_set", gt), ("override.created", ot),
                           ("override.removed", ot), ("group.member_removed", gt), ("group.deleted", gt)], summary
        for (name, r), h in zip(steps, got):
            assert h.body["revision"] == revision_of(r), (name, h.body["revision"], revision_of(r))
            assert h.body["org_id"] == org and h.body["actor"] == {"type": "user", "id": o.uid("owner")}, h.body
        data = [h.body["data"] for h in got]
        assert data[0] == g, (data[0], g)
        assert data[1] == g2 and data[1]["description"] == "now described", (data[1], g2)
        assert data[2] == g_after_member, (data[2], g_after_member)
        assert got[2].body["details"]["member"] == f"user:{u}"
        assert data[3] == ov, (data[3], ov)
        assert data[3]["subject"] == {"group_id": g["id"]} and data[3]["reason"] == "pilot"
        assert data[4]["id"] == ov["id"] and data[4].get("permission") == "docs.write", data[4]
        assert data[6]["id"] == g["id"], data[6]
    finally:
        api.call("DELETE", f"{prefix}/{ep['id']}", ho)


# ---------------------------------------------------------------------------------------- 9. backup and restore

def _cli_restore(backup: bytes, workdir: Path, database_url: str, policy: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env.update(PORTCULLIS_DATABASE_URL=database_url, PORTCULLIS_MASTER_KEY_FILE=str(workdir / "master.key"),
               PORTCULLIS_POLICY_FILE=str(policy), PORTCULLIS_LOG_LEVEL="error")
    return subprocess.run([str(binary()), "restore"], cwd=workdir, env=env, input=backup, capture_output=True, timeout=60, check=False)


def test_backup_and_restore_keep_groups_and_overrides(deployment, tmp_path):
    api, root = deployment.api, deployment.root
    o = new_org(api, ("admin", "admin"), ("deep", "viewer"), ("allowed", "viewer"), ("plain", "viewer"))
    org, ho = o.id, o.token("owner")
    top = create_group(api, ho, org, "Top", metadata={"a": 1})
    mid = create_group(api, ho, org, "Mid", parent_id=top["id"])
    leaf = create_group(api, ho, org, "Leaf", parent_id=mid["id"])
    put_member(api, ho, org, leaf["id"], 201, user_id=o.uid("deep"))
    put_member(api, ho, org, mid["id"], 201, user_id=o.uid("plain"), expires_at=in_future(86400))
    gb = bind_group(api, ho, org, top["id"], f"{o.obj}/project:p", "editor").json()
    ovs = [override(api, ho, org, {"user_id": o.uid("allowed")}, f"{o.obj}/project:p", "docs.write", "allow").json(),
           override(api, ho, org, {"group_id": mid["id"]}, f"{o.obj}/project:p/doc:secret", "org.read", "deny", reason="need to know").json(),
           override(api, ho, org, {"user_id": o.uid("admin")}, o.obj, "org.update", "deny", expires_at=in_future(86400)).json()]

    questions = [(who, obj, action)
                 for who in ("deep", "allowed", "plain", "admin")
                 for obj, action in ((f"{o.obj}/project:p/doc:1", "editor"), (f"{o.obj}/project:p/doc:1", "docs.write"),
                                     (f"{o.obj}/project:p/doc:secret", "org.read"), (o.obj, "org.update"), (f"{o.obj}/project:q", "editor"))]

    def answers(client, token):
        body = {"checks": [{"subject": {"user_id": o.uid(who)}, "object": obj, "action": action, "consistency": "strong"}
                           for who, obj, action in questions]}
        return [(r["allowed"], r["role"], r["reason"]) for r in client.ok("POST", "/v1/authorize/batch", token, 200, json=body).json()["results"]]

    want = answers(api, root)
    assert len({a[0] for a in want}) == 2, "the questions should have both answers"
    assert want[questions.index(("deep", f"{o.obj}/project:p/doc:1", "editor"))][0] is True
    assert want[questions.index(("allowed", f"{o.obj}/project:p/doc:1", "docs.write"))][0] is True
    assert want[questions.index(("plain", f"{o.obj}/project:p/doc:secret", "org.read"))][0] is False
    assert want[questions.index(("admin", o.obj, "org.update"))][0] is False

    r = api.ok("GET", "/v1/admin/backup", root, 200)
    doc = r.json()
    g_rows = {g["id"]: g for g in doc["groups"] if g["org_id"] == org}
    assert set(g_rows) == {top["id"], mid["id"], leaf["id"]}, g_rows
    assert g_rows[leaf["id"]].get("parent_id") == mid["id"] and g_rows[mid["id"]].get("parent_id") == top["id"]
    assert g_rows[top["id"]].get("parent_id") is None and g_rows[top["id"]]["metadata"] == {"a": 1}
    m_rows = {(m["group_id"], m["member_type"], m["member_id"]) for m in doc["group_members"] if m["group_id"] in g_rows}
    assert m_rows == {(leaf["id"], "user", o.uid("deep")), (mid["id"], "user", o.uid("plain"))}, m_rows
    o_rows = {x["id"]: x for x in doc["overrides"] if x["org_id"] == org}
    assert set(o_rows) == {x["id"] for x in ovs}, o_rows
    assert (o_rows[ovs[1]["id"]]["subject_type"], o_rows[ovs[1]["id"]]["subject_id"], o_rows[ovs[1]["id"]]["effect"]) == ("group", mid["id"], "deny")
    assert any(b["id"] == gb["id"] for b in doc["bindings"])

    def view(client, token):
        return {"groups": listing(client, token, f"/v1/orgs/{org}/groups"),
                "members": {g: listing(client, token, f"/v1/orgs/{org}/groups/{g}/members") for g in sorted(g_rows)},
                "overrides": listing(client, token, f"/v1/orgs/{org}/overrides"),
                "bindings": listing(client, token, f"/v1/orgs/{org}/bindings")}

    before = view(api, root)
    # Into the other backend: a SQLite source goes into PostgreSQL through the API, a PostgreSQL one
    # into SQLite through `portcullis restore`.
    target = tmp_path / "restored"
    target.mkdir()
    if deployment.backend == "sqlite":
        with deploy("postgres", target, nodes=1, env={"ROOT_EMAIL": "another-root@groups.test"}) as fresh:
            fresh_root = fresh.api.login("another-root@groups.test", ROOT_PASSWORD)["access_token"]
            restored = fresh.api.ok("POST", "/v1/admin/restore", fresh_root, 200, data=r.content, headers={"Content-Type": "application/json"})
            assert restored.json()["orgs"] >= 1
            again = fresh.api.root()  # the backup's root, with its password
            assert answers(fresh.api, again) == want
            assert view(fresh.api, again) == before
    else:
        write_master_key(target / "master.key")
        loaded = _cli_restore(r.content, target, f"sqlite:{target}/p.db", deployment.policy_file)
        assert loaded.returncode == 0, loaded.stderr.decode()
        node = Node(binary(), target, "restored", f"sqlite:{target}/p.db", target / "master.key",
                    env={"POLICY_FILE": str(deployment.policy_file)})
        node.start()
        try:
            fresh = Api(node.base)
            again = fresh.root()
            assert answers(fresh, again) == want
            assert view(fresh, again) == before
        finally:
            node.stop()
