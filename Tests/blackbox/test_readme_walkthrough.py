"""Every shell walk-through in README.md runs as written, with curl and jq, against a fresh server
that sends its mail to a real SMTP server, and what the comments promise is checked: the docs
cannot drift from the code without this test failing.

How it works. The README's ```sh blocks run in document order as one bash script (`set -euo
pipefail`), so later blocks use what earlier ones made ($ORG, $ADA, `login`, `ask`, ...). Each block
is cut into steps: a step starts at a comment line (the comment says what the commands under it
answer) and ends before the next one. The test knows what every step must print and answer (STEPS
below), and fails on a step it has no expectation for, so a new README step needs one here. The
statuses of every curl call are recorded on the side, by a `curl` function that adds a `-w` to
each call (the README's own `-w` formats are kept, the status is appended to them); nothing else in
the script is touched except the short, explicit list of SUBSTITUTIONS below.

Blocks that cannot run here are listed in EXCLUDED with the reason; MAILED_BLOCK is the one block the
test swaps for its own equivalent (reading mailed tokens from the SMTP sink instead of the log), and
test_mailed_helper_reads_the_log runs that block itself against a server that logs its mail."""

import datetime
import json
import os
import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jwt
import pytest
import requests

from conftest import DEFAULT_BIN, REPO_ROOT
from portcullis_server import METRICS_TOKEN, running_server, smtp_sink

README = REPO_ROOT / "README.md"
ROOT_EMAIL = "admin@portcullis.local"  # what the README signs in with: the default root address
ROOT_PASSWORD = "root password of the walk-through"
NEW_ROOT = {"ROOT_EMAIL": "root@new.example.com", "ROOT_PASSWORD": "another horse battery staple"}

# Blocks that do not run, by (heading, first line), with the reason.
EXCLUDED = {
    ("## Quick start", "make run     # install missing Debian packages, build, serve the API and the console on http://127.0.0.1:8080"):
        "builds and starts the server; the test starts the built binary itself",
    ("### Mail and SMTP set-up", "PORTCULLIS_SMTP_URL='smtp://portcullis:s3cret@mail.example.com:587?starttls=required' \\"):
        "starts a server that sends to mail.example.com; the test's server sends to the SMTP sink",
    ("## Running several nodes", "make cluster                    # or: PORTCULLIS_BIN=/path/to/portcullis scripts/cluster.sh start"):
        "three nodes, PostgreSQL and nginx: Tests/blackbox/test_cluster.py runs scripts/cluster.sh",
}

# The block that restarts `make run` with its log in server.log and defines `mailed`, which reads
# tokens from that log. Here mail goes to a real SMTP server instead, so `mailed` reads the sink's
# messages (same arguments, same answer: the token of the newest matching link).
# test_mailed_helper_reads_the_log runs the README's own `mailed` against a server that logs its mail.
MAILED_BLOCK = ("### How the tokens arrive", "PORTCULLIS_LOG_FORMAT=json make run 2> server.log     # in the server's terminal")
MAILED_FROM_SINK = 'mailed() { python3 "$WALKTHROUGH_MAILED" "$@"; }\n'

# (heading, text in the block, replacement, reason); each text must occur exactly once in its block.
SUBSTITUTIONS = [
    ("## Walk-through with curl", "BASE=http://127.0.0.1:8080", 'BASE="$WALKTHROUGH_BASE"',
     "the test's server listens on a free port"),
    ("### Platform invites and invite-only signup", "ROOT_PASSWORD='the password from the start-up log'",
     'ROOT_PASSWORD="$WALKTHROUGH_ROOT_PASSWORD"', "the root password the test gave its server"),
    ("### Custom permissions", "PORTCULLIS_POLICY_FILE=$PWD/policy.yaml make run\n", "",
     "the test's server was started with the README's policy.yaml from the beginning"),
    ("### Watching changes", 'curl -N -s "$BASE/v1/watch?since=0" -H "Authorization: Bearer $ROOT"',
     '{ curl -N -s --max-time 3 "$BASE/v1/watch?since=0" -H "Authorization: Bearer $ROOT" || [ $? = 28 ]; }',
     "the stream never ends by itself: three seconds of it, and curl's timeout (28) is the expected end"),
    ("## Backup and restore", "NEW=http://127.0.0.1:8081", 'NEW="$WALKTHROUGH_NEW_BASE"',
     "the second, empty instance the test started (with the root credentials the comment gives)"),
    ("## Backup and restore", "PORTCULLIS_DATABASE_URL=postgres://user:pass@host:5432/db portcullis restore",
     'PORTCULLIS_DATABASE_URL="sqlite:$PWD/restored.db" portcullis restore',
     "no PostgreSQL at host:5432: a new SQLite file is the empty instance"),
]

# The curl of the test: each call's status goes to stderr as "@@status <code>", after whatever the
# README's own -w prints.
CURL_RECORDER = r"""
curl() {
  local args=() seen=
  while (($#)); do
    if [[ $1 == -w || $1 == --write-out ]]; then
      args+=("$1" "$2%{stderr}@@status %{http_code}\n"); seen=1; shift 2
    else
      args+=("$1"); shift
    fi
  done
  [[ -n $seen ]] || args+=(-w '%{stderr}@@status %{http_code}\n')
  command curl "${args[@]}"
}
"""

# Reads the token of the newest link to PATH mailed to ADDRESS from the SMTP sink's messages, once
# the server's outbox is empty (its metrics say so), like the README's `mailed` reads the log.
MAILED_SCRIPT = r"""
import email, email.policy, os, re, sys, time, urllib.request
address, path = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
sink, base, skip = os.environ["WALKTHROUGH_SINK"], os.environ["WALKTHROUGH_BASE"], set(os.environ["WALKTHROUGH_SINK_SKIP"].split(","))

def pending():
    request = urllib.request.Request(base + "/metrics", headers={"Authorization": "Bearer " + os.environ["WALKTHROUGH_METRICS_TOKEN"]})
    text = urllib.request.urlopen(request, timeout=10).read().decode()
    return float(re.search(r"^portcullis_outbox_pending (\S+)$", text, re.M).group(1))

deadline = time.monotonic() + 30
time.sleep(0.3)  # a reset or verification request reaches the outbox a moment after its answer
while pending() > 0 and time.monotonic() < deadline:
    time.sleep(0.1)
while True:
    tokens = []
    for name in sorted(os.listdir(sink)):
        if not name.endswith(".eml") or name in skip:
            continue
        with open(os.path.join(sink, name), "rb") as f:
            message = email.message_from_binary_file(f, policy=email.policy.default)
        if message["X-Envelope-To"] != address:
            continue
        text = message.get_body(preferencelist=("plain",)).get_content()
        tokens += re.findall(r"http\S*" + re.escape(path) + r"\?[a-z_]+=([A-Za-z0-9_-]+)", text)
    if tokens:
        print(tokens[-1])
        break
    if time.monotonic() > deadline:
        sys.exit(f"mailed: no mail to {address} with a link to {path}")
    time.sleep(0.1)
"""


