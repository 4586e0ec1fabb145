"""The hosted console (/login, /account/…, /orgs/{id}/…, /admin/…) in a real headless Chromium
driven by Selenium, against a real server (with a root account) and a real SMTP sink: the
walk-through from signup to an accepted invitation, rank rules in the forms and on the server,
an API key's secret shown once, password reset through the pages, CSRF, return_to, logout and
"sign out everywhere", and every console page screenshotted at 1280 and 390 px with the
accessibility checks (labels, one h1, main landmark, no sideways overflow, colour contrast).

Shares the driver, the SMTP sink reader and the page helpers of test_pages_browser.py."""

import datetime
import http.server
import json
import re
import threading
import time
import uuid
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from standardwebhooks.webhooks import Webhook

import secrets_seen
from portcullis_server import ServerStartError, running_server
from test_pages_browser import (  # noqa: F401  (browser and page are fixtures used by name)
    CSRF_COOKIE, PASSWORD, SCREENSHOT_DIR, TIMEOUT, VIEWPORTS, Server, binary, browser, check_labels, check_structure, fresh_email,
    h1, next_document, open_page, page, post_form, shoot, single, smtp_sink, submit, type_into)

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT_EMAIL = "root-console@example.com"
ROOT_PASSWORD = "the console root passphrase 42"
SESSION_COOKIE = "portcullis_session"
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


# --- the server (with a root account) ------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console")
    secrets_seen.note(ROOT_PASSWORD)
    secrets_seen.note(PASSWORD)
    with smtp_sink(tmp) as sink:
        workdir = tmp / "server"
        workdir.mkdir()
        try:
            with running_server(binary(), workdir, SMTP_URL=sink.url, SIGNUP="open", IP_BURST="1000",
                                ROOT_EMAIL=ROOT_EMAIL, ROOT_PASSWORD=ROOT_PASSWORD) as base:
                yield Server(base, sink, workdir / "server.log")
        except ServerStartError as error:
            pytest.fail(str(error), pytrace=False)


# --- the API, as an application calls it ----------------------------------------------------------

def api_token(server, address: str, password: str = PASSWORD) -> str:
    r = server.login(address, password)
    assert r.status_code == 200, f"API login of {address}: {r.status_code} {r.text}"
    return r.json()["access_token"]


def api(server, token: str, method: str, path: str, body=None) -> requests.Response:
    return requests.request(method, server.url(path), json=body, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)


def verified_account(server, what: str, name: str = "") -> str:
    """An account (made through the API) whose address is confirmed from the mailed link."""
    address = fresh_email(what)
    r = requests.post(server.url("/v1/users"), json={"email": address, "password": PASSWORD, "name": name or what.title()},
                      timeout=TIMEOUT)
    assert r.status_code == 201, f"API signup: {r.status_code} {r.text}"
    token = server.sink.link(address, server.url("/verify-email?token=")).split("token=", 1)[1]
    r = requests.post(server.url("/v1/auth/verify-email"), json={"token": token}, timeout=TIMEOUT)
    assert r.ok, f"confirming {address}: {r.status_code} {r.text}"
    return address


def api_members(server, token: str, org_id: str) -> dict:
    r = api(server, token, "GET", f"/v1/orgs/{org_id}/members?limit=100")
    assert r.status_code == 200, r.text
    return {m["email"]: m["role"] for m in r.json()["items"]}


def api_org_names(server, token: str) -> list:
    r = api(server, token, "GET", "/v1/orgs?limit=100")
    assert r.status_code == 200, r.text
    return [o["name"] for o in r.json()["items"]]


# --- the browser -----------------------------------------------------------------------------------

def path_of(driver) -> str:
    return urlsplit(driver.current_url).path


def xpath_literal(text: str) -> str:
    return f'"{text}"' if '"' not in text else "concat('" + "', \"'\", '".join(text.split("'")) + "')"


def form_for(driver, button: str):
    """The one form whose submit button reads `button` (its own text, not visually hidden extras)."""
    found = driver.find_elements(By.XPATH, f"//form[.//button[normalize-space(text())={xpath_literal(button)}]]")
    assert len(found) == 1, f"{len(found)} forms with a button {button!r} on {driver.current_url}"
    return found[0]


def press(driver, button: str, status: int = 200) -> None:
    got = submit(driver, form_for(driver, button))
    if got != status:
        errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".error")]
        pytest.fail(f"pressing {button!r} answered {got}, not {status}: now at {driver.current_url}, h1 "
                    f"{[e.text for e in driver.find_elements(By.TAG_NAME, 'h1')]}, errors {errors}", pytrace=False)


def press_confirming(driver, button: str) -> int:
    """Presses a button of a form[data-confirm]: the page's script asks; the person says yes."""
    form = form_for(driver, button)
    question = form.get_dom_attribute("data-confirm")
    assert question, f"the form of {button!r} asks no confirmation"

    def press_and_confirm():
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        alert = WebDriverWait(driver, TIMEOUT).until(expected_conditions.alert_is_present())
        assert alert.text == question
        alert.accept()

    return next_document(driver, press_and_confirm, f"confirming {button!r}")


def fill(driver, field_id: str, value: str):
    field = single(driver, f"#{field_id}")
    field.clear()
    field.send_keys(value)


def choose(driver, select_id: str, value: str):
    Select(single(driver, f"select#{select_id}")).select_by_value(value)


def options(driver, select_id: str) -> list:
    return [o.get_dom_attribute("value") for o in single(driver, f"select#{select_id}").find_elements(By.TAG_NAME, "option")]


def open_details(driver, summary: str):
    details = driver.find_element(By.XPATH, f"//details[summary[normalize-space()={xpath_literal(summary)}]]")
    if details.get_dom_attribute("open") is None:
        details.find_element(By.TAG_NAME, "summary").click()
    assert details.get_dom_attribute("open") is not None, f"the {summary!r} panel did not open"


def notice(driver) -> str:
    return single(driver, "p.notice[role=status]").text.strip()


def main_text(driver) -> str:
    return single(driver, "main").text


def page_errors(driver) -> list:
    return [e.text.strip() for e in driver.find_elements(By.CSS_SELECTOR, "p.error[role=alert]") if e.is_displayed()]


def sign_in(driver, server, address: str, password: str = PASSWORD, return_to: str | None = None, status: int = 200):
    path = "/login" if return_to is None else "/login?return_to=" + quote(return_to, safe="")
    assert open_page(driver, server.url(path)) == 200, path
    type_into(driver, "email", address)
    type_into(driver, "password", password)
    press(driver, "Sign in", status)


def as_person(driver, server, address: str, password: str = PASSWORD, return_to: str | None = None):
    """Another person at the same browser: nothing of the one before is left."""
    driver.delete_all_cookies()
    sign_in(driver, server, address, password, return_to)


def browser_client(driver) -> requests.Session:
    """A client holding the browser's cookies (the session and the CSRF cookie)."""
    session = requests.Session()
    for cookie in driver.get_cookies():
        session.cookies.set(cookie["name"], cookie["value"])
        if cookie["name"] == SESSION_COOKIE:
            secrets_seen.note(cookie["value"])
    return session


def page_csrf(driver) -> str:
    """The page's form token: signed out, the CSRF cookie's value (double submit); signed in, a
    token bound to the session, so not the cookie's value."""
    value = driver.find_elements(By.CSS_SELECTOR, "input[name=csrf]")[0].get_dom_attribute("value")
    cookie = driver.get_cookie(CSRF_COOKIE)
    if driver.get_cookie(SESSION_COOKIE):
        assert value and (cookie is None or value != cookie["value"]), "a signed-in form carries the CSRF cookie's value"
    else:
        assert value and cookie and value == cookie["value"], "a signed-out form's token is not the CSRF cookie's value"
    return value


def create_org(driver, server, name: str, description: str = "") -> str:
    """Creates an org from /account/orgs; returns its console path /orgs/{id}."""
    assert open_page(driver, server.url("/account/orgs")) == 200
    open_details(driver, "Create an org")
    fill(driver, "org-name", name)
    if description:
        fill(driver, "org-description", description)
    press(driver, "Create org")
    path = path_of(driver)
    assert re.fullmatch(rf"/orgs/{UUID_RE}", path), f"creating an org led to {driver.current_url}"
    assert name in notice(driver)
    return path


def member_roles(driver) -> dict:
    """The members table as {e-mail: role}: a row's role is its select's choice, else its text."""
    return driver.execute_script("""
        const rows = {};
        for (const tr of document.querySelectorAll('main table tbody tr')) {
          const cells = tr.querySelectorAll('td');
          const select = cells[2].querySelector('select');
          rows[cells[1].textContent.trim()] = select ? select.value : cells[2].textContent.trim().split(/\\s+/)[0];
        }
        return rows;""")


def add_member(driver, address: str, role: str, status: int = 200):
    fill(driver, "member-email", address)
    choose(driver, "member-role", role)
    press(driver, "Add member", status)


# --- accessibility: contrast, overflow, and test_pages_browser's structure and label checks -------

# WCAG 2 contrast of every visible text (elements with their own text, and the values of form
# fields) against its effective background: the element's background-color and its ancestors',
# composited until an opaque one (white below all). Controls that are disabled are exempt (WCAG
# 1.4.3), as is text a person cannot see (visually hidden 1px boxes, closed <details>, off-screen).
CONTRAST_JS = r"""
const rgba = s => {
  const m = /^rgba?\(([^)]*)\)$/.exec((s || '').trim());
  if (!m) return null;
  const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(parseFloat);
  return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
};
const over = (top, bottom) => ({r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a),
                                b: top.b * top.a + bottom.b * (1 - top.a), a: 1});
const lum = c => {
  const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
};
const background = el => {
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const c = rgba(getComputedStyle(e).backgroundColor);
    if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
  }
  let bg = {r: 255, g: 255, b: 255, a: 1};
  if (layers.length && layers[layers.length - 1].a >= 1) bg = layers.pop();
  while (layers.length) bg = over(layers.pop(), bg);
  return bg;
};
const describe = el => {
  const parts = [];
  for (let e = el; e && e !== document.body && parts.length < 4; e = e.parentElement) {
    parts.unshift(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
                  (typeof e.className === 'string' && e.className.trim() ? '.' + e.className.trim().split(/\s+/).join('.') : ''));
  }
  return parts.join(' > ');
};
const hex = c => '#' + [c.r, c.g, c.b].map(v => Math.round(v).toString(16).padStart(2, '0')).join('');
const failures = [];
let checked = 0;
for (const el of document.body.querySelectorAll('*')) {
  if (['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'OPTION', 'BR'].includes(el.tagName)) continue;
  let text = '';
  if (el.matches('input:not([type=hidden]):not([type=checkbox]):not([type=radio]), textarea')) text = el.value;
  else if (el.tagName === 'SELECT') text = el.selectedOptions.length ? el.selectedOptions[0].text : '';
  else for (const n of el.childNodes) if (n.nodeType === Node.TEXT_NODE) text += n.textContent;
  text = text.trim();
  if (!text) continue;
  if (el.matches(':disabled') || el.closest('fieldset:disabled')) continue;
  if (!el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})) continue;
  const box = el.getBoundingClientRect();
  if (box.width <= 1 || box.height <= 1 || box.right <= 0 || box.bottom <= 0) continue;
  const style = getComputedStyle(el);
  const bg = background(el);
  const fg0 = rgba(style.color);
  checked++;
  if (!fg0) { failures.push({element: describe(el), text: text.slice(0, 60), color: style.color, problem: 'unreadable colour'}); continue; }
  const fg = fg0.a < 1 ? over(fg0, bg) : fg0;
  const a = lum(fg), b = lum(bg);
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const size = parseFloat(style.fontSize), weight = parseInt(style.fontWeight, 10) || 400;
  const large = size >= 24 || (weight >= 700 && size >= 18.66);
  const need = large ? 3 : 4.5;
  if (ratio < need) failures.push({element: describe(el), text: text.slice(0, 60), color: hex(fg), background: hex(bg),
                                   ratio: Math.round(ratio * 100) / 100, need: need, font: size + 'px/' + weight});
}
return [checked, failures];
"""


def contrast_failures(driver) -> tuple:
    return driver.execute_script(CONTRAST_JS)


def set_width(driver, width: int, height: int):
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def inspect(driver, name: str, signed_in: bool = True) -> list:
    """The accessibility checks on the page now open, then its screenshots (<name>-<width>.png).
    Returns the problems found (rather than stopping at the first), each naming page and element."""
    problems = []
    where = f"{name} ({path_of(driver)})"

    def attempt(check, *args):
        try:
            check(*args)
        except AssertionError as error:
            problems.append(f"{where}: {error}")

    attempt(check_structure, driver)
    attempt(check_labels, driver)
    if signed_in:
        navs = driver.find_elements(By.CSS_SELECTOR, "header nav[aria-label=Main]")
        if len(navs) != 1:
            problems.append(f"{where}: {len(navs)} nav[aria-label=Main] in the header")
    try:
        for width, height in VIEWPORTS:
            set_width(driver, width, height)
            checked, failures = contrast_failures(driver)
            if checked < 3:
                problems.append(f"{where} at {width}px: only {checked} text elements were checked for contrast")
            for f in failures:
                problems.append(f"{where} at {width}px: contrast {f}")
            # A phone (mobile emulation) zooms out to show a too-wide page, and innerWidth then
            # grows with it: the emulated width is what the page must fit.
            scroll, inner = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
            if scroll > min(inner, width) + 1:
                problems.append(f"{where} at {width}px: the page is {scroll}px wide, the window {inner}px")
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    attempt(shoot, driver, name)
    return problems


# --- 1. the walk-through: signup, the mailed link, an org, an invitation, accepted ---------------

