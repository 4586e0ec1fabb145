"""The server-rendered HTML pages (/signup, /forgot-password, /reset-password, /verify-email) in a
real headless Chromium driven by Selenium, against a real server and a real SMTP sink: a person
signs up and confirms the address from the mailed link, resets a forgotten password from the mailed
link, sees errors in place; CSRF and Origin checks refuse forged posts; every page has the security
headers and the accessibility basics; screenshots of every page at a desktop and a phone width.

Chromium, chromedriver and selenium come from scripts/install-deps.sh: their absence is a failure
here, never a skip. Screenshots go to $PORTCULLIS_SCREENSHOT_DIR, else Tests/blackbox/screenshots/,
named <page>-<width>.png."""

import contextlib
import email
import email.policy
import json
import os
import re
import shutil
import struct
import time
import uuid
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

import secrets_seen
from portcullis_server import ServerStartError, running_server
from portcullis_server import smtp_sink as shared_smtp_sink

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as error:  # a failure, not a skip: install-deps installs it
    webdriver = None
    SELENIUM_IMPORT_ERROR = error

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / ".build" / "debug" / "portcullis"
SCREENSHOT_DIR = Path(os.environ.get("PORTCULLIS_SCREENSHOT_DIR") or REPO_ROOT / "Tests" / "blackbox" / "screenshots")
VIEWPORTS = [(1280, 900), (390, 844)]
PASSWORD = "correct horse battery staple"
CSRF_COOKIE = "portcullis_csrf"
TIMEOUT = 10  # seconds for one page load or one element

# Tokens for the pages' GET forms; the server only reads a token when the form is posted.
BOGUS_TOKEN = "bogus-token-0123456789abcdefghijklmnopqrstuvw"


def fresh_email(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:10]}@example.com"


# --- the server and its SMTP sink ----------------------------------------------------------------

def binary() -> Path:
    path = Path(os.environ.get("PORTCULLIS_BIN", DEFAULT_BIN))
    if not path.is_file():
        pytest.fail(f"server binary {path} not found; run `swift build` first", pytrace=False)
    return path


class Sink:
    """The SMTP sink's folder: every accepted message is a <n>.eml file there."""

    def __init__(self, url: str, directory: Path, skip: set):
        self.url, self.directory, self.used = url, directory, set(skip)

    def messages(self):
        for name in sorted(os.listdir(self.directory)):
            if name.endswith(".eml") and name not in self.used:
                yield name, email.message_from_bytes((self.directory / name).read_bytes(), policy=email.policy.default)

    def link(self, to: str, prefix: str, timeout: float = 20) -> str:
        """The link starting with `prefix` (e.g. "{base}/verify-email?token=") in the next mail to
        `to`; each mail is used once."""
        pattern = re.compile(re.escape(prefix) + r"[A-Za-z0-9_\-%.~]+")
        deadline = time.monotonic() + timeout
        seen_to = []
        while True:
            for name, message in self.messages():
                if to not in message.get("X-Envelope-To", "").split(","):
                    continue
                text = message.get_body(preferencelist=("plain",)).get_content()
                match = pattern.search(text)
                seen_to.append(text)
                if match:
                    self.used.add(name)
                    secrets_seen.note(match.group(0).split("=", 1)[1])
                    return match.group(0)
            if time.monotonic() > deadline:
                pytest.fail(f"no mail to {to} with a link {prefix}… within {timeout:.0f}s; mails to {to}: {seen_to!r}",
                            pytrace=False)
            time.sleep(0.1)

    def count_to(self, to: str) -> int:
        return sum(1 for _, m in self.messages() if to in m.get("X-Envelope-To", "").split(","))


@contextlib.contextmanager
def smtp_sink(tmp: Path):
    """The shared SMTP sink (portcullis_server.smtp_sink), read through `Sink`."""
    with shared_smtp_sink(tmp) as (url, directory, seen):
        yield Sink(url, directory, seen)