# --- reading the README -------------------------------------------------------------------------

@dataclass
class Block:
    heading: str
    lang: str
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0]


def code_blocks(readme: str) -> list[Block]:
    """Every fenced block with the heading (## or ###) it sits under; indented fences too."""
    blocks, heading, fence, lines = [], "", None, []
    for line in readme.split("\n"):
        m = re.match(r"^\s*```(\w*)\s*$", line)
        if fence is None:
            if m:
                fence, lines = m.group(1), []
            elif re.match(r"^#{2,3} ", line):
                heading = line
        elif m and not m.group(1):
            blocks.append(Block(heading, fence, "\n".join(lines) + "\n"))
            fence = None
        else:
            lines.append(line)
    assert fence is None, "an unclosed code fence in README.md"
    return blocks


@dataclass
class Step:
    key: str  # the step's first comment line (without "# "), or its first command when it has none
    heading: str
    code: str


def steps_of(block: Block) -> list[Step]:
    """A step starts at a comment line that follows a command (or opens the block). Comment lines
    with no command after them (a sample of the output) stay with the step before."""
    groups: list[list[str]] = []
    previous_was_comment = False
    for line in block.text.rstrip("\n").split("\n"):
        is_comment = line.startswith("#")
        if (is_comment and not previous_was_comment) or not groups:
            groups.append([])
        groups[-1].append(line)
        previous_was_comment = is_comment
    steps: list[Step] = []
    for group in groups:
        has_command = any(line.strip() and not line.startswith("#") for line in group)
        if not has_command and steps:
            steps[-1].code += "\n".join(group) + "\n"
            continue
        first = group[0]
        key = first[1:].strip() if first.startswith("#") else first.strip()
        steps.append(Step(key, block.heading, "\n".join(group) + "\n"))
    return steps


def walkthrough_steps(readme: str) -> list[Step]:
    blocks = code_blocks(readme)
    sh = [b for b in blocks if b.lang == "sh"]
    seen_excluded, seen_subs, steps = set(), set(), []
    for block in sh:
        ident = (block.heading, block.first_line)
        if ident in EXCLUDED:
            seen_excluded.add(ident)
            continue
        if ident == MAILED_BLOCK:
            steps.append(Step("(the test's mailed)", block.heading, MAILED_FROM_SINK))
            seen_subs.add("mailed")
            continue
        text = block.text
        for i, (heading, old, new, _reason) in enumerate(SUBSTITUTIONS):
            if heading == block.heading and old in text:
                assert text.count(old) == 1, f"{old!r} more than once under {heading}"
                text = text.replace(old, new)
                seen_subs.add(i)
        steps += steps_of(Block(block.heading, block.lang, text))
    # Every exclusion and substitution still applies to the README as it is now.
    assert seen_excluded == set(EXCLUDED), f"stale EXCLUDED entries: {set(EXCLUDED) - seen_excluded}"
    assert seen_subs == set(range(len(SUBSTITUTIONS))) | {"mailed"}, \
        f"stale substitutions: {[SUBSTITUTIONS[i] for i in range(len(SUBSTITUTIONS)) if i not in seen_subs]}"
    return steps


# --- what the steps must answer -----------------------------------------------------------------

class Unordered:
    """A list whose items may come in any order."""
    def __init__(self, *items):
        self.items = list(items)

    def __repr__(self):
        return f"Unordered({self.items!r})"