def test_walkthrough_signup_confirm_org_invite_accept(server, page):
    founder, invitee = fresh_email("founder"), fresh_email("invitee")
    org_name = f"Walkthrough {uuid.uuid4().hex[:6]}"

    # Signup, then the address confirmed from the mail.
    assert open_page(page, server.url("/signup")) == 200
    type_into(page, "email", founder)
    type_into(page, "name", "Fran Founder")
    type_into(page, "password", PASSWORD)
    press(page, "Create account")
    assert h1(page) == "Check your inbox"
    link = server.sink.link(founder, server.url("/verify-email?token="))
    assert open_page(page, link) == 200
    press(page, "Confirm my address")
    assert h1(page) == "Address confirmed"

    # Sign in: the session cookie is HttpOnly and SameSite=Lax; the header's navigation.
    sign_in(page, server, founder)
    assert path_of(page) == "/account", page.current_url
    cookie = page.get_cookie(SESSION_COOKIE)
    assert cookie and cookie["httpOnly"] is True and cookie.get("sameSite") == "Lax", f"session cookie {cookie}"
    secrets_seen.note(cookie["value"])
    nav = single(page, "header nav[aria-label=Main]")
    links = {a.text.strip(): urlsplit(a.get_attribute("href")).path for a in nav.find_elements(By.TAG_NAME, "a")}
    assert links == {"Account": "/account", "Orgs": "/account/orgs"}, f"nav links of a non-root: {links}"
    form_for(page, "Sign out")
    assert open_page(page, server.url("/admin")) == 404, "a non-root opened /admin"

    # An org, and an invitation by e-mail to an address without an account.
    org = create_org(page, server, org_name, "Made in the walk-through")
    org_id = org.rsplit("/", 1)[1]
    assert member_roles(page) == {founder: "owner"}
    add_member(page, invitee, "editor")
    assert "invitation" in notice(page), notice(page)
    assert invitee not in member_roles(page)
    assert open_page(page, server.url(f"{org}/invites")) == 200
    assert invitee in single(page, "main table").text

    # The invitee opens the mailed link, signs up, lands on the invitation and accepts it.
    link = server.sink.link(invitee, server.url("/signup?invite_token="))
    token = link.split("invite_token=", 1)[1]
    page.delete_all_cookies()
    assert open_page(page, link) == 200
    assert single(page, "input[name=invite_token]").get_dom_attribute("value") == token
    type_into(page, "email", invitee)
    type_into(page, "name", "Ivy Invitee")
    type_into(page, "password", PASSWORD)
    press(page, "Create account")
    assert path_of(page) == "/invites/accept" and parse_qs(urlsplit(page.current_url).query).get("token") == [token], \
        page.current_url
    assert notice(page) == "Your account is ready."
    press(page, "Accept the invitation")
    assert path_of(page) == f"/orgs/{org_id}", page.current_url
    assert notice(page) == f"You joined {org_name} as editor."
    # The notice is shown once.
    assert open_page(page, server.url(org)) == 200
    assert not page.find_elements(By.CSS_SELECTOR, "p.notice")
    assert server.me(invitee, PASSWORD)["email_verified"] is True

    # The inviter's members page lists the invitee.
    as_person(page, server, founder, return_to=f"{org}/members")
    assert path_of(page) == f"{org}/members", page.current_url
    assert member_roles(page) == {founder: "owner", invitee: "editor"}


# --- 2. rank rules: offered choices, and the server's refusal of the rest ------------------------

def test_an_admin_cannot_grant_owner_in_the_form_nor_by_a_forged_post(server, page):
    owner, admin, viewer, outsider = (verified_account(server, w) for w in ("owner", "admin", "viewer", "outsider"))
    owner_token = api_token(server, owner)

    as_person(page, server, owner)
    org = create_org(page, server, f"Ranks {uuid.uuid4().hex[:6]}")
    org_id = org.rsplit("/", 1)[1]
    assert options(page, "member-role") == ["viewer", "editor", "admin", "owner"], "what an owner may grant"
    add_member(page, admin, "admin")
    assert notice(page) == f"{admin} is now a member (admin).", notice(page)
    add_member(page, viewer, "viewer")
    assert member_roles(page) == {owner: "owner", admin: "admin", viewer: "viewer"}

    # The admin's view: no owner anywhere among the choices.
    as_person(page, server, admin, return_to=org)
    assert path_of(page) == org
    assert options(page, "member-role") == ["viewer", "editor", "admin"], "an admin is offered what it may not grant"
    viewer_id = server.me(viewer, PASSWORD)["id"]
    assert options(page, f"role-{viewer_id}") == ["viewer", "editor", "admin"]
    owner_id = server.me(owner, PASSWORD)["id"]
    assert not page.find_elements(By.ID, f"role-{owner_id}"), "an admin may change the owner's role"
    assert open_page(page, server.url(f"{org}/invites")) == 200
    assert options(page, "invite-role") == ["viewer", "editor", "admin"]
    before = api_members(server, owner_token, org_id)

    # A forged "owner" option in the browser's own form: refused, the error shown in place.
    assert open_page(page, server.url(org)) == 200
    page.execute_script("const o = document.createElement('option'); o.value = o.textContent = 'owner';"
                        "document.getElementById('member-role').append(o)")
    add_member(page, outsider, "owner", status=403)
    assert page_errors(page), f"no error shown for a forged owner grant: {page.page_source[:2000]}"
    # The same with a client holding the browser's cookies and a valid csrf token.
    client, csrf = browser_client(page), page_csrf(page)
    r = post_form(client, server, f"{org}/members", {"csrf": csrf, "email": outsider, "role": "owner"})
    assert 400 <= r.status_code < 500 and 'class="error" role="alert"' in r.text, f"forged add as owner: {r.status_code}"
    r = post_form(client, server, f"{org}/members/role", {"csrf": csrf, "user_id": viewer_id, "role": "owner"})
    assert 400 <= r.status_code < 500 and 'class="error" role="alert"' in r.text, f"forged promotion to owner: {r.status_code}"
    r = post_form(client, server, f"{org}/members/role", {"csrf": csrf, "user_id": owner_id, "role": "viewer"})
    assert 400 <= r.status_code < 500, f"an admin demoted the owner: {r.status_code}"
    assert api_members(server, owner_token, org_id) == before, "a refused post changed the members"

    # Not vacuous: the same admin may add that person with a role it holds.
    r = post_form(client, server, f"{org}/members", {"csrf": csrf, "email": outsider, "role": "admin"})
    assert r.status_code == 303, r.status_code
    assert api_members(server, owner_token, org_id) == dict(before, **{outsider: "admin"})


# --- 3. an API key's secret is shown once --------------------------------------------------------

def test_api_key_secret_is_shown_exactly_once(server, page):
    address = verified_account(server, "keys")
    as_person(page, server, address, return_to="/account/keys")
    assert path_of(page) == "/account/keys"
    open_details(page, "Create a key")
    fill(page, "key-name", "deploy bot")
    choose(page, "key-expiry", "7776000")
    press(page, "Create key", 201)
    section = single(page, "section.secret")
    secret = section.find_element(By.CSS_SELECTOR, "code#new-secret").text.strip()
    secrets_seen.note(secret)
    assert re.fullmatch(r"pcl_[0-9a-f]{12}_[A-Za-z0-9_\-]{43}", secret), f"the secret shown: {secret[:8]}…"
    prefix = secret.split("_")[1]
    rows = single(page, "main table").text
    assert "deploy bot" in rows and prefix in rows
    assert secret.split("_", 2)[2] not in rows

    # The key works, once shown.
    assert requests.get(server.url("/v1/me"), headers={"Authorization": f"Bearer {secret}"}, timeout=TIMEOUT).status_code == 200

    # The page again: listed, secret gone.
    assert open_page(page, server.url("/account/keys")) == 200
    assert not page.find_elements(By.CSS_SELECTOR, "section.secret, #new-secret")
    assert secret not in page.page_source and secret.split("_", 2)[2] not in page.page_source
    assert prefix in single(page, "main table").text

    # The API lists it, without the secret.
    r = api(server, api_token(server, address), "GET", "/v1/keys")
    assert r.status_code == 200 and prefix in r.text, r.text
    assert secret.split("_", 2)[2] not in r.text, "GET /v1/keys returns the secret"


# --- 4. password reset through the pages ---------------------------------------------------------

def test_password_reset_from_the_mail_then_sign_in(server, page):
    address, new_password = verified_account(server, "forgetful"), "a fresh passphrase from the mail"
    secrets_seen.note(new_password)
    assert open_page(page, server.url("/login")) == 200
    page.find_element(By.LINK_TEXT, "Forgot your password?").click()
    WebDriverWait(page, TIMEOUT).until(lambda d: path_of(d) == "/forgot-password")
    type_into(page, "email", address)
    press(page, "Send the link")
    assert h1(page) == "Check your inbox"
    link = server.sink.link(address, server.url("/reset-password?token="))
    assert open_page(page, link) == 200
    type_into(page, "new_password", new_password)
    press(page, "Change password")
    assert h1(page) == "Password changed"

    # The old password: refused in place, nobody signed in.
    sign_in(page, server, address, PASSWORD, status=401)
    assert page_errors(page) and path_of(page) == "/login"
    assert page.get_cookie(SESSION_COOKIE) is None
    assert single(page, "#email").get_dom_attribute("value") == address
    # The new one: the account.
    sign_in(page, server, address, new_password)
    assert path_of(page) == "/account" and h1(page) == "Profile"
    assert address in main_text(page)


# --- 5. a post without the CSRF token changes nothing --------------------------------------------

def test_a_post_without_the_csrf_token_changes_nothing(server, page):
    address = verified_account(server, "csrf")
    token = api_token(server, address)
    as_person(page, server, address, return_to="/account/orgs")
    client, csrf = browser_client(page), page_csrf(page)
    name = f"Forged {uuid.uuid4().hex[:6]}"

    r = post_form(client, server, "/account/orgs", {"name": name})
    assert r.status_code == 403 and "This form has expired" in r.text, f"no csrf field: {r.status_code}"
    r = post_form(client, server, "/account/orgs", {"name": name, "csrf": csrf[::-1]})
    assert r.status_code == 403, f"a wrong csrf field: {r.status_code}"
    r = post_form(client, server, "/account/orgs", {"name": name, "csrf": csrf}, origin="https://evil.example")
    assert r.status_code == 403, f"from another origin: {r.status_code}"
    r = post_form(client, server, "/logout", {"all": "1"})
    assert r.status_code == 403, f"logout everywhere without csrf: {r.status_code}"
    assert name not in api_org_names(server, token), "a forged post made an org"
    assert api(server, token, "GET", "/v1/me").status_code == 200, "a forged logout ended the sessions"
    # The browser's page shows no such org.
    assert open_page(page, server.url("/account/orgs")) == 200
    assert name not in main_text(page)

    # A planted cookie (a sibling subdomain, a plain-http man in the middle) with the same value
    # in the field is not the session's token either.
    planted = requests.Session()
    planted.cookies.set(SESSION_COOKIE, client.cookies.get(SESSION_COOKIE))
    planted.cookies.set(CSRF_COOKIE, "x" * 43)
    r = post_form(planted, server, "/account/orgs", {"name": name, "csrf": "x" * 43}, origin=None)
    assert r.status_code == 403, f"a planted CSRF cookie: {r.status_code}"
    assert name not in api_org_names(server, token), "a planted cookie made an org"

    # The control: the same post with the token makes it.
    r = post_form(client, server, "/account/orgs", {"name": name, "csrf": csrf})
    assert r.status_code == 303 and re.fullmatch(rf"/orgs/{UUID_RE}", r.headers["Location"]), r.status_code
    assert name in api_org_names(server, token)


def test_a_planted_notice_is_not_shown(server, page):
    address = verified_account(server, "notice")
    as_person(page, server, address, return_to="/account")
    page.add_cookie({"name": "portcullis_notice", "value": "Your session expired, call +1-555-0100", "path": "/"})
    assert open_page(page, server.url("/account")) == 200
    assert "555-0100" not in main_text(page) and not page.find_elements(By.CSS_SELECTOR, "p.notice")


# --- review findings: pages say why in HTML, explain, another org's invite, past the end -----------

def test_org_pages_a_member_may_not_read_say_so_in_html(server, page):
    owner, editor = verified_account(server, "tabowner"), verified_account(server, "tabeditor")
    as_person(page, server, owner)
    org = create_org(page, server, f"Tabs {uuid.uuid4().hex[:6]}")
    add_member(page, editor, "editor")
    as_person(page, server, editor, return_to=org)
    tabs = [a.text for a in page.find_elements(By.CSS_SELECTOR, "nav.tabs a")]
    assert "Access" not in tabs and "Service accounts" not in tabs and "Invites" not in tabs and "Audit log" not in tabs, tabs
    for tab in ("access", "service-accounts", "invites", "audit"):
        assert open_page(page, server.url(f"{org}/{tab}")) == 403, tab
        assert h1(page) == "Not allowed" and "does not allow" in main_text(page), (tab, main_text(page))
    # A bad query value is a page too, not a problem document.
    as_person(page, server, owner, return_to=org)
    assert open_page(page, server.url(f"{org}/audit?action=%00")) == 400
    assert page.find_elements(By.CSS_SELECTOR, "main") and "application/problem+json" not in page.page_source


def test_an_admin_explains_a_members_decision(server, page):
    owner, member = verified_account(server, "explainer"), verified_account(server, "explained")
    as_person(page, server, owner)
    org = create_org(page, server, f"Explain {uuid.uuid4().hex[:6]}")
    add_member(page, member, "viewer")
    assert open_page(page, server.url(f"{org}/explain")) == 200
    subject = next(o.get_dom_attribute("value") for o in page.find_elements(By.CSS_SELECTOR, "#ex-subject option") if member in o.text)
    org_id = org.rsplit("/", 1)[1]
    assert open_page(page, server.url(f"{org}/explain?subject={subject}&action=org.update&object=org:{org_id}")) == 200
    answer = single(page, "section.answer").text
    assert "Denied" in answer and "viewer" in answer, answer
    assert open_page(page, server.url(f"{org}/explain?subject={subject}&action=members.read&object=org:{org_id}")) == 200
    assert "Allowed" in single(page, "section.answer").text
    # The member, no admin, may ask only about themselves.
    owner_subject = next(o.get_dom_attribute("value") for o in page.find_elements(By.CSS_SELECTOR, "#ex-subject option") if owner in o.text)
    as_person(page, server, member)
    assert open_page(page, server.url(f"{org}/explain?subject={owner_subject}&action=org.update&object=org:{org_id}")) == 403
    assert not page.find_elements(By.CSS_SELECTOR, "section.answer")


def test_an_org_page_cannot_touch_another_orgs_invite(server, page):
    owner = verified_account(server, "twoorgs")
    token = api_token(server, owner)
    as_person(page, server, owner)
    first = create_org(page, server, f"First {uuid.uuid4().hex[:6]}")
    second = create_org(page, server, f"Second {uuid.uuid4().hex[:6]}")
    r = api(server, token, "POST", f"/v1{second}/invites", {"email": fresh_email("elsewhere"), "role": "viewer"})
    assert r.status_code == 201, r.text
    invite = r.json()["id"]
    assert open_page(page, server.url(f"{first}/invites")) == 200
    r = post_form(browser_client(page), server, f"{first}/invites/revoke", {"invite_id": invite, "csrf": page_csrf(page)})
    assert r.status_code == 404, r.status_code
    assert api(server, token, "GET", f"/v1/invites/{invite}").json()["state"] == "pending"


def test_a_page_past_the_end_links_back(server, page):
    owner = verified_account(server, "pastend")
    as_person(page, server, owner)
    org = create_org(page, server, f"Past {uuid.uuid4().hex[:6]}")
    assert open_page(page, server.url(f"{org}/members?offset=500")) == 200
    pager = single(page, "nav.pager")
    assert "Past the end" in pager.text
    previous = pager.find_element(By.CSS_SELECTOR, "a[rel=prev]").get_dom_attribute("href")
    assert previous.endswith("/members"), previous


