"""Federated and passwordless sign-in (SPEC §15, issue 17), black-box at the HTTP level, against real
peers: a GitHub stand-in that speaks GitHub's documented OAuth web flow and API, oidc-provider-mock
(a real OpenID provider built on Authlib) as Google, and a deliberately misbehaving OpenID provider
for the attacks (upstream_peers.py). The browser's part is played by a requests.Session that keeps
cookies and follows each redirect by hand, so every hop's status, Location and Set-Cookie is seen.

Covered: the root's provider API (and nobody else's), the public provider list and the login page's
buttons, first sign-in making an account and later ones finding it, the address rules (verified
only, never an account's address without linking), linking and unlinking (never the last way to
sign in), invite-only signup, the state/nonce/ID-token attacks, one-time callbacks, return_to, the
audit trail, and e-mail codes (mail, tokens, wrong/used/foreign codes, throttling). Everything runs
on SQLite and on PostgreSQL (a failure, not a skip, without PostgreSQL when
PORTCULLIS_REQUIRE_POSTGRES=1)."""

import contextlib
import html
import re
import secrets
import time
import uuid
from urllib.parse import urlencode, urlsplit

import pytest
import requests

import secrets_seen
import upstream_peers as peers
from security_support import BACKENDS, diff, instance, snapshot
from test_console_browser import verified_account
from test_pages_browser import PASSWORD, fresh_email, post_form, smtp_sink

ROOT_EMAIL, ROOT_PASSWORD = "root-federation@example.com", "root federation passphrase 77"
TIMEOUT = peers.TIMEOUT
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CALLBACK_REDIRECTS = (302, 303)
SERVER_LOGS = []  # every server this module started, for the log check at the end


# --- the peers (one each for the module) and a server per backend ----------------------------------

@pytest.fixture(scope="module")
def github():
    with peers.GitHubStandIn() as peer:
        yield peer


@pytest.fixture(scope="module")
def evil():
    with peers.EvilIssuer() as peer:
        yield peer


@pytest.fixture(scope="module")
def google():
    with peers.google_mock() as mock:
        yield mock