def matches(expected: Any, actual: Any, path: str = "$") -> None:
    """`expected` describes `actual`: dicts list the keys that must be there (more may be),
    lists must match element by element, a compiled regex must match a string, a callable must
    return true, Unordered lists may come in any order; everything else compares equal (and of the same type)."""
    if isinstance(expected, Unordered):
        assert isinstance(actual, list) and len(actual) == len(expected.items), f"{path}: {actual!r} is not {len(expected.items)} items"
        rest = list(actual)
        for e in expected.items:
            for i, a in enumerate(rest):
                try:
                    matches(e, a, path)
                except AssertionError:
                    continue
                del rest[i]
                break
            else:
                raise AssertionError(f"{path}: nothing in {actual!r} matches {e!r}")
        return
    if isinstance(expected, re.Pattern):
        assert isinstance(actual, str) and expected.fullmatch(actual), f"{path}: {actual!r} does not match {expected.pattern}"
    elif callable(expected):
        assert expected(actual), f"{path}: {actual!r} fails {getattr(expected, '__name__', expected)}"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r} is not an object"
        for k, v in expected.items():
            assert k in actual, f"{path}: no {k!r} in {actual!r}"
            matches(v, actual[k], f"{path}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: {actual!r} is not {len(expected)} items"
        for i, (e, a) in enumerate(zip(expected, actual)):
            matches(e, a, f"{path}[{i}]")
    else:
        assert type(actual) is type(expected) and actual == expected, f"{path}: {actual!r} != {expected!r}"


def json_values(out: str) -> list:
    """The JSON values a step printed, one after the other (jq output, -w '%{http_code}\\n' lines)."""
    decoder, values, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(out) and out[i].isspace():
            i += 1
        if i == len(out):
            return values
        value, i = decoder.raw_decode(out, i)
        values.append(value)


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
KEY = re.compile(r"pcl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


def at(seconds_from_now: float, slack: float = 120) -> Callable[[str], bool]:
    def near(value: str) -> bool:
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        return abs(when - (time.time() + seconds_from_now)) < slack
    near.__name__ = f"about {seconds_from_now:.0f} s from now"
    return near


def problem(status: int, code: str) -> dict:
    return {"status": status, "code": code}


@dataclass
class Expect:
    statuses: list[int] | Callable[[list[int]], None]  # of the step's curl calls, in order (a callable checks them)
    values: list | Callable[[dict], list] | None = None  # the JSON values printed, in order (see matches); a
    # callable gets the run's state ($ORG, $LAB, $ADA_ID, $GRACE_ID, $LINUS_ID, $SA_ID) and returns them
    text: list[str] = field(default_factory=list)  # regexes the raw output must contain, in order
    check: Callable[[str, dict], None] | None = None  # anything else, given the output and the run's state


def text_in_order(patterns: list[str], out: str) -> None:
    pos = 0
    for pattern in patterns:
        m = re.compile(pattern, re.M).search(out, pos)
        assert m, f"{pattern!r} not found (in order) in:\n{out}"
        pos = m.end()


STEPS: dict[str, Expect] = {}  # by the step's key (its first comment line)


def expectation_key(step_key: str) -> str | None:
    """The expectation for a step: the one whose key begins the step's key (there may be one only)."""
    found = [k for k in STEPS if step_key.startswith(k)]
    assert len(found) <= 1, f"several expectations fit {step_key!r}: {found}"
    return found[0] if found else None


def expect(key: str, statuses, values=None, **kw) -> None:
    assert key not in STEPS, f"two expectations for {key!r}"
    STEPS[key] = Expect(statuses, values, **kw)


# --- Walk-through with curl
expect('BASE="$WALKTHROUGH_BASE"', [], [])
expect("Sign up: 201 with the new user, email_verified: false", [201], [
    {"id": UUID, "email": "ada@example.com", "name": "Ada", "email_verified": False, "is_root": False, "created_at": TIME}])
expect("Log in: 200 with {access_token", [200], [])
expect("The lifetimes are in seconds", [], [
    {"token_type": "Bearer", "expires_in": 900, "refresh_expires_in": 2592000, "user": "ada@example.com"}])
expect("Who am I?", [200], [{"id": UUID, "email": "ada@example.com", "name": "Ada"}])
expect("Refresh: a new pair", [200], [])
expect("Log out: 204.", [204], [204])
expect("The access token died with its session: 401.", [401], [401])

# --- Orgs and members
expect("Sign up two more users, then sign in all three.", [201, 201, 200, 200, 200, 200], [])
expect("Create an org: 201", [201], [])
expect("List the caller's orgs", [200], [{
    "items": [{"id": UUID, "name": "Acme", "description": "Acme engineering", "metadata": {"plan": "team"}, "role": "owner",
               "settings": {"max_key_ttl": None}, "created_at": TIME, "updated_at": TIME}],
    "total": 1, "limit": 20, "offset": 0}])
expect("Add a member by id: 201", [200, 200, 201], lambda st: [
    {"user_id": st["GRACE_ID"], "email": "grace@example.com", "name": "", "role": "editor", "expires_at": None}])
expect("Change the role: 200 with the updated member.", [200], lambda st: [{"user_id": st["GRACE_ID"], "role": "admin"}])
expect("Grace is an admin; she cannot grant a role above her own: 403 forbidden.", [403], [problem(403, "forbidden")])
expect("Up to her own rank is fine: 201.", [201], lambda st: [{"user_id": st["LINUS_ID"], "role": "viewer"}])
expect("Ada is the only owner, so she can neither leave nor step down: 409 last_owner.", [409, 409],
       [problem(409, "last_owner"), problem(409, "last_owner")])
expect("Anyone else may leave (DELETE on their own membership): 204.", [204, 404], [204, 404])
expect("A time-bound membership", [201], lambda st: [{"user_id": st["LINUS_ID"], "role": "viewer", "expires_at": at(3600)}])
expect("Extend it with", [200], [None])
expect("The org's audit log, newest first", [200], lambda st: [
    {"action": "member.updated", "actor": st["ADA_ID"], "target": f"user:{st['LINUS_ID']}", "details": {"expires_at": None}},
    {"action": "member.added", "actor": st["ADA_ID"], "target": f"user:{st['LINUS_ID']}", "details": {"role": "viewer", "expires_at": TIME}},
    {"action": "member.left", "actor": st["LINUS_ID"], "target": f"user:{st['LINUS_ID']}"},
    {"action": "member.added", "actor": st["GRACE_ID"], "target": f"user:{st['LINUS_ID']}", "details": {"role": "viewer"}},
    {"action": "member.role_changed", "actor": st["ADA_ID"], "details": {"from": "editor", "to": "admin"}},
    {"action": "member.added", "actor": st["ADA_ID"], "target": f"user:{st['GRACE_ID']}", "details": {"role": "editor"}},
    {"action": "org.created", "actor": st["ADA_ID"], "target": f"org:{st['ORG']}", "at": TIME}])

# --- Inviting people
expect("(the test's mailed)", [], [])
expect("An existing account: Barbara signs up and confirms her address", [201, 204, 200], [204])
expect("... so Grace's invite to the org, as an editor, is an ordinary one", [201],
       [{"role": "editor", "state": "pending", "dormant": False}])
expect("A second invite for the same address while this one is pending: 409 conflict.", [409], [problem(409, "conflict")])
expect("Barbara finds it among her invites", [200], [{"id": UUID, "org_name": "Acme", "role": "editor"}])
expect("... and accepts: 200 with the invite", [200], ["accepted"])
expect("Twice is 409 conflict.", [409, 404], [problem(409, "conflict"), problem(404, "not_found")])
expect("An address without an account: the invite is dormant", [201], [{"state": "pending", "dormant": True}])
expect("Signing up with the token: 201", [201, 200], [True])
expect("She is not a member yet", [200], [{"org_name": "Acme", "role": "viewer", "state": "accepted"}])
expect("Decline, revoke and resend, in a second org of Ada's", [201], [])
expect("Linus has an account, but has not confirmed its address", [201, 200], [{"state": "pending", "dormant": True}])
expect("Until he does, reading, accepting or claiming it", [409, 409, 409], [problem(409, "invite_dormant")] * 3)
expect("He confirms the address with his verification mail's link (204)", [204, 200],
       [204, {"state": "pending", "dormant": False, "expires_at": at(7 * 86400)}])
expect('Linus declines: 200, "declined".', [200], ["declined"])
expect("Ada invites him again and thinks better of it", [201, 204, 409], [204, problem(409, "conflict")])
expect("A third one whose mail went astray", [201, 200], [{"state": "pending", "expires_at": at(7 * 86400)}])
expect("... and the old link is dead: claiming with its token is 404.", [404], [problem(404, "not_found")])
expect("Linus follows the newest link", [200], [{"org_name": "Acme Labs", "role": "editor", "state": "accepted"}])
expect("The org's invites, newest first", [200], [
    {"email": "linus@example.com", "role": "editor", "state": "accepted"},
    {"email": "linus@example.com", "role": "viewer", "state": "revoked"},
    {"email": "linus@example.com", "role": "viewer", "state": "declined"}])

# --- Platform invites and invite-only signup
expect("The root admin's access token.", [200], [])
expect('201 with {id, email, state: "pending", org_invites', [201], [
    {"id": UUID, "state": "pending", "org_invites": Unordered({"org_name": "Acme", "role": "editor", "dormant": True},
                                                             {"org_name": "Acme Labs", "role": "viewer", "dormant": True})}])
def margaret_signed_up(out: str, st: dict) -> None:
    verified, *invites = json_values(out)
    assert verified is True, verified
    matches(Unordered({"id": UUID, "org_name": "Acme", "role": "editor", "state": "pending"},
                      {"id": UUID, "org_name": "Acme Labs", "role": "viewer", "state": "pending"}), invites)


expect('The mail ("You are invited to Portcullis")', [201, 200, 200], check=margaret_signed_up)
expect("Root only: every platform invite", [200], [{"email": "margaret@example.com", "state": "accepted"}])
expect("In either signup mode, an invite token that does not fit", [400], [problem(400, "invalid_invite_token")])

# --- Password reset and e-mail verification
expect("Forgot the password? 202 with the same body", [202], [{"status": "if the address has an account, a reset link is on its way"}])
expect("The mail links to /reset-password", [204, 401], [204, 401])
expect("A plain signup (without invite_token)", [200, 204, 200], [False, 204, True])
expect('202: {"status": "if the address has an unverified account', [202],
       [{"status": "if the address has an unverified account, a verification link is on its way"}])

# --- Asking for a decision, role bindings
expect("ask() {", [], [])
expect("Linus asks about himself.", [200], [{"allowed": True, "reason": "viewer may org.read (needs viewer)", "role": "viewer"}])
expect("A denial is still 200.", [200], [{"allowed": False, "reason": "viewer is below admin, needed for members.write", "role": "viewer"}])
expect("Ada owns the org, but asking about Linus needs", [403], [problem(403, "forbidden")])
expect("The root admin ($ROOT, signed in", [200], [{"allowed": True, "role": "viewer"}])
expect("Ada makes Linus an editor of project p1", [201], [])
expect("Linus, a viewer of the org, is now an editor", [200], [{"allowed": True, "role": "editor"}])
expect("... but not of project p2", [200], [{"allowed": False, "reason": "viewer is below editor, needed for editor", "role": "viewer"}])
expect("The org's bindings", [200], lambda st: [{
    "items": [{"id": UUID, "org_id": st["ORG"], "subject": {"user_id": st["LINUS_ID"]}, "resource": f"org:{st['ORG']}/project:p1",
               "role": "editor", "expires_at": None}], "total": 1, "limit": 20, "offset": 0}])

# --- Groups and overrides
expect("Ada creates a group, Engineering: 201", [201], [])
expect("... and Backend inside it (parent_id: Engineering's id): 201.", [201], [])
expect("Any member lists the org's groups, by name", [200], [[{"name": "Backend", "top": False}, {"name": "Engineering", "top": True}]])
expect("Linus joins Backend: 201", [201], [{"type": "user", "label": "linus@example.com", "expires_at": None}])
expect("A binding may name a group", [201], [201])
expect("Through Backend inside Engineering, Linus", [200], [{"allowed": True, "reason": "editor is at least editor", "role": "editor"}])
expect("Explain names the group; via holds", [200], [[
    {"kind": "membership", "role": "viewer", "group": None, "via": 0, "decisive": False},
    {"kind": "binding", "role": "editor", "group": "Engineering", "via": 2, "decisive": True}]])
expect("Ada denies Backend things.write on the legal page", [201], [201])
expect("Linus is still an editor there, but the deny wins", [200],
       [{"allowed": False, "reason": "an override denies things.write here", "role": "editor"}])
expect("Explain shows the override and its reason", [200],
       [[{"effect": "deny", "group": "Backend", "reason": "Frozen while legal reviews it", "decisive": True}]])
expect("An allow reaches past the role", [201], [201])
expect("Linus may export the handbook", [200, 200],
       [{"allowed": True, "reason": "an override allows reports.export here", "role": "editor"}, False])
expect("The org's overrides (admins and owners)", [200], [[
    {"permission": "things.write", "effect": "deny", "reason": "Frozen while legal reviews it"},
    {"permission": "reports.export", "effect": "allow", "reason": "Exports the handbook for the printer"}]])

# --- Batch, explain, capabilities, lookup, identify
expect("Up to 1000 checks in one request", [200], [[True, True, False]])
expect("Why? The decision, the role it needed", [200], lambda st: [{
    "allowed": True, "role": "editor", "required_role": "editor", "grants": [
        {"kind": "membership", "role": "viewer", "resource": f"org:{st['ORG']}", "decisive": False, "event": None},
        {"kind": "binding", "role": "editor", "resource": f"org:{st['ORG']}/project:p1", "decisive": True, "event": None}]}])
expect("Ada, an owner, asking about herself sees the event", [200], [[{"kind": "membership", "role": "owner", "event": "org.created"}]])
expect("Everything Linus may do on some objects", [200], lambda st: [{"results": [
    {"object": f"org:{st['ORG']}", "role": "viewer", "permissions": ["members.read", "org.read", "things.read"]},
    {"object": f"org:{st['ORG']}/project:p1/doc:d1", "role": "editor",
     "permissions": ["members.read", "org.read", "things.read", "things.write"]}]}])
expect("Where does Linus hold a permission?", [200], lambda st: [{
    "items": Unordered({"object": f"org:{st['ORG']}", "role": "viewer"}, {"object": f"org:{st['LAB']}", "role": "editor"}),
    "total": 2, "limit": 20, "offset": 0}])
expect('With "type": the objects of that type bound to him.', [200], lambda st: [{
    "items": [{"object": f"org:{st['ORG']}/project:p1", "role": "editor"}], "total": 1}])
expect("The roles and the permission table, custom permissions included.", [200], [{
    "permissions": {"org.read": "viewer", "members.write": "admin", "audit.read": "admin",
                    "things.read": "viewer", "things.write": "editor", "reports.export": "admin"},
    "roles": ["viewer", "editor", "admin", "owner"]}])
expect("Who is behind a token?", [200], lambda st: [
    {"type": "user", "user_id": st["LINUS_ID"], "email": "linus@example.com", "expires_at": TIME, "key_id": None}])

# --- Custom permissions, AuthZEN, consistency, watching
expect('Then: {"allowed": false', [200], [{"allowed": False, "reason": "viewer is below editor, needed for things.write", "role": "viewer"}])
expect("The PDP metadata; no credential needed.", [200], lambda st: [{
    "policy_decision_point": st["base"], "access_evaluation_endpoint": st["base"] + "/access/v1/evaluation",
    "access_evaluations_endpoint": st["base"] + "/access/v1/evaluations"}])
expect("One evaluation.", [200], [{"context": {"reason": "editor is at least editor", "role": "editor"}, "decision": True}])
expect("Several. Top-level subject, resource and action are defaults", [200], [[True, False, True]])
expect("Search: which projects may Linus edit?", [200], lambda st: [{
    "results": [{"type": "project", "id": f"org:{st['ORG']}/project:p1"}], "page": {"next_token": ""}}])
expect("What may he do on project p2?", [200], [["viewer", "members.read", "org.read", "things.read"]])


def editors_of_p1(out: str, st: dict) -> None:
    answer, = json_values(out)
    ids = [r["id"] for r in answer["results"]]
    assert {r["type"] for r in answer["results"]} == {"user"} and len(ids) == 4, answer  # Ada, Grace, Barbara, Linus
    assert {st["ADA_ID"], st["GRACE_ID"], st["LINUS_ID"]} <= set(ids) and answer["page"] == {"next_token": ""}, answer


expect("Who may edit p1?", [200], check=editors_of_p1)
expect("Make Linus an editor of project p3 and keep the write's revision", [201], [])
expect("... then ask any node, at least at that revision: true.", [200], [True])


def watched(out: str, st: dict) -> None:
    assert out.startswith(": watching from revision 0\n"), out[:200]
    events = [dict(line.split(": ", 1) for line in chunk.splitlines())
              for chunk in out.split("\n\n") if chunk.startswith("id: ")]
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and ids[0] == 1, ids
    for e in events:
        data = json.loads(e["data"])
        assert set(data) == {"at", "kind", "revision", "subject"} and data["kind"] == e["event"] and data["revision"] == int(e["id"])
    bindings = [json.loads(e["data"])["subject"] for e in events if e["event"] == "binding.changed"]
    assert bindings and set(bindings) == {st["ORG"]}, bindings  # the p1 and p3 bindings, subject the org
    assert any(e["event"] == "org.created" for e in events) and any(e["event"] == "invite.changed" for e in events)


expect("Everything from the start of the log", [200], check=watched)

# --- Automation with API keys, scoped keys, what a key cannot do
def created_key(out: str, st: dict) -> None:
    key = json_values(out)[0]
    assert key["key"].startswith(f"pcl_{key['prefix']}_"), key


expect("Ada creates a key from her signed-in session", [201], [
    {"id": UUID, "prefix": re.compile(r"[0-9a-f]{12}"), "scopes": [], "expires_at": at(2592000), "key": KEY}], check=created_key)
expect("Use it as the bearer", [200], [{"allowed": True, "reason": "owner may org.update (needs admin)", "role": "owner"}])
expect("Ada's keys, never with the secret", [200], [{"name": "ci deploy", "prefix": re.compile(r"[0-9a-f]{12}"), "scopes": [],
                                                   "last_used_at": TIME}])
expect("A read-only key for one org.", [201, 200], [True])
expect('{"allowed": false, "reason": "viewer (capped by the key\'s scopes)', [200], [
    {"allowed": False, "reason": "viewer (capped by the key's scopes) is below admin, needed for org.update", "role": "viewer"}])
expect("The org's own routes follow the same cap", [403], [problem(403, "forbidden")])
expect("A service that asks about its users", [201], [])
expect("Is Grace an admin of the org?", [200, 200], [{"allowed": True, "role": "admin"}, {"allowed": True, "role": "admin"}])
expect("Only where its owner administers", [201, 403], [problem(403, "forbidden")])
expect("Nor does an authz:check key follow the change stream", [403], [problem(403, "forbidden")])
expect("Ada's unscoped key $KEY can do what Ada can", [403, 403, 403], [problem(403, "forbidden")] * 3)
expect("The read-only key $RO names an org, so it cannot create one", [403], [problem(403, "forbidden")])
expect('Yet it reads its user: "ada@example.com".', [200], ["ada@example.com"])

# --- Rotating a key, service accounts, key policy, last use
expect("1. Create the successor", [201], [])
expect("2. Give $NEW_KEY to the job", [204], [204])
expect("From then on it is refused: 401.", [401], [problem(401, "unauthenticated")])
expect("Ada creates one with a role at most her own", [201], [])
expect("Its key, again from a signed-in session", [201], [])
expect("The service account works in the org as an editor.", [200, 200], [True, 5])  # Ada, Grace, Linus, Barbara, Hedy
expect('{"type": "service_account"', [200], lambda st: [{
    "type": "service_account", "service_account_id": st["SA_ID"], "org_id": st["ORG"], "key_id": UUID, "user_id": None}])
expect("Delete it: 204.", [204, 401], [204, problem(401, "unauthenticated")])
expect("Keys for this org live at most 90 days", [200], [{"max_key_ttl": 7776000}])
expect("A key scoped to the org that asks for a year", [400], [
    {"status": 400, "detail": "expires_in exceeds the org's max_key_ttl of 7776000 seconds"}])
expect("Without expires_in it gets the 90 days", [201], [at(90 * 86400)])
expect("Ada's keys as this node sees them", [200], check=lambda out, st: matches(Unordered(
    {"name": "dashboard", "last_used_at": TIME}, {"name": "api gateway", "last_used_at": TIME},
    {"name": "ci deploy (2)", "last_used_at": None}, {"name": "capped", "last_used_at": None}), json_values(out)))

# --- Rotating the signing key, backup and restore
expect("From the command line, with the server's environment", [], text=[
    r"^new ES256 signing key [A-Za-z0-9_-]{16} is active$", r"^new RS256 signing key [A-Za-z0-9_-]{16} is active$"])
expect("Or through the API, as the root admin: {kid (the ES256 one)", [200], [{
    "kid": re.compile(r"[A-Za-z0-9_-]{16}"), "created_at": TIME,
    "keys": [{"kid": re.compile(r"[A-Za-z0-9_-]{16}"), "algorithm": "ES256"}, {"kid": re.compile(r"[A-Za-z0-9_-]{16}"), "algorithm": "RS256"}]}])
expect("Tokens signed with the retired keys keep working", [200], [200])


def backup_file(out: str, st: dict) -> None:
    path = st["work"] / "backup.json"
    assert path.stat().st_mode & 0o077 == 0, oct(path.stat().st_mode)  # umask 077: readable by its owner only
    document = json.loads(path.read_text())
    assert {u["email"] for u in document["users"]} >= {"ada@example.com", "margaret@example.com", ROOT_EMAIL}
    # What "Groups and overrides" made travels with it.
    assert sorted(g["name"] for g in document["groups"]) == ["Backend", "Engineering"], document["groups"]
    assert sorted(o["permission"] for o in document["overrides"]) == ["reports.export", "things.write"], document["overrides"]


expect("The root admin ($ROOT, as above) exports the instance.", [200], [], check=backup_file)
expect("The new instance: here a second, empty one", [200], [])
expect("Its root admin loads the backup: 200", [200], [{"users": 7, "orgs": 2, "memberships": 7, "audit_events": 47}])
expect("Everyone signs in again there, with their old password.", [200], ["ada@example.com"])
expect("The backup on standard output; the restore says", [], [],
       check=lambda out, st: text_in_order([r"^restored 7 users, 2 orgs, 7 memberships, 48 audit events$"], st["step_errors"]))


# --- Abuse limits
def throttled(statuses: list[int]) -> None:
    assert len(statuses) == 101 and set(statuses) <= {401, 429}, statuses
    first = statuses.index(429)
    assert first >= 1 and set(statuses[:first]) == {401}, statuses
    # After the burst, only the refill (one a second) gets through.
    assert statuses[first:].count(401) <= 10, statuses


expect("Guessing at a login: 401 401", throttled,
       check=lambda out, st: matches(re.compile(r"(401 )+429 ((401|429) )*"), out.rstrip("\n")))
expect("The root registers a platform client for a wiki.", [201],
       [{"type": "confidential", "scopes": ["openid", "profile", "email", "orgs"], "first_party": False, "secret_shown": True}])
expect("A Hasura-ready client", [200], [{"presets": ["hasura", "org_roles"], "constants": {"tenant": "acme"}}])
expect("Ada binds a new viewer service account of Acme to a new client of Acme", [201, 201], [])
expect("The client's token, with no person involved", [200], [{"token_type": "Bearer", "expires_in": 900, "refresh_token": None}])
expect("It asks decisions as the service account", [200, 200], [True, False])

# --- Webhooks
expect("Ada subscribes a receiver to Acme's member and invite events", [201], [
    {"url": "https://hooks.example.com/portcullis", "event_types": ["member.*", "invite.*"], "enabled": True, "secret_shown": True}])
expect("Reading it back never shows the secret.", [200], [False])
expect("A test event for this endpoint alone", [202], [202])
expect("The delivery log, newest first", [200], [{"event_type": "webhook.test", "state": "pending"}])
expect("A new secret; the old one keeps signing beside it", [200], [{"secret_shown": True, "old_one_until": True}])
expect("Turn it off (events are no longer queued for it)", [200, 204], [False, 204])
expect('{"status": 429, "code": "rate_limited"', [429], [
    {"status": 429, "code": "rate_limited", "detail": re.compile(r"too many attempts; try again in \d+ s")}])


# --- running it -----------------------------------------------------------------------------------

def binary() -> Path:
    path = Path(os.environ.get("PORTCULLIS_BIN", DEFAULT_BIN))
    if not path.is_file():
        pytest.fail(f"server binary {path} not found; run `swift build` first", pytrace=False)
    return path


def yaml_block_after(readme: str, marker: str) -> str:
    block = next(b for b in code_blocks(readme) if b.first_line == marker)
    return block.text


def run_walkthrough(tmp: Path) -> tuple[list[Step], dict[int, str], dict[int, list[int]], dict]:
    readme = README.read_text()
    steps = walkthrough_steps(readme)
    (tmp / "policy.yaml").write_text(yaml_block_after(readme, "# policy.yaml"))
    (tmp / "mailed.py").write_text(MAILED_SCRIPT)
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "portcullis").symlink_to(binary())
    work = tmp / "shell"  # the user's current directory: backup.json and restored.db land here
    work.mkdir()

    script = ["set -euo pipefail", CURL_RECORDER]
    for n, step in enumerate(steps):
        script.append(f"echo '@@step {n}'; echo '@@step {n}' >&2")
        script.append(step.code)
    script.append("echo '@@end'; echo '@@end' >&2")
    # What the last step needs to print its state for the test (not part of the README).
    script.append('printf "%s\\n" "$ORG" "$LAB" "$ADA_ID" "$GRACE_ID" "$LINUS_ID" "$SA_ID"')

    server_dir, new_dir = tmp / "server", tmp / "new"
    server_dir.mkdir()
    new_dir.mkdir()
    with smtp_sink(tmp) as (smtp_url, sink_dir, skip), \
            running_server(binary(), server_dir, ROOT_EMAIL=ROOT_EMAIL, ROOT_PASSWORD=ROOT_PASSWORD, SMTP_URL=smtp_url,
                           POLICY_FILE=str(tmp / "policy.yaml")) as base, \
            running_server(binary(), new_dir, **NEW_ROOT) as new_base:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
        env.update(
            PATH=f"{bin_dir}:{os.environ['PATH']}",
            # The server's environment, for the README's `portcullis keys rotate` and `portcullis backup`.
            PORTCULLIS_DATABASE_URL=f"sqlite:{server_dir}/p.db",
            PORTCULLIS_MASTER_KEY_FILE=f"{server_dir}/master.key",
            PORTCULLIS_POLICY_FILE=str(tmp / "policy.yaml"),
            WALKTHROUGH_BASE=base, WALKTHROUGH_NEW_BASE=new_base, WALKTHROUGH_ROOT_PASSWORD=ROOT_PASSWORD,
            WALKTHROUGH_MAILED=str(tmp / "mailed.py"), WALKTHROUGH_SINK=str(sink_dir),
            WALKTHROUGH_SINK_SKIP=",".join(sorted(skip)), WALKTHROUGH_METRICS_TOKEN=METRICS_TOKEN,
        )
        started = time.monotonic()
        run = subprocess.run(["bash", "-c", "\n".join(script)], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        elapsed = time.monotonic() - started

    outputs: dict[int, str] = {}
    statuses: dict[int, list[int]] = {}
    current = None
    for line in run.stdout.splitlines(keepends=True):
        m = re.match(r"^@@(step (\d+)|end)$", line.rstrip("\n"))
        if m:
            current = int(m.group(2)) if m.group(2) else "end"
            outputs.setdefault(current, "")
            continue
        if current is not None:
            outputs[current] += line
    errors: dict[int, str] = {}
    current = None
    for line in run.stderr.splitlines():
        m = re.match(r"^@@(step (\d+)|end)$", line)
        if m:
            current = int(m.group(2)) if m.group(2) else "end"
            statuses.setdefault(current, [])
            errors.setdefault(current, "")
        elif line.startswith("@@status ") and current is not None:
            statuses[current].append(int(line.split()[1]))
        elif current is not None:
            errors[current] += line + "\n"
    if run.returncode != 0:
        last = max((k for k in outputs if k != "end"), default=None)
        where = f"step {last}: {steps[last].key!r} under {steps[last].heading}" if last is not None else "before the first step"
        pytest.fail(f"the walk-through stopped with {run.returncode} at {where}\n--- stdout (tail)\n{run.stdout[-3000:]}\n"
                    f"--- stderr (tail)\n{run.stderr[-3000:]}", pytrace=False)
    names = ["ORG", "LAB", "ADA_ID", "GRACE_ID", "LINUS_ID", "SA_ID"]
    state = dict(zip(names, outputs.pop("end").split()))
    state.update(base=base, new_base=new_base, elapsed=elapsed, errors=errors, work=work)
    return steps, outputs, statuses, state


def test_walkthrough_runs_as_written(tmp_path: Path):
    steps, outputs, statuses, state = run_walkthrough(tmp_path)
    keys = [expectation_key(s.key) for s in steps]
    if os.environ.get("WALKTHROUGH_DUMP"):
        for n, step in enumerate(steps):
            print(f"=== {n} {step.key}\n{statuses.get(n)}\n{outputs.get(n, '')}")
    missing = [s.key for s, k in zip(steps, keys) if k is None]
    assert not missing, "README steps without an expectation in this test:\n" + "\n".join(missing)
    assert not [k for k in STEPS if k not in keys], \
        "expectations for steps the README no longer has:\n" + "\n".join(k for k in STEPS if k not in keys)
    assert len(set(keys)) == len(keys), "two README steps share an expectation"
    failures = []
    for n, step in enumerate(steps):
        want, out, got = STEPS[keys[n]], outputs.get(n, ""), statuses.get(n, [])
        where = f"step {n} ({step.heading}: {step.key!r})"
        try:
            if callable(want.statuses):
                want.statuses(got)
            else:
                assert got == want.statuses, f"statuses {got}, expected {want.statuses}"
            if want.values is not None:
                try:
                    values = json_values(out)
                except ValueError as error:
                    raise AssertionError(f"output is not JSON ({error}):\n{out}")
                matches(want.values(state) if callable(want.values) else want.values, values)
            text_in_order(want.text, out)
            if want.check:
                want.check(out, dict(state, step_errors=state["errors"].get(n, "")))
        except AssertionError as error:
            failures.append(f"{where}: {error}\n--- output\n{out}")
    assert not failures, f"{len(failures)} README steps do not answer as their comments say:\n\n" + "\n\n".join(failures)
    # The whole walk-through stays quick enough for every `make test`.
    assert state["elapsed"] < 120, f"the walk-through took {state['elapsed']:.0f} s"


def test_verifying_a_token_as_written(tmp_path: Path):
    """The PyJWT snippet under "Verifying a token" accepts a real access token, with BASE and
    ISSUER set to this server (the only two lines changed)."""
    block = next(b for b in code_blocks(README.read_text()) if b.heading == "## Verifying a token" and b.lang == "python")
    with running_server(binary(), tmp_path, ROOT_EMAIL=ROOT_EMAIL, ROOT_PASSWORD=ROOT_PASSWORD) as base:
        issuer = json.loads(urllib.request.urlopen(base + "/.well-known/openid-configuration", timeout=10).read())["issuer"]
        code = block.text
        for old, new in (('BASE = "http://127.0.0.1:8080"', f'BASE = "{base}"'), ('ISSUER = "http://localhost:8080"', f'ISSUER = "{issuer}"')):
            assert code.count(old) == 1, old
            code = code.replace(old, new)
        login = json.loads(urllib.request.urlopen(urllib.request.Request(
            base + "/v1/auth/login", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"email": ROOT_EMAIL, "password": ROOT_PASSWORD}).encode()), timeout=10).read())
        namespace: dict = {}
        exec(compile(code, "README.md (Verifying a token)", "exec"), namespace)
        claims = namespace["verify"](login["access_token"])
        assert claims["sub"] == login["user"]["id"] and UUID.fullmatch(claims["sid"])
        # What the prose says next to it: 15 minutes by default.
        assert claims["exp"] - claims["iat"] == 900
        # And it refuses a token meant for another audience.
        with pytest.raises(jwt.InvalidIssuerError):
            namespace["ISSUER"] = issuer + "/other"
            namespace["verify"](login["access_token"])