# --- 6. return_to never leaves the origin --------------------------------------------------------

@pytest.fixture(scope="module")
def returning(server):
    """One confirmed account for the return_to cases."""
    return verified_account(server, "returnto")


@pytest.mark.parametrize("target", ["https://elsewhere.example", "//elsewhere.example", "/\\elsewhere.example",
                                    "https://elsewhere.example/account"])
def test_return_to_elsewhere_is_not_followed(server, page, returning, target):
    address = returning
    sign_in(page, server, address, return_to=target)
    here = urlsplit(page.current_url)
    assert (here.scheme + "://" + here.netloc, here.path) == (server.base, "/account"), \
        f"return_to={target!r} led to {page.current_url}"
    # Already signed in, the login page redirects the same way.
    assert open_page(page, server.url("/login?return_to=" + quote(target, safe=""))) == 200
    assert urlsplit(page.current_url)[:3] == urlsplit(server.url("/account"))[:3], page.current_url
    # A post naming it outright (not the page's sanitised field): the same.
    page.delete_all_cookies()
    assert open_page(page, server.url("/login")) == 200
    client, csrf = browser_client(page), page_csrf(page)
    r = post_form(client, server, "/login", {"csrf": csrf, "email": address, "password": PASSWORD, "return_to": target})
    assert r.status_code == 303 and r.headers["Location"] == "/account", f"{r.status_code} Location {r.headers.get('Location')}"


def test_return_to_a_path_here_is_followed(server, page):
    sign_in(page, server, verified_account(server, "returnhere"), return_to="/account/keys?x=1")
    assert (path_of(page), urlsplit(page.current_url).query) == ("/account/keys", "x=1"), page.current_url


# --- 7. logout, and signing out everywhere -------------------------------------------------------

def login_redirect_target(location: str) -> str:
    parts = urlsplit(location)
    assert parts.path == "/login", location
    return parse_qs(parts.query).get("return_to", [""])[0]