class Server:
    def __init__(self, base: str, sink: Sink, log_path: Path):
        self.base, self.sink, self.log_path = base, sink, log_path

    def url(self, path: str) -> str:
        return self.base + path

    # The JSON API, as an application would call it.
    def api_signup(self, address: str, password: str = PASSWORD) -> requests.Response:
        return requests.post(self.url("/v1/users"), json={"email": address, "password": password}, timeout=TIMEOUT)

    def login(self, address: str, password: str) -> requests.Response:
        return requests.post(self.url("/v1/auth/login"), json={"email": address, "password": password}, timeout=TIMEOUT)

    def me(self, address: str, password: str) -> dict:
        login = self.login(address, password)
        assert login.status_code == 200, f"login of {address}: {login.status_code} {login.text}"
        me = requests.get(self.url("/v1/me"), headers={"Authorization": f"Bearer {login.json()['access_token']}"},
                          timeout=TIMEOUT)
        assert me.status_code == 200, me.text
        return me.json()

    def account_exists(self, address: str) -> bool:
        """Whether an account has `address`, without leaving one behind when none has: an API
        signup with that address is 409 email_taken when one exists. (When none exists it makes
        one, so call this once per address, at the end.)"""
        r = self.api_signup(address, "a probe password 0123456789")
        assert r.status_code in (201, 409), f"API signup probe: {r.status_code} {r.text}"
        return r.status_code == 409


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pages")
    with smtp_sink(tmp) as sink:
        workdir = tmp / "server"
        workdir.mkdir()
        try:
            # running_server sets PORTCULLIS_PUBLIC_URL to its own base URL, so mailed links point here.
            # The per-address burst is raised: this file posts more credential forms than 50 from one address.
            with running_server(binary(), workdir, SMTP_URL=sink.url, SIGNUP="open", IP_BURST="1000") as base:
                yield Server(base, sink, workdir / "server.log")
        except ServerStartError as error:
            pytest.fail(str(error), pytrace=False)


# --- the browser ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if webdriver is None:
        pytest.fail(f"selenium is not installed ({SELENIUM_IMPORT_ERROR}); run scripts/install-deps.sh", pytrace=False)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("chromium and chromedriver must be installed (Debian packages chromium, chromium-driver); "
                    "run scripts/install-deps.sh", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--no-first-run", "--disable-extensions", "--window-size=1280,900",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(argument)
    # The network log tells each page's HTTP status; the console log tells CSP violations.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    try:
        # A driver path given: Selenium Manager (which would download one) is not used.
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
    except WebDriverException as error:
        pytest.fail(f"headless Chromium did not start: {error}", pytrace=False)
    driver.set_page_load_timeout(TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


def statuses(driver) -> list:
    """(URL, status) of every document the browser received since the last call."""
    found = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived" and message["params"].get("type") == "Document":
            found.append((message["params"]["response"]["url"], message["params"]["response"]["status"]))
    return found


def csp_violations(driver) -> list:
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


def open_page(driver, url: str) -> int:
    """Loads `url` with a GET and returns its status."""
    statuses(driver)
    driver.get(url)
    got = statuses(driver)
    assert got, f"the browser saw no document for {url}"
    return got[-1][1]


def next_document(driver, act, what: str) -> int:
    """Runs `act` (a click, say), waits for the next document and returns its status."""
    # A mark on the current document (set through the driver, not the page, so CSP has no say):
    # gone once the next document has loaded.
    driver.execute_script("window.__portcullisTestOldPage = true")
    statuses(driver)
    act()

    def next_page_loaded(d):
        try:
            return d.execute_script("return !window.__portcullisTestOldPage && document.readyState === 'complete'")
        except WebDriverException:  # between two documents
            return False

    try:
        WebDriverWait(driver, TIMEOUT).until(next_page_loaded)
    except TimeoutException:
        pytest.fail(f"{what} on {driver.current_url} loaded no new page within {TIMEOUT}s", pytrace=False)
    got = statuses(driver)
    assert got, f"the browser saw no document after {what}"
    return got[-1][1]


def submit(driver, form=None) -> int:
    """Presses the form's submit button, as a person does; returns the status of the page it led to."""
    form = form or single(driver, "form")
    button = form.find_element(By.CSS_SELECTOR, "button[type=submit]")
    return next_document(driver, button.click, "pressing the submit button")


def submit_expecting(driver, status: int):
    got = submit(driver)
    if got != status:
        heading = [e.text for e in driver.find_elements(By.TAG_NAME, "h1")]
        errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".error")]
        pytest.fail(f"the form's post answered {got}, not {status}: now at {driver.current_url}, h1 {heading}, "
                    f"errors {errors}", pytrace=False)


