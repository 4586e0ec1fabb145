"""The defaults and limits the README states are the ones the server has.

The expected values are read from README.md itself: the configuration table, "Limits and quotas",
"Abuse limits", the mail outbox's retry schedule and the other places that state a number. Each is
then checked against the running server where it can be seen from outside (a token's lifetime, a 413
at the body limit, the 51st login of an address), and against the Swift source where it cannot (how
often a node polls the change log, the mail retry schedule spread over two days). Every variable of
the configuration table must be covered here (test_every_configuration_default_is_checked)."""

import base64
import concurrent.futures
import contextlib
import datetime
import json
import math
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import DEFAULT_BIN, REPO_ROOT
from portcullis_server import free_port, serve_process

README = (REPO_ROOT / "README.md").read_text()
SOURCES = REPO_ROOT / "Sources"
PASSWORD = "correct horse battery staple"


# --- reading the README -----------------------------------------------------------------------------

def section(heading: str) -> str:
    """The text under a heading, up to the next heading of the same or a higher level (lines in
    code blocks are not headings)."""
    level = len(heading.split(" ")[0])
    lines = README[README.index(heading + "\n") + len(heading) + 1:].split("\n")
    fenced = False
    for i, line in enumerate(lines):
        if re.match(r"^\s*```", line):
            fenced = not fenced
        elif not fenced and re.match(rf"^#{{1,{level}}} ", line):
            return "\n".join(lines[:i])
    return "\n".join(lines)


def config_table() -> dict[str, str]:
    """The configuration table: variable -> its default, as written (backticks dropped)."""
    rows = re.findall(r"^\| `(PORTCULLIS_[A-Z_]+)` \| ([^|]*) \|", section("## Configuration"), re.M)
    assert len(rows) > 30, rows
    return {name: default.replace("`", "").strip() for name, default in rows}


TABLE = config_table()


def table_int(name: str) -> int:
    """A numeric default of the table, e.g. `50` or `900` (15 min)."""
    m = re.fullmatch(r"([\d,]+)( \(.*\))?", TABLE[name])
    assert m, f"{name}: {TABLE[name]!r} is not a number"
    return int(m.group(1).replace(",", ""))


def found(pattern: str, text: str = README) -> re.Match:
    """The first match of `pattern` in `text` (the README unless told), which must be there."""
    m = re.search(pattern, text, re.S)
    assert m, f"{pattern!r} not found in " + ("the README" if text is README else repr(text[:2000]))
    return m


def source(path: str) -> str:
    return (SOURCES / path).read_text()


def source_int(path: str, pattern: str) -> int:
    m = re.search(pattern, source(path))
    assert m, f"{pattern!r} not found in Sources/{path}"
    return eval(m.group(1).replace("_", ""), {"__builtins__": {}})  # e.g. "7 * 86_400", "64 * 1024"


# --- servers ---------------------------------------------------------------------------------------

def binary() -> Path:
    path = Path(os.environ.get("PORTCULLIS_BIN", DEFAULT_BIN))
    if not path.is_file():
        pytest.fail(f"server binary {path} not found; run `swift build` first", pytrace=False)
    return path