def test_logout_ends_the_session_and_everywhere_ends_api_tokens(server, page):
    address = verified_account(server, "leaver")
    sign_in(page, server, address)
    old = browser_client(page)
    assert old.get(server.url("/account"), allow_redirects=False, timeout=TIMEOUT).status_code == 200
    press(page, "Sign out")
    assert path_of(page) == "/login" and notice(page) == "You are signed out."
    assert page.get_cookie(SESSION_COOKIE) is None
    # The old cookie no longer signs in, in any client.
    r = old.get(server.url("/account"), allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 303 and login_redirect_target(r.headers["Location"]) == "/account", \
        f"{r.status_code} {r.headers.get('Location')}"
    assert open_page(page, server.url("/account")) == 200
    assert path_of(page) == "/login" and parse_qs(urlsplit(page.current_url).query).get("return_to") == ["/account"], \
        page.current_url
    # The login page brings the person back where they were going.
    type_into(page, "email", address)
    type_into(page, "password", PASSWORD)
    press(page, "Sign in")
    assert path_of(page) == "/account"

    # "Sign out everywhere" also ends an API login of the same person.
    access = api_token(server, address)
    other = api_token(server, verified_account(server, "bystander"))
    assert api(server, access, "GET", "/v1/me").status_code == 200
    assert open_page(page, server.url("/account/sessions")) == 200
    before = browser_client(page)
    rows = page.find_elements(By.CSS_SELECTOR, "main table tbody tr")
    assert len(rows) >= 2, f"the sessions page lists {len(rows)} sessions (this browser and an API login)"
    assert press_confirming(page, "Sign out everywhere") == 200
    assert path_of(page) == "/login" and notice(page) == "Every session of your account has ended."
    assert api(server, access, "GET", "/v1/me").status_code == 401, "an API token outlived sign out everywhere"
    assert api(server, other, "GET", "/v1/me").status_code == 200, "someone else's session ended too"
    # The browser's cookie as it was before: no longer signed in.
    r = before.get(server.url("/account"), allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 303 and login_redirect_target(r.headers["Location"]) == "/account", r.status_code


# --- 8. every console page: screenshots and accessibility ----------------------------------------

def test_every_console_page_screenshots_and_accessibility(server, page):
    problems = []
    # Someone else's org invites the root, so its invitations page has one to answer.
    host = verified_account(server, "host")
    host_token = api_token(server, host)
    r = api(server, host_token, "POST", "/v1/orgs", {"name": "Hosting Co"})
    assert r.status_code == 201, r.text
    r = api(server, host_token, "POST", f"/v1/orgs/{r.json()['id']}/invites", {"email": ROOT_EMAIL, "role": "viewer"})
    assert r.status_code == 201, r.text
    member = verified_account(server, "member", "Mia Member")

    assert open_page(page, server.url("/login")) == 200
    problems += inspect(page, "login", signed_in=False)

    sign_in(page, server, ROOT_EMAIL, ROOT_PASSWORD)
    assert path_of(page) == "/account"
    nav = single(page, "header nav[aria-label=Main]")
    assert "Admin" in [a.text.strip() for a in nav.find_elements(By.TAG_NAME, "a")], "the root has no Admin link"
    problems += inspect(page, "account")
    assert open_page(page, server.url("/account/sessions")) == 200
    problems += inspect(page, "sessions")
    assert open_page(page, server.url("/account/invites")) == 200
    assert "Hosting Co" in single(page, "main table").text
    form_for(page, "Accept")
    problems += inspect(page, "my-invites")

    org = create_org(page, server, "Console Co", "Everything on show")
    org_id = org.rsplit("/", 1)[1]
    assert open_page(page, server.url("/account/orgs")) == 200
    assert "Console Co" in single(page, "ul.cards").text
    problems += inspect(page, "my-orgs")

    assert open_page(page, server.url("/account/keys")) == 200
    open_details(page, "Create a key")
    fill(page, "key-name", "console screenshot key")
    page.find_element(By.CSS_SELECTOR, f"input[name=org][value='{org_id}']").click()
    choose(page, "key-role", "editor")
    press(page, "Create key", 201)
    secret = single(page, "section.secret code#new-secret").text
    secrets_seen.note(secret)
    assert secret.startswith("pcl_")
    problems += inspect(page, "my-keys")
    assert open_page(page, server.url("/account/apps")) == 200
    problems += inspect(page, "my-apps")

    # The org's tabs, each with something in it.
    assert open_page(page, server.url(org)) == 200
    add_member(page, member, "editor")
    assert member in member_roles(page)
    tabs = [a.text.strip() for a in single(page, "nav.tabs").find_elements(By.TAG_NAME, "a")]
    assert tabs == ["Members", "Invites", "Groups", "Access", "Overrides", "Service accounts", "Audit log", "Apps", "Webhooks", "Settings",
                    "Explain"], tabs
    problems += inspect(page, "org-members")

    assert open_page(page, server.url(f"{org}/invites")) == 200
    fill(page, "invite-email", fresh_email("guest"))
    choose(page, "invite-role", "viewer")
    press(page, "Send invitation")
    assert "on its way" in notice(page)
    assert single(page, "main table").find_elements(By.XPATH, ".//button[normalize-space(text())='Resend']")
    problems += inspect(page, "org-invites")

    member_id = server.me(member, PASSWORD)["id"]
    assert open_page(page, server.url(f"{org}/access")) == 200
    choose(page, "bind-subject", f"user:{member_id}")
    fill(page, "bind-resource", f"org:{org_id}/project:apollo")
    choose(page, "bind-role", "admin")
    press(page, "Bind")
    assert "project:apollo" in single(page, "main table").text
    problems += inspect(page, "org-access")

    assert open_page(page, server.url(f"{org}/service-accounts")) == 200
    fill(page, "sa-name", "ci-runner")
    choose(page, "sa-role", "editor")
    press(page, "Create")
    problems += inspect(page, "org-service-accounts")
    page.find_element(By.LINK_TEXT, "ci-runner").click()
    WebDriverWait(page, TIMEOUT).until(lambda d: re.fullmatch(rf"{org}/service-accounts/{UUID_RE}", path_of(d)))
    assert "ci-runner" in h1(page)
    account_page = page.current_url
    open_details(page, "Create a key")
    fill(page, "key-name", "ci key")
    press(page, "Create key", 201)
    sa_secret = single(page, "section.secret code#new-secret").text
    secrets_seen.note(sa_secret)
    assert sa_secret.startswith("pcl_")
    # The page that shows the secret is the account's own page: its address works on its own.
    assert page.current_url == account_page, page.current_url
    problems += inspect(page, "org-service-account")
    assert open_page(page, account_page) == 200 and not page.find_elements(By.ID, "new-secret")

    assert open_page(page, server.url(f"{org}/audit")) == 200
    actions = single(page, "main table").text
    assert "member.added" in actions or "invite.created" in actions, actions[:500]
    fill(page, "audit-action", "org.created")
    submit(page, page.find_element(By.CSS_SELECTOR, "form.filters"))
    assert parse_qs(urlsplit(page.current_url).query).get("action") == ["org.created"]
    shown = [c.text for c in page.find_elements(By.CSS_SELECTOR, "main table tbody tr td:nth-child(2)")]
    assert shown and set(shown) == {"org.created"}, f"the audit filter shows {shown}"
    problems += inspect(page, "org-audit")

    assert open_page(page, server.url(f"{org}/settings")) == 200
    fill(page, "set-metadata", '{"plan": "team"}')
    fill(page, "set-keydays", "90")
    press(page, "Save settings")
    assert notice(page) == "The settings are saved."
    assert single(page, "#set-keydays").get_attribute("value") == "90"
    problems += inspect(page, "org-settings")

    assert open_page(page, server.url(f"{org}/explain")) == 200
    choose(page, "ex-subject", f"user:{member_id}")
    fill(page, "ex-action", "org.update")
    press(page, "Explain")
    assert single(page, "section.answer .badge").text.strip() == "Denied", "an editor may update the org"
    fill(page, "ex-action", "editor")
    fill(page, "ex-object", f"org:{org_id}/project:apollo")
    press(page, "Explain")
    assert single(page, "section.answer .badge").text.strip() == "Allowed", "an admin binding does not give editor"
    problems += inspect(page, "org-explain")

    # The platform admin's pages.
    assert open_page(page, server.url("/admin")) == 200
    invited = fresh_email("platform")
    fill(page, "pinvite-email", invited)
    press(page, "Send invitation")
    assert invited in single(page, "main table").text
    problems += inspect(page, "admin-invites")
    assert open_page(page, server.url("/admin/users")) == 200
    fill(page, "user-q", "member")
    submit(page, page.find_element(By.CSS_SELECTOR, "form.filters"))
    assert member in single(page, "main table").text and ROOT_EMAIL not in single(page, "main table").text
    problems += inspect(page, "admin-users")
    assert open_page(page, server.url("/admin/signing-keys")) == 200
    def signing_keys():
        """(algorithm, state) of each row; one key per algorithm (RS256, ES256), rotated together."""
        return [tuple(c.text.strip() for c in row.find_elements(By.CSS_SELECTOR, "td")[1:4:2])
                for row in page.find_elements(By.CSS_SELECTOR, "main table tbody tr")]
    before = signing_keys()
    assert press_confirming(page, "Rotate now") == 200
    after = signing_keys()
    algorithms = {a for a, _ in before}
    assert algorithms == {"RS256", "ES256"}, before
    for algorithm in algorithms:
        assert [a for a, _ in after].count(algorithm) == [a for a, _ in before].count(algorithm) + 1, (before, after)
        assert after.count((algorithm, "active")) == 1, f"not one active {algorithm} key after rotating: {after}"
    problems += inspect(page, "admin-signing-keys")
    assert open_page(page, server.url("/admin/backup")) == 200
    client, csrf = browser_client(page), page_csrf(page)
    r = post_form(client, server, "/admin/backup", {"csrf": csrf})
    assert r.status_code == 200 and "attachment" in r.headers.get("Content-Disposition", "") and r.json(), r.status_code
    problems += inspect(page, "admin-backup")

    assert not problems, "accessibility problems:\n" + "\n".join(problems)


# --- apps ("Log in with Portcullis" clients) in the console --------------------------------------

def test_apps_registered_from_the_console(server, page):
    owner = verified_account(server, "appowner")
    as_person(page, server, owner)
    org = create_org(page, server, f"Apps {uuid.uuid4().hex[:6]}")
    assert open_page(page, server.url(f"{org}/clients")) == 200
    assert "Apps" in [a.text for a in page.find_elements(By.CSS_SELECTOR, "nav.tabs a")]
    assert not page.find_elements(By.CSS_SELECTOR, "input[name=first_party]"), "an org admin is offered first-party"
    open_details(page, "Register an app")
    fill(page, "client-name", "Team wiki")
    fill(page, "client-uris", "https://wiki.example.com/cb\nhttp://localhost:3000/cb")
    press(page, "Register app", 201)
    secret = single(page, "section.secret code#new-secret").text
    secrets_seen.note(secret)
    assert secret.startswith("pcs_")
    client_id = single(page, "code#new-client-id").text
    row = single(page, "main table tbody tr").text
    assert "Team wiki" in row and client_id in row and "https://wiki.example.com/cb" in row
    problems = inspect(page, "org-clients")
    # Reloaded, the secret is gone; the API agrees on what was registered.
    assert open_page(page, server.url(f"{org}/clients")) == 200 and not page.find_elements(By.ID, "new-secret")
    token = api_token(server, owner)
    r = api(server, token, "GET", f"/v1/clients/{client_id}")
    assert r.status_code == 200 and r.json()["redirect_uris"] == ["https://wiki.example.com/cb", "http://localhost:3000/cb"], r.text
    # A bad redirect URI is said in place, with the fields kept.
    open_details(page, "Register an app")
    fill(page, "client-name", "Bad")
    fill(page, "client-uris", "http://evil.example/cb")
    press(page, "Register app", 400)
    assert "https" in single(page, "p.error").text and single(page, "#client-name").get_attribute("value") == "Bad"
    # Delete it.
    assert open_page(page, server.url(f"{org}/clients")) == 200
    page.execute_script("window.confirm = () => true")
    press(page, "Delete")
    assert "deleted" in notice(page)
    assert api(server, token, "GET", f"/v1/clients/{client_id}").status_code == 404
    # The root's platform apps, with first-party on offer.
    as_person(page, server, ROOT_EMAIL, ROOT_PASSWORD, return_to="/admin/clients")
    assert single(page, "input[name=first_party]")
    problems += inspect(page, "admin-clients")
    assert not problems, "\n".join(problems)


# --- an app's settings page (/orgs/{org_id}/clients/{client_id}, /admin/clients/{client_id}) ------

def ticked(driver, name: str) -> list:
    """The values of the checked checkboxes named `name`."""
    return [c.get_dom_attribute("value") for c in driver.find_elements(By.CSS_SELECTOR, f"input[type=checkbox][name={name}]")
            if c.is_selected()]


def tick(driver, name: str, wanted: list):
    """Leaves exactly the checkboxes named `name` with a value in `wanted` checked, clicking as a person does."""
    for box in driver.find_elements(By.CSS_SELECTOR, f"input[type=checkbox][name={name}]"):
        if box.is_selected() != (box.get_dom_attribute("value") in wanted):
            box.click()
    assert sorted(ticked(driver, name)) == sorted(wanted)


def api_client(server, token: str, client_id: str) -> dict:
    r = api(server, token, "GET", f"/v1/clients/{client_id}")
    assert r.status_code == 200, f"GET /v1/clients/{client_id}: {r.status_code} {r.text}"
    return r.json()


def open_app_settings(driver, server, apps: str, name: str, client_id: str):
    """From the Apps list at `apps`, the app's name is the link to its settings page."""
    assert open_page(driver, server.url(apps)) == 200
    link = driver.find_element(By.LINK_TEXT, name)
    assert urlsplit(link.get_attribute("href")).path == f"{apps}/{client_id}", link.get_attribute("href")
    assert next_document(driver, link.click, f"following the link {name!r}") == 200
    assert path_of(driver) == f"{apps}/{client_id}", driver.current_url
    assert h1(driver) == name and client_id in main_text(driver)


def test_an_org_apps_settings_from_the_console(server, page):
    owner = verified_account(server, "appsettings")
    token = api_token(server, owner)
    as_person(page, server, owner)
    org = create_org(page, server, f"Settings {uuid.uuid4().hex[:6]}")
    org_id = org.rsplit("/", 1)[1]
    apps = f"{org}/clients"

    # A confidential app, registered without offline_access.
    assert open_page(page, server.url(apps)) == 200
    open_details(page, "Register an app")
    fill(page, "client-name", "Billing portal")
    fill(page, "client-uris", "https://billing.example.com/cb")
    choose(page, "client-type", "confidential")
    tick(page, "scope", ["profile", "email", "orgs"])
    press(page, "Register app", 201)
    secrets_seen.note(single(page, "code#new-secret").text)
    client_id = single(page, "code#new-client-id").text.strip()
    registered = api_client(server, token, client_id)
    assert "offline_access" not in registered["scopes"] and registered["id_token_signed_response_alg"] == "RS256", registered

    # A service account of the org, from its console page.
    assert open_page(page, server.url(f"{org}/service-accounts")) == 200
    fill(page, "sa-name", "billing-sync")
    choose(page, "sa-role", "editor")
    press(page, "Create")
    r = api(server, token, "GET", f"/v1/orgs/{org_id}/service-accounts")
    assert r.status_code == 200, r.text
    account_id = next(a["id"] for a in r.json()["items"] if a["name"] == "billing-sync")

    # The settings page, from the list's link: the stored values, the service accounts on offer.
    open_app_settings(page, server, apps, "Billing portal", client_id)
    assert single(page, "#client-name").get_attribute("value") == "Billing portal"
    assert single(page, "#client-uris").get_attribute("value") == "https://billing.example.com/cb"
    assert sorted(ticked(page, "scope")) == ["email", "orgs", "profile"]
    assert sorted(options(page, "client-alg")) == ["ES256", "RS256"]
    assert Select(single(page, "select#client-alg")).first_selected_option.get_dom_attribute("value") == "RS256"
    assert single(page, "#client-access").get_attribute("value") == "" and single(page, "#client-refresh").get_attribute("value") == ""
    assert ticked(page, "preset") == [] and single(page, "#client-constants").get_attribute("value") == ""
    assert options(page, "client-account") == ["", account_id]
    assert Select(single(page, "select#client-account")).first_selected_option.get_dom_attribute("value") == ""

    # Filled in and saved.
    choose(page, "client-alg", "ES256")
    fill(page, "client-access", "600")
    tick(page, "scope", ["profile", "email", "orgs", "offline_access"])
    tick(page, "preset", ["hasura"])
    fill(page, "client-constants", '{"tenant":"acme"}')
    choose(page, "client-account", account_id)
    problems = inspect(page, "org-client")
    press(page, "Save")
    assert path_of(page) == apps, page.current_url
    assert notice(page) == "Billing portal is saved.", notice(page)
    saved = api_client(server, token, client_id)
    assert saved["id_token_signed_response_alg"] == "ES256", saved
    assert saved["access_token_lifetime"] == 600 and saved["refresh_token_lifetime"] is None, saved
    assert "offline_access" in saved["scopes"] and {"openid", "profile", "email", "orgs"} <= set(saved["scopes"]), saved
    assert saved["claim_template"] == {"presets": ["hasura"], "constants": {"tenant": "acme"}}, saved
    assert saved["service_account_id"] == account_id, saved
    assert saved["name"] == "Billing portal" and saved["redirect_uris"] == ["https://billing.example.com/cb"], saved

    # The page again shows what was saved.
    open_app_settings(page, server, apps, "Billing portal", client_id)
    assert Select(single(page, "select#client-alg")).first_selected_option.get_dom_attribute("value") == "ES256"
    assert single(page, "#client-access").get_attribute("value") == "600"
    assert "offline_access" in ticked(page, "scope") and ticked(page, "preset") == ["hasura"]
    assert json.loads(single(page, "#client-constants").get_attribute("value")) == {"tenant": "acme"}
    assert Select(single(page, "select#client-account")).first_selected_option.get_dom_attribute("value") == account_id

    # The lifetime emptied and no service account: both back to none; the rest stays.
    fill(page, "client-access", "")
    choose(page, "client-account", "")
    press(page, "Save")
    assert notice(page) == "Billing portal is saved.", notice(page)
    cleared = api_client(server, token, client_id)
    assert cleared["access_token_lifetime"] is None and cleared["service_account_id"] is None, cleared
    assert cleared["id_token_signed_response_alg"] == "ES256" and "offline_access" in cleared["scopes"], cleared
    assert cleared["claim_template"] == {"presets": ["hasura"], "constants": {"tenant": "acme"}}, cleared
    assert not problems, "\n".join(problems)


def test_an_apps_settings_refused_say_why_and_change_nothing(server, page):
    owner = verified_account(server, "appsettingserr")
    token = api_token(server, owner)
    r = api(server, token, "POST", "/v1/orgs", {"name": f"Refusals {uuid.uuid4().hex[:6]}"})
    assert r.status_code == 201, r.text
    org_id = r.json()["id"]
    r = api(server, token, "POST", "/v1/clients", {
        "org_id": org_id, "name": "Ledger", "redirect_uris": ["https://ledger.example.com/cb"],
        "scopes": ["openid", "profile"], "access_token_lifetime": 900,
        "claim_template": {"presets": ["org_roles"], "constants": {"tier": "gold"}}})
    assert r.status_code == 201, r.text
    secrets_seen.note(r.json().get("client_secret") or "")
    client_id = r.json()["client_id"]
    before = api_client(server, token, client_id)
    apps = f"/orgs/{org_id}/clients"
    as_person(page, server, owner)
    problems = []

    def attempt(constants: str, access: str, status: int, said: list, screenshot: str | None = None):
        """Changes several fields at once, one of them wrong: the page says why, nothing is stored."""
        open_app_settings(page, server, apps, "Ledger", client_id)
        fill(page, "client-name", "Ledger renamed")
        choose(page, "client-alg", "ES256")
        tick(page, "scope", ["profile", "email"])
        fill(page, "client-constants", constants)
        # The browser's own checks (a number, at least 60) would stop these before the server sees
        # them: the fields made plain text, as a client other than this page may post anything.
        page.execute_script("for (const f of document.querySelectorAll('input[type=number]')) f.type = 'text'")
        fill(page, "client-access", access)
        press(page, "Save", status)
        errors = page_errors(page)
        # (Compared without case: the page makes the problem's detail a sentence, capitalising its first word.)
        assert len(errors) == 1 and all(word.lower() in errors[0].lower() for word in said), \
            f"constants {constants!r}, lifetime {access!r}: errors {errors}"
        assert path_of(page) == f"{apps}/{client_id}" and h1(page) == "Ledger", (page.current_url, h1(page))
        # What was typed is kept for the next try.
        assert single(page, "#client-name").get_attribute("value") == "Ledger renamed"
        assert single(page, "#client-constants").get_attribute("value") == constants
        form_for(page, "Save")  # the form, shown again
        assert api_client(server, token, client_id) == before, \
            f"a refused save changed the app (constants {constants!r}, lifetime {access!r})"
        if screenshot:
            problems.extend(inspect(page, screenshot))

    attempt('{"sub": "x"}', "900", 400, ["sub", "reserved"], screenshot="org-client-error")
    attempt("not json", "900", 400, ["JSON object"])
    attempt('["tenant", "acme"]', "900", 400, ["JSON object"])
    attempt('{"tier": "gold"}', "5", 400, ["access_token_lifetime", "60"])
    attempt('{"tier": "gold"}', "a minute", 400, ["number of seconds"])

    # Unaltered, the browser itself refuses a lifetime below the form's minimum.
    open_app_settings(page, server, apps, "Ledger", client_id)
    fill(page, "client-access", "5")
    assert page.execute_script("return document.getElementById('client-access').validity.rangeUnderflow") is True
    assert page.execute_script("return document.getElementById('client-access').form.checkValidity()") is False
    assert not problems, "\n".join(problems)


def test_a_platform_apps_settings_for_the_root_only(server, page):
    # The root registers a platform app from the console.
    as_person(page, server, ROOT_EMAIL, ROOT_PASSWORD, return_to="/admin/clients")
    name = f"Platform {uuid.uuid4().hex[:6]}"
    open_details(page, "Register an app")
    fill(page, "client-name", name)
    fill(page, "client-uris", "https://platform.example.com/cb")
    press(page, "Register app", 201)
    secrets_seen.note(single(page, "code#new-secret").text)
    client_id = single(page, "code#new-client-id").text.strip()
    root_token = api_token(server, ROOT_EMAIL, ROOT_PASSWORD)
    assert api_client(server, root_token, client_id)["id_token_signed_response_alg"] == "RS256"

    open_app_settings(page, server, "/admin/clients", name, client_id)
    assert not page.find_elements(By.ID, "client-account"), "a platform app is offered a service account"
    choose(page, "client-alg", "ES256")
    fill(page, "client-refresh", "7200")
    problems = inspect(page, "admin-client")
    press(page, "Save")
    assert path_of(page) == "/admin/clients" and notice(page) == f"{name} is saved.", (page.current_url, notice(page))
    saved = api_client(server, root_token, client_id)
    assert saved["id_token_signed_response_alg"] == "ES256" and saved["refresh_token_lifetime"] == 7200, saved
    assert saved["org_id"] is None and saved["service_account_id"] is None, saved

    # An org's app is not a platform app: not under /admin/clients, even for the root.
    owner = verified_account(server, "platformneighbour")
    owner_token = api_token(server, owner)
    r = api(server, owner_token, "POST", "/v1/orgs", {"name": f"Neighbour {uuid.uuid4().hex[:6]}"})
    assert r.status_code == 201, r.text
    org_id = r.json()["id"]
    r = api(server, owner_token, "POST", "/v1/clients", {"org_id": org_id, "name": "Org app", "type": "public",
                                                          "redirect_uris": ["https://org.example.com/cb"]})
    assert r.status_code == 201, r.text
    org_client = r.json()["client_id"]
    assert open_page(page, server.url(f"/admin/clients/{org_client}")) == 404
    assert not page.find_elements(By.ID, "client-name"), "the root's platform page shows an org's app"

    # Someone else opening the platform app's page: the not-found page, nothing of the app.
    as_person(page, server, owner)
    assert open_page(page, server.url(f"/admin/clients/{client_id}")) == 404
    assert name not in page.page_source and not page.find_elements(By.ID, "client-name"), main_text(page)
    # Nor under their own org's apps; and a forged save changes nothing.
    assert open_page(page, server.url(f"/orgs/{org_id}/clients/{client_id}")) == 404
    assert name not in page.page_source
    assert open_page(page, server.url(f"/orgs/{org_id}/clients")) == 200
    r = post_form(browser_client(page), server, f"/admin/clients/{client_id}",
                  {"csrf": page_csrf(page), "client_id": client_id, "name": "Hijacked", "redirect_uris": "https://evil.example.com/cb",
                   "id_token_alg": "RS256"})
    assert r.status_code == 404, r.status_code
    r = post_form(browser_client(page), server, f"/orgs/{org_id}/clients/{client_id}",
                  {"csrf": page_csrf(page), "client_id": client_id, "name": "Hijacked", "redirect_uris": "https://evil.example.com/cb",
                   "id_token_alg": "RS256"})
    assert r.status_code == 404, r.status_code
    assert api_client(server, root_token, client_id) == saved, "a forged save changed the platform app"

    # A public org app's page offers no service account.
    open_app_settings(page, server, f"/orgs/{org_id}/clients", "Org app", org_client)
    assert not page.find_elements(By.ID, "client-account"), "a public app is offered a service account"
    assert not problems, "\n".join(problems)


# --- webhooks in the console (/orgs/{org_id}/webhooks[/{id}], /admin/webhooks[/{id}]) ------------

WHSEC_RE = r"whsec_[A-Za-z0-9+/]{43}="


def webhooks_of(server, token: str, org_id: str | None) -> dict:
    """GET /v1/orgs/{org_id}/webhooks (the platform's, /v1/webhooks, for None): the JSON list."""
    path = f"/v1/orgs/{org_id}/webhooks" if org_id else "/v1/webhooks"
    r = api(server, token, "GET", path)
    assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
    return r.json()


def webhook_of(server, token: str, org_id: str | None, webhook_id: str) -> requests.Response:
    return api(server, token, "GET", (f"/v1/orgs/{org_id}/webhooks/" if org_id else "/v1/webhooks/") + webhook_id)


def choose_events(driver, families: list | None, other: str = ""):
    """The form's events: None for "Every event"; else that box unticked, exactly `families` ticked
    and `other` in "Other types"."""
    if families is None:
        tick(driver, "all_events", ["1"])
    else:
        tick(driver, "all_events", [])
        tick(driver, "event_type", families)
    fill(driver, "webhook-other", other)


def add_webhook(driver, url: str, description: str = "", families: list | None = None, other: str = "",
                status: int = 201) -> str | None:
    """Fills and sends "Add a webhook" on the webhooks page now open; returns the secret shown (201)."""
    open_details(driver, "Add a webhook")
    fill(driver, "webhook-url", url)
    fill(driver, "webhook-description", description)
    choose_events(driver, families, other)
    press(driver, "Add webhook", status)
    if status != 201:
        return None
    section = single(driver, "section.secret")
    secret = section.find_element(By.CSS_SELECTOR, "code#new-secret").text.strip()
    secrets_seen.note(secret)
    assert re.fullmatch(WHSEC_RE, secret), f"the signing secret shown: {secret[:10]}…"
    assert url in section.text and "only time" in section.text, section.text
    return secret


def webhook_rows(driver) -> dict:
    """The webhooks table as {url: {"href", "events", "description", "state"}}."""
    return driver.execute_script("""
        const rows = {};
        for (const tr of document.querySelectorAll('main table tbody tr')) {
          const cell = label => tr.querySelector(`td[data-label="${label}"]`);
          const link = cell('URL').querySelector('a');
          rows[link.textContent.trim()] = {href: link.getAttribute('href'), events: cell('Events').textContent.trim(),
                                           description: cell('Description').textContent.trim(),
                                           state: cell('State').querySelector('.badge').textContent.trim()};
        }
        return rows;""")


def delivery_rows(driver) -> list:
    """The Deliveries table, newest first: [{"id", "event", "state", "attempts", "status", "answer"}]."""
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('main table tbody tr')).map(tr => {
          const cell = label => tr.querySelector(`td[data-label="${label}"]`);
          const id = tr.querySelector('input[name=delivery_id]');
          return {id: id ? id.value : null, event: cell('Event').textContent.trim(),
                  state: cell('State').querySelector('.badge').textContent.trim(), attempts: cell('Attempts').textContent.trim(),
                  status: cell('Status').textContent.trim(), answer: cell('Answer').textContent.trim()};
        });""")


def follow_link(driver, text: str, path: str):
    link = driver.find_element(By.LINK_TEXT, text)
    assert urlsplit(link.get_attribute("href")).path == path, link.get_attribute("href")
    assert next_document(driver, link.click, f"following the link {text!r}") == 200
    assert path_of(driver) == path, driver.current_url


def shoot_scrolled_to(driver, name: str, selector: str):
    """<name>-<width>.png at each viewport with `selector` scrolled into view (what `shoot`, at
    the top of the page, misses below the fold)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    try:
        for width, height in VIEWPORTS:
            set_width(driver, width, height)
            driver.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'start'})", selector)
            assert driver.save_screenshot(str(SCREENSHOT_DIR / f"{name}-{width}.png")), f"no screenshot {name}-{width}.png"
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def rfc3339(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_an_org_admin_adds_a_webhook_and_sees_its_secret_once(server, page):
    owner, admin = verified_account(server, "hookowner"), verified_account(server, "hookadmin")
    as_person(page, server, owner)
    org = create_org(page, server, f"Hooks {uuid.uuid4().hex[:6]}")
    org_id = org.rsplit("/", 1)[1]
    add_member(page, admin, "admin")
    token = api_token(server, admin)

    # An admin (not the owner) has the tab, and an empty list to start with.
    as_person(page, server, admin, return_to=org)
    tabs = [a.text.strip() for a in single(page, "nav.tabs").find_elements(By.TAG_NAME, "a")]
    assert "Webhooks" in tabs, f"an org admin has no Webhooks tab: {tabs}"
    follow_link(page, "Webhooks", f"{org}/webhooks")
    assert h1(page) == "Webhooks" and single(page, "nav.tabs a[aria-current=page]").text.strip() == "Webhooks"
    assert single(page, "p.empty").text.strip() == "No webhooks yet." and not page.find_elements(By.CSS_SELECTOR, "main table")
    assert single(page, "input[name=all_events]").is_selected(), "“Every event” is not ticked by default"
    assert webhooks_of(server, token, org_id)["total"] == 0

    url = f"https://hooks.example.com/portcullis/{uuid.uuid4().hex[:6]}"
    secret = add_webhook(page, url, "CRM sync")
    assert path_of(page) == f"{org}/webhooks" and h1(page) == "Webhooks"
    rows = webhook_rows(page)
    assert set(rows) == {url}, rows
    assert (rows[url]["events"], rows[url]["description"], rows[url]["state"]) == ("*", "CRM sync", "on"), rows
    webhook_id = rows[url]["href"].rsplit("/", 1)[1]
    assert rows[url]["href"] == f"{org}/webhooks/{webhook_id}" and re.fullmatch(UUID_RE, webhook_id), rows
    body = secret[len("whsec_"):]
    problems = inspect(page, "org-webhooks")

    # The API lists it, as added, and never with its secret.
    listed = webhooks_of(server, token, org_id)
    assert listed["total"] == 1 and listed["items"][0]["id"] == webhook_id, listed
    r = webhook_of(server, token, org_id, webhook_id)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["url"], got["description"], got["event_types"], got["enabled"]) == (url, "CRM sync", ["*"], True), got
    assert body not in r.text and "secret" not in got, got
    assert body not in json.dumps(listed) and "secret" not in listed["items"][0], listed

    # The list again: the webhook, not its secret.
    assert open_page(page, server.url(f"{org}/webhooks")) == 200
    assert not page.find_elements(By.CSS_SELECTOR, "section.secret, #new-secret")
    assert body not in page.page_source and "whsec_" not in page.page_source
    assert set(webhook_rows(page)) == {url}

    # Its page, from the list's link: the settings as stored, no secret, nothing sent yet.
    follow_link(page, url, f"{org}/webhooks/{webhook_id}")
    assert h1(page).startswith("Webhook") and single(page, "h1 .badge").text.strip() == "on", h1(page)
    assert single(page, "#webhook-url").get_attribute("value") == url
    assert single(page, "#webhook-description").get_attribute("value") == "CRM sync"
    assert single(page, "input[name=all_events]").is_selected() and ticked(page, "event_type") == []
    assert single(page, "input[name=enabled]").is_selected()
    assert body not in page.page_source and "whsec_" not in page.page_source, "the endpoint's page shows the secret"
    assert not page.find_elements(By.CSS_SELECTOR, "section.secret, #new-secret")
    assert page.find_element(By.XPATH, "//h2[normalize-space()='Deliveries']")
    problems += inspect(page, "org-webhook")
    assert not problems, "\n".join(problems)


