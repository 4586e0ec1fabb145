"""Upstream identity providers for the federation tests (SPEC §15), run inside the test process:

- `GitHubStandIn`: GitHub's documented OAuth web flow (`/login/oauth/authorize`,
  `/login/oauth/access_token`) and the two API calls a sign-in needs (`/user`, `/user/emails`), with
  GitHub's own habits: errors of the token endpoint come back as HTTP 200 with an `error` field,
  form-encoded unless JSON is asked for; the API refuses a request without a User-Agent; `/user/emails`
  needs the `user:email` scope. The test chooses the user the next authorization signs in.
- `EvilIssuer`: an OpenID provider that misbehaves on request (the `mode`): ID tokens for another
  audience, from another issuer, expired, with another nonce, signed with a key it does not publish,
  `alg: none`, HS256 keyed with its public key, or a verified-looking token with `email_verified: false`.
- `google_mock()`: oidc-provider-mock (a real OpenID provider built on Authlib) as the "Google" side.
- `upstream_portcullis()`: a second Portcullis, at http://localhost:<port> (so a browser keeps its
  cookies apart from the one under test at 127.0.0.1), to be the upstream OpenID provider.

Also the small shared helpers of test_federation.py and test_federation_browser.py: following the
browser flow with a requests.Session, reading a mailed sign-in code, reading Set-Cookie headers."""

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from html.parser import HTMLParser
from urllib.parse import parse_qs, unquote_plus, urlencode, urljoin, urlsplit

import jwt
import pytest
import requests
import werkzeug.serving
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import secrets_seen
from portcullis_server import METRICS_TOKEN, ServerStartError, free_port, serve_process

TIMEOUT = 10
SESSION_COOKIE = "portcullis_session"
UPSTREAM_COOKIE = "portcullis_upstream"
CODE_FLOW_COOKIE = "portcullis_code_flow"

# Every credential the peers hand out or the tests make up for them (client secrets, upstream codes
# and tokens, states): test_federation.py checks that none reaches the server's log.
FEDERATION_SECRETS: set[str] = set()


def remember(value: str) -> str:
    FEDERATION_SECRETS.add(value)
    secrets_seen.note(value)
    return value


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode()).digest())


# --- a tiny threaded HTTP server the peers share ----------------------------------------------------

class Answer:
    def __init__(self, status: int, body=b"", headers: dict | None = None):
        self.status, self.headers = status, dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            self.headers.setdefault("Content-Type", "application/json; charset=utf-8")
        elif isinstance(body, str):
            body = body.encode()
            self.headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        self.body = body


def redirect(location: str) -> Answer:
    return Answer(302, b"", {"Location": location})


def with_query(url: str, **params) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


class Request:
    def __init__(self, method: str, path: str, query: dict, headers, body: bytes):
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body

    def form(self) -> dict:
        return {k: v[0] for k, v in parse_qs(self.body.decode(errors="replace"), keep_blank_values=True).items()}

    def bearer(self) -> str | None:
        value = self.headers.get("Authorization", "")
        for scheme in ("bearer ", "token "):
            if value.lower().startswith(scheme):
                return value[len(scheme):].strip()
        return None

    def basic(self) -> tuple[str, str] | None:
        value = self.headers.get("Authorization", "")
        if not value.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(value[6:].strip()).decode().partition(":")
        except ValueError:
            return None
        return unquote_plus(user), unquote_plus(password)


class Peer:
    """An HTTP server on 127.0.0.1 and a free port, answering through `self.handle(request)`."""

    def __init__(self):
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _serve(self):
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
                try:
                    answer = peer.handle(Request(self.command, split.path, query, self.headers, body))
                except Exception as error:  # a bug in the peer: say so, loudly
                    peer.errors.append(repr(error))
                    answer = Answer(500, f"peer error: {error!r}")
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def handle(self, request: Request) -> Answer:
        raise NotImplementedError

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
        assert not self.errors, f"the {type(self).__name__} peer failed: {self.errors}"


