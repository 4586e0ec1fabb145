"""Federated and passwordless sign-in (SPEC §15) in a real headless Chromium, with a second real
Portcullis as the upstream OpenID provider ("Acme ID", at http://localhost:<port> so the browser
keeps its cookies apart from the Portcullis under test at 127.0.0.1). A person clicks "Continue
with Acme ID", signs in on the upstream's own login page, allows the app on its consent page, and
comes back signed in: the first time an account is made, the next time it is found. Linking from
/account (after the "sign in to that account first" refusal), unlinking, the last way to sign in
kept, and "E-mail me a code" end to end. Screenshots of the new pages (login with the provider
buttons, the code entry page, the refusal, the account's linked sign-ins) go to
Tests/blackbox/screenshots/ with the accessibility checks of the console's pages.

Runs on SQLite, like the other browser tests; test_federation.py covers both backends."""

import base64
import hashlib
import re
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import secrets_seen
import upstream_peers as peers
from portcullis_server import ServerStartError, running_server
from test_console_browser import (
    api_token, browser_client, form_for, inspect, main_text, notice, page_csrf, path_of, press, press_confirming, shoot_scrolled_to, sign_in, verified_account,
    xpath_literal)
from test_pages_browser import (  # noqa: F401  (browser is a fixture used by name)
    PASSWORD, TIMEOUT, Server, binary, browser, csp_violations, fresh_email, next_document, open_page, post_form, single, smtp_sink,
    statuses, submit, type_into)

ROOT_EMAIL, ROOT_PASSWORD = "root-fed-browser@example.com", "the federation browser root 31"
UP_ROOT_EMAIL, UP_ROOT_PASSWORD = "root-upstream@example.com", "the upstream root passphrase 58"
ACME, ACME_NAME = "acme", "Acme ID"