def test_a_webhook_page_saves_rotates_the_secret_and_deletes(server, page):
    owner = verified_account(server, "hooksettings")
    token = api_token(server, owner)
    as_person(page, server, owner)
    org = create_org(page, server, f"Endpoint {uuid.uuid4().hex[:6]}")
    org_id = org.rsplit("/", 1)[1]
    assert open_page(page, server.url(f"{org}/webhooks")) == 200
    url = f"https://hooks.example.com/endpoint/{uuid.uuid4().hex[:6]}"
    first = add_webhook(page, url, "before")
    webhook_id = webhooks_of(server, token, org_id)["items"][0]["id"]
    endpoint = f"{org}/webhooks/{webhook_id}"
    follow_link(page, url, endpoint)

    # Description, event types and "On" changed and saved.
    fill(page, "webhook-description", "Only people and access")
    choose_events(page, ["member.*", "invite.*"], "binding.set, key.created")
    tick(page, "enabled", [])
    press(page, "Save")
    assert path_of(page) == endpoint, page.current_url
    assert notice(page) == "The webhook is saved.", notice(page)
    saved = webhook_of(server, token, org_id, webhook_id).json()
    assert saved["description"] == "Only people and access" and saved["enabled"] is False, saved
    assert saved["event_types"] == ["member.*", "invite.*", "binding.set", "key.created"], saved
    assert saved["url"] == url, saved
    # The page shows what is stored.
    assert single(page, "h1 .badge").text.strip() == "off"
    assert not single(page, "input[name=enabled]").is_selected()
    assert not single(page, "input[name=all_events]").is_selected()
    assert sorted(ticked(page, "event_type")) == ["invite.*", "member.*"]
    assert single(page, "#webhook-other").get_attribute("value") == "binding.set, key.created"
    assert single(page, "#webhook-description").get_attribute("value") == "Only people and access"
    assert open_page(page, server.url(f"{org}/webhooks")) == 200
    row = webhook_rows(page)[url]
    assert row["state"] == "off" and row["description"] == "Only people and access", row
    assert row["events"].split() == ["member.*", "invite.*", "binding.set", "key.created"], row

    # A new secret, the old one signing for two hours more: shown once, differing from the first.
    assert open_page(page, server.url(endpoint)) == 200
    fill(page, "webhook-overlap", "2")
    asked_at = datetime.datetime.now(datetime.timezone.utc)
    assert press_confirming(page, "New secret") == 200
    section = single(page, "section.secret")
    second = section.find_element(By.CSS_SELECTOR, "code#new-secret").text.strip()
    secrets_seen.note(second)
    assert re.fullmatch(WHSEC_RE, second) and second != first, "the rotation showed no new secret"
    until = re.search(r"The old secret signs too until (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", section.text)
    assert until, f"the page does not say until when the old secret signs: {section.text!r}"
    shown_until = datetime.datetime.strptime(until.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=datetime.timezone.utc)
    # Shown to the minute, as every console time is.
    assert abs((shown_until - asked_at).total_seconds() - 2 * 3600) < 120, (shown_until, asked_at)
    stored = webhook_of(server, token, org_id, webhook_id)
    assert stored.status_code == 200 and second[len("whsec_"):] not in stored.text and first[len("whsec_"):] not in stored.text
    assert 0 <= (rfc3339(stored.json()["previous_secret_expires_at"]) - shown_until).total_seconds() < 60, stored.json()
    back = section.find_element(By.LINK_TEXT, "Back to the webhooks")
    assert urlsplit(back.get_attribute("href")).path == f"{org}/webhooks"
    # Its page again: the overlap still said, the secret gone.
    assert open_page(page, server.url(endpoint)) == 200
    assert not page.find_elements(By.CSS_SELECTOR, "section.secret, #new-secret")
    assert second[len("whsec_"):] not in page.page_source and "whsec_" not in page.page_source
    assert until.group(1) in main_text(page), "the endpoint's page no longer says until when the old secret signs"

    # Deleted: back on the list, gone there and from the API.
    assert press_confirming(page, "Delete") == 200
    assert path_of(page) == f"{org}/webhooks", page.current_url
    assert "deleted" in notice(page), notice(page)
    assert url not in main_text(page) and not page.find_elements(By.CSS_SELECTOR, "main table")
    assert webhook_of(server, token, org_id, webhook_id).status_code == 404
    assert webhooks_of(server, token, org_id)["total"] == 0
    assert open_page(page, server.url(endpoint)) == 404
    assert url not in page.page_source


# A server of its own for deliveries: the module's may not send to http://127.0.0.1.

class HookReceiver:
    """A receiver on 127.0.0.1 that answers every request 204 and keeps (headers, body) of each."""

    def __init__(self):
        self.hits, self.lock = [], threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.hits.append(({k.lower(): v for k, v in self.headers.items()}, raw))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="console-hook-receiver", daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def of_type(self, event_type: str) -> list:
        with self.lock:
            return [(h, raw) for h, raw in self.hits if json.loads(raw or b"{}").get("type") == event_type]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook_receiver():
    receiver = HookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture
def delivering_server(tmp_path):
    """The module's server settings, plus plain http to private addresses and a 50 ms queue poll."""
    with smtp_sink(tmp_path) as sink:
        workdir = tmp_path / "server"
        workdir.mkdir()
        try:
            with running_server(binary(), workdir, SMTP_URL=sink.url, SIGNUP="open", IP_BURST="1000",
                                ROOT_EMAIL=ROOT_EMAIL, ROOT_PASSWORD=ROOT_PASSWORD,
                                WEBHOOK_ALLOW_PRIVATE="true", WEBHOOK_POLL_MS="50") as base:
                yield Server(base, sink, workdir / "server.log")
        except ServerStartError as error:
            pytest.fail(str(error), pytrace=False)


def reload_until(driver, server, path: str, ready, what: str, timeout: float = 15):
    """Reloads `path` until `ready(driver)` is truthy (returned), as a person pressing reload."""
    deadline = time.monotonic() + timeout
    while True:
        assert open_page(driver, server.url(path)) == 200, path
        got = ready(driver)
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not shown on {path} within {timeout:.0f}s; deliveries {delivery_rows(driver)}", pytrace=False)
        time.sleep(0.25)


def test_a_webhook_test_event_shows_in_the_delivery_log_and_is_sent_again(delivering_server, hook_receiver, page):
    server = delivering_server
    owner = verified_account(server, "hooktester")
    token = api_token(server, owner)
    as_person(page, server, owner)
    org = create_org(page, server, f"Deliveries {uuid.uuid4().hex[:6]}")
    org_id = org.rsplit("/", 1)[1]
    assert open_page(page, server.url(f"{org}/webhooks")) == 200
    url = hook_receiver.url()
    secret = add_webhook(page, url, "local receiver", families=["binding.*"])
    webhook_id = webhooks_of(server, token, org_id)["items"][0]["id"]
    endpoint = f"{org}/webhooks/{webhook_id}"
    follow_link(page, url, endpoint)
    assert single(page, "p.empty").text.startswith("Nothing sent yet"), main_text(page)

    press(page, "Send a test event")
    assert path_of(page) == endpoint and "test event" in notice(page), (page.current_url, notice(page))

    def test_delivered(d):
        rows = [r for r in delivery_rows(d) if r["event"] == "webhook.test"]
        return rows if rows and rows[0]["state"] == "delivered" else None
    rows = reload_until(page, server, endpoint, test_delivered, "a delivered webhook.test")
    assert len(rows) == 1 and (rows[0]["status"], rows[0]["attempts"]) == ("204", "1"), rows
    # It is what the receiver got, signed with the secret the page showed.
    hits = hook_receiver.of_type("webhook.test")
    assert len(hits) == 1, f"the receiver got {len(hits)} webhook.test requests"
    headers, raw = hits[0]
    event = Webhook(secret).verify(raw, headers)
    assert event["data"]["endpoint_id"] == webhook_id and event["org_id"] == org_id, event
    sent_id = headers["webhook-id"]

    # "Send again" on that row: a second row, newest first, the same event sent once more.
    row_form = page.find_element(By.XPATH, f"//tr[.//input[@name='delivery_id' and @value={xpath_literal(rows[0]['id'])}]]//form")
    assert submit(page, row_form) == 200
    assert path_of(page) == endpoint and "queued again" in notice(page), (page.current_url, notice(page))

    def both_delivered(d):
        rows = [r for r in delivery_rows(d) if r["event"] == "webhook.test"]
        return rows if len(rows) == 2 and all(r["state"] == "delivered" for r in rows) else None
    again = reload_until(page, server, endpoint, both_delivered, "the test event sent again")
    assert again[1]["id"] == rows[0]["id"] and again[0]["id"] != rows[0]["id"], (rows, again)
    assert all(r["status"] == "204" for r in again), again
    hits = hook_receiver.of_type("webhook.test")
    assert len(hits) == 2 and hits[1][0]["webhook-id"] == sent_id and hits[1][1] == raw, "the redelivery is not the same event"
    r = api(server, token, "GET", f"/v1/orgs/{org_id}/webhooks/{webhook_id}/deliveries")
    assert r.status_code == 200 and {d["id"] for d in r.json()["items"]} >= {x["id"] for x in again}, r.text

    # The page with its delivery log: checked, and shot scrolled to the log at each width.
    problems = inspect(page, "org-webhook-deliveries")
    shoot_scrolled_to(page, "org-webhook-deliveries-log", "main table")
    assert not problems, "\n".join(problems)