def clean_env(**settings: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env.update({f"PORTCULLIS_{k}": v for k, v in settings.items()})
    return env


@contextlib.contextmanager
def server(workdir: Path, **settings: str):
    """`portcullis serve` in `workdir` with nothing set but a free port and `settings`: every other
    value is the server's default (database, master key file, public URL, log format, ...).
    Yields (base URL, log path)."""
    port = free_port()
    log_path = workdir / "server.log"
    base = f"http://127.0.0.1:{port}"
    with serve_process(binary(), workdir, clean_env(PORT=str(port), **settings), base, log_path):
        yield base, log_path

def config_error(**settings: str) -> str:
    """Starts the server with `settings` and returns what it said, asserting that it refused to start."""
    run = subprocess.run([str(binary()), "serve"], env=clean_env(PORT="0", DATABASE_URL="sqlite::memory:", **settings),
                         capture_output=True, text=True, timeout=30, cwd="/tmp")
    assert run.returncode != 0, f"the server started with {settings}"
    return run.stdout + run.stderr


def signup_and_login(base: str, email: str) -> dict:
    r = requests.post(base + "/v1/users", json={"email": email, "password": PASSWORD}, timeout=10)
    assert r.status_code == 201, r.text
    r = requests.post(base + "/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def mails_in_log(log_path: Path) -> list[str]:
    """The mails a server with PORTCULLIS_SMTP_URL=log (text log format) printed: their text."""
    text = log_path.read_text(errors="replace")
    return re.findall(r"notice portcullis: subject=(.*?) to=\S+ \[Server\] mail \(PORTCULLIS_SMTP_URL=log, not sent\)", text, re.S)


def wait_for(condition, timeout: float = 20, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# --- what each default is checked by ---------------------------------------------------------------

# Every variable of the README's configuration table, and the test below that checks its default.
COVERED = {
    "PORTCULLIS_DATABASE_URL": "test_a_server_with_nothing_set",
    "PORTCULLIS_HOST": "test_a_server_with_nothing_set",
    "PORTCULLIS_PORT": "test_defaults_only_the_source_shows",
    "PORTCULLIS_PUBLIC_URL": "test_a_server_with_nothing_set",
    "PORTCULLIS_ISSUER": "test_a_server_with_nothing_set",
    "PORTCULLIS_AUDIENCE": "test_a_server_with_nothing_set",
    "PORTCULLIS_ACCESS_TOKEN_TTL": "test_a_server_with_nothing_set",
    "PORTCULLIS_REFRESH_TOKEN_TTL": "test_a_server_with_nothing_set",
    "PORTCULLIS_SIGNUP": "test_a_server_with_nothing_set",
    "PORTCULLIS_ROOT_EMAIL": "test_a_server_with_nothing_set",
    "PORTCULLIS_ROOT_PASSWORD": "test_a_server_with_nothing_set",
    "PORTCULLIS_MASTER_KEY": "test_a_server_with_nothing_set",
    "PORTCULLIS_MASTER_KEY_FILE": "test_a_server_with_nothing_set",
    "PORTCULLIS_LOG_FORMAT": "test_a_server_with_nothing_set",
    "PORTCULLIS_LOG_LEVEL": "test_a_server_with_nothing_set",
    "PORTCULLIS_POLICY_FILE": "test_a_server_with_nothing_set",
    "PORTCULLIS_CHANGE_POLL_MS": "test_defaults_only_the_source_shows",
    "PORTCULLIS_KEY_USAGE_FLUSH_SECONDS": "test_defaults_only_the_source_shows",
    "PORTCULLIS_SIGNING_KEY_ROTATION_DAYS": "test_defaults_only_the_source_shows",
    "PORTCULLIS_SMTP_URL": "test_a_server_with_nothing_set",
    "PORTCULLIS_MAIL_FROM": "test_mail_from_and_the_retry_schedule",
    "PORTCULLIS_TEMPLATES_DIR": "test_a_server_with_nothing_set",
    "PORTCULLIS_CORS_ORIGINS": "test_a_server_with_nothing_set",
    "PORTCULLIS_TRUSTED_PROXIES": "test_a_server_with_nothing_set",
    "PORTCULLIS_IP_BURST": "test_login_throttle_per_address",
    "PORTCULLIS_IP_PER_MINUTE": "test_login_throttle_per_address",
    "PORTCULLIS_ACCOUNT_FAILURES_PER_HOUR": "test_failed_logins_per_account",
    "PORTCULLIS_RESET_MAILS_PER_HOUR": "test_mail_budgets",
    "PORTCULLIS_CODE_MAILS_PER_HOUR": "test_mail_budgets",
    "PORTCULLIS_INVITE_MAILS_PER_ORG_PER_HOUR": "test_mail_budgets",
    "PORTCULLIS_INVITE_MAILS_PER_RECIPIENT_PER_HOUR": "test_mail_budgets",
    "PORTCULLIS_PASSWORD_GUESSES_PER_SESSION_PER_HOUR": "test_password_guess_budgets",
    "PORTCULLIS_PASSWORD_GUESSES_PER_ACCOUNT_PER_HOUR": "test_password_guess_budgets",
    "PORTCULLIS_METRICS_TOKEN": "test_a_server_with_nothing_set",
    "PORTCULLIS_MAX_STALENESS_MS": "test_defaults_only_the_source_shows",
    "PORTCULLIS_MAX_ORGS_PER_USER": "test_quotas",
    "PORTCULLIS_WRITES_PER_USER_PER_MINUTE": "test_quotas",
    "PORTCULLIS_WATCH_MAX_STREAMS": "test_watch_streams_per_node",
    "PORTCULLIS_DATABASE_TIMEOUT_MS": "test_defaults_only_the_source_shows",
    "PORTCULLIS_MAX_BINDINGS_PER_ORG": "test_defaults_only_the_source_shows",
    "PORTCULLIS_MAX_BINDINGS_PER_PRINCIPAL": "test_defaults_only_the_source_shows",
    "PORTCULLIS_MAX_GROUPS_PER_ORG": "test_group_and_override_quotas",
    "PORTCULLIS_MAX_OVERRIDES_PER_ORG": "test_group_and_override_quotas",
    "PORTCULLIS_CLIENT_TIMEOUT_SECONDS": "test_defaults_only_the_source_shows",
    "PORTCULLIS_BRAND_NAME": "test_brand_defaults_on_the_pages",
    "PORTCULLIS_BRAND_LOGO_URL": "test_brand_defaults_on_the_pages",
    "PORTCULLIS_BRAND_COLOR": "test_brand_defaults_on_the_pages",
    "PORTCULLIS_WEBHOOK_ALLOW_PRIVATE": "test_webhook_defaults",
    "PORTCULLIS_WEBHOOK_POLL_MS": "test_webhook_defaults",
    "PORTCULLIS_WEBHOOK_FIRST_RETRY_MS": "test_webhook_defaults",
}


def test_webhook_defaults(tmp_path: Path):
    """Private targets are refused unless allowed; the poll and the first retry as the table says,
    and the retry schedule as the Webhooks section states it."""
    from portcullis_server import running_server
    assert TABLE["PORTCULLIS_WEBHOOK_ALLOW_PRIVATE"] == "false"
    config = source("Server/App/Config.swift")
    assert re.search(r"public var webhookAllowPrivate = false\n", config)
    assert table_int("PORTCULLIS_WEBHOOK_POLL_MS") == int(re.search(r"webhookInterval: Duration = \.milliseconds\((\d+)\)", config).group(1))
    first = int(re.search(r"webhookFirstRetry: Duration = \.seconds\((\d+)\)", config).group(1))
    assert table_int("PORTCULLIS_WEBHOOK_FIRST_RETRY_MS") == 1000 * first
    retry = source("Webhooks/Retry.swift")
    assert int(re.search(r"public var first: TimeInterval = (\d+)", retry).group(1)) == first
    assert int(re.search(r"public var attempts: Int = (\d+)", retry).group(1)) == 24
    found(rf"retried after {first} s, then twice as long each time up to 6 hours, with\s+jitter, 24 attempts", README)
    with running_server(binary(), tmp_path, ROOT_EMAIL="root@example.com", ROOT_PASSWORD="root password of the defaults") as base:
        token = requests.post(base + "/v1/auth/login", json={"email": "root@example.com", "password": "root password of the defaults"},
                              timeout=10).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        for url in ("http://hooks.example.com/in", "https://127.0.0.1/in", "https://169.254.169.254/latest"):
            reply = requests.post(base + "/v1/webhooks", json={"url": url}, headers=auth, timeout=10)
            assert reply.status_code == 400, (url, reply.text)
        assert requests.post(base + "/v1/webhooks", json={"url": "https://hooks.example.com/in"}, headers=auth, timeout=10).status_code == 201


def test_brand_defaults_on_the_pages(tmp_path: Path):
    """The hosted pages with no branding set: the table's name and colour, and no logo."""
    from portcullis_server import running_server
    with running_server(binary(), tmp_path) as base:
        page = requests.get(f"{base}/forgot-password", timeout=10).text
        brand_css = requests.get(f"{base}/assets/brand.css", timeout=10).text
    assert f"<span>{TABLE['PORTCULLIS_BRAND_NAME']}</span>" in page, page
    assert "<img" not in page and TABLE["PORTCULLIS_BRAND_LOGO_URL"] == "—"
    assert f"--brand: {TABLE['PORTCULLIS_BRAND_COLOR']};" in brand_css, brand_css


def test_every_configuration_default_is_checked():
    assert sorted(TABLE) == sorted(COVERED), (
        f"in the README's table but not checked here: {sorted(set(TABLE) - set(COVERED))}; "
        f"checked here but not in the table: {sorted(set(COVERED) - set(TABLE))}")
    names = {name for name in globals() if name.startswith("test_")}
    assert set(COVERED.values()) <= names, set(COVERED.values()) - names


# --- observable from outside -----------------------------------------------------------------------

def test_a_server_with_nothing_set(tmp_path: Path):
    """One server started with no PORTCULLIS_* variable but its port: what it creates, says and
    answers is what the table's defaults promise."""
    assert TABLE["PORTCULLIS_DATABASE_URL"] == "sqlite:./data/portcullis.db"
    assert TABLE["PORTCULLIS_MASTER_KEY_FILE"] == "./data/master.key"
    assert TABLE["PORTCULLIS_MASTER_KEY"] == "—"
    assert TABLE["PORTCULLIS_ROOT_PASSWORD"] == "generated, printed once"
    assert TABLE["PORTCULLIS_PUBLIC_URL"] == "http://localhost:<PORT>"
    assert TABLE["PORTCULLIS_ISSUER"] == "the public URL" and TABLE["PORTCULLIS_AUDIENCE"] == "the issuer"
    assert TABLE["PORTCULLIS_SIGNUP"] == "open" and TABLE["PORTCULLIS_SMTP_URL"] == "log"
    assert TABLE["PORTCULLIS_METRICS_TOKEN"] == "— (root only)"
    assert TABLE["PORTCULLIS_CORS_ORIGINS"] == "— (no CORS headers)" and TABLE["PORTCULLIS_TRUSTED_PROXIES"] == "—"
    assert TABLE["PORTCULLIS_POLICY_FILE"] == "—" and TABLE["PORTCULLIS_TEMPLATES_DIR"] == "— (built-in templates)"
    access_ttl = table_int("PORTCULLIS_ACCESS_TOKEN_TTL")
    m = found(r"^(\d+) \((\d+) min\)$", TABLE["PORTCULLIS_ACCESS_TOKEN_TTL"])
    assert int(m.group(1)) == int(m.group(2)) * 60 == access_ttl
    refresh_days = int(found(r"^(\d+)d$", TABLE["PORTCULLIS_REFRESH_TOKEN_TTL"]).group(1))

    with server(tmp_path) as (base, log_path):
        port = base.rsplit(":", 1)[1]
        # Database and master key where the defaults put them, relative to the working directory.
        database = tmp_path / TABLE["PORTCULLIS_DATABASE_URL"].removeprefix("sqlite:")
        master_key = tmp_path / TABLE["PORTCULLIS_MASTER_KEY_FILE"]
        assert database.is_file() and master_key.is_file()
        assert master_key.stat().st_mode & 0o777 == 0o600  # "created with mode 0600 if missing"
        assert len(base64.b64decode(master_key.read_text().strip())) == 32
        log = log_path.read_text(errors="replace")
        # The root admin: the default address, with a generated password printed once.
        m = found(r"Created the root administrator \(shown once, store it now\):\n  email: +(\S+)\n  password: +(\S+)\n", log)
        assert m.group(1) == TABLE["PORTCULLIS_ROOT_EMAIL"]
        root = requests.post(base + "/v1/auth/login", json={"email": m.group(1), "password": m.group(2)}, timeout=10)
        assert root.status_code == 200 and root.json()["user"]["is_root"] is True
        root_token = root.json()["access_token"]
        # Listening on the default host.
        assert f"Portcullis listening on http://{TABLE['PORTCULLIS_HOST']}:{port} " in log

        # The public URL, the issuer and the audience.
        public_url = TABLE["PORTCULLIS_PUBLIC_URL"].replace("<PORT>", port)
        discovery = requests.get(base + "/.well-known/openid-configuration", timeout=10).json()
        assert discovery["issuer"] == public_url
        assert discovery["jwks_uri"] == public_url + "/.well-known/jwks.json"

        # Open signup, and the token lifetimes.
        user = signup_and_login(base, "dee@example.com")
        assert user["expires_in"] == access_ttl and user["refresh_expires_in"] == refresh_days * 86400
        claims = jwt_claims(user["access_token"])
        assert claims["exp"] - claims["iat"] == access_ttl
        assert claims["iss"] == public_url and claims["aud"] == public_url

        # No custom permissions: the table is the built-in one.
        permissions = requests.get(base + "/v1/permissions", headers=bearer(user["access_token"]), timeout=10).json()["permissions"]
        role_swift = source("Tenancy/Role.swift")
        names = dict(re.findall(r'public static let (\w+) = "([a-z_.]+)"', role_swift))
        table = role_swift[role_swift.index("static let builtIn"):]
        built_in = {names[n] for n in re.findall(r"Permission\.(\w+): \.", table[:table.index("])")])}
        assert len(built_in) >= 10, built_in
        assert set(permissions) == built_in, (set(permissions), built_in)

        # Metrics: root only without PORTCULLIS_METRICS_TOKEN.
        assert requests.get(base + "/metrics", timeout=10).status_code == 401
        assert requests.get(base + "/metrics", headers=bearer(user["access_token"]), timeout=10).status_code == 403
        assert requests.get(base + "/metrics", headers=bearer(root_token), timeout=10).status_code == 200

        # No CORS headers, not even for a preflight.
        cross = {"Origin": "https://app.example.com"}
        r = requests.get(base + "/v1/me", headers=dict(bearer(user["access_token"]), **cross), timeout=10)
        preflight = requests.options(base + "/v1/me", headers=dict(cross, **{"Access-Control-Request-Method": "GET"}), timeout=10)
        assert not [h for h in list(r.headers) + list(preflight.headers) if h.lower().startswith("access-control-")]

        # No trusted proxies: X-Forwarded-For from the loopback peer is not believed.
        requests.get(base + "/v1/me", headers=dict(bearer(user["access_token"]), **{"X-Forwarded-For": "203.0.113.9",
                                                                                     "X-Request-ID": "xff-check"}), timeout=10)

        # The log mailer: the signup's verification mail, built-in template, printed to the log.
        mails = wait_for(lambda: mails_in_log(log_path), what="the verification mail in the log")
        assert mails[0].startswith("Confirm your e-mail address text=Confirm that dee@example.com is yours:\n")

    log = log_path.read_text(errors="replace")
    request_line = found(r"^.*request_id=xff-check.*$", log).group(0)
    assert " ip=127.0.0.1 " in request_line and "203.0.113.9" not in request_line
    # Text, not JSON, at level info: request lines are there, debug lines are not (a server at
    # debug level logs the start of the change follower, among others, at debug).
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} info portcullis: .* \[Server\] request$", log, re.M)
    assert not re.search(r"^\{", log, re.M)
    assert TABLE["PORTCULLIS_LOG_FORMAT"] == "text" and TABLE["PORTCULLIS_LOG_LEVEL"] == "info"
    assert not re.search(r"^\S+ (debug|trace) ", log, re.M)

    # Printed once: the second start on the same data creates no root and prints no password.
    with server(tmp_path) as (base, log_path):
        assert "Created the root administrator" not in log_path.read_text(errors="replace")


def test_a_debug_level_server_does_log_debug_lines(tmp_path: Path):
    """What makes the "no debug lines at the default level" check above able to fail."""
    with server(tmp_path, LOG_LEVEL="debug") as (base, log_path):
        signup_and_login(base, "dee@example.com")
    assert re.search(r"^\S+ debug ", log_path.read_text(errors="replace"), re.M)


def test_login_throttle_per_address(tmp_path: Path):
    """A burst of PORTCULLIS_IP_BURST requests, refilled at PORTCULLIS_IP_PER_MINUTE."""
    burst, per_minute = table_int("PORTCULLIS_IP_BURST"), table_int("PORTCULLIS_IP_PER_MINUTE")
    abuse = section("## Abuse limits")
    found(rf"bucket of `PORTCULLIS_IP_BURST` requests \({burst}\).*refilled at `PORTCULLIS_IP_PER_MINUTE` \({per_minute} a minute\)", abuse)
    with server(tmp_path) as (base, _):
        started = time.monotonic()
        answers = []
        while len(answers) < burst + 30:
            r = requests.post(base + "/v1/auth/login", json={"email": "nobody@example.com", "password": "a guess"}, timeout=30)
            answers.append(r.status_code)
            if r.status_code == 429:
                retry_after = r.headers.get("Retry-After")
                assert r.json()["code"] == "rate_limited" and retry_after and int(retry_after) >= 1
                break
        elapsed = time.monotonic() - started
        assert answers[-1] == 429 and set(answers[:-1]) == {401}, answers
        refilled = math.floor(elapsed * per_minute / 60)
        assert burst <= len(answers) - 1 <= burst + refilled + 1, (len(answers) - 1, elapsed)
        # Three seconds later three more, and one more for the part of one the bucket held at the 429
        # and for each second these requests take themselves.
        time.sleep(3 * 60 / per_minute)
        started = time.monotonic()
        again = []
        while (not again or again[-1] != 429) and len(again) < 20:
            again.append(requests.post(base + "/v1/auth/login", json={"email": "nobody@example.com", "password": "a guess"},
                                       timeout=30).status_code)
        extra = 1 + math.ceil((time.monotonic() - started) * per_minute / 60)
        assert again[-1] == 429 and set(again[:-1]) == {401} and 3 <= len(again) - 1 <= 3 + extra, again


def test_failed_logins_per_account(tmp_path: Path):
    """PORTCULLIS_ACCOUNT_FAILURES_PER_HOUR wrong passwords for one account, then 429 before the
    password is checked (per-address throttling is off here, so only the account counts)."""
    limit = table_int("PORTCULLIS_ACCOUNT_FAILURES_PER_HOUR")
    found(rf"`PORTCULLIS_ACCOUNT_FAILURES_PER_HOUR` \({limit}\) failed logins in any hour", section("## Abuse limits"))
    with server(tmp_path, IP_BURST="0") as (base, _):
        r = requests.post(base + "/v1/users", json={"email": "vic@example.com", "password": PASSWORD}, timeout=10)
        assert r.status_code == 201

        def wrong(_):
            return requests.post(base + "/v1/auth/login", json={"email": "vic@example.com", "password": "not it at all"},
                                 timeout=60).status_code

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(wrong, range(limit)))
        assert answers == [401] * limit
        assert wrong(None) == 429
        # The right password is refused too now: the account is closed to this address for the hour.
        assert requests.post(base + "/v1/auth/login", json={"email": "vic@example.com", "password": PASSWORD},
                             timeout=10).status_code == 429


def test_mail_budgets(tmp_path: Path):
    """Reset, verification-link and sign-in code requests per address, invite mails per recipient and per org."""
    resets = table_int("PORTCULLIS_RESET_MAILS_PER_HOUR")
    codes = table_int("PORTCULLIS_CODE_MAILS_PER_HOUR")
    per_recipient = table_int("PORTCULLIS_INVITE_MAILS_PER_RECIPIENT_PER_HOUR")
    per_org = table_int("PORTCULLIS_INVITE_MAILS_PER_ORG_PER_HOUR")
    abuse = section("## Abuse limits")
    found(rf"at most {resets} password-reset requests and, separately, {resets} requests for a new\s+verification link", abuse)
    found(rf"e-mail sign-in code are limited the same way, {codes} an hour per address", abuse)
    found(rf"an org may send {per_org} invite mails an hour \(created or resent\), and one address may\s+receive {per_recipient} an hour", abuse)
    with server(tmp_path, IP_BURST="0") as (base, log_path):
        owner = signup_and_login(base, "own@example.com")
        auth = bearer(owner["access_token"])

        def ask(path: str, email: str) -> int:
            return requests.post(base + path, json={"email": email}, timeout=10).status_code

        # For an address with an account and for one without, alike.
        for email in ("own@example.com", "ghost@example.com"):
            assert [ask("/v1/auth/password-reset", email) for _ in range(resets + 1)] == [202] * resets + [429]
            assert [ask("/v1/auth/verify-email/request", email) for _ in range(resets + 1)] == [202] * resets + [429]
            assert [ask("/v1/auth/email-code", email) for _ in range(codes + 1)] == [202] * codes + [429]
        # The account's mails: the signup's verification, then the budgeted ones.
        wait_for(lambda: len(mails_in_log(log_path)) >= 1 + 2 * resets, what="the mails")
        time.sleep(1.5)
        subjects = [m.split(" text=", 1)[0] for m in mails_in_log(log_path)]
        assert subjects.count("Reset your password") == resets
        assert subjects.count("Confirm your e-mail address") == 1 + resets

        org = requests.post(base + "/v1/orgs", json={"name": "Mailers"}, headers=auth, timeout=10).json()["id"]
        invite = requests.post(base + f"/v1/orgs/{org}/invites", json={"email": "r@example.com", "role": "viewer"}, headers=auth, timeout=10)
        assert invite.status_code == 201
        resends = [requests.post(base + f"/v1/invites/{invite.json()['id']}/resend", headers=auth, timeout=10)
                   for _ in range(per_recipient)]
        assert [r.status_code for r in resends] == [200] * (per_recipient - 1) + [429]
        assert resends[-1].json()["code"] == "rate_limited"

        # Per org: one mail went out above (plus the resends), so this many more fit.
        sent = per_recipient
        other = requests.post(base + "/v1/orgs", json={"name": "Mailers 2"}, headers=auth, timeout=10).json()["id"]
        assert other
        session = requests.Session()

        def invite_to(n: int) -> int:
            return session.post(base + f"/v1/orgs/{org}/invites", json={"email": f"p{n}@example.com", "role": "viewer"},
                                headers=auth, timeout=10).status_code

        answers = [invite_to(n) for n in range(per_org - sent + 1)]
        assert answers == [201] * (per_org - sent) + [429], answers[-5:]
        # Another org still may.
        assert session.post(base + f"/v1/orgs/{other}/invites", json={"email": "p0@example.com", "role": "viewer"},
                            headers=auth, timeout=10).status_code == 201


def test_password_guess_budgets(tmp_path: Path):
    per_session = table_int("PORTCULLIS_PASSWORD_GUESSES_PER_SESSION_PER_HOUR")
    per_account = table_int("PORTCULLIS_PASSWORD_GUESSES_PER_ACCOUNT_PER_HOUR")
    found(rf"{per_session} an hour per session and {per_account} per account", section("## Abuse limits"))
    assert per_account % per_session == 0
    with server(tmp_path, IP_BURST="0") as (base, _):
        signup_and_login(base, "pat@example.com")

        def guess(token: str) -> int:
            return requests.post(base + "/v1/me/password", json={"current_password": "not my password", "new_password": "whatever it is"},
                                 headers=bearer(token), timeout=30).status_code

        answers = []
        for _ in range(per_account // per_session):
            token = requests.post(base + "/v1/auth/login", json={"email": "pat@example.com", "password": PASSWORD}, timeout=10).json()["access_token"]
            answers.append([guess(token) for _ in range(per_session + 1)])
        # Each session: its budget of wrong answers (403), then 429 ...
        assert answers == [[403] * per_session + [429]] * (per_account // per_session), answers
        # ... and the account's budget is spent: a fresh session gets 429 at once. Login still works.
        fresh = requests.post(base + "/v1/auth/login", json={"email": "pat@example.com", "password": PASSWORD}, timeout=10)
        assert fresh.status_code == 200
        assert guess(fresh.json()["access_token"]) == 429


def test_quotas(tmp_path: Path):
    """Orgs one user owns, and writes per user and minute."""
    max_orgs, writes = table_int("PORTCULLIS_MAX_ORGS_PER_USER"), table_int("PORTCULLIS_WRITES_PER_USER_PER_MINUTE")
    limits = section("## Limits and quotas")
    found(rf"\| orgs one user owns \| {max_orgs} \| `PORTCULLIS_MAX_ORGS_PER_USER`", limits)
    found(rf"\| writes per user \(or service account\) per minute \| {writes} \|", limits)
    with server(tmp_path) as (base, _):
        auth = bearer(signup_and_login(base, "quinn@example.com")["access_token"])
        session = requests.Session()
        started = time.monotonic()
        created = [session.post(base + "/v1/orgs", json={"name": f"Org {n}"}, headers=auth, timeout=10) for n in range(max_orgs + 1)]
        assert [r.status_code for r in created] == [201] * max_orgs + [409]
        assert created[-1].json()["code"] == "quota_exceeded"
        # Writes: a bucket of that many, refilled at that many a minute. The org creations took from
        # it (the refused one too: writes are counted before they are handled); renames take the rest.
        answers = []
        while len(answers) < writes + 1:
            r = session.patch(base + "/v1/me", json={"name": f"Q{len(answers)}"}, headers=auth, timeout=10)
            answers.append(r.status_code)
            if r.status_code == 429:
                assert r.json()["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
                break
        elapsed = time.monotonic() - started
        assert elapsed < 45, "too slow to say anything about a minute"
        done = (max_orgs + 1) + len(answers) - 1
        assert answers[-1] == 429 and set(answers[:-1]) == {200}, answers[-3:]
        assert writes <= done <= writes + math.ceil(elapsed * writes / 60) + 1, (done, elapsed)
        # Reads are not counted.
        assert session.get(base + "/v1/me", headers=auth, timeout=10).status_code == 200


def test_group_and_override_quotas(tmp_path: Path):
    """Groups and overrides per org: the table, "Limits and quotas" and "Groups and overrides" against
    GroupQuotas and the ranges Config.swift accepts; the group quota reached for real at its default,
    the override quota at a low setting (its default is too many to write in a test)."""
    groups, overrides = table_int("PORTCULLIS_MAX_GROUPS_PER_ORG"), table_int("PORTCULLIS_MAX_OVERRIDES_PER_ORG")
    quotas = source("Policy/Groups.swift")
    assert groups == int(found(r"defaultGroupsPerOrg = ([\d_]+)", quotas).group(1).replace("_", ""))
    assert overrides == int(found(r"defaultOverridesPerOrg = ([\d_]+)", quotas).group(1).replace("_", ""))
    limits = section("## Limits and quotas")
    found(rf"\| groups in one org \| {groups:,} \| `PORTCULLIS_MAX_GROUPS_PER_ORG` \|", limits)
    found(rf"\| overrides in one org \| {overrides:,} \| `PORTCULLIS_MAX_OVERRIDES_PER_ORG` \|", limits)
    found(rf"`PORTCULLIS_MAX_GROUPS_PER_ORG` groups, default {groups}, or\s+`PORTCULLIS_MAX_OVERRIDES_PER_ORG` overrides, default {overrides}",
          section("### Groups and overrides"))
    config = source("Server/App/Config.swift")
    for name, high in (("MAX_GROUPS_PER_ORG", 100_000), ("MAX_OVERRIDES_PER_ORG", 10_000_000)):
        m = found(rf'count\("{name}", ([\d_]+)\.\.\.([\d_]+)\)', config)
        assert (int(m.group(1)), int(m.group(2).replace("_", ""))) == (1, high), m.groups()
        for value in ("0", str(high + 1)):
            assert f"PORTCULLIS_{name}" in config_error(**{name: value}), (name, value)

    def root_of(base: str, log_path: Path) -> dict:
        m = found(r"email: +(\S+)\n  password: +(\S+)\n", log_path.read_text(errors="replace"))
        token = requests.post(base + "/v1/auth/login", json={"email": m.group(1), "password": m.group(2)}, timeout=10).json()["access_token"]
        return bearer(token)  # the root: its writes are not rate-limited

    (tmp_path / "a").mkdir()
    with server(tmp_path / "a") as (base, log_path):
        auth = root_of(base, log_path)
        org = requests.post(base + "/v1/orgs", json={"name": "Many groups"}, headers=auth, timeout=10).json()["id"]
        session = requests.Session()
        made = [session.post(f"{base}/v1/orgs/{org}/groups", json={"name": f"g{n}"}, headers=auth, timeout=10).status_code
                for n in range(groups)]
        assert made == [201] * groups, [c for c in made if c != 201][:5]
        refused = session.post(f"{base}/v1/orgs/{org}/groups", json={"name": "one more"}, headers=auth, timeout=10)
        assert refused.status_code == 409 and refused.json()["code"] == "quota_exceeded", refused.text
        # Another org has a quota of its own.
        other = session.post(base + "/v1/orgs", json={"name": "Few groups"}, headers=auth, timeout=10).json()["id"]
        assert session.post(f"{base}/v1/orgs/{other}/groups", json={"name": "g0"}, headers=auth, timeout=10).status_code == 201

    (tmp_path / "b").mkdir()
    with server(tmp_path / "b", MAX_OVERRIDES_PER_ORG="2") as (base, log_path):
        auth = root_of(base, log_path)
        org = requests.post(base + "/v1/orgs", json={"name": "Few overrides"}, headers=auth, timeout=10).json()["id"]
        member = signup_and_login(base, "olga@example.com")["user"]["id"]
        assert requests.post(f"{base}/v1/orgs/{org}/members", json={"user_id": member, "role": "viewer"}, headers=auth,
                             timeout=10).status_code == 201
        answers = [requests.post(f"{base}/v1/orgs/{org}/overrides", headers=auth, timeout=10, json={
            "subject": {"user_id": member}, "resource": f"org:{org}/doc:{n}", "permission": "org.read", "effect": "deny",
            "reason": "quota check"}) for n in range(3)]
        assert [r.status_code for r in answers] == [201, 201, 409], [r.text for r in answers]
        assert answers[-1].json()["code"] == "quota_exceeded"


def test_watch_streams_per_node(tmp_path: Path):
    limit = table_int("PORTCULLIS_WATCH_MAX_STREAMS")
    found(rf"at\s+most `PORTCULLIS_WATCH_MAX_STREAMS` \({limit}\) at once; one more answers `503 unavailable` with\s+`Retry-After`",
                section("### Watching changes"))
    password = "root password of the defaults"
    with server(tmp_path, ROOT_EMAIL="root@example.com", ROOT_PASSWORD=password) as (base, _):
        token = requests.post(base + "/v1/auth/login", json={"email": "root@example.com", "password": password}, timeout=10).json()["access_token"]
        port = int(base.rsplit(":", 1)[1])
        streams = []
        try:
            for _ in range(limit):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(f"GET /v1/watch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
                streams.append(s)
            for s in streams:  # every one of them is streaming
                head = s.recv(200).decode(errors="replace")
                assert head.startswith("HTTP/1.1 200"), head
            one_more = requests.get(base + "/v1/watch", headers=bearer(token), timeout=10)
            assert one_more.status_code == 503 and one_more.json()["code"] == "unavailable" and one_more.headers.get("Retry-After")
        finally:
            for s in streams:
                s.close()


def test_request_limits(tmp_path: Path):
    """Body sizes (64 KiB, 1 MiB for batches), items per batch (1000) and list pages (20, at most 100)."""
    limits = section("## Limits and quotas")
    found(r"\| request body \| 64 KiB \(1 MiB for batches\) \| — \| `413 payload_too_large` \|", limits)
    found(r"\| checks in a batch, objects in a capabilities call \| 1000 \| — \| `400 invalid_request` \|", limits)
    found(r"`payload_too_large` \(413, bodies over 64 KiB; 1 MiB for `/v1/authorize/batch`,\s+`/v1/capabilities` and `/access/v1/evaluations`; 256 MiB for a restore",
                section("## Errors"))
    found(r"`\?limit=1\.\.100&offset=`", README)
    found(r'`"limit"` \(1 to 100, default 20\)', README)
    found(r"\(`limit` default 20, max 100, `offset`\)", limits)
    password = "root password of the defaults"
    with server(tmp_path, ROOT_EMAIL="root@example.com", ROOT_PASSWORD=password) as (base, _):
        user = signup_and_login(base, "lim@example.com")
        auth = bearer(user["access_token"])
        org = requests.post(base + "/v1/orgs", json={"name": "Limits"}, headers=auth, timeout=10).json()["id"]

        def post_size(path: str, size: int) -> int:
            body = b'{"name": "x"}'
            body += b" " * (size - len(body))
            return requests.post(base + path, data=body, headers=dict(auth, **{"Content-Type": "application/json"}), timeout=30).status_code

        kib, mib = 1024, 1024 * 1024
        assert post_size("/v1/orgs", 64 * kib) == 201 and post_size("/v1/orgs", 64 * kib + 1) == 413
        for path in ("/v1/authorize/batch", "/v1/capabilities", "/access/v1/evaluations"):
            assert post_size(path, mib) != 413, path  # read (and answered for what it holds)
            assert post_size(path, mib + 1) == 413, path
            assert post_size(path, 64 * kib + 1) != 413, path
        # The restore's limit is in the source (a 256 MiB request is too much for a test).
        assert source_int("Server/HTTP/Orgs/BackupRoutes.swift", r"restoreLimit = ([\d *]+)") == 256 * mib

        # Items per request.
        obj = f"org:{org}"
        for path, key, item in (("/v1/authorize/batch", "checks", {"object": obj, "action": "viewer"}),
                                ("/v1/capabilities", "objects", obj),
                                ("/access/v1/evaluations", "evaluations", {"resource": {"type": "org", "id": org}})):
            body = {key: [item] * 1000}
            if key == "evaluations":
                body.update(subject={"type": "user", "id": user["user"]["id"]}, action={"name": "viewer"})
            assert requests.post(base + path, json=body, headers=auth, timeout=60).status_code == 200, path
            body[key] = [item] * 1001
            r = requests.post(base + path, json=body, headers=auth, timeout=60)
            assert r.status_code == 400 and r.json()["code"] == "invalid_request", (path, r.text)

        # Pages: 20 by default, 100 at most, on lists and on lookup.
        for n in range(21):
            requests.post(base + "/v1/orgs", json={"name": f"Page {n}"}, headers=auth, timeout=10)
        page = requests.get(base + "/v1/orgs", headers=auth, timeout=10).json()
        everything = requests.get(base + "/v1/orgs?limit=100", headers=auth, timeout=10).json()
        assert page["limit"] == 20 and len(page["items"]) == 20 and page["total"] > 20
        assert everything["limit"] == 100 and len(everything["items"]) == everything["total"] == page["total"]
        assert requests.get(base + "/v1/orgs?limit=101", headers=auth, timeout=10).status_code == 400
        lookup = requests.post(base + "/v1/lookup", json={"permission": "org.read"}, headers=auth, timeout=10).json()
        assert lookup["limit"] == 20 and len(lookup["items"]) == 20 and lookup["total"] == page["total"]
        assert requests.post(base + "/v1/lookup", json={"permission": "org.read", "limit": 100}, headers=auth, timeout=10).status_code == 200
        assert requests.post(base + "/v1/lookup", json={"permission": "org.read", "limit": 101}, headers=auth, timeout=10).status_code == 400


def test_lifetimes(tmp_path: Path):
    """Invites 7 days, reset tokens an hour, verification tokens 7 days."""
    found(r"the invite is pending for 7 days", section("## Inviting people"))
    found(r"A reset token works once, for one hour.*A verification token works once, for 7 days", README)
    found(r"Reset tokens work once for an hour, verification tokens once for 7 days", section("## Security notes"))
    identity = "Identity/AuthService.swift"
    assert source_int(identity, r"resetLifetime: TimeInterval = ([\d_ *]+)") == 3600
    assert source_int(identity, r"verificationLifetime: TimeInterval = ([\d_ *]+)") == 7 * 86400
    assert source_int(identity, r"inviteLifetime: TimeInterval = ([\d_ *]+)") == 7 * 86400
    with server(tmp_path) as (base, _):
        auth = bearer(signup_and_login(base, "ivy@example.com")["access_token"])
        org = requests.post(base + "/v1/orgs", json={"name": "Lifetimes"}, headers=auth, timeout=10).json()["id"]
        invite = requests.post(base + f"/v1/orgs/{org}/invites", json={"email": "new@example.com", "role": "viewer"},
                               headers=auth, timeout=10).json()

        def at(text: str) -> float:
            return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

        assert at(invite["expires_at"]) - at(invite["created_at"]) == 7 * 86400


# --- the source --------------------------------------------------------------------------------------

def test_defaults_only_the_source_shows():
    """Defaults that take a long time or a second node to show: the table against AppConfig's
    initial values, and the documented ranges against what fromEnvironment accepts and what the
    binary refuses."""
    config = source("Server/App/Config.swift")

    def initial(pattern: str) -> str:
        m = re.search(pattern, config)
        assert m, pattern
        return m.group(1)

    assert table_int("PORTCULLIS_PORT") == int(initial(r"public var port = (\d+)"))
    assert table_int("PORTCULLIS_CHANGE_POLL_MS") == int(initial(r"changePollInterval: Duration = \.milliseconds\((\d+)\)"))
    assert table_int("PORTCULLIS_KEY_USAGE_FLUSH_SECONDS") == int(initial(r"keyUsageFlushInterval: Duration = \.seconds\((\d+)\)"))
    assert table_int("PORTCULLIS_MAX_STALENESS_MS") == int(initial(r"maxStaleness: Duration = \.milliseconds\((\d+)\)"))
    assert table_int("PORTCULLIS_DATABASE_TIMEOUT_MS") == 1000 * int(initial(r"databaseTimeout: Duration = \.seconds\((\d+)\)"))
    assert table_int("PORTCULLIS_CLIENT_TIMEOUT_SECONDS") == int(initial(r"clientTimeout: Duration = \.seconds\((\d+)\)"))
    # No automatic rotation unless set: an optional without an initial value.
    assert TABLE["PORTCULLIS_SIGNING_KEY_ROTATION_DAYS"].startswith("— (only by hand)")
    assert re.search(r"public var signingKeyRotation: Duration\?\n", config)
    # Binding quotas, stated three times in the README.
    bindings = source("Policy/Bindings.swift")
    per_org = int(re.search(r"defaultPerOrg = ([\d_]+)", bindings).group(1).replace("_", ""))
    per_principal = int(re.search(r"defaultPerPrincipal = ([\d_]+)", bindings).group(1).replace("_", ""))
    assert table_int("PORTCULLIS_MAX_BINDINGS_PER_ORG") == per_org
    assert table_int("PORTCULLIS_MAX_BINDINGS_PER_PRINCIPAL") == per_principal
    limits = section("## Limits and quotas")
    found(rf"\| bindings in one org \| {per_org:,} \|", limits)
    found(rf"\| bindings of one subject in one org \| {per_principal:,} \|", limits)
    found(rf"`PORTCULLIS_MAX_BINDINGS_PER_ORG` \(default {per_org}\).*`PORTCULLIS_MAX_BINDINGS_PER_PRINCIPAL` \(default {per_principal}\)", limits)
    # The poll interval and staleness bound as the prose states them.
    found(rf"every `PORTCULLIS_CHANGE_POLL_MS` \({table_int('PORTCULLIS_CHANGE_POLL_MS')} ms by default\)", README)
    found(rf"`PORTCULLIS_MAX_STALENESS_MS` \({table_int('PORTCULLIS_MAX_STALENESS_MS')} ms by default\)", README)
    found(rf"`PORTCULLIS_DATABASE_TIMEOUT_MS`\s+\({table_int('PORTCULLIS_DATABASE_TIMEOUT_MS')} by default\)", README)
    found(rf"`PORTCULLIS_KEY_USAGE_FLUSH_SECONDS` \({table_int('PORTCULLIS_KEY_USAGE_FLUSH_SECONDS')} by default\)", README)

    # The ranges the table gives, as fromEnvironment checks them, and as the binary refuses past them.
    rows = dict(re.findall(r"^\| `(PORTCULLIS_[A-Z_]+)` \| [^|]* \| ([^|]*) \|", section("## Configuration"), re.M))
    ranges = {
        "PORTCULLIS_CHANGE_POLL_MS": (r"5 to 5000 ms", 5, 5000, r'value\("CHANGE_POLL_MS"\).*?\((\d+)\.\.\.(\d+)\)\.contains'),
        "PORTCULLIS_KEY_USAGE_FLUSH_SECONDS": (r"1 to 3600 seconds", 1, 3600, r'value\("KEY_USAGE_FLUSH_SECONDS"\).*?\((\d+)\.\.\.(\d+)\)\.contains'),
        "PORTCULLIS_SIGNING_KEY_ROTATION_DAYS": (r"1 to 3650 \(fractions allowed\)", 1, 3650, r'value\("SIGNING_KEY_ROTATION_DAYS"\).*?n >= (\d+), n <= (\d+)'),
        "PORTCULLIS_MAX_STALENESS_MS": (r"100 to 600000", 100, 600000, r'count\("MAX_STALENESS_MS", ([\d_]+)\.\.\.([\d_]+)\)'),
        "PORTCULLIS_DATABASE_TIMEOUT_MS": (r"100 to 120000", 100, 120000, r'count\("DATABASE_TIMEOUT_MS", ([\d_]+)\.\.\.([\d_]+)\)'),
        "PORTCULLIS_METRICS_TOKEN": (r"32 to 512 printable characters", 32, 512, r"v\.utf8\.count >= (\d+), v\.utf8\.count <= (\d+)"),
    }
    for name, (stated, low, high, code) in ranges.items():
        assert re.search(stated, rows[name]), (name, rows[name])
        m = re.search(code, config, re.S)
        assert m and (int(m.group(1).replace("_", "")), int(m.group(2).replace("_", ""))) == (low, high), (name, m and m.groups())
        if name == "PORTCULLIS_METRICS_TOKEN":
            outside = ["a" * (low - 1), "a" * (high + 1)]
        else:
            outside = [str(low - 1) if low > 1 else "0", str(high + 1)]
        for value in outside:
            assert name in config_error(**{name.removeprefix("PORTCULLIS_"): value}), (name, value)


def test_mail_from_and_the_retry_schedule(tmp_path: Path):
    """The sender's default, seen by a real SMTP server; the retry schedule from the source, the
    first retry seen in `portcullis admin outbox`."""
    # --- the schedule as the README states it and as Sources/Server/Mail/Mail.swift computes it
    outbox = found(r"\*\*The outbox\.\*\*(.*?)\n- \*\*`portcullis admin outbox`", README).group(1)
    m = found(r"tried again after (\d+) s, then (\d+) s, (\d+) s and so on, doubling up to an hour apart: (\d+)\s+attempts over "
                    r"about (\d+) hours \((\d+) days (\d+) h (\d+) min: (\w+) waits doubling from (\d+) s to (\d+) s, then\s+(\d+) of an hour\)",
                    outbox)
    first, second, third, attempts, hours, days, h, minutes, waits_word, w_first, w_last, hourly = m.groups()
    found(rf"after the {attempts}th failure the message is given up", outbox)
    mail = source("Server/Mail/Mail.swift")
    max_attempts = int(found(r"public static let maxAttempts = (\d+)", mail).group(1))
    backoff = found(r"static func backoff\(attempts: Int\) -> TimeInterval \{\s*min\((\d+) \* pow\(2, Double\(max\(attempts - 1, 0\)\)\), (\d+)\)\s*\}", mail)
    base_wait, cap = int(backoff.group(1)), int(backoff.group(2))

    def wait_after(attempt: int) -> int:  # what the Swift backoff gives after the n-th failed attempt
        return min(base_wait * 2 ** max(attempt - 1, 0), cap)

    waits = [wait_after(n) for n in range(1, max_attempts)]  # no wait after the last attempt
    assert int(attempts) == max_attempts
    assert [int(first), int(second), int(third)] == waits[:3] and cap == 3600
    doubling = [w for w in waits if w < cap]
    words = {"ten": 10, "eleven": 11, "twelve": 12, "nine": 9}
    assert words[waits_word] == len(doubling) and (int(w_first), int(w_last)) == (doubling[0], doubling[-1])
    assert int(hourly) == len(waits) - len(doubling)
    total = sum(waits)
    assert round(total / 3600) == int(hours)
    assert (int(days), int(h), int(minutes)) == (total // 86400, total % 86400 // 3600, total % 3600 // 60), total
    # The CLI's table of states uses the same number.
    assert "counts.failed" in source("Server/App/ServerMetrics.swift") and "maxAttempts: OutboxSender.maxAttempts" in source("Server/App/ServerMetrics.swift")

    # --- the sender's default, through a real SMTP server
    assert TABLE["PORTCULLIS_MAIL_FROM"] == "Portcullis <portcullis@localhost>"
    url, directory = os.environ.get("PORTCULLIS_TEST_SMTP_URL"), os.environ.get("PORTCULLIS_TEST_SMTP_DIR")
    sink = None
    if not (url and directory):
        directory = str(tmp_path / "mail")
        sink = subprocess.Popen(["python3", str(REPO_ROOT / "scripts/smtp_sink.py"), "--dir", directory, "--port", "0",
                                 "--user", "portcullis", "--password", "sink-secret"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = sink.stdout.readline()
        assert line.startswith("ready "), line
        url = f"smtp://portcullis:sink-secret@127.0.0.1:{line.split()[1]}?insecure_auth=1"
    try:
        (tmp_path / "a").mkdir()
        with server(tmp_path / "a", SMTP_URL=url) as (base, _):
            requests.post(base + "/v1/users", json={"email": "from-check@example.com", "password": PASSWORD}, timeout=10)

            def received():
                for name in sorted(os.listdir(directory)):
                    text = (Path(directory) / name).read_text(errors="replace") if name.endswith(".eml") else ""
                    if "X-Envelope-To: from-check@example.com" in text:
                        return text
                return None

            message = wait_for(received, what="the mail at the SMTP sink")
        assert re.search(r"^From: (.*?)\r?$", message, re.M).group(1) == TABLE["PORTCULLIS_MAIL_FROM"]
    finally:
        if sink:
            sink.terminate()
            sink.wait(timeout=10)

    # --- the first retry, as `portcullis admin outbox` shows it: 5 s after the failed attempt
    (tmp_path / "b").mkdir()
    with server(tmp_path / "b", SMTP_URL=f"smtp://127.0.0.1:{free_port()}") as (base, log_path):
        requests.post(base + "/v1/users", json={"email": "retry@example.com", "password": PASSWORD}, timeout=10)
        failure = wait_for(lambda: re.search(r"^(\S+) warning portcullis: attempt=1 .*gives_up=false .*mail not sent; will retry$",
                                             log_path.read_text(errors="replace"), re.M), what="the first failed attempt")
        cli = subprocess.run([str(binary()), "admin", "outbox"], cwd=tmp_path / "b", env=clean_env(), capture_output=True, text=True, timeout=30)
    assert cli.returncode == 0, cli.stderr
    row = found(r"pending +verify_email +to retry@example\.com +attempts 1 +next (\S+) ", cli.stdout)
    failed_at = datetime.datetime.strptime(failure.group(1), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    next_at = datetime.datetime.fromisoformat(row.group(1).replace("Z", "+00:00")).timestamp()
    assert abs(next_at - failed_at - waits[0]) < 2, (failure.group(0), row.group(0))