class Fed:
    """A Portcullis under test with the GitHub, evil and Google providers configured."""

    def __init__(self, inst, sink, backend: str):
        self.inst, self.sink, self.backend = inst, sink, backend
        self.base = inst.base
        self.providers: dict[str, dict] = {}
        self._root: tuple[float, str] | None = None
        self.canary: dict | None = None

    def url(self, path: str) -> str:
        return self.base + path

    def login(self, address: str, password: str) -> requests.Response:
        return requests.post(self.url("/v1/auth/login"), json={"email": address, "password": password}, timeout=TIMEOUT)

    def root(self) -> str:
        if self._root is None or time.monotonic() - self._root[0] > 120:
            r = self.login(ROOT_EMAIL, ROOT_PASSWORD)
            assert r.status_code == 200, r.text
            self._root = (time.monotonic(), r.json()["access_token"])
        return self._root[1]

    def api(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        headers = dict(kw.pop("headers", None) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.url(path), headers=headers, timeout=TIMEOUT, **kw)

    def ok(self, method: str, path: str, token: str | None, expect: int = 200, **kw):
        r = self.api(method, path, token, **kw)
        assert r.status_code == expect, f"{method} {path}: {r.status_code}, not {expect}: {r.text}"
        return r.json() if r.content else None

    def users(self) -> dict:
        """{e-mail: backup user} of every account (the root's backup is the one full list)."""
        doc = self.ok("GET", "/v1/admin/backup", self.root())
        return {u["email"]: u for u in doc["users"]}

    def snapshot(self) -> dict:
        return snapshot(self.inst, self.root())

    def audit(self, action: str, target: str | None = None) -> list:
        events = self.ok("GET", f"/v1/audit?action={action}&limit=100", self.root())["items"]
        return [e for e in events if target is None or e.get("target") == target]


@contextlib.contextmanager
def federation_server(backend: str, tmp, sink, github, evil, google, **settings):
    workdir = tmp / f"server-{backend}-{uuid.uuid4().hex[:6]}"
    workdir.mkdir()
    secrets_seen.note(ROOT_PASSWORD)
    options = dict(SMTP_URL=sink.url, SIGNUP="open", IP_BURST="1000", ROOT_EMAIL=ROOT_EMAIL, ROOT_PASSWORD=ROOT_PASSWORD)
    options.update(settings)
    with instance(backend, workdir, **options) as inst:
        SERVER_LOGS.append(workdir / "server.log")
        fed = Fed(inst, sink, backend)
        root = fed.root()
        specs = {
            "github": {"kind": "github", "display_name": "GitHub", "client_id": github.client_id, "client_secret": github.client_secret,
                       "web_base_url": github.url, "api_base_url": github.url},
            "evil": {"kind": "oidc", "display_name": "Evil ID", "client_id": evil.client_id, "client_secret": evil.client_secret,
                     "issuer": evil.url},
            "google": {"kind": "google", "display_name": "Google", "client_id": "google-client-" + uuid.uuid4().hex[:8],
                       "client_secret": peers.remember("google-secret-" + secrets.token_hex(12)), "issuer": google.url},
        }
        for provider_id, spec in specs.items():
            fed.providers[provider_id] = fed.ok("POST", "/v1/identity-providers", root, 201, json={"id": provider_id, **spec})
        github.callbacks.add(fed.providers["github"]["redirect_uri"])
        yield fed


@pytest.fixture(scope="module", params=BACKENDS)
def fed(request, tmp_path_factory, github, evil, google):
    tmp = tmp_path_factory.mktemp(f"federation-{request.param}")
    with smtp_sink(tmp) as sink, federation_server(request.param, tmp, sink, github, evil, google) as server:
        yield server


# --- the browser's part, by hand ---------------------------------------------------------------------

def begin(fed: Fed, session: requests.Session, provider: str, **params) -> tuple[requests.Response, str]:
    """GET /login/upstream/{provider}: the 302 to the upstream and the upstream URL."""
    path = f"/login/upstream/{provider}" + ("?" + urlencode(params) if params else "")
    r = session.get(fed.url(path), allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 302, f"GET {path}: {r.status_code}, not 302:\n{r.text[:1500]}"
    return r, peers.location(r)


def at_upstream(fed: Fed, session: requests.Session, upstream_url: str, approve=None) -> str:
    """The person at the upstream says yes; returns the callback URL it sends the browser to."""
    r = approve(session, upstream_url) if approve else session.get(upstream_url, allow_redirects=False, timeout=TIMEOUT)
    callback = peers.location(r)
    assert callback.startswith(fed.base + "/login/upstream/"), f"the upstream sent the browser to {callback}"
    return callback


def come_back(session: requests.Session, callback: str) -> requests.Response:
    return session.get(callback, allow_redirects=False, timeout=TIMEOUT)


def via(fed: Fed, provider: str, session: requests.Session | None = None, approve=None, **params) -> tuple[requests.Response, requests.Session]:
    """A whole upstream sign-in (or link, with a signed-in session): the callback's response."""
    session = session or requests.Session()
    _, upstream = begin(fed, session, provider, **params)
    return come_back(session, at_upstream(fed, session, upstream, approve)), session


def assert_signed_in(fed: Fed, r: requests.Response, session: requests.Session, address: str, to: str = "/account"):
    # The contract says 302; the server's pages redirect with 303 See Other, the same for a GET.
    assert r.status_code in CALLBACK_REDIRECTS, f"the callback answered {r.status_code}, not a redirect:\n{r.text[:2000]}"
    assert urlsplit(peers.location(r)).path == to and peers.location(r).startswith(fed.base), peers.location(r)
    assert peers.sets_session(r), f"the callback set no {peers.SESSION_COOKIE} cookie: {peers.set_cookies(r)}"
    value, attributes = peers.set_cookies(r)[peers.SESSION_COOKIE]
    secrets_seen.note(value)
    assert "httponly" in attributes, f"the session cookie is not HttpOnly: {attributes}"
    account = session.get(fed.url("/account"), allow_redirects=False, timeout=TIMEOUT)
    assert account.status_code == 200, f"/account with the new session: {account.status_code} {account.headers.get('Location')}"
    assert address in account.text, f"/account does not show {address}: the session is someone else's"


def assert_refused(fed: Fed, r: requests.Response, session: requests.Session, status, says: str | None = None):
    where = f"GET {urlsplit(r.url).path}"
    allowed = status if isinstance(status, tuple) else (status,)
    assert r.status_code in allowed, f"{where}: {r.status_code}, not {status}:\n{r.text[:2000]}"
    assert r.headers.get("Content-Type", "").startswith("text/html"), f"{where}: {r.headers.get('Content-Type')} is not a page"
    assert not peers.sets_session(r), f"{where} refused yet set a session cookie"
    assert session.cookies.get(peers.SESSION_COOKIE) is None
    if says:
        assert says.lower() in re.sub(r"\s+", " ", r.text).lower(), f"{where}: the page does not say {says!r}:\n{r.text[:2000]}"
    account = session.get(fed.url("/account"), allow_redirects=False, timeout=TIMEOUT)
    assert account.is_redirect and urlsplit(peers.location(account)).path == "/login", \
        f"after a refused sign-in /account answered {account.status_code}"


def password_session(fed: Fed, address: str, password: str = PASSWORD) -> requests.Session:
    """Signed in through the login page (a session cookie)."""
    session = requests.Session()
    page = session.get(fed.url("/login"), timeout=TIMEOUT)
    (form,) = peers.form_posting_to(page.text, "/login")
    r = post_form(session, fed, "/login", {**form["fields"], "email": address, "password": password})
    assert r.is_redirect and peers.sets_session(r), f"page sign-in of {address}: {r.status_code}"
    return session


def account_form(fed: Fed, session: requests.Session, action, pick=lambda form: True) -> dict:
    page = session.get(fed.url("/account"), allow_redirects=False, timeout=TIMEOUT)
    assert page.status_code == 200, f"/account: {page.status_code}"
    found = [f for f in peers.form_posting_to(page.text, action) if pick(f)]
    assert len(found) == 1, f"{len(found)} forms posting to {action} on /account:\n{page.text[:4000]}"
    return found[0]


def link_form(fed: Fed, session: requests.Session, provider: str) -> dict:
    def offers(form):
        return form["fields"].get("provider") == provider or any(
            b["name"] == "provider" and b["value"] == provider for b in form["buttons"])
    form = account_form(fed, session, "/account/identities/link", offers)
    display = fed.providers.get(provider, {}).get("display_name")
    if display:
        assert f"Link {display}" in re.sub(r"\s+", " ", form["text"]), f"the link button does not read 'Link {display}': {form['text']!r}"
    return form


def link(fed: Fed, session: requests.Session, provider: str, approve=None) -> requests.Response:
    """Presses "Link {provider}" on /account and goes through the upstream: the callback's response."""
    form = link_form(fed, session, provider)
    r = post_form(session, fed, "/account/identities/link", {**form["fields"], "provider": provider})
    assert r.status_code in (302, 303), f"POST /account/identities/link: {r.status_code}, not a redirect:\n{r.text[:1500]}"
    upstream = peers.location(r)
    assert peers.UPSTREAM_COOKIE in peers.set_cookies(r), "linking set no state cookie"
    return come_back(session, at_upstream(fed, session, upstream, approve))


def unlink_page(fed: Fed, session: requests.Session, identity_id: str, offered: bool = True) -> requests.Response:
    """Presses the identity's Unlink button on /account; with `offered` false the page has none,
    and the post is made anyway with the page's form token (a forged or stale form)."""
    path = f"/account/identities/{identity_id}/unlink"
    if offered:
        return post_form(session, fed, path, account_form(fed, session, path)["fields"])
    page = session.get(fed.url("/account"), allow_redirects=False, timeout=TIMEOUT)
    assert not peers.form_posting_to(page.text, path), f"/account offers to unlink {identity_id}"
    tokens = {f["fields"].get("csrf") for f in peers.forms(page.text) if f["fields"].get("csrf")}
    assert len(tokens) == 1, f"not one form token on /account: {tokens}"
    return post_form(session, fed, path, {"csrf": tokens.pop()})


def code_tokens(fed: Fed, address: str) -> dict:
    """Tokens for `address` through an e-mail code (also what a passwordless account has)."""
    r = fed.api("POST", "/v1/auth/email-code", json={"email": address})
    assert r.status_code == 202, f"email-code for {address}: {r.status_code} {r.text}"
    flow = peers.remember(r.json()["flow_id"])
    code, _ = peers.mailed_code(fed.sink, address)
    r = fed.api("POST", "/v1/auth/email-code/verify", json={"email": address, "code": code, "flow_id": flow})
    assert r.status_code == 200, f"email-code verify for {address}: {r.status_code} {r.text}"
    return r.json()


def identities(fed: Fed, token: str) -> dict:
    body = fed.ok("GET", "/v1/me/identities", token)
    assert body["total"] == len(body["items"]), body
    return body


def new_github_id() -> int:
    return secrets.randbelow(10**9) + 10**6


def problem(r: requests.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, f"{r.request.method} {urlsplit(r.url).path}: {r.status_code}, not {status}: {r.text}"
    assert r.headers.get("Content-Type", "").startswith("application/problem+json"), r.headers.get("Content-Type")
    body = r.json()
    assert body["status"] == status and body.get("code"), body
    if code:
        assert body["code"] == code, body
    return body


# --- 1. the root's provider API -----------------------------------------------------------------------

PROVIDER_FIELDS = {"id", "kind", "display_name", "client_id", "scopes", "issuer", "web_base_url", "api_base_url", "enabled",
                   "redirect_uri", "created_at", "updated_at"}


def no_secret(r: requests.Response, secret: str):
    assert secret not in r.text, f"{r.request.method} {urlsplit(r.url).path} returned the client secret"
    if r.content and r.headers.get("Content-Type", "").startswith("application/json"):
        body = r.json()
        for item in body.get("items", [body]):
            assert "client_secret" not in item, item


def test_root_manages_providers_and_the_secret_never_comes_back(fed):
    root = fed.root()
    secret = peers.remember("admin-secret-" + secrets.token_hex(12))
    suffix = uuid.uuid4().hex[:6]
    gh_id, google_id = f"gh-{suffix}", f"goog-{suffix}"

    r = fed.api("POST", "/v1/identity-providers", root, json={
        "id": gh_id, "kind": "github", "display_name": "GitHub Enterprise", "client_id": "ghe-client", "client_secret": secret,
        "web_base_url": "https://ghe.example", "api_base_url": "https://ghe.example/api/v3"})
    assert r.status_code == 201, r.text
    no_secret(r, secret)
    gh = r.json()
    assert set(gh) >= PROVIDER_FIELDS, f"missing fields: {PROVIDER_FIELDS - set(gh)}"
    assert (gh["id"], gh["kind"], gh["display_name"], gh["client_id"], gh["enabled"]) == (gh_id, "github", "GitHub Enterprise", "ghe-client", True)
    assert gh["scopes"] == ["read:user", "user:email"], gh["scopes"]
    assert (gh["issuer"], gh["web_base_url"], gh["api_base_url"]) == (None, "https://ghe.example", "https://ghe.example/api/v3")
    assert gh["redirect_uri"] == fed.url(f"/login/upstream/{gh_id}/callback")

    r = fed.api("POST", "/v1/identity-providers", root, json={
        "id": google_id, "kind": "google", "display_name": "Google", "client_id": "g-client", "client_secret": secret})
    assert r.status_code == 201, r.text
    no_secret(r, secret)
    goog = r.json()
    assert goog["issuer"] == "https://accounts.google.com" and sorted(goog["scopes"]) == ["email", "openid", "profile"], goog
    assert goog["web_base_url"] is None and goog["api_base_url"] is None

    # The id is taken.
    problem(fed.api("POST", "/v1/identity-providers", root, json={
        "id": gh_id, "kind": "github", "display_name": "Again", "client_id": "x", "client_secret": secret}), 409, "conflict")

    listed = fed.api("GET", "/v1/identity-providers?limit=100", root)
    assert listed.status_code == 200, listed.text
    no_secret(listed, secret)
    body = listed.json()
    by_id = {p["id"]: p for p in body["items"]}
    assert {gh_id, google_id, "github", "evil", "google"} <= set(by_id) and body["total"] >= 5, body
    assert by_id[gh_id] == gh
    one = fed.api("GET", f"/v1/identity-providers/{gh_id}", root)
    assert one.status_code == 200 and one.json() == gh, one.text

    # PATCH: a name, a new secret (never echoed), disabling; the public list follows `enabled`.
    new_secret = peers.remember("rotated-secret-" + secrets.token_hex(12))
    r = fed.api("PATCH", f"/v1/identity-providers/{gh_id}", root, json={"display_name": "GHE", "client_secret": new_secret})
    assert r.status_code == 200, r.text
    no_secret(r, secret)
    no_secret(r, new_secret)
    assert r.json()["display_name"] == "GHE" and r.json()["updated_at"] >= gh["updated_at"] and r.json()["created_at"] == gh["created_at"]
    public = fed.api("GET", "/v1/auth/providers")
    assert public.status_code == 200, public.text
    assert gh_id in {p["id"] for p in public.json()["items"]}
    r = fed.api("PATCH", f"/v1/identity-providers/{gh_id}", root, json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False, r.text
    public = fed.api("GET", "/v1/auth/providers").json()["items"]
    assert gh_id not in {p["id"] for p in public}, "a disabled provider is offered"
    for item in public:
        assert set(item) == {"id", "display_name", "kind", "login_url"}, item
        assert urlsplit(item["login_url"]).path == f"/login/upstream/{item['id']}", item
    assert {p["id"] for p in public} >= {"github", "evil", "google", google_id}
    # A disabled provider starts no sign-in.
    r = requests.get(fed.url(f"/login/upstream/{gh_id}"), allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code in (400, 403, 404) and not r.is_redirect, f"a disabled provider's sign-in: {r.status_code} {r.headers.get('Location')}"

    # DELETE: 204, then 404 everywhere.
    assert fed.api("DELETE", f"/v1/identity-providers/{google_id}", root).status_code == 204
    problem(fed.api("GET", f"/v1/identity-providers/{google_id}", root), 404)
    problem(fed.api("DELETE", f"/v1/identity-providers/{google_id}", root), 404)
    problem(fed.api("PATCH", f"/v1/identity-providers/{google_id}", root, json={"display_name": "x"}), 404)
    assert google_id not in {p["id"] for p in fed.api("GET", "/v1/auth/providers").json()["items"]}

    # Audited in the platform log.
    for action, target_id in [("identity_provider.created", gh_id), ("identity_provider.created", google_id),
                              ("identity_provider.updated", gh_id), ("identity_provider.deleted", google_id)]:
        events = [e for e in fed.audit(action) if target_id in str(e.get("target")) or target_id in str(e.get("details"))]
        assert events, f"no {action} audit event for {target_id}"


def test_only_the_root_manages_providers(fed):
    address = fresh_email("notroot")
    fed.ok("POST", "/v1/users", None, 201, json={"email": address, "password": PASSWORD})
    user = fed.login(address, PASSWORD).json()["access_token"]
    before = fed.ok("GET", "/v1/identity-providers?limit=100", fed.root())
    body = {"id": "mine", "kind": "github", "display_name": "Mine", "client_id": "c", "client_secret": "s-0123456789"}
    for method, path, json_body in [("GET", "/v1/identity-providers", None), ("POST", "/v1/identity-providers", body),
                                    ("GET", "/v1/identity-providers/github", None),
                                    ("PATCH", "/v1/identity-providers/github", {"display_name": "Hijacked"}),
                                    ("DELETE", "/v1/identity-providers/github", None)]:
        problem(fed.api(method, path, user, json=json_body), 403)
        problem(fed.api(method, path, None, json=json_body), 401)
    assert fed.ok("GET", "/v1/identity-providers?limit=100", fed.root()) == before, "a refused request changed the providers"


BAD_PROVIDERS = {
    "uppercase id": {"id": "GitHub"},
    "id starting with a dash": {"id": "-gh"},
    "id of 33 characters": {"id": "a" * 33},
    "empty id": {"id": ""},
    "id with underscore": {"id": "gh_1"},
    "no id": {"id": None},
    "unknown kind": {"kind": "facebook"},
    "no kind": {"kind": None},
    "github with an issuer": {"issuer": "https://issuer.example"},
    "oidc without issuer": {"kind": "oidc", "web_base_url": None, "api_base_url": None},
    "oidc with web_base_url": {"kind": "oidc", "issuer": "https://issuer.example", "api_base_url": None},
    "issuer not a URL": {"kind": "oidc", "issuer": "not a url", "web_base_url": None, "api_base_url": None},
    "issuer not http": {"kind": "oidc", "issuer": "ftp://issuer.example", "web_base_url": None, "api_base_url": None},
    "web_base_url not a URL": {"web_base_url": "github dot com"},
    "no client_id": {"client_id": None},
    "empty client_id": {"client_id": ""},
    "no client_secret": {"client_secret": None},
    "scopes not a list": {"scopes": "read:user"},
    "scopes of numbers": {"scopes": [1, 2]},
    "enabled not a boolean": {"enabled": "yes"},
}


def without_updated_at(value):
    if isinstance(value, dict):
        return {k: without_updated_at(v) for k, v in value.items() if k != "updated_at"}
    if isinstance(value, list):
        return [without_updated_at(v) for v in value]
    return value


def test_bad_provider_input_is_a_400_problem_and_creates_nothing(fed):
    root = fed.root()
    before = fed.ok("GET", "/v1/identity-providers?limit=100", root)
    base = {"id": "bad-one", "kind": "github", "display_name": "Bad", "client_id": "client", "client_secret": "secret-0123456789",
            "web_base_url": "https://github.example", "api_base_url": "https://api.github.example"}
    failures = []
    for name, change in BAD_PROVIDERS.items():
        body = {k: v for k, v in (base | change).items() if v is not None}
        r = fed.api("POST", "/v1/identity-providers", root, json=body)
        try:
            problem(r, 400)
        except AssertionError as error:
            failures.append(f"{name}: {body} -> {error}")
    r = fed.api("POST", "/v1/identity-providers", root, json=[base])
    if r.status_code != 400:
        failures.append(f"a JSON array -> {r.status_code}")
    # PATCH: what may not change, and bad values; the provider stays as it was.
    github = fed.ok("GET", "/v1/identity-providers/github", root)
    for change in [{"issuer": "https://issuer.example"}, {"scopes": "read:user"}, {"enabled": "no"}, {"client_id": ""},
                   {"web_base_url": "nope"}]:
        r = fed.api("PATCH", "/v1/identity-providers/github", root, json=change)
        if r.status_code != 400:
            failures.append(f"PATCH {change} -> {r.status_code}")
    for change in [{"id": "renamed"}, {"kind": "oidc", "issuer": "https://issuer.example"}]:
        r = fed.api("PATCH", "/v1/identity-providers/github", root, json=change)
        if r.status_code not in (200, 400):
            failures.append(f"PATCH {change} -> {r.status_code}")
    after = fed.ok("GET", "/v1/identity-providers?limit=100", root)
    assert not failures, "bad provider input accepted or answered wrongly:\n" + "\n".join(failures)
    # (An accepted PATCH that changed nothing may still touch updated_at.)
    assert without_updated_at(after) == without_updated_at(before), f"refused input changed the providers:\n{before}\n{after}"
    assert without_updated_at(fed.ok("GET", "/v1/identity-providers/github", root)) == without_updated_at(github)
    problem(fed.api("GET", "/v1/identity-providers/renamed", root), 404)


def test_login_and_signup_pages_offer_the_enabled_providers_and_codes(fed):
    for path in ("/login", "/signup"):
        page = requests.get(fed.url(path), timeout=TIMEOUT)
        assert page.status_code == 200
        text = re.sub(r"\s+", " ", page.text)
        for provider in ("github", "evil", "google"):
            display = fed.providers[provider]["display_name"]
            assert f"Continue with {display}" in text, f"{path} has no 'Continue with {display}'"
            assert re.search(rf'href="(?:{re.escape(fed.base)})?/login/upstream/{provider}(?:\?[^"]*)?"', page.text), \
                f"{path} has no link to /login/upstream/{provider}"
    login = requests.get(fed.url("/login"), timeout=TIMEOUT).text
    assert re.search(r'<a [^>]*href="/login/code[^"]*"[^>]*>\s*E-mail me a code\s*</a>', login), "/login has no 'E-mail me a code' link"


# --- 2. GitHub ---------------------------------------------------------------------------------------

def test_github_first_sign_in_creates_the_account_and_the_next_finds_it(fed, github):
    address, name, gh_id = fresh_email("octo"), "Octo Cat", new_github_id()
    # /user keeps the address private (null); /user/emails has it, verified and primary, and another, unverified.
    github.sign_in_as(gh_id, name, primary=address, public_email=None,
                      extra=[{"email": fresh_email("octo-old"), "primary": False, "verified": False, "visibility": None}])
    users_before = fed.users()

    session = requests.Session()
    start, upstream = begin(fed, session, "github", return_to="/account")
    assert upstream.startswith(github.url + "/login/oauth/authorize?"), upstream
    q = peers.query_of(upstream)
    state_cookie = peers.set_cookies(start).get(peers.UPSTREAM_COOKIE)
    assert state_cookie, f"no {peers.UPSTREAM_COOKIE} cookie: {start.headers.get('Set-Cookie')}"
    assert "httponly" in state_cookie[1] and "samesite=lax" in state_cookie[1], state_cookie
    assert q.get("response_type") == "code" and q.get("client_id") == github.client_id
    assert q.get("redirect_uri") == fed.providers["github"]["redirect_uri"]
    assert set(q.get("scope", "").split()) >= {"read:user", "user:email"}, q
    assert q.get("state") and q["state"] == state_cookie[0] and len(q["state"]) >= 22, (q.get("state"), state_cookie)
    assert q.get("code_challenge_method") == "S256" and re.fullmatch(r"[A-Za-z0-9_-]{43}", q.get("code_challenge", "")), q
    peers.remember(q["state"])

    failures = len(github.token_failures)
    r = come_back(session, at_upstream(fed, session, upstream))
    assert not github.token_failures[failures:], f"GitHub refused the token request: {github.token_failures[failures:]}, {github.token_requests[-1:]}"
    exchange = github.token_requests[-1]
    assert "json" in exchange["accept"] and exchange["form"].get("code_verifier"), exchange
    assert_signed_in(fed, r, session, address)

    users = fed.users()
    assert set(users) - set(users_before) == {address}, "not exactly one new account"
    made = users[address]
    assert made["email_verified"] is True and made["name"] == name, made
    assert fed.login(address, PASSWORD).status_code == 401, "a federated account signs in with some password"

    tokens = code_tokens(fed, address)
    me = fed.ok("GET", "/v1/me", tokens["access_token"])
    assert (me["email"], me["name"], me["email_verified"]) == (address, name, True), me
    linked = identities(fed, tokens["access_token"])
    assert linked["has_password"] is False and linked["total"] == 1, linked
    identity = linked["items"][0]
    assert set(identity) >= {"id", "provider_id", "provider_name", "subject", "email", "created_at", "last_used_at"}, identity
    assert (identity["provider_id"], identity["provider_name"], identity["subject"], identity["email"]) == \
        ("github", "GitHub", str(gh_id), address), identity

    # Again, from another browser: the same account, found by (provider, subject).
    r, second = via(fed, "github")
    assert_signed_in(fed, r, second, address)
    assert set(fed.users()) == set(users), "a second sign-in made another account"
    again = identities(fed, tokens["access_token"])
    assert [i["id"] for i in again["items"]] == [identity["id"]], again
    assert again["items"][0]["last_used_at"] is not None

    target = f"user:{me['id']}"
    assert fed.audit("identity.linked", target), "the first sign-in's link is not audited as identity.linked"
    assert fed.audit("identity.signed_in", target), "no identity.signed_in audit event"


def test_github_address_is_the_verified_primary_not_the_public_one(fed, github):
    real, decoy = fresh_email("primary"), fresh_email("decoy")
    github.sign_in_as(new_github_id(), "Decoy Person", primary=real, public_email=decoy)
    r, session = via(fed, "github")
    assert_signed_in(fed, r, session, real)
    users = fed.users()
    assert real in users and decoy not in users


@pytest.mark.parametrize("secondary", [False, True], ids=["only-primary", "verified-secondary"])
def test_github_unverified_primary_address_makes_no_account(fed, github, secondary):
    primary = fresh_email("unverified")
    extra = [{"email": fresh_email("secondary"), "primary": False, "verified": True, "visibility": None}] if secondary else []
    github.sign_in_as(new_github_id(), "Unverified", primary=primary, verified=False, extra=extra)
    before = fed.snapshot()
    r, session = via(fed, "github")
    assert_refused(fed, r, session, 400)
    after = fed.snapshot()
    assert not diff(before, after), f"a refused sign-in changed something:\n{diff(before, after)}"


@pytest.mark.parametrize("spelling", ["same", "other-case"])
def test_github_address_of_an_existing_account_is_refused_without_linking(fed, github, spelling):
    address = verified_account(fed, "holder")
    upstream_address = address if spelling == "same" else address.upper()
    github.sign_in_as(new_github_id(), "Would Be Taken Over", primary=upstream_address)
    before = fed.snapshot()
    r, session = via(fed, "github")
    assert_refused(fed, r, session, 409, says="link")
    after = fed.snapshot()
    assert not diff(before, after), f"a refused sign-in changed something:\n{diff(before, after)}"
    token = fed.login(address, PASSWORD).json()["access_token"]
    assert identities(fed, token)["items"] == [], "the identity was linked to the account that has the address"


def test_link_github_to_a_password_account_sign_in_with_it_then_unlink(fed, github):
    address = verified_account(fed, "linker")
    token = fed.login(address, PASSWORD).json()["access_token"]
    me = fed.ok("GET", "/v1/me", token)
    gh_id = new_github_id()
    # The person's GitHub address is another one: linking is by the signed-in account, not by address.
    github.sign_in_as(gh_id, "Linker At GitHub", primary=fresh_email("linker-gh"))
    session = password_session(fed, address)

    # Without the form's token: refused, nothing happens.
    r = post_form(session, fed, "/account/identities/link", {"provider": "github"})
    assert r.status_code == 403, f"a link post without the CSRF token: {r.status_code}"
    before_users = set(fed.users())

    r = link(fed, session, "github")
    assert r.status_code in CALLBACK_REDIRECTS and urlsplit(peers.location(r)).path == "/account", f"{r.status_code} {r.headers.get('Location')}\n{r.text[:1500]}"
    assert set(fed.users()) == before_users, "linking made an account"
    linked = identities(fed, token)
    assert linked["has_password"] is True and [(i["provider_id"], i["subject"]) for i in linked["items"]] == [("github", str(gh_id))], linked
    identity_id = linked["items"][0]["id"]
    assert fed.audit("identity.linked", f"user:{me['id']}"), "linking is not audited"
    page = session.get(fed.url("/account"), timeout=TIMEOUT).text
    assert "GitHub" in page and len(peers.form_posting_to(page, f"/account/identities/{identity_id}/unlink")) == 1

    # Signing in with GitHub now opens this account.
    r, other = via(fed, "github")
    assert_signed_in(fed, r, other, address)
    assert set(fed.users()) == before_users

    # Unlinking from the page (the account has a password, so it may).
    r = unlink_page(fed, session, identity_id)
    assert r.status_code in (200, 302, 303), f"unlink: {r.status_code}\n{r.text[:1500]}"
    assert identities(fed, token)["items"] == [], "the identity is still linked"
    assert fed.audit("identity.unlinked", f"user:{me['id']}"), "unlinking is not audited"
    # And GitHub no longer opens it; now that GitHub gives the account's own address, it says to
    # sign in to the account and link, rather than signing in or making an account.
    github.sign_in_as(gh_id, "Linker At GitHub", primary=address)
    r, refused = via(fed, "github")
    assert_refused(fed, r, refused, 409)
    assert identities(fed, token)["items"] == []


def test_an_account_with_an_unproven_address_cannot_link(fed, github):
    """A squatter (an account made with someone else's address, never confirmed) must not add a
    way in that would outlive the owner's password reset: the link is refused before the upstream."""
    address = fresh_email("squatter")
    r = requests.post(fed.url("/v1/users"), json={"email": address, "password": PASSWORD}, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    session = password_session(fed, address)
    page = session.get(fed.url("/account"), timeout=TIMEOUT).text
    assert not peers.form_posting_to(page, "/account/identities/link"), "an unproven account is offered links"
    assert "confirm your e-mail address to link" in page.lower(), page[:3000]
    # The post made anyway, with the page's form token: refused before the upstream.
    tokens = {f["fields"].get("csrf") for f in peers.forms(page) if f["fields"].get("csrf")}
    before = fed.snapshot()
    r = post_form(session, fed, "/account/identities/link", {"csrf": tokens.pop(), "provider": "github"})
    assert r.is_redirect and urlsplit(peers.location(r)).path == "/account", f"{r.status_code} {r.headers.get('Location')}"
    assert peers.UPSTREAM_COOKIE not in peers.set_cookies(r), "a refused link started a flow"
    page = session.get(fed.url("/account"), timeout=TIMEOUT).text
    assert "confirm your e-mail address before linking" in page.lower(), page[:3000]
    assert not diff(before, fed.snapshot())


def test_an_identity_linked_to_one_account_cannot_be_linked_to_another(fed, github):
    first = fresh_email("first")
    gh_id = new_github_id()
    github.sign_in_as(gh_id, "First Owner", primary=first)
    r, session = via(fed, "github")
    assert_signed_in(fed, r, session, first)

    second = verified_account(fed, "second")
    token = fed.login(second, PASSWORD).json()["access_token"]
    github.sign_in_as(gh_id, "First Owner", primary=first)
    before = fed.snapshot()
    r = link(fed, password_session(fed, second), "github")
    assert r.status_code == 409 and not peers.sets_session(r), f"linking someone else's identity: {r.status_code}\n{r.text[:1500]}"
    assert identities(fed, token)["items"] == []
    assert not diff(before, fed.snapshot())


def test_the_last_way_to_sign_in_cannot_be_unlinked(fed, github, evil):
    address = fresh_email("lastway")
    github.sign_in_as(new_github_id(), "Last Way", primary=address)
    r, session = via(fed, "github")
    assert_signed_in(fed, r, session, address)
    token = code_tokens(fed, address)["access_token"]
    only = identities(fed, token)
    assert only["has_password"] is False and only["total"] == 1
    gh_identity = only["items"][0]["id"]

    problem(fed.api("DELETE", f"/v1/me/identities/{gh_identity}", token), 409, "last_credential")
    problem(fed.api("DELETE", f"/v1/me/identities/{uuid.uuid4()}", token), 404)
    # The page offers no Unlink for it, and a post made anyway is refused.
    r = unlink_page(fed, session, gh_identity, offered=False)
    # A 409 page, or back to /account with the message (the contract allows either).
    assert r.status_code == 409 or (r.is_redirect and urlsplit(peers.location(r)).path == "/account"), \
        f"unlinking the last way to sign in from the page: {r.status_code}"
    assert identities(fed, token)["total"] == 1

    # Someone else cannot unlink it either.
    other = fed.login(verified_account(fed, "stranger"), PASSWORD).json()["access_token"]
    problem(fed.api("DELETE", f"/v1/me/identities/{gh_identity}", other), 404)

    # A second way (Evil ID, well-behaved this once) makes either removable, not both.
    evil.act_as("lastway-" + uuid.uuid4().hex[:8], fresh_email("lastway-evil"), mode="good")
    r = link(fed, session, "evil")
    assert r.status_code in CALLBACK_REDIRECTS, f"linking a second provider: {r.status_code}\n{r.text[:1500]}"
    both = identities(fed, token)
    assert sorted(i["provider_id"] for i in both["items"]) == ["evil", "github"], both
    assert fed.api("DELETE", f"/v1/me/identities/{gh_identity}", token).status_code == 204
    remaining = identities(fed, token)["items"]
    assert [i["provider_id"] for i in remaining] == ["evil"]
    problem(fed.api("DELETE", f"/v1/me/identities/{remaining[0]['id']}", token), 409, "last_credential")


def test_github_refusing_the_code_with_http_200_is_a_failed_sign_in(fed, github):
    """GitHub answers a bad token request with HTTP 200 and an `error` field: that is no token."""
    provider_id = "gh-" + uuid.uuid4().hex[:8]
    created = fed.ok("POST", "/v1/identity-providers", fed.root(), 201, json={
        "id": provider_id, "kind": "github", "display_name": "Misconfigured Hub", "client_id": github.client_id,
        "client_secret": peers.remember("not-the-secret-" + secrets.token_hex(8)), "web_base_url": github.url,
        "api_base_url": github.url})
    github.callbacks.add(created["redirect_uri"])
    github.sign_in_as(new_github_id(), "Misconfigured", primary=fresh_email("misconfigured"))
    failures = len(github.token_failures)
    before = fed.snapshot()
    r, session = via(fed, provider_id)
    assert github.token_failures[failures:] == ["incorrect_client_credentials"], github.token_failures[failures:]
    assert_refused(fed, r, session, 400)
    assert not diff(before, fed.snapshot())
    assert fed.api("DELETE", f"/v1/identity-providers/{provider_id}", fed.root()).status_code == 204


def test_the_person_saying_no_at_the_upstream_is_a_failed_sign_in(fed, evil):
    session = requests.Session()
    _, upstream = begin(fed, session, "evil")
    state = peers.query_of(upstream)["state"]
    callback = fed.providers["evil"]["redirect_uri"] + "?" + urlencode(
        {"error": "access_denied", "error_description": "The user said no", "state": state})
    assert_refused(fed, come_back(session, callback), session, 400)


def test_return_to_stays_on_this_server(fed, github):
    github.sign_in_as(new_github_id(), "Returner", primary=(address := fresh_email("return")))
    r, session = via(fed, "github", return_to="/account/keys")
    assert_signed_in(fed, r, session, address, to="/account/keys")
    for target in ("//elsewhere.example/account", "https://elsewhere.example/", "/\\elsewhere.example"):
        r, session = via(fed, "github", return_to=target)
        assert r.status_code in CALLBACK_REDIRECTS and peers.location(r) == fed.url("/account"), f"return_to={target!r} led to {peers.location(r)}"


def test_deleting_a_provider_removes_its_identities(fed, github):
    root = fed.root()
    provider_id = "gh-" + uuid.uuid4().hex[:8]
    created = fed.ok("POST", "/v1/identity-providers", root, 201, json={
        "id": provider_id, "kind": "github", "display_name": "Doomed Hub", "client_id": github.client_id,
        "client_secret": github.client_secret, "web_base_url": github.url, "api_base_url": github.url})
    github.callbacks.add(created["redirect_uri"])
    fed.providers[provider_id] = created
    address = verified_account(fed, "doomed")
    token = fed.login(address, PASSWORD).json()["access_token"]
    github.sign_in_as(new_github_id(), "Doomed", primary=fresh_email("doomed-gh"))
    assert link(fed, password_session(fed, address), provider_id).status_code in CALLBACK_REDIRECTS
    assert [i["provider_id"] for i in identities(fed, token)["items"]] == [provider_id]
    assert fed.api("DELETE", f"/v1/identity-providers/{provider_id}", root).status_code == 204
    del fed.providers[provider_id]
    assert identities(fed, token)["items"] == [], "the deleted provider's identity is still linked"
    r = requests.get(fed.url(f"/login/upstream/{provider_id}"), allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 404, f"a deleted provider's sign-in: {r.status_code}"


# --- 3. invite-only signup -------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_invite_only_signup_refuses_unknown_identities_but_takes_an_invite(backend, tmp_path, github, evil, google):
    with smtp_sink(tmp_path) as sink, federation_server(backend, tmp_path, sink, github, evil, google, SIGNUP="invite_only") as fed:
        stranger = fresh_email("stranger")
        github.sign_in_as(new_github_id(), "Stranger", primary=stranger)
        before = fed.snapshot()
        r, session = via(fed, "github")
        assert_refused(fed, r, session, 403)
        assert not diff(before, fed.snapshot()), "a refused invite-only sign-in changed something"

        invited = fresh_email("invited")
        fed.ok("POST", "/v1/platform-invites", fed.root(), 201, json={"email": invited})
        invite_token = sink.link(invited, fed.url("/signup?invite_token=")).split("invite_token=", 1)[1]
        # The token is for `invited`: an upstream with another address does not get in with it.
        github.sign_in_as(new_github_id(), "Token Thief", primary=fresh_email("thief"))
        before = fed.snapshot()
        r, session = via(fed, "github", invite_token=invite_token)
        assert_refused(fed, r, session, (400, 403))
        assert not diff(before, fed.snapshot())

        gh_id = new_github_id()
        github.sign_in_as(gh_id, "Invited Person", primary=invited)
        r, session = via(fed, "github", invite_token=invite_token)
        # Where the invitee's invitations wait (the server's choice for an invited signup; the
        # contract's default is /account).
        assert_signed_in(fed, r, session, invited, to="/account/invites")
        assert fed.users()[invited]["email_verified"] is True
        # Known now: no token needed.
        r, session = via(fed, "github")
        assert_signed_in(fed, r, session, invited)


def test_a_provider_that_does_not_answer_is_a_502_page_and_changes_nothing(fed):
    """An OpenID provider whose issuer is down: the start cannot fetch its discovery document. The
    person gets a page saying so (502, not a 500 and not a blank error), no flow cookie, no change."""
    provider = "down-" + uuid.uuid4().hex[:6]
    fed.ok("POST", "/v1/identity-providers", fed.root(), 201, json={
        "id": provider, "kind": "oidc", "client_id": "c", "client_secret": "s", "issuer": "http://127.0.0.1:9"})
    try:
        before = fed.snapshot()
        r = requests.get(fed.url(f"/login/upstream/{provider}"), allow_redirects=False, timeout=TIMEOUT)
        assert r.status_code == 502, f"{r.status_code}: {r.text[:1500]}"
        assert r.headers.get("Content-Type", "").startswith("text/html") and "could not be reached" in r.text, r.text[:1500]
        assert peers.UPSTREAM_COOKIE not in peers.set_cookies(r)
        assert not diff(before, fed.snapshot())
    finally:
        fed.ok("DELETE", f"/v1/identity-providers/{provider}", fed.root(), 204)


def test_starting_sign_ins_is_budgeted_per_client(tmp_path, github, evil, google):
    """Each start writes a flow, so starts take from the client's sign-in budget like the forms do:
    past the burst a start is a 429 page and writes nothing (PORTCULLIS_IP_BURST)."""
    with smtp_sink(tmp_path) as sink, federation_server("sqlite", tmp_path, sink, github, evil, google, IP_BURST="3", IP_PER_MINUTE="1") as fed:
        session = requests.Session()
        answers = [session.get(fed.url("/login/upstream/github"), allow_redirects=False, timeout=TIMEOUT) for _ in range(5)]
        codes = [r.status_code for r in answers]
        # The root's login for the setup took one; the others start until the bucket is empty.
        assert codes[0] == 302 and codes[-1] == 429, codes
        refused = answers[-1]
        assert refused.headers.get("Content-Type", "").startswith("text/html"), refused.headers
        assert peers.UPSTREAM_COOKIE not in peers.set_cookies(refused), "a refused start set a flow cookie"


# --- 4. attacks against the OpenID flow (the evil issuer) -----------------------------------------

def canary(fed: Fed, evil) -> dict:
    """An account made by a well-behaved Evil ID sign-in: what the attacks try to take over."""
    if fed.canary is None:
        address, subject = fresh_email("canary"), "canary-" + uuid.uuid4().hex[:8]
        evil.act_as(subject, address, "Canary", mode="good")
        session = requests.Session()
        _, upstream = begin(fed, session, "evil")
        q = peers.query_of(upstream)
        assert q.get("nonce") and q.get("state") and q.get("code_challenge_method") == "S256", q
        assert q.get("response_type") == "code" and q.get("redirect_uri") == fed.providers["evil"]["redirect_uri"]
        assert "openid" in q.get("scope", "").split()
        r = come_back(session, at_upstream(fed, session, upstream))
        assert_signed_in(fed, r, session, address)
        fed.canary = {"email": address, "subject": subject}
    return fed.canary


BAD_TOKENS = ["wrong_aud", "wrong_iss", "expired", "other_nonce", "missing_nonce", "foreign_key", "alg_none", "hs256_public_key"]


# Each bad token for the canary's own subject (a takeover) and for a new one (an account made);
# an unverified address only for a new one (a linked identity is found by its subject, not its address).
ATTACKS = [(mode, who) for mode in BAD_TOKENS for who in ("known", "new")] + [("unverified_email", "new")]


@pytest.mark.parametrize("mode,who", ATTACKS, ids=[f"{m}-{w}" for m, w in ATTACKS])
def test_a_bad_id_token_signs_nobody_in(fed, evil, mode, who):
    target = canary(fed, evil)
    if mode == "other_nonce":
        # A nonce Portcullis really issued, for another sign-in at this provider: the ID token below
        # carries it (a token replayed from that sign-in).
        warmup = requests.Session()
        _, upstream = begin(fed, warmup, "evil")
        at_upstream(fed, warmup, upstream)
    if who == "known":
        evil.act_as(target["subject"], target["email"], "Canary", mode=mode)
    else:
        evil.act_as("new-" + uuid.uuid4().hex[:8], fresh_email(f"evil-{mode}"), "Newcomer", mode=mode)
    before = fed.snapshot()
    session = requests.Session()
    _, upstream = begin(fed, session, "evil")
    callback = at_upstream(fed, session, upstream)
    if mode == "other_nonce":
        with evil.lock:
            grant = evil._codes[peers.query_of(callback)["code"]]
            assert grant["previous_nonce"] and grant["previous_nonce"] != grant["query"].get("nonce")
    r = come_back(session, callback)
    assert_refused(fed, r, session, 400)
    after = fed.snapshot()
    assert not diff(before, after), f"a {mode} ID token changed something:\n{diff(before, after)}"


def test_a_callback_with_a_wrong_or_foreign_state_is_refused(fed, evil):
    target = canary(fed, evil)
    evil.act_as(target["subject"], target["email"], mode="good")
    before = fed.snapshot()

    # The state altered (this browser's cookie intact).
    session = requests.Session()
    _, upstream = begin(fed, session, "evil")
    callback = at_upstream(fed, session, upstream)
    q = peers.query_of(callback)
    forged = callback.replace(f"state={q['state']}", "state=" + secrets.token_urlsafe(32))
    assert_refused(fed, come_back(session, forged), session, 400)
    # No state at all.
    session = requests.Session()
    _, upstream = begin(fed, session, "evil")
    callback = at_upstream(fed, session, upstream)
    bare = fed.url(urlsplit(callback).path) + "?" + urlencode({"code": peers.query_of(callback)["code"]})
    assert_refused(fed, come_back(session, bare), session, 400)

    # The callback of a sign-in another browser started (login CSRF): this browser has no cookie...
    victim = requests.Session()
    _, upstream = begin(fed, requests.Session(), "evil")
    callback = at_upstream(fed, requests.Session(), upstream)
    assert_refused(fed, come_back(victim, callback), victim, 400, says="another browser")
    # ... or the cookie of its own, other sign-in.
    victim = requests.Session()
    begin(fed, victim, "evil")
    _, upstream = begin(fed, requests.Session(), "evil")
    callback = at_upstream(fed, requests.Session(), upstream)
    assert_refused(fed, come_back(victim, callback), victim, 400)
    assert not diff(before, fed.snapshot())


def test_a_callback_works_once(fed, evil):
    target = canary(fed, evil)
    evil.act_as(target["subject"], target["email"], mode="good")
    session = requests.Session()
    start, upstream = begin(fed, session, "evil")
    state_cookie = peers.set_cookies(start)[peers.UPSTREAM_COOKIE][0]
    callback = at_upstream(fed, session, upstream)
    assert_signed_in(fed, come_back(session, callback), session, target["email"])
    # The same callback again, from a browser with the same state cookie (an attacker who copied
    # both, or the back button): refused.
    for attempt in range(2):
        replay = requests.Session()
        replay.cookies.set(peers.UPSTREAM_COOKIE, state_cookie)
        assert_refused(fed, come_back(replay, callback), replay, 400)
    # And in the browser that finished it.
    assert not peers.sets_session(come_back(session, callback))


def test_google_first_sign_in_creates_the_account_and_the_next_finds_it(fed, google):
    sub, address, name = "g-" + uuid.uuid4().hex[:12], fresh_email("gmail"), "Grace From Google"
    google.set_user(sub, address, name)
    before = set(fed.users())

    def approve(session, url):
        q = peers.query_of(url)
        assert q.get("nonce") and q.get("state") and q.get("code_challenge_method") == "S256", q
        assert set(q.get("scope", "").split()) >= {"openid", "email", "profile"}, q
        return google.approve(session, url, sub)

    r, session = via(fed, "google", approve=approve)
    assert_signed_in(fed, r, session, address)
    users = fed.users()
    assert set(users) - before == {address} and users[address]["name"] == name and users[address]["email_verified"] is True
    token = code_tokens(fed, address)["access_token"]
    linked = identities(fed, token)
    assert [(i["provider_id"], i["subject"], i["email"]) for i in linked["items"]] == [("google", sub, address)], linked

    r, session = via(fed, "google", approve=approve)
    assert_signed_in(fed, r, session, address)
    assert set(fed.users()) == set(users)
    me = fed.ok("GET", "/v1/me", token)
    assert len(fed.audit("identity.signed_in", f"user:{me['id']}")) >= 1


def test_google_unverified_address_makes_no_account(fed, google):
    sub, address = "g-" + uuid.uuid4().hex[:12], fresh_email("gmail-unverified")
    google.set_user(sub, address, "Unverified Google", email_verified=False)
    before = fed.snapshot()
    r, session = via(fed, "google", approve=lambda s, u: google.approve(s, u, sub))
    assert_refused(fed, r, session, 400)
    assert not diff(before, fed.snapshot())


# --- 5. e-mail codes -----------------------------------------------------------------------------------

def request_code(fed: Fed, address, session: requests.Session | None = None) -> requests.Response:
    return (session or requests).post(fed.url("/v1/auth/email-code"), json={"email": address}, timeout=TIMEOUT)


def verify_code(fed: Fed, body: dict, session: requests.Session | None = None) -> requests.Response:
    return (session or requests).post(fed.url("/v1/auth/email-code/verify"), json=body, timeout=TIMEOUT)


def check_started(r: requests.Response) -> str:
    assert r.status_code == 202, f"email-code: {r.status_code} {r.text}"
    body = r.json()
    assert set(body) == {"flow_id", "expires_in"} and body["expires_in"] == 600, body
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", body["flow_id"]), body
    cookie = peers.set_cookies(r).get(peers.CODE_FLOW_COOKIE)
    assert cookie and cookie[0], f"no {peers.CODE_FLOW_COOKIE} cookie"
    assert "httponly" in cookie[1], cookie
    return peers.remember(body["flow_id"])


def test_an_email_code_signs_a_verified_account_in(fed):
    address = verified_account(fed, "coder")
    flow = check_started(request_code(fed, address))
    code, subject = peers.mailed_code(fed.sink, address)
    r = verify_code(fed, {"email": address, "code": code, "flow_id": flow})
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert set(tokens) >= {"access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in", "user"}, tokens
    assert tokens["token_type"] == "Bearer" and tokens["user"]["email"] == address
    assert fed.ok("GET", "/v1/me", tokens["access_token"])["email"] == address
    refreshed = fed.api("POST", "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert fed.ok("GET", "/v1/me", new["access_token"])["email"] == address
    assert fed.api("POST", "/v1/auth/logout", new["access_token"]).status_code == 204
    assert fed.api("GET", "/v1/me", new["access_token"]).status_code == 401, "the access token outlived logout"

    # The flow id may come from the cookie instead of the body.
    browser = requests.Session()
    check_started(request_code(fed, address, browser))
    code, _ = peers.mailed_code(fed.sink, address)
    r = verify_code(fed, {"email": address, "code": code}, browser)
    assert r.status_code == 200 and r.json()["user"]["email"] == address, r.text


def test_an_email_code_request_answers_alike_for_every_address(fed):
    verified = verified_account(fed, "known")
    unverified = fresh_email("unconfirmed")
    fed.ok("POST", "/v1/users", None, 201, json={"email": unverified, "password": PASSWORD})
    unknown = fresh_email("nobody")
    answers = {}
    for address in (verified, unverified, unknown):
        r = request_code(fed, address)
        check_started(r)
        answers[address] = (r.status_code, sorted(r.json()), sorted(peers.set_cookies(r)))
    assert answers[verified] == answers[unverified] == answers[unknown], answers
    peers.mailed_code(fed.sink, verified)
    time.sleep(1)  # the outbox had its chance: the verified address's mail came
    assert peers.no_code_mail(fed.sink, unknown) and peers.no_code_mail(fed.sink, unverified), "a code went to an address that may not sign in with one"
    flow = request_code(fed, unknown).json()["flow_id"]
    problem(verify_code(fed, {"email": unknown, "code": "123456", "flow_id": flow}), 401, "invalid_code")


def test_five_wrong_codes_kill_the_code(fed):
    address = verified_account(fed, "guesser")
    flow = check_started(request_code(fed, address))
    code, _ = peers.mailed_code(fed.sink, address)
    wrong = [f"{(int(code) + k) % 1000000:06d}" for k in range(1, 6)]
    for guess in wrong:
        problem(verify_code(fed, {"email": address, "code": guess, "flow_id": flow}), 401, "invalid_code")
    problem(verify_code(fed, {"email": address, "code": code, "flow_id": flow}), 401, "invalid_code")


def test_a_used_code_does_not_work_again(fed):
    address = verified_account(fed, "reuser")
    flow = check_started(request_code(fed, address))
    code, _ = peers.mailed_code(fed.sink, address)
    assert verify_code(fed, {"email": address, "code": code, "flow_id": flow}).status_code == 200
    problem(verify_code(fed, {"email": address, "code": code, "flow_id": flow}), 401, "invalid_code")


def test_a_code_belongs_to_its_flow(fed):
    address = verified_account(fed, "twoflows")
    first = check_started(request_code(fed, address))
    first_code, _ = peers.mailed_code(fed.sink, address)
    second = check_started(request_code(fed, address))
    second_code, _ = peers.mailed_code(fed.sink, address)
    assert first != second
    if first_code == second_code:
        pytest.skip("the two codes happen to be equal (one chance in a million)")
    problem(verify_code(fed, {"email": address, "code": first_code, "flow_id": second}), 401, "invalid_code")
    # Another address's flow with this address's code: refused too.
    other = verified_account(fed, "otherflow")
    other_flow = check_started(request_code(fed, other))
    peers.mailed_code(fed.sink, other)
    problem(verify_code(fed, {"email": address, "code": second_code, "flow_id": other_flow}), 401, "invalid_code")
    # The second flow's own code still works: the refusals were about the pairing.
    r = verify_code(fed, {"email": address, "code": second_code, "flow_id": second})
    assert r.status_code == 200, r.text


def test_email_code_requests_are_throttled_per_address(fed):
    known, unknown = verified_account(fed, "flooded"), fresh_email("flooded-nobody")
    for address in (known, unknown):
        for attempt in range(5):
            check_started(request_code(fed, address))
        r = request_code(fed, address)
        problem(r, 429, "rate_limited")
        assert int(r.headers.get("Retry-After", "0")) > 0, r.headers
    # Per address: someone else still gets a code.
    check_started(request_code(fed, fresh_email("bystander")))


def test_malformed_email_code_requests_are_400(fed):
    failures = []
    for body in [{"email": "not-an-address"}, {"email": ""}, {}, {"email": 5}, {"email": "a@"}, {"email": "@example.com"},
                 {"email": "x" * 250 + "@example.com"}, {"email": "two@@example.com"}]:
        r = fed.api("POST", "/v1/auth/email-code", json=body)
        if r.status_code != 400 or not r.headers.get("Content-Type", "").startswith("application/problem+json"):
            failures.append(f"{body}: {r.status_code} {r.text[:200]}")
    assert not failures, "malformed requests not answered 400:\n" + "\n".join(failures)
    # No flow id, in the body or a cookie.
    problem(verify_code(fed, {"email": fresh_email("noflow"), "code": "123456"}), 400)


# --- 6. the logs ----------------------------------------------------------------------------------------

def test_zz_no_upstream_secret_in_the_server_logs(fed):
    """Client secrets, upstream codes and tokens, states and flow ids never reach a log line
    (this backend's server, and the invite-only ones that ran before)."""
    assert SERVER_LOGS, "no server ran"
    secrets_to_find = [s for s in peers.FEDERATION_SECRETS if len(s) >= 8]
    assert len(secrets_to_find) > 10, "the tests recorded too few upstream secrets to make this check mean something"
    leaks = []
    for path in SERVER_LOGS:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for secret in secrets_to_find:
                if secret in line:
                    leaks.append(f"{path}:{number}: {secret[:6]}… in {line[:300]}")
    assert not leaks, "upstream secrets in server logs:\n" + "\n".join(leaks[:20])


# --- "Log in with Portcullis" after another way in ----------------------------------------------------

RP_CALLBACK = "http://127.0.0.1:9/rp/callback"  # never fetched: the relying party reads the redirect


@pytest.mark.parametrize("way", ["github", "code"])
def test_log_in_with_portcullis_works_the_same_whichever_way_the_person_signed_in(fed, github, way):
    """An OpenID client (Authlib as the relying party) sends a person to Portcullis; they sign in
    through GitHub, or with a mailed code, on the login page it led to, and come back to the
    authorization with the client's code: its ID token names the same account as the API does."""
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.jose import JsonWebKey, jwt

    if way == "github":
        address = fresh_email("rp-github")
        github.sign_in_as(new_github_id(), "Rita Party", primary=address)
        r, first = via(fed, "github")  # the account exists (first sign-in); this browser is not used again
        assert_signed_in(fed, r, first, address)
    else:
        address = verified_account(fed, "rp-code", "Rita Party")
    account_id = fed.users()[address]["id"]

    client = fed.ok("POST", "/v1/clients", fed.root(), 201, json={
        "name": "Wiki", "redirect_uris": [RP_CALLBACK], "scopes": ["openid", "profile", "email"], "first_party": True})
    peers.remember(client["client_secret"])
    discovery = requests.get(fed.url("/.well-known/openid-configuration"), timeout=TIMEOUT).json()
    rp = OAuth2Session(client["client_id"], client["client_secret"], scope="openid profile email", redirect_uri=RP_CALLBACK,
                       token_endpoint_auth_method="client_secret_basic", code_challenge_method="S256")
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, state = rp.create_authorization_url(discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce)

    browser = requests.Session()
    to_login = peers.location(browser.get(url, allow_redirects=False, timeout=TIMEOUT))
    assert urlsplit(to_login).path == "/login", to_login
    login_page = browser.get(to_login, timeout=TIMEOUT).text
    if way == "github":
        links = [html.unescape(h) for h in re.findall(r'<a class="button secondary" href="([^"]+)" data-provider="github"', login_page)]
        assert len(links) == 1 and "return_to=" in links[0], links
        _, upstream = begin(fed, browser, "github", **dict(peers.query_of(fed.url(links[0]))))
        back = come_back(browser, at_upstream(fed, browser, upstream))
    else:
        (code_link,) = [html.unescape(h) for h in re.findall(r'href="([^"]+)" id="email-code"', login_page)]
        assert "return_to=" in code_link, code_link
        page = browser.get(fed.url(code_link), timeout=TIMEOUT).text
        (ask,) = peers.form_posting_to(page, "/login/code")
        r = post_form(browser, fed, "/login/code", {**ask["fields"], "email": address})
        assert r.status_code == 200, r.text[:1500]
        (enter,) = peers.form_posting_to(r.text, "/login/code/verify")
        code, _ = peers.mailed_code(fed.sink, address)
        back = post_form(browser, fed, "/login/code/verify", {**enter["fields"], "code": code})
    assert peers.sets_session(back), f"{back.status_code}: {back.text[:1500]}"
    if way == "github":
        # Back from the provider to an authorization: a page that goes on by itself (a redirect
        # would be held to the provider's form-action), with a link for a browser that does not.
        assert back.status_code == 200, f"{back.status_code}: {back.text[:1500]}"
        (target,) = [html.unescape(u) for u in re.findall(r'<meta http-equiv="refresh" content="0;url=([^"]+)">', back.text)]
        assert f'href="{html.escape(target)}"' in back.text or f'href="{target}"' in back.text, back.text[:1500]
        authorize = fed.url(target)
    else:
        assert back.is_redirect, f"{back.status_code}: {back.text[:1500]}"
        authorize = peers.location(back)
    assert urlsplit(authorize).path == urlsplit(discovery["authorization_endpoint"]).path, authorize
    # First-party: no consent screen; the authorization goes straight back to the client.
    answer = peers.location(browser.get(authorize, allow_redirects=False, timeout=TIMEOUT))
    assert answer.startswith(RP_CALLBACK + "?") and peers.query_of(answer).get("state") == state, answer
    token = rp.fetch_token(discovery["token_endpoint"], authorization_response=answer, code_verifier=verifier)
    keys = JsonWebKey.import_key_set(requests.get(discovery["jwks_uri"], timeout=TIMEOUT).json())
    claims = jwt.decode(token["id_token"], keys, claims_options={
        "iss": {"essential": True, "value": discovery["issuer"]},
        "aud": {"essential": True, "value": client["client_id"]},
        "nonce": {"essential": True, "value": nonce},
    })
    claims.validate()
    assert (claims["sub"], claims["email"], claims["email_verified"]) == (account_id, address, True), dict(claims)