def test_an_editor_can_neither_see_nor_add_webhooks(server, page):
    owner, editor = verified_account(server, "hookboss"), verified_account(server, "hookeditor")
    owner_token = api_token(server, owner)
    as_person(page, server, owner)
    org = create_org(page, server, f"Editors {uuid.uuid4().hex[:6]}")
    org_id = org.rsplit("/", 1)[1]
    add_member(page, editor, "editor")
    assert open_page(page, server.url(f"{org}/webhooks")) == 200
    url = f"https://hooks.example.com/private/{uuid.uuid4().hex[:6]}"
    add_webhook(page, url, "the owner's")
    webhook_id = webhooks_of(server, owner_token, org_id)["items"][0]["id"]

    # A post from elsewhere with the owner's cookies but no form token: refused, nothing made.
    owner_client = browser_client(page)
    forged = f"https://hooks.example.com/forged/{uuid.uuid4().hex[:6]}"
    r = post_form(owner_client, server, f"{org}/webhooks", {"url": forged, "all_events": "1"})
    assert r.status_code == 403 and "This form has expired" in r.text, f"no csrf field: {r.status_code}"
    r = post_form(owner_client, server, f"{org}/webhooks", {"url": forged, "all_events": "1", "csrf": page_csrf(page)},
                  origin="https://evil.example")
    assert r.status_code == 403, f"from another origin: {r.status_code}"
    r = post_form(owner_client, server, f"{org}/webhooks/{webhook_id}/delete", {"id": webhook_id})
    assert r.status_code == 403, f"delete without csrf: {r.status_code}"
    assert [e["url"] for e in webhooks_of(server, owner_token, org_id)["items"]] == [url], "a forged post changed the webhooks"

    # The editor: no tab, and the page says no in HTML.
    as_person(page, server, editor, return_to=org)
    tabs = [a.text.strip() for a in single(page, "nav.tabs").find_elements(By.TAG_NAME, "a")]
    assert "Webhooks" not in tabs, f"an editor has the Webhooks tab: {tabs}"
    assert open_page(page, server.url(f"{org}/webhooks")) == 403
    assert h1(page) == "Not allowed" and "does not allow" in main_text(page), main_text(page)
    assert url not in page.page_source and not page.find_elements(By.ID, "webhook-url")
    assert open_page(page, server.url(f"{org}/webhooks/{webhook_id}")) in (403, 404)
    assert url not in page.page_source and not page.find_elements(By.ID, "webhook-url"), main_text(page)
    # Posting the form with the editor's own valid token: refused, nothing made, still a page.
    assert open_page(page, server.url(org)) == 200
    client, csrf = browser_client(page), page_csrf(page)
    r = post_form(client, server, f"{org}/webhooks", {"csrf": csrf, "url": forged, "all_events": "1"})
    assert r.status_code == 403, f"an editor's post to add a webhook: {r.status_code}"
    # (Checked last, so the rest is checked too.)
    refusal = r.headers.get("Content-Type", ""), r.text
    for form in ("test", "delete", "secret"):
        r = post_form(client, server, f"{org}/webhooks/{webhook_id}/{form}", {"csrf": csrf})
        assert r.status_code in (403, 404), f"an editor's post to {form}: {r.status_code}"
        assert "whsec_" not in r.text, f"an editor's post to {form} showed a secret"
    assert [e["url"] for e in webhooks_of(server, owner_token, org_id)["items"]] == [url], "an editor changed the webhooks"
    got = webhook_of(server, owner_token, org_id, webhook_id).json()
    assert got["previous_secret_expires_at"] is None, f"an editor rotated the secret: {got}"
    assert refusal[0].startswith("text/html") and "<main" in refusal[1], \
        f"an editor's refused post to add a webhook is not a page but {refusal[0]}: {refusal[1][:300]}"


def test_the_root_adds_a_platform_webhook_nobody_else_sees_the_page(server, page):
    root_token = api_token(server, ROOT_EMAIL, ROOT_PASSWORD)
    before = {e["id"] for e in webhooks_of(server, root_token, None)["items"]}
    as_person(page, server, ROOT_EMAIL, ROOT_PASSWORD, return_to="/admin")
    tabs = single(page, "nav.tabs")
    assert "Webhooks" in [a.text.strip() for a in tabs.find_elements(By.TAG_NAME, "a")], tabs.text
    follow_link(page, "Webhooks", "/admin/webhooks")
    assert h1(page) == "Webhooks" and single(page, "nav.tabs a[aria-current=page]").text.strip() == "Webhooks"
    url = f"https://platform-hooks.example.com/{uuid.uuid4().hex[:6]}"
    secret = add_webhook(page, url, "platform audit", families=["platform_invite.*", "user.*"])
    assert path_of(page) == "/admin/webhooks"
    problems = inspect(page, "admin-webhooks")
    rows = webhook_rows(page)
    assert rows[url]["events"].split() == ["user.*", "platform_invite.*"] and rows[url]["state"] == "on", rows
    made = [e for e in webhooks_of(server, root_token, None)["items"] if e["id"] not in before]
    assert len(made) == 1 and made[0]["url"] == url and made[0]["org_id"] is None, made
    assert made[0]["event_types"] == ["user.*", "platform_invite.*"] and made[0]["description"] == "platform audit", made
    webhook_id = made[0]["id"]
    follow_link(page, url, f"/admin/webhooks/{webhook_id}")
    assert secret[len("whsec_"):] not in page.page_source
    problems += inspect(page, "admin-webhook")

    # Someone else, signed in: the not-found page, nothing of the platform's webhooks.
    owner = verified_account(server, "notroot")
    as_person(page, server, owner)
    org = create_org(page, server, f"Not root {uuid.uuid4().hex[:6]}")
    for path in ("/admin/webhooks", f"/admin/webhooks/{webhook_id}"):
        assert open_page(page, server.url(path)) == 404, path
        assert h1(page) == "Not found" and url not in page.page_source and not page.find_elements(By.ID, "webhook-url"), main_text(page)
    # Nor through their own org's pages; and their posts change nothing.
    assert open_page(page, server.url(f"{org}/webhooks/{webhook_id}")) == 404
    assert url not in page.page_source
    client, csrf = browser_client(page), page_csrf(page)
    r = post_form(client, server, "/admin/webhooks", {"csrf": csrf, "url": "https://hooks.example.com/mine", "all_events": "1"})
    assert r.status_code == 404 and "whsec_" not in r.text, r.status_code
    for form in ("delete", "secret", "save"):
        r = post_form(client, server, f"/admin/webhooks/{webhook_id}/{form}",
                      {"csrf": csrf, "url": "https://evil.example.com/x", "all_events": "1", "enabled": "1"})
        assert r.status_code == 404 and "whsec_" not in r.text, (form, r.status_code)
    after = webhooks_of(server, root_token, None)["items"]
    assert {e["id"] for e in after} == before | {webhook_id}, after
    assert webhook_of(server, root_token, None, webhook_id).json() == made[0], "a non-root's post changed the platform webhook"

    # The root deletes it from its page.
    as_person(page, server, ROOT_EMAIL, ROOT_PASSWORD, return_to=f"/admin/webhooks/{webhook_id}")
    assert press_confirming(page, "Delete") == 200
    assert path_of(page) == "/admin/webhooks" and "deleted" in notice(page), (page.current_url, notice(page))
    assert webhook_of(server, root_token, None, webhook_id).status_code == 404
    assert not problems, "\n".join(problems)


def test_bad_webhook_input_is_said_in_place_with_the_form_kept(server, page):
    owner = verified_account(server, "hookbadinput")
    token = api_token(server, owner)
    as_person(page, server, owner)
    org = create_org(page, server, f"Bad input {uuid.uuid4().hex[:6]}")
    org_id = org.rsplit("/", 1)[1]
    assert open_page(page, server.url(f"{org}/webhooks")) == 200
    forgotten = []

    def kept(what: str, description: str, families: list, other: str):
        """What the person typed and ticked is in the form shown again."""
        assert single(page, "details.panel").get_dom_attribute("open") is not None, "the form is shown closed after an error"
        assert single(page, "#webhook-url").get_attribute("value") == what
        assert single(page, "#webhook-description").get_attribute("value") == description
        assert single(page, "#webhook-other").get_attribute("value") == other
        if single(page, "input[name=all_events]").is_selected() or sorted(ticked(page, "event_type")) != sorted(families):
            forgotten.append(f"after {page_errors(page)}: “Every event” is "
                             f"{'ticked' if single(page, 'input[name=all_events]').is_selected() else 'unticked'}, "
                             f"families {ticked(page, 'event_type')} (chosen: only {families})")
        assert not page.find_elements(By.CSS_SELECTOR, "section.secret, #new-secret") and "whsec_" not in page.page_source
        assert webhooks_of(server, token, org_id)["total"] == 0, "a refused form made a webhook"

    # Plain http (this server sends to https only).
    plain = "http://hooks.example.com/portcullis"
    add_webhook(page, plain, "Typed description", families=["member.*"], other="binding.set", status=400)
    errors = page_errors(page)
    assert len(errors) == 1 and "https" in errors[0], errors
    assert path_of(page) == f"{org}/webhooks" and h1(page) == "Webhooks"
    kept(plain, "Typed description", ["member.*"], "binding.set")
    problems = inspect(page, "org-webhooks-error")

    # An unknown event type, the URL fixed (the families chosen again when the form forgot them).
    good = "https://hooks.example.com/portcullis"
    add_webhook(page, good, "Typed description", families=["member.*"], other="binding.set, nonsense.x", status=400)
    errors = page_errors(page)
    assert len(errors) == 1 and "nonsense.x" in errors[0], errors
    kept(good, "Typed description", ["member.*"], "binding.set, nonsense.x")

    # Fixed: made, with what was chosen.
    add_webhook(page, good, "Typed description", families=["member.*"], other="binding.set")
    made = webhooks_of(server, token, org_id)
    assert made["total"] == 1 and made["items"][0]["event_types"] == ["member.*", "binding.set"], made
    stored = made["items"][0]

    # Its page: a save with an unknown type and other changes is said in place, with the changes kept.
    endpoint = f"{org}/webhooks/{stored['id']}"
    assert open_page(page, server.url(endpoint)) == 200
    fill(page, "webhook-description", "Changed too")
    choose_events(page, ["member.*", "invite.*"], "nonsense.y")
    tick(page, "enabled", [])
    press(page, "Save", 400)
    errors = page_errors(page)
    assert len(errors) == 1 and "nonsense.y" in errors[0], errors
    # (Shown in answer to the post, at its address …/save.)
    assert path_of(page) in (endpoint, f"{endpoint}/save") and h1(page).startswith("Webhook"), page.current_url
    assert single(page, "#webhook-description").get_attribute("value") == "Changed too"
    assert single(page, "#webhook-other").get_attribute("value") == "nonsense.y"
    shown = (single(page, "input[name=all_events]").is_selected(), sorted(ticked(page, "event_type")),
             single(page, "input[name=enabled]").is_selected())
    if shown != (False, ["invite.*", "member.*"], False):
        forgotten.append(f"on the webhook's page after {errors}: (every event, families, on) is {shown}, "
                         "chosen (False, ['invite.*', 'member.*'], False)")
    assert webhook_of(server, token, org_id, stored["id"]).json() == stored, "a refused save changed the webhook"
    assert not problems, "\n".join(problems)
    assert not forgotten, "the form shown again after an error forgot the events chosen:\n" + "\n".join(forgotten)


# --- groups and overrides in the console (/orgs/{org_id}/groups[/{id}], /orgs/{org_id}/overrides) --

def api_groups(server, token: str, org_id: str) -> dict:
    """GET /v1/orgs/{org_id}/groups as {name: group}."""
    r = api(server, token, "GET", f"/v1/orgs/{org_id}/groups?limit=100")
    assert r.status_code == 200, f"GET /v1/orgs/{org_id}/groups: {r.status_code} {r.text}"
    return {g["name"]: g for g in r.json()["items"]}


def api_group_members(server, token: str, org_id: str, group_id: str) -> list:
    r = api(server, token, "GET", f"/v1/orgs/{org_id}/groups/{group_id}/members?limit=100")
    assert r.status_code == 200, f"GET …/groups/{group_id}/members: {r.status_code} {r.text}"
    return r.json()["items"]


def api_overrides(server, token: str, org_id: str) -> list:
    r = api(server, token, "GET", f"/v1/orgs/{org_id}/overrides?limit=100")
    assert r.status_code == 200, f"GET /v1/orgs/{org_id}/overrides: {r.status_code} {r.text}"
    return r.json()["items"]


def api_group_state(server, token: str, org_id: str) -> dict:
    """What the groups pages may change, as the API shows it: the groups, their members, the
    group bindings and the overrides."""
    groups = api_groups(server, token, org_id)
    r = api(server, token, "GET", f"/v1/orgs/{org_id}/bindings?limit=100")
    assert r.status_code == 200, r.text
    return {"groups": groups, "members": {n: api_group_members(server, token, org_id, g["id"]) for n, g in groups.items()},
            "bindings": [b for b in r.json()["items"] if b["subject"].get("group_id")],
            "overrides": api_overrides(server, token, org_id)}


def table_rows(driver) -> list:
    """The rows of the main table, each as {data-label: text} (the actions cell, labelled "", left out)."""
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('main table tbody tr')).map(tr => {
          const row = {};
          for (const td of tr.querySelectorAll('td[data-label]'))
            if (td.dataset.label) row[td.dataset.label] = td.textContent.trim().replace(/\\s+/g, ' ');
          return row;
        });""")


def make_group(driver, server, org: str, name: str, parent_id: str = "", description: str = "", status: int = 200) -> str:
    """Fills and sends "New group" on the org's Groups page; returns the new group's page path (200)."""
    assert open_page(driver, server.url(f"{org}/groups")) == 200
    fill(driver, "group-name", name)
    choose(driver, "group-parent", parent_id)
    fill(driver, "group-description", description)
    press(driver, "Make the group", status)
    if status != 200:
        return ""
    path = path_of(driver)
    assert re.fullmatch(rf"{org}/groups/{UUID_RE}", path), f"making a group led to {driver.current_url}"
    assert notice(driver) == f"The group {name} is made.", notice(driver)
    assert h1(driver) == name
    return path


def set_date(driver, field_id: str, value: str):
    """A date field set as a person's date picker sets it (typing into it depends on the browser's locale)."""
    field = single(driver, f"input#{field_id}[type=date]")
    driver.execute_script("arguments[0].value = arguments[1]", field, value)
    assert field.get_attribute("value") == value


def row_form(driver, cell: str, text: str):
    """The form in the main table's one row whose `cell` column reads `text`."""
    found = driver.find_elements(By.XPATH, f"//main//table/tbody/tr[td[@data-label={xpath_literal(cell)}]"
                                           f"[normalize-space()={xpath_literal(text)}]]//form")
    assert len(found) == 1, f"{len(found)} row forms where {cell} is {text!r} on {driver.current_url}"
    return found[0]