def single(driver, selector: str):
    found = driver.find_elements(By.CSS_SELECTOR, selector)
    assert len(found) == 1, f"{len(found)} elements match {selector!r} on {driver.current_url}:\n{driver.page_source[:3000]}"
    return found[0]


def type_into(driver, name: str, value: str):
    field = single(driver, f"input[name={name}]")
    field.clear()
    field.send_keys(value)


def h1(driver) -> str:
    return single(driver, "h1").text.strip()


def main_text(driver) -> str:
    return single(driver, "main").text.strip()


def check_structure(driver):
    """What every page has, checked in the browser: one h1, one main landmark, the stylesheet
    really applied (not blocked by the page's own CSP), no CSP violation in the console."""
    where = driver.current_url
    assert len(driver.find_elements(By.TAG_NAME, "h1")) == 1, f"not exactly one <h1> on {where}"
    mains = driver.find_elements(By.CSS_SELECTOR, "main, [role=main]")
    assert len(mains) == 1 and mains[0].is_displayed(), f"not exactly one visible main landmark on {where}"
    sheets = driver.execute_script(
        "return Array.from(document.styleSheets).map(s => {"
        " let n = -1; try { n = s.cssRules.length } catch (e) {} return [s.href || '', n] })")
    own = [n for href, n in sheets if urlsplit(href).path == "/assets/portcullis.css"]
    assert own and own[0] > 0, f"/assets/portcullis.css is not applied on {where}: {sheets}"
    violations = csp_violations(driver)
    assert not violations, f"the page's own resources break its CSP on {where}: {violations}"


# Every form field a person can reach (not type=hidden, not the `hidden` attribute) and the
# names of those without a label: no <label> (by `for` or around it) with text, no aria-label,
# no aria-labelledby naming an element with text. Also every id used more than once.
UNLABELLED_FIELDS_JS = """
const describe = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.name ? '[name=' + el.name + ']' : '');
const unlabelled = [];
for (const el of document.querySelectorAll('input, select, textarea')) {
  if (el.type === 'hidden' || el.hidden) continue;
  const labels = Array.from(el.labels || []).map(l => l.textContent.trim()).filter(Boolean);
  const aria = (el.getAttribute('aria-label') || '').trim();
  const by = (el.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean)
    .map(id => (document.getElementById(id) || {}).textContent || '').join(' ').trim();
  if (!labels.length && !aria && !by) unlabelled.push(describe(el));
}
const counts = {};
for (const el of document.querySelectorAll('[id]')) counts[el.id] = (counts[el.id] || 0) + 1;
return [unlabelled, Object.keys(counts).filter(id => counts[id] > 1)];
"""


def check_labels(driver):
    """Every input, select and textarea a person can reach has a label with text, and ids are unique."""
    unlabelled, repeated = driver.execute_script(UNLABELLED_FIELDS_JS)
    assert not unlabelled, f"fields without a label on {driver.current_url}: {unlabelled}"
    assert not repeated, f"ids used more than once on {driver.current_url}: {repeated}"