class Setup:
    def __init__(self, down: Server, up: Server, provider: dict, github):
        self.down, self.up, self.provider, self.github = down, up, provider, github

    def root(self) -> str:
        return api_token(self.down, ROOT_EMAIL, ROOT_PASSWORD)

    def users(self) -> dict:
        r = requests.get(self.down.url("/v1/admin/backup"), headers={"Authorization": f"Bearer {self.root()}"}, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        return {u["email"]: u for u in r.json()["users"]}

    def identities(self, address: str) -> list:
        token = api_token(self.down, address)
        r = requests.get(self.down.url("/v1/me/identities"), headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        return r.json()["items"]


@pytest.fixture(scope="module")
def fedb(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("federation-browser")
    for secret in (ROOT_PASSWORD, UP_ROOT_PASSWORD, PASSWORD):
        secrets_seen.note(secret)
    with smtp_sink(tmp) as sink, peers.GitHubStandIn() as github:
        (tmp / "up").mkdir()
        (tmp / "down").mkdir()
        with peers.upstream_portcullis(binary(), tmp / "up", SMTP_URL=sink.url, SIGNUP="open", IP_BURST="1000",
                                       ROOT_EMAIL=UP_ROOT_EMAIL, ROOT_PASSWORD=UP_ROOT_PASSWORD) as up_base:
            up = Server(up_base, sink, tmp / "up" / "server.log")
            try:
                with running_server(binary(), tmp / "down", SMTP_URL=sink.url, SIGNUP="open", IP_BURST="1000",
                                    ROOT_EMAIL=ROOT_EMAIL, ROOT_PASSWORD=ROOT_PASSWORD) as down_base:
                    down = Server(down_base, sink, tmp / "down" / "server.log")
                    root = {"Authorization": f"Bearer {api_token(down, ROOT_EMAIL, ROOT_PASSWORD)}"}
                    # The redirect URI to register upstream comes from the provider; the real client
                    # id and secret replace the placeholders afterwards.
                    r = requests.post(down.url("/v1/identity-providers"), headers=root, timeout=TIMEOUT, json={
                        "id": ACME, "kind": "oidc", "display_name": ACME_NAME, "client_id": "placeholder",
                        "client_secret": peers.remember("placeholder-secret-0123"), "issuer": up_base})
                    assert r.status_code == 201, r.text
                    client = peers.register_openid_client(up_base, api_token(up, UP_ROOT_EMAIL, UP_ROOT_PASSWORD),
                                                          r.json()["redirect_uri"])
                    r = requests.patch(down.url(f"/v1/identity-providers/{ACME}"), headers=root, timeout=TIMEOUT,
                                       json={"client_id": client["client_id"], "client_secret": client["client_secret"]})
                    assert r.status_code == 200 and r.json()["client_id"] == client["client_id"], r.text
                    provider = r.json()
                    r = requests.post(down.url("/v1/identity-providers"), headers=root, timeout=TIMEOUT, json={
                        "id": "github", "kind": "github", "display_name": "GitHub", "client_id": github.client_id,
                        "client_secret": github.client_secret, "web_base_url": github.url, "api_base_url": github.url})
                    assert r.status_code == 201, r.text
                    github.callbacks.add(r.json()["redirect_uri"])
                    yield Setup(down, up, provider, github)
            except ServerStartError as error:
                pytest.fail(str(error), pytrace=False)


@pytest.fixture
def page(browser):
    """The browser with no cookies at all (both servers' hosts), its logs drained."""
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    statuses(browser)
    csp_violations(browser)
    return browser


# --- helpers -----------------------------------------------------------------------------------------

def upstream_person(fedb: Setup, what: str, address: str | None = None, name: str = "") -> str:
    """An account at the upstream with a confirmed address (its ID tokens say email_verified)."""
    address = address or fresh_email(what)
    r = requests.post(fedb.up.url("/v1/users"), json={"email": address, "password": PASSWORD, "name": name or what.title()},
                      timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    token = fedb.up.sink.link(address, fedb.up.url("/verify-email?token=")).split("token=", 1)[1]
    r = requests.post(fedb.up.url("/v1/auth/verify-email"), json={"token": token}, timeout=TIMEOUT)
    assert r.ok, r.text
    return address


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def on(driver, server: Server, path: str | None = None) -> bool:
    return host_of(driver.current_url) == server.base and (path is None or path_of(driver) == path)


def continue_with(driver, label: str) -> int:
    links = driver.find_elements(By.XPATH, f"//a[normalize-space()={xpath_literal('Continue with ' + label)}]")
    assert len(links) == 1, f"{len(links)} 'Continue with {label}' links on {driver.current_url}"
    return next_document(driver, links[0].click, f"clicking Continue with {label}")


def through_upstream(driver, fedb: Setup, address: str, status: int, back: bool = True) -> int:
    """At the upstream (after a Continue or Link click): its login page and its consent page, as
    they come (a session there and an earlier yes skip them), until the browser is back (or, with
    `back` false, has left the upstream for wherever the flow ends)."""
    for _ in range(4):
        if on(driver, fedb.up, "/login"):
            type_into(driver, "email", address)
            type_into(driver, "password", PASSWORD)
            status = submit(driver, form_for(driver, "Sign in"))
        elif on(driver, fedb.up) and driver.find_elements(By.CSS_SELECTOR, "button[value=allow]"):
            allow = single(driver, "button[value=allow]")
            status = next_document(driver, allow.click, "allowing on the upstream's consent page")
        else:
            break
    assert on(driver, fedb.down) or not back, f"not back from the upstream: at {driver.current_url}, h1 " \
                                  f"{[e.text for e in driver.find_elements(By.TAG_NAME, 'h1')]}"
    return status


def sign_in_with_acme(driver, fedb: Setup, address: str) -> int:
    assert open_page(driver, fedb.down.url("/login")) == 200
    return through_upstream(driver, fedb, address, continue_with(driver, ACME_NAME))


def assert_at_account_as(driver, fedb: Setup, address: str):
    assert on(driver, fedb.down, "/account"), f"not at /account: {driver.current_url}\n{main_text(driver)[:1000]}"
    assert address in main_text(driver), f"/account is not {address}'s: {main_text(driver)[:500]}"
    assert driver.get_cookie(peers.SESSION_COOKIE), "no session cookie in the browser"


def sign_out(driver):
    press(driver, "Sign out")
    assert path_of(driver) == "/login" and notice(driver) == "You are signed out."


def unlink_buttons(driver) -> list:
    return driver.find_elements(By.XPATH, "//form[.//button[normalize-space(text())='Unlink']]")


def press_maybe_confirming(driver, button: str) -> int:
    form = form_for(driver, button)
    if form.get_dom_attribute("data-confirm"):
        return press_confirming(driver, button)
    return submit(driver, form)


# --- 1. first sign-in makes the account, the next finds it -------------------------------------------

def test_continue_with_the_upstream_makes_the_account_then_finds_it(fedb, page):
    address = upstream_person(fedb, "newcomer", name="Nora Newcomer")
    before = fedb.users()
    assert address not in before

    assert open_page(page, fedb.down.url("/login")) == 200
    status = continue_with(page, ACME_NAME)
    assert on(page, fedb.up, "/login"), f"Continue with {ACME_NAME} did not lead to the upstream's login page: {page.current_url}"
    assert status == 200
    status = through_upstream(page, fedb, address, status)
    assert status == 200, f"coming back answered {status}"
    assert_at_account_as(page, fedb, address)

    users = fedb.users()
    assert set(users) - set(before) == {address}, "not exactly one new account"
    assert users[address]["name"] == "Nora Newcomer" and users[address]["email_verified"] is True, users[address]
    # The linked sign-in is on the account page.
    assert ACME_NAME in main_text(page), "the account page does not list the Acme ID sign-in"

    sign_out(page)
    status = sign_in_with_acme(page, fedb, address)
    assert status == 200
    assert_at_account_as(page, fedb, address)
    assert set(fedb.users()) == set(users), "the second sign-in made another account"

    # The last way to sign in (no password, one identity): the page offers no Unlink, and a post
    # made anyway (with the page's own form token) is refused.
    assert open_page(page, fedb.down.url("/account")) == 200
    assert not unlink_buttons(page), "the page offers to unlink the only way to sign in"
    rows = page.find_elements(By.CSS_SELECTOR, "tr[data-identity]")
    assert len(rows) == 1 and ACME_NAME in rows[0].text, [r.text for r in rows]
    identity_id = rows[0].get_dom_attribute("data-identity")
    r = post_form(browser_client(page), fedb.down, f"/account/identities/{identity_id}/unlink", {"csrf": page_csrf(page)})
    assert r.status_code == 409 or (r.is_redirect and urlsplit(r.headers["Location"]).path == "/account"), \
        f"unlinking the only way to sign in: {r.status_code}"
    assert open_page(page, fedb.down.url("/account")) == 200
    assert [r.get_dom_attribute("data-identity") for r in page.find_elements(By.CSS_SELECTOR, "tr[data-identity]")] == [identity_id], \
        "the identity is gone after a refused unlink"


# --- 2. an account has the address: sign in first, then link; then unlink --------------------------

def test_link_after_the_refusal_then_sign_in_with_it_then_unlink(fedb, page):
    address = verified_account(fedb.down, "holder", "Holly Holder")
    upstream_person(fedb, "holder", address=address)
    before = fedb.users()

    # Straight to "Continue with": the account with this address is not taken over, nor another made.
    status = sign_in_with_acme(page, fedb, address)
    assert status == 409, f"the refusal answered {status}"
    assert page.get_cookie(peers.SESSION_COOKIE) is None, "refused, yet signed in"
    text = re.sub(r"\s+", " ", main_text(page)).lower()
    assert "sign in" in text and "link" in text, f"the refusal does not say to sign in and link: {text[:500]}"
    assert set(fedb.users()) == set(before) and fedb.identities(address) == []

    # Signed in with the password, "Link Acme ID" on /account.
    sign_in(page, fedb.down, address)
    assert path_of(page) == "/account"
    status = submit(page, form_for(page, f"Link {ACME_NAME}"))
    status = through_upstream(page, fedb, address, status)
    assert status == 200 and on(page, fedb.down, "/account"), f"linking ended at {page.current_url} ({status})"
    linked = fedb.identities(address)
    assert [i["provider_id"] for i in linked] == [ACME] and linked[0]["email"] == address, linked
    assert ACME_NAME in main_text(page) and len(unlink_buttons(page)) == 1

    # Signed out, "Continue with Acme ID" opens this account now.
    sign_out(page)
    assert sign_in_with_acme(page, fedb, address) == 200
    assert_at_account_as(page, fedb, address)
    assert set(fedb.users()) == set(before)

    # Unlink (the password remains).
    assert open_page(page, fedb.down.url("/account")) == 200
    status = press_maybe_confirming(page, "Unlink")
    assert status == 200 and path_of(page) == "/account", f"unlinking answered {status} at {page.current_url}"
    assert fedb.identities(address) == []
    assert not unlink_buttons(page)


# --- 3. e-mail me a code ------------------------------------------------------------------------------

def test_email_me_a_code_signs_in(fedb, page):
    address = verified_account(fedb.down, "codeperson", "Cody Code")
    assert open_page(page, fedb.down.url("/login")) == 200
    link = page.find_elements(By.XPATH, "//a[normalize-space()='E-mail me a code']")
    assert len(link) == 1, "no 'E-mail me a code' link on /login"
    assert next_document(page, link[0].click, "clicking E-mail me a code") == 200
    assert path_of(page) == "/login/code"
    type_into(page, "email", address)
    assert submit(page) == 200
    code_field = single(page, "input[name=code]")
    assert code_field.is_displayed()
    code, _ = peers.mailed_code(fedb.down.sink, address)

    # A wrong code first: said in place, not signed in.
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    type_into(page, "code", wrong)
    status = submit(page, form_for_code(page))
    assert status in (400, 401), f"a wrong code answered {status}"
    assert page.find_elements(By.CSS_SELECTOR, ".error"), "a wrong code is not said"
    assert page.get_cookie(peers.SESSION_COOKIE) is None

    type_into(page, "code", code)
    assert submit(page, form_for_code(page)) == 200
    assert_at_account_as(page, fedb, address)


def form_for_code(driver):
    forms = [f for f in driver.find_elements(By.TAG_NAME, "form") if f.find_elements(By.CSS_SELECTOR, "input[name=code]")]
    assert len(forms) == 1, f"{len(forms)} forms with a code field on {driver.current_url}"
    return forms[0]


# --- 4. the new pages: screenshots and the accessibility checks ---------------------------------------

def test_federation_pages_screenshots_and_accessibility(fedb, page):
    problems = []
    assert open_page(page, fedb.down.url("/login")) == 200
    for label in (ACME_NAME, "GitHub"):
        assert page.find_elements(By.XPATH, f"//a[normalize-space()={xpath_literal('Continue with ' + label)}]"), label
    problems += inspect(page, "federation-login", signed_in=False)
    assert open_page(page, fedb.down.url("/signup")) == 200
    problems += inspect(page, "federation-signup", signed_in=False)

    address = verified_account(fedb.down, "shots", "Sam Screenshot")
    upstream_person(fedb, "shots", address=address)

    # The code entry page.
    assert open_page(page, fedb.down.url("/login/code")) == 200
    problems += inspect(page, "federation-code-request", signed_in=False)
    type_into(page, "email", address)
    assert submit(page) == 200
    peers.mailed_code(fedb.down.sink, address)
    problems += inspect(page, "federation-code-entry", signed_in=False)

    # The refusal: sign in to that account first, then link.
    page.execute_cdp_cmd("Network.clearBrowserCookies", {})
    assert sign_in_with_acme(page, fedb, address) == 409
    problems += inspect(page, "federation-link-first", signed_in=False)

    # The account page with a linked sign-in.
    sign_in(page, fedb.down, address)
    through_upstream(page, fedb, address, submit(page, form_for(page, f"Link {ACME_NAME}")))
    assert path_of(page) == "/account" and len(unlink_buttons(page)) == 1
    shoot_scrolled_to(page, "federation-account-ways", "section:has(tr[data-identity])")
    problems += inspect(page, "federation-account-linked")
    assert not problems, "accessibility problems:\n" + "\n".join(problems)


def test_the_root_adds_edits_and_removes_a_provider_in_the_console(fedb, page):
    """/admin/providers: the root adds a provider with the form (a refused form keeps what was
    typed), finds the redirect URL to register, turns it off (the login page stops offering it)
    and deletes it. Someone else gets the not-found page there."""
    problems = []
    sign_in(page, fedb.down, ROOT_EMAIL, ROOT_PASSWORD)
    assert open_page(page, fedb.down.url("/admin/providers")) == 200
    problems += inspect(page, "federation-admin-providers")
    # A refused form: an OpenID provider without an issuer. The typed fields come back.
    page.execute_script("document.querySelector('details.panel').open = true")
    page.find_element(By.ID, "provider-kind").send_keys("Any OpenID")
    type_into(page, "id", "corp")
    type_into(page, "display_name", "Corp SSO")
    type_into(page, "client_id", "corp-client")
    type_into(page, "client_secret", peers.remember("corp-secret-value-41"))
    assert submit(page, form_for(page, "Add provider")) == 400
    assert "issuer is required" in main_text(page).lower()
    assert page.find_element(By.ID, "provider-id").get_attribute("value") == "corp"
    assert page.find_element(By.CSS_SELECTOR, "#provider-kind option:checked").get_attribute("value") == "oidc"
    # Right this time: a GitHub provider, at the stand-in.
    page.find_element(By.ID, "provider-kind").send_keys("GitHub")
    type_into(page, "id", "gh-console")
    type_into(page, "display_name", "GitHub Console")
    type_into(page, "client_secret", peers.remember("gh-console-secret-77"))
    type_into(page, "web_base_url", fedb.github.url)
    type_into(page, "api_base_url", fedb.github.url)
    assert submit(page, form_for(page, "Add provider")) == 200
    assert path_of(page) == "/admin/providers/gh-console"
    assert page.find_element(By.ID, "redirect-uri").text == fedb.down.url("/login/upstream/gh-console/callback")
    assert "gh-console-secret-77" not in page.page_source
    problems += inspect(page, "federation-admin-provider")
    r = requests.get(fedb.down.url("/v1/auth/providers"), timeout=TIMEOUT)
    assert "gh-console" in [p["id"] for p in r.json()["items"]]
    # Turned off: no longer offered.
    box = page.find_element(By.CSS_SELECTOR, "input[name=enabled]")
    assert box.is_selected()
    box.click()
    assert submit(page, form_for(page, "Save")) == 200
    assert "gh-console" not in [p["id"] for p in requests.get(fedb.down.url("/v1/auth/providers"), timeout=TIMEOUT).json()["items"]]
    assert open_page(page, fedb.down.url("/signup")) == 200
    assert page.find_elements(By.XPATH, "//a[normalize-space()='Continue with GitHub']")
    assert not page.find_elements(By.XPATH, "//a[normalize-space()='Continue with GitHub Console']")
    assert open_page(page, fedb.down.url("/admin/providers/gh-console")) == 200
    assert press_confirming(page, "Delete provider") == 200
    assert path_of(page) == "/admin/providers"
    r = requests.get(fedb.down.url("/v1/identity-providers/gh-console"), headers={"Authorization": f"Bearer {fedb.root()}"}, timeout=TIMEOUT)
    assert r.status_code == 404
    # Anyone else: the same page as for a path that does not exist.
    address = verified_account(fedb.down, "not-root", "Nora Notroot")
    page.execute_cdp_cmd("Network.clearBrowserCookies", {})
    sign_in(page, fedb.down, address)
    assert open_page(page, fedb.down.url("/admin/providers")) == 404
    assert not problems, "accessibility problems:\n" + "\n".join(problems)


# --- 5. "Log in with Portcullis" through another way in, in the browser ------------------------------

RP_CALLBACK = "http://127.0.0.1:9/rp"  # the discard port: nothing answers, the URL is what counts


@pytest.mark.parametrize("way", ["acme", "code"])
def test_an_openid_client_login_goes_through_the_upstream_or_a_code(fedb, page, way):
    """An OpenID client's authorization request leads to the login page; the person goes through
    the upstream Portcullis (its own login and consent forms) or a mailed code, and the browser
    ends at the client with a code. Browsers hold a form's redirects to the form page's
    `form-action`, so this is the check that no page on the way stops the last redirect."""
    address = verified_account(fedb.down, f"rp-{way}", "Rita Party")
    if way == "acme":
        upstream_person(fedb, f"rp-{way}", address=address)
        sign_in(page, fedb.down, address)
        through_upstream(page, fedb, address, submit(page, form_for(page, f"Link {ACME_NAME}")))
        page.execute_cdp_cmd("Network.clearBrowserCookies", {})
    r = requests.post(fedb.down.url("/v1/clients"), headers={"Authorization": f"Bearer {fedb.root()}"}, timeout=TIMEOUT, json={
        "name": "Wiki", "type": "public", "redirect_uris": [RP_CALLBACK], "scopes": ["openid", "email"], "first_party": True})
    assert r.status_code == 201, r.text
    client_id = r.json()["client_id"]
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = (f"response_type=code&client_id={client_id}&redirect_uri={RP_CALLBACK}&scope=openid%20email&state=st-{way}"
             f"&nonce=n-{way}&code_challenge={challenge}&code_challenge_method=S256")
    discovery = requests.get(fedb.down.url("/.well-known/openid-configuration"), timeout=TIMEOUT).json()
    page.get(discovery["authorization_endpoint"] + "?" + query)
    assert path_of(page) == "/login", page.current_url
    if way == "acme":
        through_upstream(page, fedb, address, continue_with(page, ACME_NAME), back=False)
    else:
        link = page.find_elements(By.XPATH, "//a[normalize-space()='E-mail me a code']")
        next_document(page, link[0].click, "clicking E-mail me a code")
        type_into(page, "email", address)
        assert submit(page) == 200
        code, _ = peers.mailed_code(fedb.down.sink, address)
        type_into(page, "code", code)
        page.find_element(By.XPATH, "//button[normalize-space()='Sign in']").click()
    WebDriverWait(page, TIMEOUT).until(lambda d: d.current_url.startswith(RP_CALLBACK + "?"),
                                       f"the browser did not reach the client: at {page.current_url}")
    answer = peers.query_of(page.current_url)
    assert answer.get("state") == f"st-{way}" and answer.get("code"), page.current_url
    token = requests.post(discovery["token_endpoint"], timeout=TIMEOUT, data={
        "grant_type": "authorization_code", "code": answer["code"], "redirect_uri": RP_CALLBACK, "client_id": client_id,
        "code_verifier": verifier})
    assert token.status_code == 200, token.text
    peers.remember(token.json()["access_token"])
    claims = jwt.decode(token.json()["id_token"], options={"verify_signature": False})
    assert claims["email"] == address and claims["nonce"] == f"n-{way}", claims