def press_in_row_confirming(driver, cell: str, text: str) -> int:
    """Presses the (asking) button of the row whose `cell` reads `text`; the person says yes."""
    form = row_form(driver, cell, text)
    question = form.get_dom_attribute("data-confirm")
    assert question, f"the row form where {cell} is {text!r} asks no confirmation"

    def press_and_confirm():
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        alert = WebDriverWait(driver, TIMEOUT).until(expected_conditions.alert_is_present())
        assert alert.text == question
        alert.accept()

    return next_document(driver, press_and_confirm, f"confirming the row where {cell} is {text!r}")


def explain(driver, server, org: str, subject: str, action: str, obj: str) -> tuple:
    """Asks on the Explain page through its form: (the answer's badge, its reason, the grants rows)."""
    assert open_page(driver, server.url(f"{org}/explain")) == 200
    choose(driver, "ex-subject", subject)
    fill(driver, "ex-action", action)
    fill(driver, "ex-object", obj)
    press(driver, "Explain")
    answer = single(driver, "section.answer")
    return (answer.find_element(By.CSS_SELECTOR, ".badge").text.strip(), answer.find_element(By.CSS_SELECTOR, "p").text.strip(),
            table_rows(driver))


def test_an_owner_nests_groups_adds_a_member_binds_a_role_and_explain_shows_the_group_chain(server, page):
    owner, member = verified_account(server, "groupowner"), verified_account(server, "groupmember", "Gus Member")
    token = api_token(server, owner)
    as_person(page, server, owner)
    org = create_org(page, server, f"Groups {uuid.uuid4().hex[:6]}")
    org_id = org.rsplit("/", 1)[1]
    add_member(page, member, "viewer")
    member_id = server.me(member, PASSWORD)["id"]
    apollo = f"org:{org_id}/project:apollo"

    # The Groups tab, empty to start with.
    tabs = [a.text.strip() for a in single(page, "nav.tabs").find_elements(By.TAG_NAME, "a")]
    assert tabs[:5] == ["Members", "Invites", "Groups", "Access", "Overrides"], tabs
    follow_link(page, "Groups", f"{org}/groups")
    assert h1(page) == "Groups" and single(page, "nav.tabs a[aria-current=page]").text.strip() == "Groups"
    assert single(page, "p.empty").text.strip() == "No groups yet." and not page.find_elements(By.CSS_SELECTOR, "main table")
    assert options(page, "group-parent") == [""], "an empty org offers a parent group"

    # Two top-level groups, then one inside Engineering and one inside that.
    make_group(page, server, org, "Engineering", description="Everyone who builds")
    engineering = api_groups(server, token, org_id)["Engineering"]["id"]
    inside = "//main//p[starts-with(normalize-space(), 'Inside')]"
    assert not page.find_elements(By.XPATH, inside), "a top-level group says it is inside one"
    make_group(page, server, org, "Design")
    assert open_page(page, server.url(f"{org}/groups")) == 200
    assert options(page, "group-parent") == ["", api_groups(server, token, org_id)["Design"]["id"], engineering]
    backend_page = make_group(page, server, org, "Backend", parent_id=engineering)
    parent_link = page.find_element(By.XPATH, f"{inside}//a")
    assert urlsplit(parent_link.get_attribute("href")).path == f"{org}/groups/{engineering}", parent_link.text
    backend = backend_page.rsplit("/", 1)[1]
    make_group(page, server, org, "Databases", parent_id=backend, description="Postgres and SQLite on call")
    groups = api_groups(server, token, org_id)
    assert {n: g["parent_id"] for n, g in groups.items()} == {
        "Engineering": None, "Design": None, "Backend": engineering, "Databases": backend}, groups

    # The list is a tree: each group under its parent, indented with "— " per level.
    assert open_page(page, server.url(f"{org}/groups")) == 200
    assert [(r["Group"], r["Inside"]) for r in table_rows(page)] == [
        ("Design", ""), ("Engineering", ""), ("— Backend", "Engineering"), ("— — Databases", "Backend")], table_rows(page)
    assert [o.text for o in single(page, "select#group-parent").find_elements(By.TAG_NAME, "option")] == [
        "(none: a top-level group)", "Design", "Engineering", "— Backend", "— — Databases"]
    problems = inspect(page, "org-groups")

    # A member added to Backend from its page (reached by the tree's link), until a date.
    follow_link(page, "Backend", backend_page)
    assert table_rows(page) == [{"Member": "Databases", "Kind": "group", "Expires": "never"}], table_rows(page)
    assert f"user:{member_id}" in options(page, "member-pick"), options(page, "member-pick")
    choose(page, "member-pick", f"user:{member_id}")
    set_date(page, "member-expires", "2031-06-30")
    press(page, "Add")
    assert path_of(page) == backend_page and notice(page) == "The member is added.", (page.current_url, notice(page))
    # People first, then the child groups (each linking to its page).
    assert table_rows(page) == [{"Member": member, "Kind": "user", "Expires": "2031-06-30 00:00 UTC"},
                                {"Member": "Databases", "Kind": "group", "Expires": "never"}], table_rows(page)
    assert urlsplit(page.find_element(By.LINK_TEXT, "Databases").get_attribute("href")).path == f"{org}/groups/{groups['Databases']['id']}"
    stored = api_group_members(server, token, org_id, backend)
    assert [(m["type"], m["id"]) for m in stored] == [("user", member_id), ("group", groups["Databases"]["id"])], stored
    assert rfc3339(stored[0]["expires_at"]) == datetime.datetime(2031, 6, 30, tzinfo=datetime.timezone.utc), stored
    assert stored[1]["expires_at"] is None, stored
    assert open_page(page, server.url(f"{org}/groups/{engineering}")) == 200
    assert table_rows(page) == [{"Member": "Backend", "Kind": "group", "Expires": "never"}], table_rows(page)
    assert urlsplit(page.find_element(By.LINK_TEXT, "Backend").get_attribute("href")).path == backend_page

    # A role bound to Engineering, from its page: it reaches Backend's member.
    assert single(page, "p.empty").text.strip() == "No role is bound to this group yet."
    fill(page, "bind-resource", apollo)
    choose(page, "bind-role", "editor")
    press(page, "Bind")
    assert path_of(page) == f"{org}/groups/{engineering}", page.current_url
    assert notice(page) == f"The group's binding on {apollo} is set.", notice(page)
    rows = table_rows(page)
    assert {"Resource": apollo, "Role": "editor", "Expires": "never"} in rows, rows
    r = api(server, token, "GET", f"/v1/orgs/{org_id}/bindings?limit=100")
    assert [({k: v for k, v in b["subject"].items() if v}, b["resource"], b["role"]) for b in r.json()["items"]
            if b["subject"].get("group_id")] == [({"group_id": engineering}, apollo, "editor")], r.text
    problems += inspect(page, "org-group")
    shoot_scrolled_to(page, "org-group-settings", "#settings-title")

    # The Access page offers the groups as subjects and shows the group's binding.
    assert open_page(page, server.url(f"{org}/access")) == 200
    subjects = {o.get_dom_attribute("value"): o.text for o in single(page, "select#bind-subject").find_elements(By.TAG_NAME, "option")}
    assert subjects.get(f"group:{engineering}") == "group Engineering" and subjects.get(f"group:{backend}") == "group Backend", subjects
    assert {"Subject": "group Engineering", "Resource": apollo, "Role": "editor", "Expires": "never"} in table_rows(page), table_rows(page)

    # Explain: allowed through the groups, the chain from the member's own group up to the bound one.
    badge, reason, grants = explain(page, server, org, f"user:{member_id}", "editor", apollo)
    assert badge == "Allowed", (badge, reason, grants)
    assert [th.get_attribute("textContent").strip() for th in page.find_elements(By.CSS_SELECTOR, "section.answer thead th")] == [
        "Kind", "On", "Role or override", "Through", "Expires", "Decisive"]
    # (The binding does not expire; the member's place in Backend does, and the grant with it.)
    through = [g for g in grants if g["Through"]]
    assert through == [{"Kind": "binding", "On": apollo, "Role or override": "editor", "Through": "groups Backend → Engineering",
                        "Expires": "2031-06-30 00:00 UTC", "Decisive": "yes"}], grants
    assert any(g["Kind"] == "membership" and g["Role or override"] == "viewer" and not g["Through"] for g in grants), grants
    problems += inspect(page, "org-explain-group")
    shoot_scrolled_to(page, "org-explain-group-answer", "section.answer")
    # Not above the bound resource: the org itself is the member's viewer role alone.
    badge, _, grants = explain(page, server, org, f"user:{member_id}", "editor", f"org:{org_id}")
    assert badge == "Denied" and not [g for g in grants if g["Through"]], grants

    # Removed from Backend: the group's role no longer reaches the member.
    assert open_page(page, server.url(backend_page)) == 200
    assert press_in_row_confirming(page, "Member", member) == 200
    assert path_of(page) == backend_page and notice(page) == "The member is removed from the group.", notice(page)
    assert [r["Member"] for r in table_rows(page)] == ["Databases"], table_rows(page)
    assert [m["type"] for m in api_group_members(server, token, org_id, backend)] == ["group"]
    badge, _, grants = explain(page, server, org, f"user:{member_id}", "editor", apollo)
    assert badge == "Denied" and not [g for g in grants if g["Through"]], grants
    assert not problems, "\n".join(problems)


def test_an_admin_sets_a_deny_override_with_a_reason_and_explain_says_denied(server, page):
    owner, admin, member = (verified_account(server, w) for w in ("overrideowner", "overrideadmin", "overridden"))
    as_person(page, server, owner)
    org = create_org(page, server, f"Overrides {uuid.uuid4().hex[:6]}")
    org_id = org.rsplit("/", 1)[1]
    add_member(page, admin, "admin")
    add_member(page, member, "editor")
    member_id = server.me(member, PASSWORD)["id"]
    token = api_token(server, admin)
    reason = "Under review after ticket SEC-42"

    # The admin has the tab and an empty list.
    as_person(page, server, admin, return_to=org)
    tabs = [a.text.strip() for a in single(page, "nav.tabs").find_elements(By.TAG_NAME, "a")]
    assert "Overrides" in tabs, f"an org admin has no Overrides tab: {tabs}"
    follow_link(page, "Overrides", f"{org}/overrides")
    assert h1(page) == "Overrides" and single(page, "nav.tabs a[aria-current=page]").text.strip() == "Overrides"
    assert single(page, "p.empty").text.strip() == "No overrides: roles alone decide."
    assert single(page, "input[name=effect][value=deny]").is_selected(), "deny is not the effect chosen by default"
    permissions = options(page, "override-permission")
    assert {"members.read", "org.update", "audit.read"} <= set(permissions) and "editor" not in permissions, permissions
    assert f"user:{member_id}" in options(page, "override-subject")

    # A deny of members.read for the editor on the whole org, with a reason.
    single(page, "input[name=effect][value=deny]").click()
    choose(page, "override-permission", "members.read")
    choose(page, "override-subject", f"user:{member_id}")
    fill(page, "override-resource", f"org:{org_id}")
    fill(page, "override-reason", reason)
    press(page, "Set the override")
    assert path_of(page) == f"{org}/overrides", page.current_url
    assert notice(page) == f"The deny of members.read on org:{org_id} is set.", notice(page)
    assert table_rows(page) == [{"Effect": "deny", "Permission": "members.read", "Subject": f"Overridden <{member}>",
                                 "Resource": f"org:{org_id}", "Reason": reason, "Expires": "never"}], table_rows(page)
    # (Red, as the Explain page's "Denied".)
    assert single(page, "main table tbody .badge").get_dom_attribute("class").split() == ["badge", "deny"]
    stored = api_overrides(server, token, org_id)
    assert [(o["effect"], o["permission"], o["subject"]["user_id"], o["resource"], o["reason"], o["expires_at"]) for o in stored] == [
        ("deny", "members.read", member_id, f"org:{org_id}", reason, None)], stored

    # Explain: denied by the override, though the editor's role holds members.read.
    badge, said, grants = explain(page, server, org, f"user:{member_id}", "members.read", f"org:{org_id}")
    assert badge == "Denied" and "override" in said, (badge, said)
    assert [g for g in grants if g["Kind"] == "override"] == [
        {"Kind": "override", "On": f"org:{org_id}", "Role or override": f"deny members.read: {reason}", "Through": "",
         "Expires": "never", "Decisive": "yes"}], grants
    problems = inspect(page, "org-explain-override")
    shoot_scrolled_to(page, "org-explain-override-answer", "section.answer")

    # An allow for a group, on one project, until a date: the group's member gets audit.read there.
    r = api(server, token, "POST", f"/v1/orgs/{org_id}/groups", {"name": "Auditors"})
    assert r.status_code == 201, r.text
    auditors = r.json()["id"]
    r = api(server, token, "PUT", f"/v1/orgs/{org_id}/groups/{auditors}/members", {"user_id": member_id})
    assert r.status_code == 201, r.text
    assert open_page(page, server.url(f"{org}/overrides")) == 200
    assert f"group:{auditors}" in options(page, "override-subject")
    single(page, "input[name=effect][value=allow]").click()
    choose(page, "override-permission", "audit.read")
    choose(page, "override-subject", f"group:{auditors}")
    fill(page, "override-resource", f"org:{org_id}/project:apollo")
    fill(page, "override-reason", "Quarterly audit of Apollo")
    set_date(page, "override-expires", "2031-01-15")
    press(page, "Set the override")
    rows = {r["Permission"]: r for r in table_rows(page)}
    assert rows["audit.read"] == {"Effect": "allow", "Permission": "audit.read", "Subject": "group Auditors",
                                  "Resource": f"org:{org_id}/project:apollo", "Reason": "Quarterly audit of Apollo",
                                  "Expires": "2031-01-15 00:00 UTC"}, rows
    problems += inspect(page, "org-overrides")
    shoot_scrolled_to(page, "org-overrides-form", "#override-title")
    badge, said, grants = explain(page, server, org, f"user:{member_id}", "audit.read", f"org:{org_id}/project:apollo")
    assert badge == "Allowed" and "override" in said, (badge, said)
    assert {"Kind": "override", "On": f"org:{org_id}/project:apollo", "Role or override": "allow audit.read: Quarterly audit of Apollo",
            "Through": "groups Auditors", "Expires": "2031-01-15 00:00 UTC", "Decisive": "yes"} in grants, grants

    # The deny removed from the table: members.read is the editor's again.
    assert open_page(page, server.url(f"{org}/overrides")) == 200
    assert press_in_row_confirming(page, "Permission", "members.read") == 200
    assert path_of(page) == f"{org}/overrides" and notice(page) == "The override is removed.", notice(page)
    assert [r["Permission"] for r in table_rows(page)] == ["audit.read"]
    assert [o["permission"] for o in api_overrides(server, token, org_id)] == ["audit.read"]
    badge, _, grants = explain(page, server, org, f"user:{member_id}", "members.read", f"org:{org_id}")
    assert badge == "Allowed" and not [g for g in grants if g["Kind"] == "override"], grants
    assert not problems, "\n".join(problems)