def test_webhook_receiver_as_written(tmp_path: Path):
    """The receiver under "Webhooks", with only SECRET and PORT set, gets a real server's events:
    signatures verified by standardwebhooks, duplicates dropped, a forged body refused."""
    import socket
    import threading
    from http.server import HTTPServer

    block = next(b for b in code_blocks(README.read_text()) if b.heading == "## Webhooks" and b.lang == "python")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with running_server(binary(), tmp_path, ROOT_EMAIL=ROOT_EMAIL, ROOT_PASSWORD=ROOT_PASSWORD,
                        WEBHOOK_ALLOW_PRIVATE="true", WEBHOOK_POLL_MS="50") as base:
        def call(method, path, token=None, body=None):
            headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
            return requests.request(method, base + path, headers=headers, json=body, timeout=10)

        root = call("POST", "/v1/auth/login", body={"email": ROOT_EMAIL, "password": ROOT_PASSWORD}).json()["access_token"]
        org = call("POST", "/v1/orgs", root, {"name": "Hooked"}).json()["id"]
        hook = call("POST", f"/v1/orgs/{org}/webhooks", root, {"url": f"http://127.0.0.1:{port}/", "event_types": ["org.*"]})
        assert hook.status_code == 201, hook.text
        code = block.text
        for old, new in (('SECRET = "whsec_..."', f'SECRET = "{hook.json()["secret"]}"'), ("PORT = 8000", f"PORT = {port}")):
            assert code.count(old) == 1, old
            code = code.replace(old, new)
        namespace: dict = {"__name__": "readme_receiver"}
        exec(compile(code, "README.md (Webhooks)", "exec"), namespace)
        handled = []
        namespace["handle"] = handled.append
        receiver = HTTPServer(("127.0.0.1", port), namespace["Receiver"])
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        try:
            for n in range(3):
                assert call("PATCH", f"/v1/orgs/{org}", root, {"description": f"v{n}"}).status_code == 200
            deadline = time.monotonic() + 20
            while len(handled) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert [e["data"]["description"] for e in handled] == ["v0", "v1", "v2"]
            assert all(e["type"] == "org.updated" for e in handled)
            # A delivery sent again is a duplicate: answered 2xx, not handled twice.
            deliveries = call("GET", f"/v1/orgs/{org}/webhooks/{hook.json()['id']}/deliveries", root).json()["items"]
            assert call("POST", f"/v1/orgs/{org}/webhooks/{hook.json()['id']}/deliveries/{deliveries[0]['id']}/redeliver", root).status_code == 202
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                log = call("GET", f"/v1/orgs/{org}/webhooks/{hook.json()['id']}/deliveries", root).json()["items"]
                if log[0]["state"] == "delivered":
                    break
                time.sleep(0.05)
            assert log[0]["state"] == "delivered" and log[0]["last_status"] == 204
            assert len(handled) == 3
            # A body the server did not sign is refused.
            forged = requests.post(f"http://127.0.0.1:{port}/", data=b'{"id": "x"}', timeout=5, headers={
                "webhook-id": "msg_1", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,AAAA"})
            assert forged.status_code == 400 and len(handled) == 3
        finally:
            receiver.shutdown()


def test_mailed_helper_reads_the_log(tmp_path: Path):
    """The README's own `mailed`, against a server that prints its mail to the log as JSON (what
    `PORTCULLIS_LOG_FORMAT=json make run 2> server.log` gives; running_server writes server.log in
    its directory, which is the helper's current directory here)."""
    block = next(b for b in code_blocks(README.read_text()) if (b.heading, b.first_line) == MAILED_BLOCK)
    helper = block.text.replace(MAILED_BLOCK[1] + "\n", "")
    assert "make run" not in helper
    with running_server(binary(), tmp_path, SMTP_URL="log", LOG_FORMAT="json") as base:
        script = helper + f"""
BASE={base}
curl -s -o /dev/null -X POST "$BASE/v1/users" -H 'Content-Type: application/json' \\
  -d '{{"email": "kay@example.com", "password": "correct horse battery staple"}}'
TOKEN=$(mailed kay@example.com /verify-email)
echo "token $TOKEN"
curl -s -o /dev/null -w '%{{http_code}}\\n' -X POST "$BASE/v1/auth/verify-email" -H 'Content-Type: application/json' \\
  -d "$(jq -n --arg t "$TOKEN" '{{token: $t}}')"
"""
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr + run.stdout
    assert re.fullmatch(r"token [A-Za-z0-9_-]{43}\n204\n", run.stdout), run.stdout


def test_only_the_root_or_its_unscoped_key_may_watch(tmp_path: Path):
    """What the README says in three places (Watching changes, Scoped keys, Security notes): the change
    stream is for the root admin and its unscoped key. Any scope drops the root's platform powers,
    authz:check included."""
    with running_server(binary(), tmp_path, ROOT_EMAIL=ROOT_EMAIL, ROOT_PASSWORD=ROOT_PASSWORD) as base:
        root = requests.post(f"{base}/v1/auth/login", json={"email": ROOT_EMAIL, "password": ROOT_PASSWORD}, timeout=10).json()
        auth = {"Authorization": f"Bearer {root['access_token']}"}

        def key(scopes: list[str]) -> str:
            r = requests.post(f"{base}/v1/keys", json={"name": "watcher", "scopes": scopes}, headers=auth, timeout=10)
            assert r.status_code == 201, r.text
            return r.json()["key"]

        def watch_status(token: str) -> int:
            with requests.get(f"{base}/v1/watch", headers={"Authorization": f"Bearer {token}"}, stream=True, timeout=10) as r:
                return r.status_code

        assert watch_status(root["access_token"]) == 200
        assert watch_status(key([])) == 200
        assert watch_status(key(["authz:check"])) == 403


def test_custom_permission_files_as_written(tmp_path: Path):
    """The policy file of "Custom permissions" in its three written forms (the YAML runs in the
    walk-through), and the start-up error the README quotes."""
    readme = README.read_text()
    blocks = code_blocks(readme)
    yaml_text = next(b for b in blocks if b.first_line == "# policy.yaml").text
    json_text = next(b for b in blocks if b.heading == "### Custom permissions" and b.lang == "json").text
    unwrapped = json.dumps(json.loads(json_text)["permissions"])
    for n, text in enumerate((json_text, unwrapped)):
        (tmp_path / f"p{n}").mkdir()
        (tmp_path / f"p{n}" / "policy.json").write_text(text)
        with running_server(binary(), tmp_path / f"p{n}", POLICY_FILE=str(tmp_path / f"p{n}" / "policy.json")) as base:
            requests.post(f"{base}/v1/users", json={"email": "p@example.com", "password": "correct horse battery staple"}, timeout=10)
            token = requests.post(f"{base}/v1/auth/login", json={"email": "p@example.com", "password": "correct horse battery staple"},
                                  timeout=10).json()["access_token"]
            table = requests.get(f"{base}/v1/permissions", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()["permissions"]
        assert {k: table.get(k) for k in ("things.read", "things.write", "reports.export")} == \
            {"things.read": "viewer", "things.write": "editor", "reports.export": "admin"}, table

    quoted = re.search(r"stops start-up with one line such as `(PORTCULLIS_POLICY_FILE: things\.write: \"boss\" is not a role\s+\(viewer, editor, admin, owner\))`",
                       readme)
    assert quoted, "the README no longer quotes the policy file's error"
    (tmp_path / "bad.yaml").write_text(yaml_text.replace("things.write: editor", "things.write: boss"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env.update(PORTCULLIS_POLICY_FILE=str(tmp_path / "bad.yaml"), PORTCULLIS_DATABASE_URL=f"sqlite:{tmp_path}/bad.db",
               PORTCULLIS_MASTER_KEY_FILE=f"{tmp_path}/bad.key", PORTCULLIS_PORT="0")
    run = subprocess.run([str(binary()), "serve"], env=env, capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert run.returncode != 0
    assert re.sub(r"\s+", " ", quoted.group(1)) in run.stderr + run.stdout, run.stderr + run.stdout