def shoot(driver, page: str):
    """<page>-<width>.png at each viewport; also checks that nothing overflows sideways."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    try:
        for width, height in VIEWPORTS:
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
            overflow = driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{page} at {width}px is {overflow}px wider than the screen"
            path = SCREENSHOT_DIR / f"{page}-{width}.png"
            assert driver.save_screenshot(str(path)), f"no screenshot for {path}"
            with open(path, "rb") as f:
                head = f.read(24)
            assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (width, height), \
                f"{path} is not a {width}x{height} PNG"
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


@pytest.fixture
def page(browser):
    """The browser with no cookies from an earlier test."""
    browser.delete_all_cookies()
    statuses(browser)
    csp_violations(browser)
    return browser


# --- requests without a browser (for statuses, headers and forged posts) --------------------------

class Inputs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inputs, self.h1s, self.mains, self.forms, self.errors = [], 0, 0, 0, []
        self._in_error = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input":
            self.inputs.append(a)
        self.h1s += tag == "h1"
        self.mains += tag == "main" or a.get("role") == "main"
        self.forms += tag == "form"
        if "error" in (a.get("class") or "").split():
            self.errors.append(a)


def parse(html: str) -> Inputs:
    parser = Inputs()
    parser.feed(html)
    return parser


def hidden(html: str, name: str):
    values = [i.get("value") for i in parse(html).inputs if i.get("name") == name]
    assert len(values) == 1, f"{len(values)} inputs named {name!r}"
    return values[0]


def form_session(server: Server, path: str):
    """A client that loaded the form at `path` (a GET): the client (with its cookies), the form's
    csrf value and the page."""
    session = requests.Session()
    r = session.get(server.url(path), timeout=TIMEOUT)
    assert r.status_code == 200, f"GET {path}: {r.status_code}"
    cookie = session.cookies.get(CSRF_COOKIE)
    assert cookie, f"GET {path} set no {CSRF_COOKIE} cookie: {r.headers.get('Set-Cookie')!r}"
    return session, hidden(r.text, "csrf"), r


def post_form(session, server: Server, path: str, fields: dict, origin: str | None = "own", fetch_site: str | None = None) -> requests.Response:
    for key in ("password", "new_password", "token", "invite_token"):
        if key in fields:
            secrets_seen.note(fields[key])
    headers = {"Origin": server.base if origin == "own" else origin} if origin else {}
    if fetch_site:
        headers["Sec-Fetch-Site"] = fetch_site
    return session.post(server.url(path), data=fields, headers=headers, timeout=TIMEOUT, allow_redirects=False)


def csp_directives(value: str) -> dict:
    directives = {}
    for part in value.split(";"):
        tokens = part.split()
        if tokens:
            directives.setdefault(tokens[0].lower(), tokens[1:])
    return directives


def check_headers(response: requests.Response):
    where = f"{response.request.method} {urlsplit(response.url).path} ({response.status_code})"
    assert response.headers.get("Content-Type", "").startswith("text/html"), f"{where}: {response.headers.get('Content-Type')}"
    csp = response.headers.get("Content-Security-Policy")
    assert csp, f"{where}: no Content-Security-Policy"
    directives = csp_directives(csp)
    # What restricts scripts: script-src, else default-src; with neither, inline scripts would run.
    scripts = directives.get("script-src", directives.get("default-src"))
    assert scripts is not None, f"{where}: the CSP restricts no script (no script-src nor default-src): {csp}"
    assert "'unsafe-inline'" not in scripts, f"{where}: script-src allows 'unsafe-inline': {csp}"
    assert directives.get("frame-ancestors") == ["'none'"], f"{where}: frame-ancestors is not 'none': {csp}"
    assert response.headers.get("Referrer-Policy") == "no-referrer", f"{where}: Referrer-Policy {response.headers.get('Referrer-Policy')!r}"
    assert response.headers.get("X-Content-Type-Options") == "nosniff", f"{where}: X-Content-Type-Options"
    parsed = parse(response.text)
    assert parsed.h1s == 1 and parsed.mains == 1, f"{where}: {parsed.h1s} <h1>, {parsed.mains} main landmarks"


# --- 1. signup, the verification mail, confirming ------------------------------------------------

def test_signup_then_confirm_the_address_from_the_mail(server, page):
    address, name = fresh_email("signup"), "Ada Lovelace"
    assert open_page(page, server.url("/signup")) == 200
    type_into(page, "email", address)
    type_into(page, "name", name)
    type_into(page, "password", PASSWORD)
    secrets_seen.note(PASSWORD)
    submit_expecting(page, 200)
    assert h1(page) == "Check your inbox"
    check_structure(page)
    shoot(page, "signup-done")

    # The account exists, unconfirmed, with the name typed.
    me = server.me(address, PASSWORD)
    assert (me["email"], me["name"], me["email_verified"]) == (address, name, False)

    link = server.sink.link(address, server.url("/verify-email?token="))
    # A mail scanner opening the link does not spend the token: only the form's POST does.
    scanned = requests.get(link, timeout=TIMEOUT)
    assert scanned.status_code == 200 and parse(scanned.text).forms == 1
    assert server.me(address, PASSWORD)["email_verified"] is False

    assert open_page(page, link) == 200
    check_structure(page)
    single(page, "form button[type=submit]")
    assert server.me(address, PASSWORD)["email_verified"] is False, "opening the link confirmed the address"
    submit_expecting(page, 200)
    assert h1(page) == "Address confirmed"
    check_structure(page)
    shoot(page, "verify-email-done")
    assert server.me(address, PASSWORD)["email_verified"] is True

    # The same link again: the token is spent.
    assert open_page(page, link) == 200
    submit_expecting(page, 400)
    error = single(page, ".error")
    assert error.get_attribute("role") == "alert" and error.is_displayed() and error.text.strip()
    shoot(page, "verify-email-error")


# --- 2. forgot password, the reset mail, a new password -----------------------------------------

def test_forgot_password_then_reset_from_the_mail(server, page):
    address, new_password = fresh_email("reset"), "a brand new passphrase"
    secrets_seen.note(new_password)
    assert server.api_signup(address).status_code == 201
    assert open_page(page, server.url("/forgot-password")) == 200
    type_into(page, "email", address)
    submit_expecting(page, 200)
    assert h1(page) == "Check your inbox"
    check_structure(page)
    shoot(page, "forgot-password-done")

    link = server.sink.link(address, server.url("/reset-password?token="))
    assert open_page(page, link) == 200
    check_structure(page)
    assert single(page, "input[name=token]").get_attribute("value") == link.split("token=", 1)[1]
    type_into(page, "new_password", new_password)
    submit_expecting(page, 200)
    assert h1(page) == "Password changed"
    check_structure(page)
    shoot(page, "reset-password-done")

    assert server.login(address, PASSWORD).status_code == 401, "the old password still logs in"
    assert server.login(address, new_password).status_code == 200, "the new password does not log in"

    # The link again: the token is spent; the form comes back with the error, and nothing changes.
    assert open_page(page, link) == 200
    type_into(page, "new_password", "yet another passphrase")
    submit_expecting(page, 400)
    error = single(page, ".error")
    assert error.get_attribute("role") == "alert" and error.is_displayed() and error.text.strip()
    single(page, "input[name=new_password]")  # the form page, to try again
    check_structure(page)
    shoot(page, "reset-password-error")
    assert server.login(address, new_password).status_code == 200


# --- 3. forgot password tells nothing about who has an account -----------------------------------

def test_forgot_password_answers_alike_for_an_unknown_address(server, page):
    known, unknown = fresh_email("known"), fresh_email("nobody")
    assert server.api_signup(known).status_code == 201
    texts = {}
    for address in (known, unknown):
        page.delete_all_cookies()
        assert open_page(page, server.url("/forgot-password")) == 200
        type_into(page, "email", address)
        submit_expecting(page, 200)
        assert h1(page) == "Check your inbox"
        texts[address] = page.find_element(By.TAG_NAME, "body").text
    assert texts[known] == texts[unknown], f"the pages differ:\n--- known\n{texts[known]}\n--- unknown\n{texts[unknown]}"
    # Not vacuous: the known address got its mail, the other none.
    server.sink.link(known, server.url("/reset-password?token="))
    time.sleep(0.5)
    assert server.sink.count_to(unknown) == 0
    # The same status and body without a browser too.
    answers = []
    for address in (known, unknown):
        session, csrf, _ = form_session(server, "/forgot-password")
        r = post_form(session, server, "/forgot-password", {"csrf": csrf, "email": address})
        answers.append((r.status_code, re.sub(r'name="csrf" value="[^"]*"', "", r.text)))
    assert answers[0] == answers[1] and answers[0][0] == 200


# --- 4. a signup error is shown in place ---------------------------------------------------------

def test_signup_error_is_shown_in_the_form_with_the_fields_kept(server, page):
    address, name, short = fresh_email("short"), "Grace Hopper", "seven77"
    assert len(short) == 7
    secrets_seen.note(PASSWORD)
    assert open_page(page, server.url("/signup")) == 200
    type_into(page, "email", address)
    type_into(page, "name", name)
    type_into(page, "password", short)
    # A browser that does not check minlength itself (or a page without it): the server must.
    page.execute_script("arguments[0].noValidate = true", single(page, "form"))
    submit_expecting(page, 400)
    error = single(page, ".error")
    assert error.get_attribute("role") == "alert" and error.is_displayed()
    assert "8" in error.text, f"the error does not say what is wrong: {error.text!r}"
    assert single(page, "input[name=email]").get_attribute("value") == address
    assert single(page, "input[name=name]").get_attribute("value") == name
    assert h1(page) != "Check your inbox"
    check_structure(page)
    shoot(page, "signup-error")

    # Without a browser: the same answer.
    session, csrf, _ = form_session(server, "/signup")
    r = post_form(session, server, "/signup", {"csrf": csrf, "email": address, "name": name, "password": short})
    assert r.status_code == 400 and len(parse(r.text).errors) == 1
    assert server.login(address, short).status_code != 200
    assert not server.account_exists(address), "a signup with a too-short password made an account"


# --- 5. CSRF and Origin --------------------------------------------------------------------------

def test_forged_posts_are_refused(server):
    def refused(r, what):
        assert r.status_code == 403, f"{what}: {r.status_code}"
        check_headers(r)

    signup = lambda a: {"email": a, "name": "Mallory", "password": PASSWORD}  # noqa: E731

    # No csrf field, though the cookie is there.
    a = fresh_email("nocsrf")
    session, csrf, _ = form_session(server, "/signup")
    assert session.cookies.get(CSRF_COOKIE) == csrf, "the form's csrf is not the cookie's value"
    refused(post_form(session, server, "/signup", signup(a)), "signup without the csrf field")
    # A wrong csrf field.
    b = fresh_email("wrongcsrf")
    refused(post_form(session, server, "/signup", dict(signup(b), csrf=csrf[:-2] + ("AA" if csrf[-2:] != "AA" else "BB"))),
            "signup with a wrong csrf field")
    # The field without its cookie (another client's page).
    c = fresh_email("nocookie")
    refused(post_form(requests.Session(), server, "/signup", dict(signup(c), csrf=csrf)), "signup without the cookie")
    # Cookie and field right, from another site.
    d = fresh_email("evil")
    refused(post_form(session, server, "/signup", dict(signup(d), csrf=csrf), origin="https://evil.example"),
            "signup with Origin: https://evil.example")
    # The control: the same post from the server's own origin is accepted.
    e = fresh_email("good")
    ok = post_form(session, server, "/signup", dict(signup(e), csrf=csrf))
    assert ok.status_code == 200 and "Check your inbox" in ok.text, ok.status_code
    for address in (a, b, c, d):
        assert not server.account_exists(address), f"{address}: a refused post made an account"
    assert server.account_exists(e)

    # A reset: refused without csrf and from another origin; the token stays good.
    victim = fresh_email("victim")
    assert server.api_signup(victim).status_code == 201
    assert requests.post(server.url("/v1/auth/password-reset"), json={"email": victim}, timeout=TIMEOUT).status_code == 202
    link = server.sink.link(victim, server.url("/reset-password?token="))
    token = link.split("token=", 1)[1]
    path = urlsplit(link).path + "?" + urlsplit(link).query
    session, csrf, form = form_session(server, path)
    assert hidden(form.text, "token") == token
    forged = {"token": token, "new_password": "attacker chosen passphrase"}
    refused(post_form(session, server, "/reset-password", forged), "reset without the csrf field")
    refused(post_form(session, server, "/reset-password", dict(forged, csrf=csrf), origin="https://evil.example"),
            "reset with Origin: https://evil.example")
    # Origin: null (what a no-referrer page sends) proves nothing: a browser that calls the post
    # cross-site is refused even with the right token.
    refused(post_form(session, server, "/reset-password", dict(forged, csrf=csrf), origin="null", fetch_site="cross-site"),
            "reset with Origin: null from another site")
    assert server.login(victim, "attacker chosen passphrase").status_code == 401
    assert server.login(victim, PASSWORD).status_code == 200, "a refused reset changed the password"
    # The token was not spent by the refused posts.
    mine = post_form(session, server, "/reset-password", {"csrf": csrf, "token": token, "new_password": "the owner's new passphrase"})
    assert mine.status_code == 200 and "Password changed" in mine.text


# --- 6. headers and accessibility basics on every page -------------------------------------------

FORM_PAGES = {
    # page name: (path, {input name: (type, autocomplete)}, {hidden input name: expected value or None})
    "signup": ("/signup", {"email": ("email", "email"), "name": (None, "name"), "password": ("password", "new-password")},
               {"csrf": None}),
    "signup-invite": (f"/signup?invite_token={BOGUS_TOKEN}",
                      {"email": ("email", "email"), "name": (None, "name"), "password": ("password", "new-password")},
                      {"csrf": None, "invite_token": BOGUS_TOKEN}),
    "forgot-password": ("/forgot-password", {"email": ("email", "email")}, {"csrf": None}),
    "reset-password": (f"/reset-password?token={BOGUS_TOKEN}", {"new_password": ("password", "new-password")},
                       {"csrf": None, "token": BOGUS_TOKEN}),
    "verify-email": (f"/verify-email?token={BOGUS_TOKEN}", {}, {"csrf": None, "token": BOGUS_TOKEN}),
}


@pytest.mark.parametrize("name", FORM_PAGES)
def test_page_headers_and_accessibility(server, page, name):
    path, visible, hiddens = FORM_PAGES[name]
    r = requests.get(server.url(path), timeout=TIMEOUT)
    assert r.status_code == 200, f"GET {path}: {r.status_code}"
    check_headers(r)
    css = requests.get(server.url("/assets/portcullis.css"), timeout=TIMEOUT)
    assert css.status_code == 200 and css.headers.get("Content-Type", "").startswith("text/css")

    assert open_page(page, server.url(path)) == 200
    check_structure(page)
    check_labels(page)
    links = page.find_elements(By.CSS_SELECTOR, "link[rel=stylesheet]")
    assert "/assets/portcullis.css" in [l.get_dom_attribute("href") for l in links]
    form = single(page, "form")
    assert (form.get_dom_attribute("method") or "").lower() == "post"
    assert urlsplit(form.get_attribute("action")).path == urlsplit(server.url(path)).path
    buttons = form.find_elements(By.TAG_NAME, "button")
    assert [b.get_dom_attribute("type") for b in buttons] == ["submit"], "the form's button is not one <button type=submit>"
    assert buttons[0].text.strip(), "the submit button has no text"
    assert not form.find_elements(By.CSS_SELECTOR, "input[type=submit], input[type=image]")

    inputs = form.find_elements(By.TAG_NAME, "input")
    shown = [i for i in inputs if i.get_dom_attribute("type") != "hidden"]
    assert sorted(i.get_dom_attribute("name") for i in shown) == sorted(visible), f"visible inputs on {path}"
    for field in shown:
        field_name = field.get_dom_attribute("name")
        kind, autocomplete = visible[field_name]
        assert field.get_dom_attribute("autocomplete") == autocomplete, f"{field_name}: autocomplete"
        if kind:
            assert field.get_dom_attribute("type") == kind, f"{field_name}: type"
        field_id = field.get_dom_attribute("id")
        assert field_id, f"input {field_name} has no id for a <label for>"
        labels = page.find_elements(By.CSS_SELECTOR, f'label[for="{field_id}"]')
        assert len(labels) == 1 and labels[0].text.strip(), f"input {field_name} has no label"
        assert len(page.find_elements(By.ID, field_id)) == 1, f"id {field_id} is not unique"
    got_hidden = {i.get_dom_attribute("name"): i.get_dom_attribute("value") for i in inputs if i.get_dom_attribute("type") == "hidden"}
    assert sorted(got_hidden) == sorted(hiddens), f"hidden inputs on {path}: {sorted(got_hidden)}"
    for hidden_name, want in hiddens.items():
        if want is not None:
            assert got_hidden[hidden_name] == want, f"hidden {hidden_name}"
    cookie = page.get_cookie(CSRF_COOKIE)
    assert cookie and cookie["value"] == got_hidden["csrf"], "the form's csrf is not the cookie's value"


# --- 7. screenshots ------------------------------------------------------------------------------

def test_screenshots_of_every_page(server, page):
    for name, (path, _, _) in FORM_PAGES.items():
        assert open_page(page, server.url(path)) == 200, path
        shoot(page, name)
    # The page a refused post shows (here the form's cookie is gone, as when it has expired).
    assert open_page(page, server.url("/forgot-password")) == 200
    type_into(page, "email", fresh_email("expired"))
    page.delete_all_cookies()
    submit_expecting(page, 403)
    check_structure(page)
    shoot(page, "refused")
    names = sorted(p.name for p in SCREENSHOT_DIR.glob("*.png"))
    for name in [*FORM_PAGES, "refused"]:
        for width, _ in VIEWPORTS:
            assert f"{name}-{width}.png" in names