def test_refused_group_and_override_changes_say_why_and_change_nothing(server, page):
    owner = verified_account(server, "grouprefusals")
    token = api_token(server, owner)
    as_person(page, server, owner)
    org = create_org(page, server, f"Refused groups {uuid.uuid4().hex[:6]}")
    org_id = org.rsplit("/", 1)[1]
    owner_id = server.me(owner, PASSWORD)["id"]
    ops_page = make_group(page, server, org, "Ops")
    ops = ops_page.rsplit("/", 1)[1]
    oncall_page = make_group(page, server, org, "On-call", parent_id=ops)
    oncall = oncall_page.rsplit("/", 1)[1]
    before = api_group_state(server, token, org_id)

    # A sibling's name again (in other case): said in place, the typed name kept, nothing made.
    assert open_page(page, server.url(f"{org}/groups")) == 200
    fill(page, "group-name", "ops")
    fill(page, "group-description", "A second Ops")
    press(page, "Make the group", 409)
    errors = page_errors(page)
    assert len(errors) == 1 and "already exists" in errors[0] and "ops" in errors[0], errors
    assert path_of(page) == f"{org}/groups" and h1(page) == "Groups", (page.current_url, h1(page))
    assert single(page, "#group-name").get_attribute("value") == "ops"
    assert single(page, "#group-description").get_attribute("value") == "A second Ops"
    assert [r["Group"] for r in table_rows(page)] == ["Ops", "— On-call"], table_rows(page)
    assert api_group_state(server, token, org_id) == before, "a refused name clash changed the groups"
    problems = inspect(page, "org-groups-error")

    # Ops moved under its own child (and renamed in the same save): refused, nothing changed.
    assert open_page(page, server.url(ops_page)) == 200
    assert ops not in options(page, "group-parent"), "a group is offered as its own parent"
    assert options(page, "group-parent") == ["", oncall]
    fill(page, "group-name", "Operations")
    choose(page, "group-parent", oncall)
    press(page, "Save", 409)
    errors = page_errors(page)
    assert len(errors) == 1 and "cannot move under itself or one of its own descendants" in errors[0], errors
    assert h1(page) == "Ops" and path_of(page) in (ops_page, f"{ops_page}/save"), (page.current_url, h1(page))
    form_for(page, "Save")  # the form, shown again, with what was typed
    assert single(page, "#group-name").get_attribute("value") == "Operations"
    assert single(page, "#group-parent option:checked").get_attribute("value") == oncall, "the refused choice of parent was lost"
    assert api_group_state(server, token, org_id) == before, "a refused move changed the groups"
    problems += inspect(page, "org-group-error")

    # A group with a child group is not deleted.
    assert open_page(page, server.url(ops_page)) == 200
    assert press_confirming(page, "Delete the group") == 409
    errors = page_errors(page)
    assert len(errors) == 1 and "child groups" in errors[0], errors
    assert api_group_state(server, token, org_id) == before, "a refused delete changed the groups"

    # An override on oneself: refused in place, nothing set.
    assert open_page(page, server.url(f"{org}/overrides")) == 200
    assert f"user:{owner_id}" in options(page, "override-subject")
    choose(page, "override-permission", "org.update")
    choose(page, "override-subject", f"user:{owner_id}")
    fill(page, "override-resource", f"org:{org_id}")
    fill(page, "override-reason", "Locking myself out")
    press(page, "Set the override", 403)
    errors = page_errors(page)
    assert len(errors) == 1 and "yourself" in errors[0], errors
    assert path_of(page) == f"{org}/overrides" and h1(page) == "Overrides"
    assert single(page, "#override-reason").get_attribute("value") == "Locking myself out"
    assert api_group_state(server, token, org_id) == before, "a refused override changed something"
    # The choices come back as sent: a refused allow must not come back as a deny.
    assert single(page, "#override-permission option:checked").get_attribute("value") == "org.update"
    assert single(page, "#override-subject option:checked").get_attribute("value") == f"user:{owner_id}"
    single(page, "input[name=effect][value=allow]").click()
    fill(page, "override-resource", "org:not-an-org")
    press(page, "Set the override", 400)
    assert single(page, "input[name=effect]:checked").get_attribute("value") == "allow", "a refused allow came back as a deny"
    assert api_group_state(server, token, org_id) == before, "a refused override changed something"

    # Not vacuous: the same name inside another parent is no clash.
    make_group(page, server, org, "ops", parent_id=ops)
    assert set(api_groups(server, token, org_id)) == {"Ops", "On-call", "ops"}
    assert not problems, "\n".join(problems)


def test_a_viewer_sees_the_groups_read_only_and_no_overrides_tab(server, page):
    owner, viewer = verified_account(server, "groupboss"), verified_account(server, "groupviewer")
    as_person(page, server, owner)
    org = create_org(page, server, f"Read only {uuid.uuid4().hex[:6]}")
    org_id = org.rsplit("/", 1)[1]
    add_member(page, viewer, "viewer")
    viewer_id = server.me(viewer, PASSWORD)["id"]
    token = api_token(server, owner)
    support = api(server, token, "POST", f"/v1/orgs/{org_id}/groups", {"name": "Support", "description": "First line"}).json()["id"]
    tier2 = api(server, token, "POST", f"/v1/orgs/{org_id}/groups", {"name": "Tier 2", "parent_id": support}).json()["id"]
    r = api(server, token, "PUT", f"/v1/orgs/{org_id}/groups/{support}/members", {"user_id": viewer_id})
    assert r.status_code == 201, r.text
    r = api(server, token, "PUT", f"/v1/orgs/{org_id}/bindings",
            {"subject": {"group_id": support}, "resource": f"org:{org_id}/project:helpdesk", "role": "editor"})
    assert r.status_code in (200, 201), r.text
    before = api_group_state(server, token, org_id)

    as_person(page, server, viewer, return_to=org)
    tabs = [a.text.strip() for a in single(page, "nav.tabs").find_elements(By.TAG_NAME, "a")]
    assert "Groups" in tabs and "Overrides" not in tabs and "Access" not in tabs, tabs
    follow_link(page, "Groups", f"{org}/groups")
    assert [(r["Group"], r["Inside"], r["Description"]) for r in table_rows(page)] == [
        ("Support", "", "First line"), ("— Tier 2", "Support", "")], table_rows(page)
    assert not page.find_elements(By.CSS_SELECTOR, "main form"), "a viewer is offered a form on the Groups page"
    assert not page.find_elements(By.ID, "group-name")
    assert "Only admins and owners may change the groups." in main_text(page)
    problems = inspect(page, "org-groups-viewer")

    follow_link(page, "Support", f"{org}/groups/{support}")
    assert h1(page) == "Support"
    assert [(r["Member"], r["Kind"]) for r in table_rows(page)] == [(viewer, "user"), ("Tier 2", "group")], table_rows(page)
    assert not page.find_elements(By.CSS_SELECTOR, "main form"), "a viewer is offered a form on a group's page"
    assert not page.find_elements(By.XPATH, "//main//button"), "a viewer is offered a button on a group's page"
    assert "Roles bound to this group" not in main_text(page)
    problems += inspect(page, "org-group-viewer")

    assert open_page(page, server.url(f"{org}/overrides")) == 403
    assert h1(page) == "Not allowed" and not page.find_elements(By.ID, "override-reason"), main_text(page)

    # The forms posted anyway, with the viewer's own valid token: refused as pages, nothing changed.
    assert open_page(page, server.url(f"{org}/groups")) == 200
    client, csrf = browser_client(page), page_csrf(page)
    posts = [
        (f"{org}/groups", {"name": "Sneaky"}),
        (f"{org}/groups/{support}/save", {"name": "Renamed", "parent_id": ""}),
        (f"{org}/groups/{support}/member", {"member": f"user:{viewer_id}", "expires_at": ""}),
        (f"{org}/groups/{support}/remove-member", {"member_id": viewer_id}),
        (f"{org}/groups/{support}/bind", {"resource": f"org:{org_id}", "role": "admin"}),
        (f"{org}/groups/{tier2}/delete", {}),
        (f"{org}/overrides", {"effect": "allow", "permission": "org.update", "subject": f"group:{support}",
                              "resource": f"org:{org_id}", "reason": "Let me in"}),
    ]
    for path, fields in posts:
        r = post_form(client, server, path, dict(fields, csrf=csrf))
        assert r.status_code == 403, f"a viewer's post to {path}: {r.status_code}"
        assert r.headers.get("Content-Type", "").startswith("text/html") and "<main" in r.text, f"{path}: {r.headers.get('Content-Type')}"
    assert api_group_state(server, token, org_id) == before, "a viewer's post changed the groups"
    assert not problems, "\n".join(problems)


def test_group_and_override_posts_without_the_csrf_token_are_refused(server, page):
    owner, member = verified_account(server, "groupcsrf"), verified_account(server, "groupcsrfmember")
    as_person(page, server, owner)
    org = create_org(page, server, f"Forged groups {uuid.uuid4().hex[:6]}")
    org_id = org.rsplit("/", 1)[1]
    add_member(page, member, "viewer")
    member_id = server.me(member, PASSWORD)["id"]
    token = api_token(server, owner)
    group_page = make_group(page, server, org, "Finance")
    group = group_page.rsplit("/", 1)[1]
    r = api(server, token, "POST", f"/v1/orgs/{org_id}/overrides", {"subject": {"user_id": member_id}, "resource": f"org:{org_id}",
                                                                     "permission": "members.read", "effect": "deny", "reason": "kept"})
    assert r.status_code == 201, r.text
    override = r.json()["id"]
    before = api_group_state(server, token, org_id)

    client = browser_client(page)
    posts = [
        (f"{org}/groups", {"name": "Forged"}),
        (f"{group_page}/save", {"name": "Forged", "parent_id": ""}),
        (f"{group_page}/member", {"member": f"user:{member_id}"}),
        (f"{group_page}/bind", {"resource": f"org:{org_id}", "role": "admin"}),
        (f"{group_page}/delete", {"id": group}),
        (f"{org}/overrides", {"effect": "deny", "permission": "org.read", "subject": f"user:{member_id}",
                              "resource": f"org:{org_id}", "reason": "forged"}),
        (f"{org}/overrides/remove", {"override_id": override}),
    ]
    for path, fields in posts:
        r = post_form(client, server, path, fields)
        assert r.status_code == 403 and "This form has expired" in r.text, f"{path} without a csrf field: {r.status_code}"
    csrf = page_csrf(page)
    for path, fields in posts:
        r = post_form(client, server, path, dict(fields, csrf=csrf), origin="https://evil.example")
        assert r.status_code == 403, f"{path} from another origin: {r.status_code}"
    assert api_group_state(server, token, org_id) == before, "a forged post changed the groups or overrides"

    # The control: the same post with the page's token is taken.
    r = post_form(client, server, f"{group_page}/member", {"member": f"user:{member_id}", "csrf": csrf})
    assert r.status_code == 303 and r.headers["Location"] == group_page, (r.status_code, r.headers.get("Location"))
    assert [m["id"] for m in api_group_members(server, token, org_id, group)] == [member_id]


def test_group_and_override_pages_work_without_javascript(server, page):
    owner, member = verified_account(server, "groupnojs"), verified_account(server, "groupnojsmember")
    as_person(page, server, owner)
    org = create_org(page, server, f"No script {uuid.uuid4().hex[:6]}")
    org_id = org.rsplit("/", 1)[1]
    add_member(page, member, "editor")
    member_id = server.me(member, PASSWORD)["id"]
    token = api_token(server, owner)
    # The page's own script off (the driver's still runs): "Remove" and "Delete" post at once, unasked.
    page.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        parent_page = make_group(page, server, org, "Platform")
        parent = parent_page.rsplit("/", 1)[1]
        child_page = make_group(page, server, org, "SRE", parent_id=parent)
        child = child_page.rsplit("/", 1)[1]

        # Members added and removed.
        choose(page, "member-pick", f"user:{member_id}")
        press(page, "Add")
        assert notice(page) == "The member is added." and [r["Member"] for r in table_rows(page)] == [member]
        submit(page, row_form(page, "Member", member))
        assert notice(page) == "The member is removed from the group." and not table_rows(page)

        # A role bound and unbound.
        fill(page, "bind-resource", f"org:{org_id}/project:pager")
        choose(page, "bind-role", "admin")
        press(page, "Bind")
        assert {"Resource": f"org:{org_id}/project:pager", "Role": "admin", "Expires": "never"} in table_rows(page)
        submit(page, row_form(page, "Resource", f"org:{org_id}/project:pager"))
        assert notice(page) == "The binding is removed." and not table_rows(page), main_text(page)
        assert "No role is bound to this group yet." in main_text(page)

        # Renamed and moved to the top from Settings.
        fill(page, "group-name", "Reliability")
        choose(page, "group-parent", "")
        press(page, "Save")
        assert path_of(page) == child_page and notice(page) == "The group is saved." and h1(page) == "Reliability"
        assert api_groups(server, token, org_id)["Reliability"]["parent_id"] is None

        # Deleted, both.
        press(page, "Delete the group")
        assert path_of(page) == f"{org}/groups" and notice(page) == "The group is deleted.", (page.current_url, notice(page))
        assert open_page(page, server.url(parent_page)) == 200
        press(page, "Delete the group")
        assert single(page, "p.empty").text.strip() == "No groups yet." and api_groups(server, token, org_id) == {}
        assert open_page(page, server.url(child_page)) == 404 and h1(page) == "No such group", h1(page)

        # An override set and removed.
        assert open_page(page, server.url(f"{org}/overrides")) == 200
        choose(page, "override-permission", "members.read")
        choose(page, "override-subject", f"user:{member_id}")
        fill(page, "override-resource", f"org:{org_id}")
        fill(page, "override-reason", "No script needed")
        press(page, "Set the override")
        assert [r["Reason"] for r in table_rows(page)] == ["No script needed"]
        submit(page, row_form(page, "Reason", "No script needed"))
        assert notice(page) == "The override is removed." and api_overrides(server, token, org_id) == []
        assert not page.find_elements(By.CSS_SELECTOR, "main table")
        assert open_page(page, server.url(f"{org}/groups/{child}")) == 404 and open_page(page, server.url(f"{org}/groups/{parent}")) == 404
    finally:
        page.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