# --- GitHub ------------------------------------------------------------------------------------------

class GitHubUser:
    def __init__(self, id: int, login: str, name: str | None, email: str | None, emails: list[dict]):
        self.id, self.login, self.name, self.email, self.emails = id, login, name, email, emails


class GitHubStandIn(Peer):
    """GitHub's OAuth web flow and API as documented (docs.github.com: "Authorizing OAuth apps",
    "Get the authenticated user", "List email addresses for the authenticated user"), web and API
    on one base URL. `next_user` is who the next authorization signs in (GitHub auto-approves)."""

    def __init__(self):
        super().__init__()
        self.client_id = "Iv1." + secrets.token_hex(8)
        self.client_secret = remember("ghsecret_" + secrets.token_hex(20))
        self.next_user: GitHubUser | None = None
        # The app's registered callback URLs (GitHub refuses any other redirect_uri); empty: any.
        self.callbacks: set[str] = set()
        self.authorize_requests: list[dict] = []
        self.token_requests: list[dict] = []
        self.api_requests: list[tuple[str, dict]] = []
        self.token_failures: list[str] = []
        self._codes: dict[str, dict] = {}
        self._tokens: dict[str, dict] = {}

    def sign_in_as(self, id: int, name: str | None, primary: str | None, verified: bool = True,
                   public_email: str | None = None, extra: list[dict] | None = None, login: str | None = None) -> GitHubUser:
        """The next authorization signs in this user: `primary` is the primary address of
        /user/emails (verified or not), `public_email` what /user says (GitHub gives null when the
        person keeps the address private), `extra` more /user/emails entries."""
        emails = []
        if primary:
            emails.append({"email": primary, "primary": True, "verified": verified, "visibility": "private"})
        emails += extra or []
        user = GitHubUser(id, login or f"octo{id}", name, public_email, emails)
        with self.lock:
            self.next_user = user
        return user

    def handle(self, r: Request) -> Answer:
        if r.method == "GET" and r.path == "/login/oauth/authorize":
            return self._authorize(r)
        if r.method == "POST" and r.path == "/login/oauth/access_token":
            return self._access_token(r)
        if r.method == "GET" and r.path in ("/user", "/user/emails"):
            return self._api(r)
        return Answer(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})

    def _authorize(self, r: Request) -> Answer:
        with self.lock:
            self.authorize_requests.append(dict(r.query))
            user = self.next_user
        if r.query.get("client_id") != self.client_id:
            return Answer(404, "unknown client_id")  # GitHub shows a 404 page
        redirect_uri = r.query.get("redirect_uri")
        if not redirect_uri or user is None:
            return Answer(400, "redirect_uri missing or no user chosen by the test")
        if self.callbacks and redirect_uri not in self.callbacks:
            return Answer(400, "The redirect_uri is not associated with this application.")
        code = remember(secrets.token_hex(10))
        with self.lock:
            self._codes[code] = {"client_id": self.client_id, "redirect_uri": redirect_uri, "user": user,
                                 "challenge": r.query.get("code_challenge"), "method": r.query.get("code_challenge_method"),
                                 "scope": r.query.get("scope", ""), "used": False}
        params = {"code": code}
        if "state" in r.query:
            params["state"] = r.query["state"]
        return redirect(with_query(redirect_uri, **params))

    def _token_error(self, r: Request, error: str, description: str) -> Answer:
        with self.lock:
            self.token_failures.append(error)
        body = {"error": error, "error_description": description,
                "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"}
        # GitHub answers token errors with HTTP 200.
        if "json" in r.headers.get("Accept", ""):
            return Answer(200, body)
        return Answer(200, urlencode(body), {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})

    def _access_token(self, r: Request) -> Answer:
        form = r.form()
        with self.lock:
            self.token_requests.append({"form": dict(form), "accept": r.headers.get("Accept", ""),
                                        "basic": r.basic() is not None})
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if r.basic():
            client_id, client_secret = r.basic()
        if client_id != self.client_id or not hmac.compare_digest((client_secret or "").encode(), self.client_secret.encode()):
            return self._token_error(r, "incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
        with self.lock:
            grant = self._codes.get(form.get("code", ""))
            fresh = grant is not None and not grant["used"]
            if grant is not None:
                grant["used"] = True
        if not fresh or grant["client_id"] != client_id:
            return self._token_error(r, "bad_verification_code", "The code passed is incorrect or expired.")
        if "redirect_uri" in form and form["redirect_uri"] != grant["redirect_uri"]:
            return self._token_error(r, "redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.")
        if grant["challenge"]:
            verifier = form.get("code_verifier", "")
            if grant["method"] != "S256" or not verifier or s256(verifier) != grant["challenge"]:
                return self._token_error(r, "bad_verification_code", "The code_verifier does not match the code_challenge.")
        token = remember("gho_" + secrets.token_urlsafe(27))
        scope = ",".join(s for s in re.split(r"[ ,]+", grant["scope"]) if s)
        with self.lock:
            self._tokens[token] = {"user": grant["user"], "scopes": set(scope.split(","))}
        body = {"access_token": token, "token_type": "bearer", "scope": scope}
        if "json" in r.headers.get("Accept", ""):
            return Answer(200, body)
        return Answer(200, urlencode(body), {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})

    def _api(self, r: Request) -> Answer:
        with self.lock:
            self.api_requests.append((r.path, {"user_agent": r.headers.get("User-Agent"), "accept": r.headers.get("Accept")}))
        if not r.headers.get("User-Agent"):
            return Answer(403, {"message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header"})
        with self.lock:
            grant = self._tokens.get(r.bearer() or "")
        if grant is None:
            return Answer(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
        user: GitHubUser = grant["user"]
        if r.path == "/user":
            return Answer(200, {"login": user.login, "id": user.id, "node_id": f"U_{user.id}", "type": "User",
                                "avatar_url": f"https://avatars.example/u/{user.id}", "site_admin": False,
                                "name": user.name, "email": user.email})
        if not grant["scopes"] & {"user:email", "user"}:
            return Answer(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest/users/emails"})
        return Answer(200, user.emails)


# --- a misbehaving OpenID provider ----------------------------------------------------------------

def _rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class EvilIssuer(Peer):
    """An OpenID provider whose ID tokens are wrong in the way `mode` says:

    good, wrong_aud, wrong_iss, expired, other_nonce (the nonce of an earlier authorization: a
    replayed one), missing_nonce, foreign_key (signed with a key not in the JWKS, under the JWKS's
    kid), alg_none, hs256_public_key (HMAC keyed with the published public key), unverified_email.
    Authorization auto-approves as `subject`/`email`/`name`."""

    MODES = ["good", "wrong_aud", "wrong_iss", "expired", "other_nonce", "missing_nonce", "foreign_key",
             "alg_none", "hs256_public_key", "unverified_email"]

    def __init__(self):
        super().__init__()
        self.key, self.other_key, self.kid = _rsa_key(), _rsa_key(), "evil-" + secrets.token_hex(4)
        self.client_id = "portcullis-at-evil"
        self.client_secret = remember("evilsecret_" + secrets.token_hex(16))
        self.mode = "good"
        self.subject, self.email, self.name = "evil-sub-0", "nobody@example.com", "Eve"
        self.authorize_requests: list[dict] = []
        self.token_requests: list[dict] = []
        self.nonces: list[str] = []
        self._codes: dict[str, dict] = {}
        self._tokens: dict[str, dict] = {}

    def act_as(self, subject: str, email: str, name: str = "Eve Upstream", mode: str = "good"):
        assert mode in self.MODES, mode
        with self.lock:
            self.subject, self.email, self.name, self.mode = subject, email, name, mode

    def public_jwk(self) -> dict:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return jwk | {"kid": self.kid, "alg": "RS256", "use": "sig"}

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def handle(self, r: Request) -> Answer:
        if r.path == "/.well-known/openid-configuration":
            return Answer(200, {
                "issuer": self.url, "authorization_endpoint": self.url + "/authorize", "token_endpoint": self.url + "/token",
                "userinfo_endpoint": self.url + "/userinfo", "jwks_uri": self.url + "/jwks",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"], "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "code_challenge_methods_supported": ["S256"], "grant_types_supported": ["authorization_code"]})
        if r.path == "/jwks":
            return Answer(200, {"keys": [self.public_jwk()]})
        if r.path == "/authorize":
            return self._authorize(r)
        if r.path == "/token" and r.method == "POST":
            return self._token(r)
        if r.path == "/userinfo":
            with self.lock:
                grant = self._tokens.get(r.bearer() or "")
            if grant is None:
                return Answer(401, {"error": "invalid_token"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return Answer(200, {k: grant["claims"][k] for k in ("sub", "email", "email_verified", "name")})
        return Answer(404, "not found")

    def _authorize(self, r: Request) -> Answer:
        q = dict(r.query)
        with self.lock:
            self.authorize_requests.append(q)
            previous = self.nonces[-1] if self.nonces else None
            if q.get("nonce"):
                self.nonces.append(q["nonce"])
            who = (self.subject, self.email, self.name, self.mode)
        if not q.get("redirect_uri") or q.get("client_id") != self.client_id:
            return Answer(400, "bad client_id or redirect_uri")
        code = remember(secrets.token_urlsafe(24))
        with self.lock:
            self._codes[code] = {"query": q, "who": who, "previous_nonce": previous, "used": False}
        params = {"code": code}
        if "state" in q:
            params["state"] = q["state"]
        return redirect(with_query(q["redirect_uri"], **params))

    def _token(self, r: Request) -> Answer:
        form = r.form()
        client = r.basic() or (form.get("client_id"), form.get("client_secret"))
        with self.lock:
            self.token_requests.append(dict(form))
            grant = self._codes.get(form.get("code", ""))
            fresh = grant is not None and not grant["used"]
            if grant is not None:
                grant["used"] = True
        if client != (self.client_id, self.client_secret):
            return Answer(401, {"error": "invalid_client"})
        if not fresh:
            return Answer(400, {"error": "invalid_grant"})
        q = grant["query"]
        if q.get("code_challenge") and s256(form.get("code_verifier", "")) != q["code_challenge"]:
            return Answer(400, {"error": "invalid_grant", "error_description": "PKCE verification failed"})
        subject, email, name, mode = grant["who"]
        now = int(time.time())
        claims = {"iss": self.url, "sub": subject, "aud": self.client_id, "iat": now, "exp": now + 300,
                  "auth_time": now - 5, "email": email, "email_verified": True, "name": name}
        if q.get("nonce"):
            claims["nonce"] = q["nonce"]
        if mode == "wrong_aud":
            claims["aud"] = "another-relying-party"
        elif mode == "wrong_iss":
            claims["iss"] = self.url.replace("127.0.0.1", "localhost") + "/other"
        elif mode == "expired":
            claims["iat"], claims["exp"], claims["auth_time"] = now - 1200, now - 600, now - 1200
        elif mode == "other_nonce":
            claims["nonce"] = grant["previous_nonce"] or secrets.token_urlsafe(16)
        elif mode == "missing_nonce":
            claims.pop("nonce", None)
        elif mode == "unverified_email":
            claims["email_verified"] = False
        header = {"kid": self.kid, "typ": "JWT"}
        if mode == "foreign_key":
            id_token = jwt.encode(claims, self.other_key, algorithm="RS256", headers=header)
        elif mode == "alg_none":
            id_token = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "." + b64url(json.dumps(claims).encode()) + "."
        elif mode == "hs256_public_key":
            signing_input = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": self.kid}).encode()) + "." + \
                b64url(json.dumps(claims).encode())
            id_token = signing_input + "." + b64url(hmac.new(self.public_pem(), signing_input.encode(), hashlib.sha256).digest())
        else:
            id_token = jwt.encode(claims, self.key, algorithm="RS256", headers=header)
        access = remember("evil-at-" + secrets.token_urlsafe(24))
        with self.lock:
            self._tokens[access] = {"claims": claims}
        return Answer(200, {"access_token": access, "token_type": "Bearer", "expires_in": 300, "id_token": id_token,
                            "scope": q.get("scope", "openid")}, {"Cache-Control": "no-store"})


# --- oidc-provider-mock as "Google" ---------------------------------------------------------------

class GoogleMock:
    """oidc-provider-mock in a thread on 127.0.0.1. Its issuer is the URL it is reached at (it
    takes it from the Host header), so Portcullis's provider must name exactly `self.url`."""

    def __init__(self, url: str):
        self.url = url

    def set_user(self, sub: str, email: str, name: str, email_verified: bool = True):
        r = requests.put(f"{self.url}/users/{sub}", json={"email": email, "email_verified": email_verified, "name": name},
                         timeout=TIMEOUT)
        assert r.status_code == 204, f"oidc-provider-mock PUT /users/{sub}: {r.status_code} {r.text}"

    def approve(self, session: requests.Session, authorize_url: str, sub: str) -> requests.Response:
        """What a person does on the mock's authorization form: signs in as `sub`."""
        page = session.get(authorize_url, timeout=TIMEOUT, allow_redirects=False)
        assert page.status_code == 200, f"oidc-provider-mock refused the authorization request: {page.status_code} {page.text[:2000]}"
        return session.post(authorize_url, data={"sub": sub}, timeout=TIMEOUT, allow_redirects=False)


@contextlib.contextmanager
def google_mock():
    import oidc_provider_mock
    # require_nonce: the mock refuses an authorization request without a nonce.
    app = oidc_provider_mock.app(require_nonce=True)
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield GoogleMock(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- a second Portcullis as the upstream OpenID provider ------------------------------------------

@contextlib.contextmanager
def upstream_portcullis(binary: Path, workdir: Path, **settings: str):
    """A Portcullis like portcullis_server.running_server starts, but reached (and issuing) at
    http://localhost:<port>: a browser keeps cookies by host, not port, so the upstream's cookies
    must not land on the 127.0.0.1 of the instance under test. Yields its base URL."""
    port = free_port()
    base = f"http://localhost:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env.update(
        PORTCULLIS_DATABASE_URL=f"sqlite:{workdir}/p.db", PORTCULLIS_PORT=str(port), PORTCULLIS_HOST="127.0.0.1",
        PORTCULLIS_MASTER_KEY_FILE=f"{workdir}/master.key", PORTCULLIS_PUBLIC_URL=base, PORTCULLIS_LOG_FORMAT="json",
        PORTCULLIS_LOG_LEVEL="debug", PORTCULLIS_METRICS_TOKEN=METRICS_TOKEN)
    env.update({f"PORTCULLIS_{k}": v for k, v in settings.items()})
    log_path = workdir / "server.log"
    secrets_seen.register_log(log_path)
    try:
        # The health check goes to 127.0.0.1: that is where it listens.
        with serve_process(binary, workdir, env, f"http://127.0.0.1:{port}", log_path):
            yield base
    except ServerStartError as error:
        pytest.fail(f"the upstream Portcullis did not start: {error}", pytrace=False)
    finally:
        secrets_seen.collect_log(log_path)


def register_openid_client(base: str, root_token: str, redirect_uri: str, name: str = "Downstream Portcullis") -> dict:
    """An OpenID client on a Portcullis (POST /v1/clients as its root), confidential, for `redirect_uri`."""
    r = requests.post(base + "/v1/clients", json={"name": name, "redirect_uris": [redirect_uri],
                                                    "scopes": ["openid", "profile", "email"]},
                      headers={"Authorization": f"Bearer {root_token}"}, timeout=TIMEOUT)
    assert r.status_code == 201, f"registering the client upstream: {r.status_code} {r.text}"
    client = r.json()
    assert client.get("client_secret"), f"the upstream client has no secret: {client}"
    remember(client["client_secret"])
    return client


# --- reading what the server sent -----------------------------------------------------------------

def set_cookies(response: requests.Response) -> dict:
    """The response's own Set-Cookie headers as {name: (value, attributes lowercased)}."""
    found = {}
    for header in response.raw.headers.getlist("Set-Cookie"):
        first, *attributes = [p.strip() for p in header.split(";")]
        name, _, value = first.partition("=")
        found[name] = (value, [a.lower() for a in attributes])
    return found


def sets_session(response: requests.Response) -> bool:
    """Whether the response sets a non-empty session cookie (clearing one is not setting one)."""
    cookie = set_cookies(response).get(SESSION_COOKIE)
    return bool(cookie and cookie[0] and not any(a in ("max-age=0",) for a in cookie[1]))


def location(response: requests.Response) -> str:
    """The absolute URL of a redirect's Location."""
    assert response.is_redirect, f"{response.request.method} {response.url}: {response.status_code}, not a redirect:\n{response.text[:1500]}"
    return urljoin(response.url, response.headers["Location"])


def query_of(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


CODE_RE = re.compile(r"(?<![A-Za-z0-9_-])([0-9]{6})(?![A-Za-z0-9_-])")


def mailed_code(sink, to: str, timeout: float = 20) -> tuple[str, str]:
    """The 6-digit code of the next unread mail to `to` in the SMTP sink (test_pages_browser.Sink),
    as (code, subject). The subject must name the same code as the text."""
    deadline = time.monotonic() + timeout
    while True:
        for name, message in sink.messages():
            if to not in message.get("X-Envelope-To", "").split(","):
                continue
            subject = str(message.get("Subject", ""))
            text = message.get_body(preferencelist=("plain",)).get_content()
            in_text = CODE_RE.findall(text)
            if not in_text:
                continue  # another kind of mail (a verification link, say)
            sink.used.add(name)
            in_subject = CODE_RE.findall(subject)
            assert in_subject == [in_text[0]], f"the subject {subject!r} does not name the code {in_text[0]} of the text:\n{text}"
            return in_text[0], subject
        if time.monotonic() > deadline:
            pytest.fail(f"no mail with a 6-digit code to {to} within {timeout:.0f}s", pytrace=False)
        time.sleep(0.1)


def no_code_mail(sink, to: str) -> bool:
    return not any(to in m.get("X-Envelope-To", "").split(",") and CODE_RE.search(m.get_body(preferencelist=("plain",)).get_content())
                   for _, m in sink.messages())


class _Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms, self._form = [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = {"action": a.get("action") or "", "method": (a.get("method") or "get").lower(),
                          "confirm": a.get("data-confirm"), "fields": {}, "buttons": [], "text": ""}
            self.forms.append(self._form)
        elif self._form is not None and tag in ("input", "select", "textarea") and a.get("name"):
            if tag != "input" or (a.get("type") or "text").lower() not in ("checkbox", "radio", "submit") or "checked" in a:
                self._form["fields"].setdefault(a["name"], a.get("value") or "")
        elif self._form is not None and tag == "button":
            self._form["buttons"].append({"name": a.get("name"), "value": a.get("value"), "type": a.get("type")})

    def handle_data(self, data):
        if self._form is not None:
            self._form["text"] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None


def forms(html: str) -> list[dict]:
    """The page's forms: action, method, data-confirm, fields (name: value of inputs a browser
    would send without a click: hidden and text inputs, checked boxes), buttons and their text."""
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def form_posting_to(html: str, action, where: str = "") -> list[dict]:
    """The forms whose action's path matches `action` (a string, or a compiled pattern)."""
    found = []
    for form in forms(html):
        path = urlsplit(form["action"]).path
        if (action.fullmatch(path) if isinstance(action, re.Pattern) else path == action) and form["method"] == "post":
            found.append(form)
    return found
