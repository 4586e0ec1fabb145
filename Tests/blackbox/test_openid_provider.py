"""Portcullis as an OpenID Provider ("Log in with Portcullis"), driven by a relying party nobody
here wrote: Authlib's OAuth 2.0 / OpenID client runs the authorization code flow with PKCE through
the real login and consent pages in headless Chromium, verifies the ID token against the JWKS
and calls userinfo. The tests named `test_oidcc_*` follow modules of the OpenID Foundation's Basic
OP and Config OP certification plans, each asserting what its module checks.

The redirect URI points at a port nothing listens on: the browser's address bar after the redirect
is the authorization response, as the relying party would receive it."""

import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oauth2.rfc7636 import create_s256_code_challenge

import secrets_seen
from portcullis_server import ServerStartError, running_server
from test_pages_browser import (  # noqa: F401  (browser and page are fixtures used by name)
    PASSWORD, TIMEOUT, Server, binary, browser, fresh_email, open_page, page, smtp_sink, type_into)
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT_EMAIL, ROOT_PASSWORD = "root-oidc@example.com", "root oidc password 123"
CALLBACK = "http://127.0.0.1:9/cb"  # the discard port: nothing answers, the URL is what counts


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oidc")
    secrets_seen.note(ROOT_PASSWORD)
    with smtp_sink(tmp) as sink:
        workdir = tmp / "server"
        workdir.mkdir()
        try:
            with running_server(binary(), workdir, SMTP_URL=sink.url, SIGNUP="open", IP_BURST="1000",
                                ROOT_EMAIL=ROOT_EMAIL, ROOT_PASSWORD=ROOT_PASSWORD) as base:
                yield Server(base, sink, workdir / "server.log")
        except ServerStartError as error:
            pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="module")
def discovery(server):
    r = requests.get(server.url("/.well-known/openid-configuration"), timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


def root_token(server) -> str:
    r = server.login(ROOT_EMAIL, ROOT_PASSWORD)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def register(server, **fields) -> dict:
    body = {"name": "Wiki", "redirect_uris": [CALLBACK], "scopes": ["openid", "profile", "email", "orgs"]} | fields
    r = requests.post(server.url("/v1/clients"), json=body, headers={"Authorization": f"Bearer {root_token(server)}"}, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    client = r.json()
    if client.get("client_secret"):
        secrets_seen.note(client["client_secret"])
    return client


def person(server, name: str = "Ada Lovelace") -> str:
    address = fresh_email("rp")
    r = requests.post(server.url("/v1/users"), json={"email": address, "password": PASSWORD, "name": name}, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    return address


def rp(client: dict, discovery: dict, scope: str = "openid profile email") -> OAuth2Session:
    return OAuth2Session(
        client["client_id"], client.get("client_secret"), scope=scope, redirect_uri=CALLBACK,
        token_endpoint_auth_method="client_secret_basic" if client.get("client_secret") else "none",
        code_challenge_method="S256")


def authorization_url(session: OAuth2Session, discovery: dict, verifier: str, **extra):
    nonce = uuid.uuid4().hex
    url, state = session.create_authorization_url(discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **extra)
    return url, state, nonce


def redirected_to(driver) -> str:
    WebDriverWait(driver, TIMEOUT).until(lambda d: d.current_url.startswith(CALLBACK), f"not redirected: {driver.current_url}")
    return driver.current_url


def sign_in_there(driver, address: str, required: bool = True):
    """The login page the authorization request led to (when `required` is false, signed in
    already is fine too)."""
    def arrived(d):
        return urlsplit(d.current_url).path == "/login" or (not required and (
            d.current_url.startswith(CALLBACK) or d.find_elements(By.CSS_SELECTOR, "button[value=allow]")))
    WebDriverWait(driver, TIMEOUT).until(arrived, f"not the login page: {driver.current_url}")
    if urlsplit(driver.current_url).path != "/login":
        return
    type_into(driver, "email", address)
    type_into(driver, "password", PASSWORD)
    driver.find_element(By.XPATH, "//button[normalize-space(text())='Sign in']").click()


def consent(driver, allow: bool = True):
    WebDriverWait(driver, TIMEOUT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "button[value=allow]"), f"no consent page: {driver.current_url}")
    driver.find_element(By.CSS_SELECTOR, "button[value=allow]" if allow else "button[value=deny]").click()


def signed_out(driver, discovery):
    """No browser session at the provider (cookies go by host: clear them from one of its pages)."""
    driver.get(discovery["issuer"] + "/login")
    driver.delete_all_cookies()


def login_flow(driver, session, discovery, address, consent_first=True, fresh=True, **extra):
    verifier = uuid.uuid4().hex + uuid.uuid4().hex
    url, state, nonce = authorization_url(session, discovery, verifier, **extra)
    if fresh:
        signed_out(driver, discovery)
    driver.get(url)
    sign_in_there(driver, address, required=fresh or "prompt" in extra or "max_age" in extra)
    if consent_first:
        consent(driver)
    response = redirected_to(driver)
    token = session.fetch_token(discovery["token_endpoint"], authorization_response=response, code_verifier=verifier)
    return token, state, nonce, response


def verified_claims(server, discovery, client, token, nonce):
    keys = JsonWebKey.import_key_set(requests.get(discovery["jwks_uri"], timeout=TIMEOUT).json())
    claims = jwt.decode(token["id_token"], keys, claims_options={
        "iss": {"essential": True, "value": discovery["issuer"]},
        "aud": {"essential": True, "value": client["client_id"]},
        "nonce": {"essential": True, "value": nonce},
    })
    claims.validate()
    return claims


# --- the whole flow with a real relying party ------------------------------------------------------

def test_oidcc_server(server, discovery, page):
    """oidcc-server: code flow, ID token verified, userinfo agrees."""
    client = register(server)
    address = person(server)
    session = rp(client, discovery)
    token, state, nonce, response = login_flow(page, session, discovery, address)
    query = parse_qs(urlsplit(response).query)
    assert query["state"] == [state] and query["iss"] == [discovery["issuer"]]
    claims = verified_claims(server, discovery, client, token, nonce)
    assert claims["email"] == address and claims["name"] == "Ada Lovelace" and claims["email_verified"] is False
    assert abs(claims["auth_time"] - time.time()) < 60
    info = session.get(discovery["userinfo_endpoint"])
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == claims["sub"] and info.json()["email"] == address
    # The access token also works on the decision API, for a resource server that asks.
    r = requests.post(server.url("/v1/authorize"), json={"object": "org:00000000-0000-0000-0000-000000000000", "action": "org.read"},
                      headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["allowed"] is False, r.text
    # But it does not act on the account: an app the person signed in to is not the person.
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    for method, path, body in [("GET", "/v1/me", None), ("POST", "/v1/orgs", {"name": "By the app"}), ("GET", "/v1/permissions", None),
                               ("POST", "/v1/lookup", {"action": "viewer"}), ("POST", "/access/v1/search/resource", {}),
                               ("POST", "/v1/keys", {"name": "app key"}), ("POST", "/v1/me/password", {"current_password": PASSWORD, "new_password": "x" * 12}),
                               ("GET", "/v1/me/sessions", None), ("POST", "/v1/authorize/explain", {"object": "org:00000000-0000-0000-0000-000000000000", "action": "org.read"})]:
        r = requests.request(method, server.url(path), json=body, headers=bearer, timeout=TIMEOUT)
        assert r.status_code == 403, (method, path, r.status_code, r.text)


def test_oidcc_id_token_signature(server, discovery, page):
    """oidcc-id-token-signature: the header names a key of the JWKS and an advertised algorithm."""
    client = register(server)
    token, _, nonce, _ = login_flow(page, rp(client, discovery), discovery, person(server))
    header = jwt.decode(token["id_token"], JsonWebKey.import_key_set(requests.get(discovery["jwks_uri"], timeout=TIMEOUT).json())).header
    assert header["alg"] in discovery["id_token_signing_alg_values_supported"]
    kids = {k["kid"] for k in requests.get(discovery["jwks_uri"], timeout=TIMEOUT).json()["keys"]}
    assert header["kid"] in kids


def test_oidcc_scope_profile_email_and_orgs(server, discovery, page):
    """oidcc-scope-profile / oidcc-scope-email, and the orgs scope: claims follow the scopes granted."""
    client = register(server)
    address = person(server, name="Grace")
    r = server.login(address, PASSWORD)
    api = {"Authorization": f"Bearer {r.json()['access_token']}"}
    org = requests.post(server.url("/v1/orgs"), json={"name": "Navy"}, headers=api, timeout=TIMEOUT).json()
    token, _, nonce, _ = login_flow(page, rp(client, discovery, scope="openid orgs"), discovery, address)
    claims = verified_claims(server, discovery, client, token, nonce)
    assert "email" not in claims and "name" not in claims
    assert claims["orgs"] == [{"id": org["id"], "name": "Navy", "role": "owner"}]


@pytest.mark.parametrize("how", ["get", "post-header", "post-body"])
def test_oidcc_userinfo(server, discovery, page, how):
    """oidcc-userinfo-get, oidcc-userinfo-post-header, oidcc-userinfo-post-body."""
    client = register(server)
    address = person(server)
    token, _, _, _ = login_flow(page, rp(client, discovery), discovery, address)
    access = token["access_token"]
    endpoint = discovery["userinfo_endpoint"]
    if how == "get":
        r = requests.get(endpoint, headers={"Authorization": f"Bearer {access}"}, timeout=TIMEOUT)
    elif how == "post-header":
        r = requests.post(endpoint, headers={"Authorization": f"Bearer {access}"}, timeout=TIMEOUT)
    else:
        r = requests.post(endpoint, data={"access_token": access}, timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["email"] == address, r.text
    bad = requests.get(endpoint, headers={"Authorization": "Bearer nope"}, timeout=TIMEOUT)
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["WWW-Authenticate"]


def test_single_sign_on_needs_no_password_and_consent_is_remembered(server, discovery, page):
    """A second login within the browser session (and prompt=none) goes straight back with a code."""
    client = register(server)
    address = person(server)
    session = rp(client, discovery)
    login_flow(page, session, discovery, address)
    verifier = uuid.uuid4().hex * 2
    url, _, _ = authorization_url(session, discovery, verifier, prompt="none")
    page.get(url)
    response = redirected_to(page)
    assert "code" in parse_qs(urlsplit(response).query), response
    # Another app of the same person: no password, only its own consent.
    other = register(server, name="Tracker")
    url, _, _ = authorization_url(rp(other, discovery), discovery, verifier)
    page.get(url)
    consent(page)
    assert "code" in parse_qs(urlsplit(redirected_to(page)).query)


def test_first_party_clients_skip_consent(server, discovery, page):
    client = register(server, first_party=True)
    login_flow(page, rp(client, discovery), discovery, person(server), consent_first=False)


def test_denying_consent_tells_the_client(server, discovery, page):
    client = register(server)
    url, state, _ = authorization_url(rp(client, discovery), discovery, uuid.uuid4().hex * 2)
    signed_out(page, discovery)
    page.get(url)
    sign_in_there(page, person(server))
    consent(page, allow=False)
    query = parse_qs(urlsplit(redirected_to(page)).query)
    assert query["error"] == ["access_denied"] and query["state"] == [state]


# --- modules of the certification plans ------------------------------------------------------------

def test_oidcc_prompt_none_not_logged_in(server, discovery, page):
    client = register(server)
    signed_out(page, discovery)
    url, state, _ = authorization_url(rp(client, discovery), discovery, uuid.uuid4().hex * 2, prompt="none")
    page.get(url)
    query = parse_qs(urlsplit(redirected_to(page)).query)
    assert query["error"] == ["login_required"] and query["state"] == [state]


def test_oidcc_prompt_login(server, discovery, page):
    """oidcc-prompt-login: signed in already, the login page comes again; auth_time moves."""
    client = register(server, first_party=True)
    address = person(server)
    session = rp(client, discovery)
    first, _, nonce, _ = login_flow(page, session, discovery, address, consent_first=False)
    before = verified_claims(server, discovery, client, first, nonce)["auth_time"]
    time.sleep(1.1)
    second, _, nonce, _ = login_flow(page, session, discovery, address, consent_first=False, fresh=False, prompt="login")
    assert verified_claims(server, discovery, client, second, nonce)["auth_time"] > before


def test_oidcc_max_age_1(server, discovery, page):
    """oidcc-max-age-1: a sign-in older than max_age means signing in again."""
    client = register(server, first_party=True)
    address = person(server)
    session = rp(client, discovery)
    login_flow(page, session, discovery, address, consent_first=False)
    time.sleep(2.1)
    token, _, nonce, _ = login_flow(page, session, discovery, address, consent_first=False, fresh=False, max_age="1")
    assert time.time() - verified_claims(server, discovery, client, token, nonce)["auth_time"] < 2


def test_oidcc_response_type_missing(server, discovery, page):
    client = register(server)
    page.get(discovery["authorization_endpoint"] + f"?client_id={client['client_id']}&redirect_uri={CALLBACK}&scope=openid&state=s1")
    query = parse_qs(urlsplit(redirected_to(page)).query)
    assert query["error"] == ["invalid_request"] and query["state"] == ["s1"]


def test_oidcc_ensure_redirect_uri_in_authorization_request(server, discovery, page):
    """No redirect URI, or one not registered (prefix, case, extra path, fragment): a page, no redirect."""
    client = register(server)
    base = discovery["authorization_endpoint"] + f"?client_id={client['client_id']}&response_type=code&scope=openid"
    for bad in ["", "&redirect_uri=http://127.0.0.1:9/cb/extra", "&redirect_uri=HTTP://127.0.0.1:9/cb", "&redirect_uri=http://127.0.0.1:9/c",
                "&redirect_uri=http://127.0.0.1:9/cb%23frag", "&redirect_uri=https://evil.example/cb"]:
        assert open_page(page, base + bad) == 400, bad
        assert "cannot go on" in page.find_element(By.TAG_NAME, "h1").text
    assert open_page(page, discovery["authorization_endpoint"] + "?client_id=" + str(uuid.uuid4())) == 400


def test_oidcc_codereuse(server, discovery, page):
    """oidcc-codereuse: the second use is refused and what the first issued is revoked."""
    client = register(server, first_party=True)
    session = rp(client, discovery)
    verifier = uuid.uuid4().hex * 2
    url, _, _ = authorization_url(session, discovery, verifier)
    signed_out(page, discovery)
    page.get(url)
    sign_in_there(page, person(server))
    response = redirected_to(page)
    code = parse_qs(urlsplit(response).query)["code"][0]
    token = session.fetch_token(discovery["token_endpoint"], authorization_response=response, code_verifier=verifier)
    assert session.get(discovery["userinfo_endpoint"]).status_code == 200
    again = requests.post(discovery["token_endpoint"], data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier,
    }, auth=(client["client_id"], client["client_secret"]), timeout=TIMEOUT)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    r = requests.get(discovery["userinfo_endpoint"], headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=TIMEOUT)
    assert r.status_code == 401, "the first use's tokens still work after the code came again"


def code_for(page, server, discovery, client, verifier, address):
    url, _, _ = authorization_url(rp(client, discovery), discovery, verifier)
    page.get(url)
    if urlsplit(page.current_url).path == "/login":
        sign_in_there(page, address)
    return parse_qs(urlsplit(redirected_to(page)).query)["code"][0]


def test_pkce_downgrade_wrong_verifier_and_client_mixup_are_refused(server, discovery, page):
    client = register(server, first_party=True)
    other = register(server, name="Other", first_party=True)
    address = person(server)
    signed_out(page, discovery)
    token_url = discovery["token_endpoint"]
    verifier = uuid.uuid4().hex * 2
    auth = (client["client_id"], client["client_secret"])
    for data, credentials in [
        ({"code_verifier": "x" * 43}, auth),  # the wrong verifier
        ({}, auth),  # no verifier at all (a downgrade)
        ({"code_verifier": verifier}, (other["client_id"], other["client_secret"])),  # another client's code
        ({"code_verifier": verifier, "redirect_uri": "http://127.0.0.1:9/other"}, auth),  # another redirect URI
    ]:
        code = code_for(page, server, discovery, client, verifier, address)
        body = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK} | data
        r = requests.post(token_url, data=body, auth=credentials, timeout=TIMEOUT)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", (data, r.text)
    code = code_for(page, server, discovery, client, verifier, address)
    r = requests.post(token_url, data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier},
                      auth=(client["client_id"], "pcs_wrong"), timeout=TIMEOUT)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_public_clients_must_use_pkce_and_may_not_present_a_secret(server, discovery, page):
    client = register(server, type="public", first_party=True)
    assert "client_secret" not in client
    base = discovery["authorization_endpoint"] + f"?client_id={client['client_id']}&response_type=code&scope=openid&redirect_uri={CALLBACK}"
    page.get(base + "&state=nopkce")
    assert parse_qs(urlsplit(redirected_to(page)).query)["error"] == ["invalid_request"]
    verifier = uuid.uuid4().hex * 2
    signed_out(page, discovery)
    page.get(base + f"&code_challenge={create_s256_code_challenge(verifier)}&code_challenge_method=S256")
    sign_in_there(page, person(server))
    code = parse_qs(urlsplit(redirected_to(page)).query)["code"][0]
    r = requests.post(discovery["token_endpoint"], data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier,
        "client_id": client["client_id"], "client_secret": "made-up",
    }, timeout=TIMEOUT)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_discovery_lists_only_what_is_served(server, discovery):
    assert discovery["response_types_supported"] == ["code"]
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "revocation_endpoint",
                "introspection_endpoint", "end_session_endpoint"):
        assert discovery[key].startswith(server.base), key
    for absent in ("registration_endpoint", "check_session_iframe"):
        assert absent not in discovery, absent


# --- revocation (RFC 7009), introspection (RFC 7662), RP-initiated logout ---------------------------

def test_revocation_ends_the_clients_token_only(server, discovery, page):
    client, other = register(server, first_party=True), register(server, name="Other", first_party=True)
    address = person(server)
    session = rp(client, discovery)
    token, _, _, _ = login_flow(page, session, discovery, address, consent_first=False)
    other_token, _, _, _ = login_flow(page, rp(other, discovery), discovery, address, consent_first=False, fresh=False)
    bearer = lambda t: {"Authorization": f"Bearer {t['access_token']}"}  # noqa: E731
    # Another client cannot revoke this client's token (200 all the same: it learns nothing).
    r = requests.post(discovery["revocation_endpoint"], data={"token": token["access_token"]},
                      auth=(other["client_id"], other["client_secret"]), timeout=TIMEOUT)
    assert r.status_code == 200
    assert requests.get(discovery["userinfo_endpoint"], headers=bearer(token), timeout=TIMEOUT).status_code == 200
    r = requests.post(discovery["revocation_endpoint"], data={"token": token["access_token"], "token_type_hint": "access_token"},
                      auth=(client["client_id"], client["client_secret"]), timeout=TIMEOUT)
    assert r.status_code == 200
    assert requests.get(discovery["userinfo_endpoint"], headers=bearer(token), timeout=TIMEOUT).status_code == 401
    assert requests.get(discovery["userinfo_endpoint"], headers=bearer(other_token), timeout=TIMEOUT).status_code == 200
    r = requests.post(discovery["revocation_endpoint"], data={"token": "whatever"}, auth=(client["client_id"], "pcs_wrong"), timeout=TIMEOUT)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_introspection_for_resource_servers(server, discovery, page):
    client = register(server, first_party=True)
    resource_server = register(server, name="API gateway")
    public = register(server, name="SPA", type="public")
    token, _, _, _ = login_flow(page, rp(client, discovery), discovery, person(server), consent_first=False)
    ask = lambda t, who: requests.post(discovery["introspection_endpoint"], data={"token": t}, auth=who, timeout=TIMEOUT)  # noqa: E731
    live = ask(token["access_token"], (resource_server["client_id"], resource_server["client_secret"]))
    assert live.status_code == 200, live.text
    body = live.json()
    assert body["active"] is True and body["client_id"] == client["client_id"] and body["scope"] == "openid profile email"
    assert body["iss"] == discovery["issuer"] and body["exp"] > time.time()
    assert ask("not-a-token", (resource_server["client_id"], resource_server["client_secret"])).json() == {"active": False}
    r = requests.post(discovery["introspection_endpoint"], data={"token": token["access_token"], "client_id": public["client_id"]}, timeout=TIMEOUT)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    requests.post(discovery["revocation_endpoint"], data={"token": token["access_token"]}, auth=(client["client_id"], client["client_secret"]), timeout=TIMEOUT)
    assert ask(token["access_token"], (resource_server["client_id"], resource_server["client_secret"])).json() == {"active": False}


def test_rp_initiated_logout_ends_the_browser_session_and_goes_back_only_where_registered(server, discovery, page):
    client = register(server, first_party=True)
    token, _, _, _ = login_flow(page, rp(client, discovery), discovery, person(server), consent_first=False)
    end = discovery["end_session_endpoint"]
    # An address the client did not register, or a hint for another client: a page, no redirect.
    assert open_page(page, end + f"?client_id={client['client_id']}&post_logout_redirect_uri=https://evil.example/") == 400
    other = register(server, name="Other", first_party=True)
    assert open_page(page, end + f"?client_id={other['client_id']}&id_token_hint={token['id_token']}&post_logout_redirect_uri={CALLBACK}") == 400
    # Asking changes nothing; the button signs out and goes back with the state.
    assert open_page(page, end + f"?id_token_hint={token['id_token']}&post_logout_redirect_uri={CALLBACK}&state=bye") == 200
    page.find_element(By.CSS_SELECTOR, "form[action='/oauth/logout'] button").click()
    assert parse_qs(urlsplit(redirected_to(page)).query)["state"] == ["bye"]
    url, _, _ = authorization_url(rp(client, discovery), discovery, uuid.uuid4().hex * 2, prompt="none")
    page.get(url)
    assert parse_qs(urlsplit(redirected_to(page)).query)["error"] == ["login_required"], "the browser session survived"
    assert requests.get(discovery["jwks_uri"], timeout=TIMEOUT).json()["keys"]


# --- review findings: consent cannot be planted, first-party is the root's, re-authentication holds -

def test_a_decision_planted_in_the_link_does_not_consent(server, discovery, page):
    client = register(server)
    url, state, _ = authorization_url(rp(client, discovery), discovery, uuid.uuid4().hex * 2)
    signed_out(page, discovery)
    page.get(url + "&decision=allow")
    sign_in_there(page, person(server))
    consent(page, allow=False)
    query = parse_qs(urlsplit(redirected_to(page)).query)
    assert query["error"] == ["access_denied"] and query["iss"] == [discovery["issuer"]], query


def test_only_the_root_marks_a_client_first_party(server):
    address = person(server)
    token = server.login(address, PASSWORD).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    org = requests.post(server.url("/v1/orgs"), json={"name": "Mallory Inc"}, headers=bearer, timeout=TIMEOUT).json()["id"]
    r = requests.post(server.url("/v1/clients"), json={"name": "Evil", "org_id": org, "first_party": True, "redirect_uris": ["https://evil.example/cb"]},
                      headers=bearer, timeout=TIMEOUT)
    assert r.status_code == 403, r.text


def test_prompt_login_cannot_be_skipped_through_the_login_pages_return_to(server, discovery, page):
    client = register(server, first_party=True)
    address = person(server)
    session = rp(client, discovery)
    login_flow(page, session, discovery, address, consent_first=False)
    url, _, _ = authorization_url(session, discovery, uuid.uuid4().hex * 2, prompt="login")
    page.get(url)
    WebDriverWait(page, TIMEOUT).until(lambda d: urlsplit(d.current_url).path == "/login")
    # Skip the password: open the way back directly, as someone at a shared browser could.
    back = parse_qs(urlsplit(page.current_url).query)["return_to"][0]
    page.get(server.url(back))
    assert urlsplit(page.current_url).path == "/login", f"prompt=login skipped: {page.current_url}"


def test_another_clients_attempt_does_not_spend_a_code(server, discovery, page):
    client = register(server, first_party=True)
    other = register(server, name="Other", first_party=True)
    verifier = uuid.uuid4().hex * 2
    session = rp(client, discovery)
    url, _, _ = authorization_url(session, discovery, verifier)
    signed_out(page, discovery)
    page.get(url)
    sign_in_there(page, person(server))
    response = redirected_to(page)
    code = parse_qs(urlsplit(response).query)["code"][0]
    r = requests.post(discovery["token_endpoint"], data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
                                                         "code_verifier": verifier}, auth=(other["client_id"], other["client_secret"]), timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert "id_token" in session.fetch_token(discovery["token_endpoint"], authorization_response=response, code_verifier=verifier)


def test_repeated_parameters_are_refused(server, discovery, page):
    client = register(server)
    base = discovery["authorization_endpoint"] + f"?client_id={client['client_id']}&response_type=code&redirect_uri={CALLBACK}"
    assert open_page(page, base + f"&redirect_uri={CALLBACK}&scope=openid") == 400
    page.get(base + "&scope=openid&scope=openid+email&state=twice")
    query = parse_qs(urlsplit(redirected_to(page)).query)
    assert query["error"] == ["invalid_request"] and query["state"] == ["twice"]


def test_deleting_a_client_ends_its_tokens(server, discovery, page):
    client = register(server, first_party=True)
    token, _, _, _ = login_flow(page, rp(client, discovery), discovery, person(server), consent_first=False)
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(discovery["userinfo_endpoint"], headers=bearer, timeout=TIMEOUT).status_code == 200
    r = requests.delete(server.url(f"/v1/clients/{client['client_id']}"), headers={"Authorization": f"Bearer {root_token(server)}"}, timeout=TIMEOUT)
    assert r.status_code == 204
    assert requests.get(discovery["userinfo_endpoint"], headers=bearer, timeout=TIMEOUT).status_code == 401


def test_consent_is_listed_and_revocable_from_the_account(server, discovery, page):
    client = register(server, name="Notes app")
    session = rp(client, discovery)
    token, _, _, _ = login_flow(page, session, discovery, person(server))
    assert open_page(page, server.url("/account/apps")) == 200
    row = page.find_element(By.CSS_SELECTOR, "main table tbody tr")
    assert "Notes app" in row.text and "e-mail" in row.text, row.text
    page.execute_script("window.confirm = () => true")
    row.find_element(By.CSS_SELECTOR, "button").click()
    WebDriverWait(page, TIMEOUT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "p.notice"))
    assert not page.find_elements(By.CSS_SELECTOR, "main table"), "the app is still listed"
    r = requests.get(discovery["userinfo_endpoint"], headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=TIMEOUT)
    assert r.status_code == 401, "the app's session survived revoking the consent"
    # Next time the app asks again.
    url, _, _ = authorization_url(session, discovery, uuid.uuid4().hex * 2)
    page.get(url)
    WebDriverWait(page, TIMEOUT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "button[value=allow]"))


# --- more modules of the Basic OP and Config OP plans ----------------------------------------------

def back_at_once(driver, session, discovery, verifier, **extra):
    """An authorization request answered without any page (no login, no consent): the redirect
    URI's query, with the state and nonce that were sent."""
    url, state, nonce = authorization_url(session, discovery, verifier, **extra)
    driver.get(url)
    response = redirected_to(driver)
    return response, parse_qs(urlsplit(response).query), state, nonce


def test_oidcc_prompt_none_logged_in(server, discovery, page):
    """oidcc-prompt-none-logged-in: signed in and consented, prompt=none comes back with a code at
    once; its ID token is valid and names the same person and sign-in."""
    client = register(server)
    session = rp(client, discovery)
    first, _, nonce, _ = login_flow(page, session, discovery, person(server))
    before = verified_claims(server, discovery, client, first, nonce)
    verifier = uuid.uuid4().hex * 2
    response, query, state, nonce = back_at_once(page, session, discovery, verifier, prompt="none")
    assert "error" not in query and query["state"] == [state] and query["iss"] == [discovery["issuer"]], query
    token = session.fetch_token(discovery["token_endpoint"], authorization_response=response, code_verifier=verifier)
    after = verified_claims(server, discovery, client, token, nonce)
    assert (after["sub"], after["auth_time"]) == (before["sub"], before["auth_time"])


def test_oidcc_max_age_10000(server, discovery, page):
    """oidcc-max-age-10000: a recent sign-in satisfies max_age=10000, no login page; auth_time is in
    the ID token and is the first sign-in's."""
    client = register(server, first_party=True)
    session = rp(client, discovery)
    first, _, nonce, _ = login_flow(page, session, discovery, person(server), consent_first=False)
    before = verified_claims(server, discovery, client, first, nonce)
    time.sleep(1.1)
    verifier = uuid.uuid4().hex * 2
    response, query, _, nonce = back_at_once(page, session, discovery, verifier, max_age="10000")
    assert "code" in query, query
    token = session.fetch_token(discovery["token_endpoint"], authorization_response=response, code_verifier=verifier)
    after = verified_claims(server, discovery, client, token, nonce)
    assert "auth_time" in after and after["auth_time"] == before["auth_time"], (before, after)
    assert after["sub"] == before["sub"]


def test_oidcc_id_token_hint(server, discovery, page):
    """oidcc-id-token-hint: prompt=none with the first login's ID token as id_token_hint comes back
    with a code for the same sub. A hint that is not an ID token of this server for this client is
    invalid_request; a hint naming someone other than who is signed in counts as no one signed in."""
    client = register(server, first_party=True)
    other = register(server, name="Other", first_party=True)
    someone, address = person(server, name="Someone"), person(server)
    session = rp(client, discovery)
    theirs, _, _, _ = login_flow(page, session, discovery, someone, consent_first=False)
    first, _, nonce, _ = login_flow(page, session, discovery, address, consent_first=False)  # signs someone out
    hinted = verified_claims(server, discovery, client, first, nonce)
    for_other, _, _, _ = login_flow(page, rp(other, discovery), discovery, address, consent_first=False, fresh=False)

    verifier = uuid.uuid4().hex * 2
    response, query, _, nonce = back_at_once(page, session, discovery, verifier, prompt="none", id_token_hint=first["id_token"])
    assert "code" in query, query
    token = session.fetch_token(discovery["token_endpoint"], authorization_response=response, code_verifier=verifier)
    claims = verified_claims(server, discovery, client, token, nonce)
    assert claims["sub"] == hinted["sub"] and claims["auth_time"] == hinted["auth_time"]

    head, body, signature = first["id_token"].split(".")
    tampered = ".".join([head, body, signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")])
    for hint in ["not-an-id-token", "a.b.c", tampered, for_other["id_token"]]:
        _, query, state, _ = back_at_once(page, session, discovery, verifier, prompt="none", id_token_hint=hint)
        assert query.get("error") == ["invalid_request"] and query["state"] == [state] and "code" not in query, (hint[:40], query)
    # Someone else's ID token while this person is signed in: nobody the client expects is signed in.
    _, query, state, _ = back_at_once(page, session, discovery, verifier, prompt="none", id_token_hint=theirs["id_token"])
    assert query.get("error") == ["login_required"] and query["state"] == [state] and "code" not in query, query
    url, _, _ = authorization_url(session, discovery, verifier, id_token_hint=theirs["id_token"])
    page.get(url)
    WebDriverWait(page, TIMEOUT).until(lambda d: urlsplit(d.current_url).path == "/login", f"not the login page: {page.current_url}")


def test_oidcc_login_hint(server, discovery, page):
    """oidcc-login-hint: login_hint fills in the login page's e-mail field (escaped, never markup)."""
    client = register(server, first_party=True)
    address = person(server)
    session = rp(client, discovery)
    signed_out(page, discovery)
    url, _, _ = authorization_url(session, discovery, uuid.uuid4().hex * 2, login_hint=address)
    page.get(url)
    WebDriverWait(page, TIMEOUT).until(lambda d: urlsplit(d.current_url).path == "/login", f"not the login page: {page.current_url}")
    assert page.find_element(By.CSS_SELECTOR, "input[name=email]").get_attribute("value") == address
    hostile = '"><img src=x id=injected>@example.com'
    url, _, _ = authorization_url(session, discovery, uuid.uuid4().hex * 2, login_hint=hostile)
    page.get(url)
    WebDriverWait(page, TIMEOUT).until(lambda d: urlsplit(d.current_url).path == "/login", f"not the login page: {page.current_url}")
    assert page.find_element(By.CSS_SELECTOR, "input[name=email]").get_attribute("value") == hostile
    assert not page.find_elements(By.ID, "injected")
    # And the hinted login goes through.
    token, _, nonce, _ = login_flow(page, session, discovery, address, consent_first=False, login_hint=address)
    assert verified_claims(server, discovery, client, token, nonce)["email"] == address


def test_oidcc_ensure_other_scope_order_succeeds(server, discovery, page):
    """oidcc-ensure-other-scope-order-succeeds: openid need not come first."""
    client = register(server, first_party=True)
    address = person(server)
    session = rp(client, discovery, scope="email openid")
    token, _, nonce, _ = login_flow(page, session, discovery, address, consent_first=False)
    assert set(token["scope"].split()) == {"openid", "email"}, token
    claims = verified_claims(server, discovery, client, token, nonce)
    assert claims["email"] == address and "name" not in claims
    assert session.get(discovery["userinfo_endpoint"]).json()["email"] == address


def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(server, discovery, page):
    """oidcc-ensure-request-without-nonce-succeeds-for-code-flow: nonce is optional with code; the
    ID token then carries none."""
    client = register(server, first_party=True)
    session = rp(client, discovery)
    verifier = uuid.uuid4().hex * 2
    url, state = session.create_authorization_url(discovery["authorization_endpoint"], code_verifier=verifier)
    assert "nonce=" not in url
    signed_out(page, discovery)
    page.get(url)
    sign_in_there(page, person(server))
    response = redirected_to(page)
    assert parse_qs(urlsplit(response).query)["state"] == [state]
    token = session.fetch_token(discovery["token_endpoint"], authorization_response=response, code_verifier=verifier)
    claims = jwt.decode(token["id_token"], JsonWebKey.import_key_set(requests.get(discovery["jwks_uri"], timeout=TIMEOUT).json()))
    claims.validate()
    assert claims["aud"] == client["client_id"] and "nonce" not in claims, claims


def test_oidcc_server_client_secret_post(server, discovery, page):
    """oidcc-server with client_secret_post (the Basic plan's second client-authentication variant)."""
    client = register(server, first_party=True)
    address = person(server)
    session = OAuth2Session(client["client_id"], client["client_secret"], scope="openid email", redirect_uri=CALLBACK,
                            token_endpoint_auth_method="client_secret_post", code_challenge_method="S256")
    token, _, nonce, _ = login_flow(page, session, discovery, address, consent_first=False)
    assert verified_claims(server, discovery, client, token, nonce)["email"] == address
    assert session.get(discovery["userinfo_endpoint"]).json()["email"] == address
    # The secret in the body is checked like the one in the header.
    verifier = uuid.uuid4().hex * 2
    code = code_for(page, server, discovery, client, verifier, address)
    r = requests.post(discovery["token_endpoint"], data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
                                                         "code_verifier": verifier, "client_id": client["client_id"],
                                                         "client_secret": "pcs_wrong"}, timeout=TIMEOUT)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text


def test_oidcc_ensure_request_with_valid_pkce_succeeds(server, discovery, page):
    """oidcc-ensure-request-with-valid-pkce-succeeds, for a public client written out by hand: the
    S256 challenge, then the verifier with only the client_id at the token endpoint. (That a
    public client must use PKCE is test_public_clients_must_use_pkce_and_may_not_present_a_secret.)"""
    client = register(server, type="public", first_party=True)
    address = person(server)
    verifier = (uuid.uuid4().hex + uuid.uuid4().hex)[:50]
    nonce, state = uuid.uuid4().hex, uuid.uuid4().hex
    query = requests.compat.urlencode({"client_id": client["client_id"], "response_type": "code", "scope": "openid email", "redirect_uri": CALLBACK,
                       "state": state, "nonce": nonce, "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"})
    signed_out(page, discovery)
    page.get(discovery["authorization_endpoint"] + "?" + query)
    sign_in_there(page, address)
    answer = parse_qs(urlsplit(redirected_to(page)).query)
    assert answer["state"] == [state], answer
    r = requests.post(discovery["token_endpoint"], data={"grant_type": "authorization_code", "code": answer["code"][0], "redirect_uri": CALLBACK,
                                                         "code_verifier": verifier, "client_id": client["client_id"]}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["token_type"].lower() == "bearer" and "client_secret" not in token
    assert verified_claims(server, discovery, client, token, nonce)["email"] == address
    r = requests.get(discovery["userinfo_endpoint"], headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=TIMEOUT)
    assert r.status_code == 200 and r.json()["email"] == address, r.text
    # The plain method is no PKCE for this server: refused at the redirect URI.
    plain = requests.compat.urlencode({"client_id": client["client_id"], "response_type": "code", "scope": "openid", "redirect_uri": CALLBACK,
                       "state": "plain", "code_challenge": verifier, "code_challenge_method": "plain"})
    page.get(discovery["authorization_endpoint"] + "?" + plain)
    answer = parse_qs(urlsplit(redirected_to(page)).query)
    assert answer.get("error") == ["invalid_request"] and answer["state"] == ["plain"] and "code" not in answer, answer


@pytest.mark.parametrize("scope", ["openid address", "openid phone", "openid profile email address phone"],
                         ids=["oidcc-scope-address", "oidcc-scope-phone", "oidcc-scope-all"])
def test_oidcc_scopes_this_op_does_not_serve(server, discovery, page, scope):
    """oidcc-scope-address / -phone / -all: the suite skips them when scopes_supported lacks the
    scope, as here. Asked all the same, the scope is not one the client may ask for: invalid_scope
    at the redirect URI (Sources/OpenID/Authorization.swift), never a code."""
    for absent in ("address", "phone"):
        assert absent not in discovery["scopes_supported"]
    client = register(server, first_party=True)
    signed_out(page, discovery)
    url, state, _ = authorization_url(rp(client, discovery, scope=scope), discovery, uuid.uuid4().hex * 2)
    page.get(url)
    query = parse_qs(urlsplit(redirected_to(page)).query)
    assert query.get("error") == ["invalid_scope"] and query["state"] == [state] and "code" not in query, query
    assert query["iss"] == [discovery["issuer"]]
    # Nor can a client be registered with it.
    r = requests.post(server.url("/v1/clients"), json={"name": "Addr", "redirect_uris": [CALLBACK], "scopes": ["openid", scope.split()[-1]]},
                      headers={"Authorization": f"Bearer {root_token(server)}"}, timeout=TIMEOUT)
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("extra", [
    {"display": "page"}, {"display": "popup"}, {"ui_locales": "se fr-CA en"}, {"claims_locales": "se fr-CA en"},
    {"acr_values": "1 2"}, {"claims": '{"userinfo": {"name": {"essential": true}}}'}, {"extra_parameter": "unknown"},
], ids=["oidcc-display-page", "oidcc-display-popup", "oidcc-ui-locales", "oidcc-claims-locales",
        "oidcc-ensure-request-with-acr-values-succeeds", "oidcc-claims-essential", "oidcc-ensure-request-with-unknown-parameter-succeeds"])
def test_oidcc_parameters_the_op_may_ignore(server, discovery, page, extra):
    """Parameters this OP does not act on must not make the request fail (OpenID Connect Core
    §3.1.2.1, §5.5, §15.1): the login completes, the ID token is valid, userinfo answers."""
    client = register(server, first_party=True)
    address = person(server)
    session = rp(client, discovery)
    token, state, nonce, response = login_flow(page, session, discovery, address, consent_first=False, **extra)
    assert parse_qs(urlsplit(response).query)["state"] == [state]
    claims = verified_claims(server, discovery, client, token, nonce)
    assert claims["email"] == address
    info = session.get(discovery["userinfo_endpoint"])
    assert info.status_code == 200 and info.json()["sub"] == claims["sub"] and info.json()["name"] == "Ada Lovelace", info.text


@pytest.mark.parametrize("parameter, value, error", [
    ("request", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.", "request_not_supported"),
    ("request_uri", "https://rp.example/request.jwt", "request_uri_not_supported"),
], ids=["oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported",
        "oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported"])
def test_oidcc_request_objects_rejected_as_unsupported(server, discovery, page, parameter, value, error):
    """Request objects are not supported (request_parameter_supported and request_uri_parameter_supported
    are false): the suite accepts the matching error at the redirect URI."""
    assert discovery[f"{parameter}_parameter_supported"] is False
    client = register(server, first_party=True)
    address = person(server)
    login_flow(page, rp(client, discovery), discovery, address, consent_first=False)  # signed in: only the parameter refuses
    _, query, state, _ = back_at_once(page, rp(client, discovery), discovery, uuid.uuid4().hex * 2, **{parameter: value})
    assert query.get("error") == [error] and query["state"] == [state] and "code" not in query, query


def test_oidcc_ensure_post_request_succeeds(server, discovery, page):
    """oidcc-ensure-post-request-succeeds: the authorization request sent as a form POST from the
    relying party's page (OpenID Connect Core §3.1.2.1: the endpoint MUST support GET and POST)."""
    client = register(server, first_party=True)
    address = person(server)
    verifier = uuid.uuid4().hex * 2
    nonce, state = uuid.uuid4().hex, uuid.uuid4().hex
    fields = {"client_id": client["client_id"], "response_type": "code", "scope": "openid email", "redirect_uri": CALLBACK,
              "state": state, "nonce": nonce, "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"}
    signed_out(page, discovery)
    page.get("about:blank")  # another origin, as the relying party's page is
    page.execute_script("""
        const form = document.createElement('form');
        form.method = 'POST'; form.action = arguments[0];
        for (const [name, value] of Object.entries(arguments[1])) {
            const input = document.createElement('input'); input.type = 'hidden'; input.name = name; input.value = value; form.appendChild(input);
        }
        document.body.appendChild(form); form.submit();""", discovery["authorization_endpoint"], fields)
    sign_in_there(page, address)
    answer = parse_qs(urlsplit(redirected_to(page)).query)
    assert answer.get("state") == [state] and "code" in answer, answer
    r = requests.post(discovery["token_endpoint"], data={"grant_type": "authorization_code", "code": answer["code"][0], "redirect_uri": CALLBACK,
                                                         "code_verifier": verifier}, auth=(client["client_id"], client["client_secret"]), timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert verified_claims(server, discovery, client, r.json(), nonce)["email"] == address


def test_oidcc_codereuse_30seconds(server, discovery, page):
    """oidcc-codereuse-30seconds: the code presented again 30 seconds later (still within its
    lifetime) is refused, and the tokens the first use issued are revoked."""
    client = register(server, first_party=True)
    session = rp(client, discovery)
    verifier = uuid.uuid4().hex * 2
    url, _, _ = authorization_url(session, discovery, verifier)
    signed_out(page, discovery)
    page.get(url)
    sign_in_there(page, person(server))
    response = redirected_to(page)
    code = parse_qs(urlsplit(response).query)["code"][0]
    token = session.fetch_token(discovery["token_endpoint"], authorization_response=response, code_verifier=verifier)
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(discovery["userinfo_endpoint"], headers=bearer, timeout=TIMEOUT).status_code == 200
    time.sleep(30)
    assert requests.get(discovery["userinfo_endpoint"], headers=bearer, timeout=TIMEOUT).status_code == 200
    again = requests.post(discovery["token_endpoint"], data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier,
    }, auth=(client["client_id"], client["client_secret"]), timeout=TIMEOUT)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant", again.text
    assert requests.get(discovery["userinfo_endpoint"], headers=bearer, timeout=TIMEOUT).status_code == 401


def test_state_and_nonce_come_back_exactly_as_sent(server, discovery, page):
    """Attack surface of the authorization response: state and nonce with spaces, unicode, & = + % #
    and / come back byte for byte (state in the redirect, nonce in the ID token), and the redirect's
    Location is a well-formed, ASCII URI."""
    state = "a b&c=d+e%20/é日本☃?#x=1;y"
    nonce = "n ñ&=+%2B/日"
    client = register(server, first_party=True)
    address = person(server)
    session = rp(client, discovery)
    verifier = uuid.uuid4().hex * 2
    url, sent = session.create_authorization_url(discovery["authorization_endpoint"], code_verifier=verifier, state=state, nonce=nonce)
    assert sent == state
    signed_out(page, discovery)
    page.get(url)
    sign_in_there(page, address)
    response = redirected_to(page)
    query = parse_qs(urlsplit(response).query)
    assert query["state"] == [state], query
    token = session.fetch_token(discovery["token_endpoint"], authorization_response=response, code_verifier=verifier, state=state)
    assert verified_claims(server, discovery, client, token, nonce)["nonce"] == nonce
    # The raw answer, as any client library reads it: one Location, ASCII only, the state decodable from it.
    r = requests.get(url + "&prompt=none", allow_redirects=False, timeout=TIMEOUT)  # no session here: login_required
    assert r.status_code in (302, 303), r.status_code
    location = r.headers["Location"]
    assert location.isascii() and " " not in location, location
    answer = parse_qs(urlsplit(location).query)
    assert answer["error"] == ["login_required"] and answer["state"] == [state], answer


def test_oidcc_discovery_endpoint_verification(server, discovery):
    """oidcc-discovery-endpoint-verification (Config OP): the required metadata, its endpoints absolute
    and on the issuer's server, a JWKS of public signing keys, and every endpoint listed answers."""
    r = requests.get(server.url("/.well-known/openid-configuration"), timeout=TIMEOUT)
    assert r.headers["Content-Type"].startswith("application/json")
    assert discovery["issuer"] == server.base  # fetched from <issuer>/.well-known/openid-configuration (Discovery §4.3)
    issuer = urlsplit(discovery["issuer"])
    for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "revocation_endpoint",
                "introspection_endpoint", "end_session_endpoint"):
        where = urlsplit(discovery[key])
        assert (where.scheme, where.netloc) == (issuer.scheme, issuer.netloc) and where.path.startswith("/") and not where.fragment, (key, discovery[key])
    assert "code" in discovery["response_types_supported"]
    assert discovery["subject_types_supported"] and set(discovery["subject_types_supported"]) <= {"public", "pairwise"}
    assert "RS256" in discovery["id_token_signing_alg_values_supported"] and "none" not in discovery["id_token_signing_alg_values_supported"]
    assert "openid" in discovery["scopes_supported"]
    assert "authorization_code" in discovery.get("grant_types_supported", ["authorization_code"])
    assert {"client_secret_basic", "client_secret_post"} <= set(discovery["token_endpoint_auth_methods_supported"])
    assert {"sub", "iss", "aud", "exp", "iat"} <= set(discovery["claims_supported"])
    assert discovery.get("claims_parameter_supported", False) is False  # and so the claims parameter is ignored
    assert "query" in discovery.get("response_modes_supported", ["query"])

    keys = requests.get(discovery["jwks_uri"], timeout=TIMEOUT)
    assert keys.status_code == 200 and keys.headers["Content-Type"].startswith("application/json")
    keys = keys.json()["keys"]
    kids = [k["kid"] for k in keys]
    assert keys and len(kids) == len(set(kids)), kids
    for key in keys:
        assert key["kty"] in ("RSA", "EC") and key.get("use", "sig") == "sig", key
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key), f"private or symmetric material in the JWKS: {sorted(key)}"
    assert {"RSA", "EC"} <= {k["kty"] for k in keys}
    JsonWebKey.import_key_set({"keys": keys})

    # Every endpoint listed answers (with its own refusal of an empty request), none is missing.
    for key, method in [("authorization_endpoint", "GET"), ("token_endpoint", "POST"), ("userinfo_endpoint", "GET"),
                        ("revocation_endpoint", "POST"), ("introspection_endpoint", "POST"), ("end_session_endpoint", "GET")]:
        r = requests.request(method, discovery[key], allow_redirects=False, timeout=TIMEOUT)
        assert r.status_code not in (404, 405) and r.status_code < 500, (key, r.status_code, r.text[:200])
    assert requests.post(discovery["token_endpoint"], timeout=TIMEOUT).status_code in (400, 401)
    assert requests.get(discovery["userinfo_endpoint"], timeout=TIMEOUT).status_code == 401


def test_oidcc_server_rotate_keys(server, discovery, page):
    """oidcc-server-rotate-keys (Dynamic OP plan, OP-Rotation-OP-Sig): after the root rotates, the
    JWKS has new keys and still the old ones; new ID tokens (RS256 and ES256) are signed with the
    new kids and verify; an ID token and access token from before the rotation still verify and work.
    Last in this module: the keys change for everything after it."""
    client = register(server, first_party=True)
    es_client = register(server, name="EC", first_party=True, id_token_signed_response_alg="ES256")
    address = person(server)
    session = rp(client, discovery)
    old_token, _, old_nonce, _ = login_flow(page, session, discovery, address, consent_first=False)
    old_kid = jwt.decode(old_token["id_token"], JsonWebKey.import_key_set(requests.get(discovery["jwks_uri"], timeout=TIMEOUT).json())).header["kid"]
    before = {k["kid"] for k in requests.get(discovery["jwks_uri"], timeout=TIMEOUT).json()["keys"]}
    assert old_kid in before

    anyone = server.login(address, PASSWORD).json()["access_token"]
    r = requests.post(server.url("/v1/admin/signing-keys/rotate"), headers={"Authorization": f"Bearer {anyone}"}, timeout=TIMEOUT)
    assert r.status_code == 403, r.text
    r = requests.post(server.url("/v1/admin/signing-keys/rotate"), headers={"Authorization": f"Bearer {root_token(server)}"}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    rotated = {k["algorithm"]: k["kid"] for k in r.json()["keys"]}
    assert set(rotated) == {"RS256", "ES256"} and not set(rotated.values()) & before, (rotated, before)

    document = requests.get(discovery["jwks_uri"], timeout=TIMEOUT).json()
    after = [k["kid"] for k in document["keys"]]
    assert len(after) == len(set(after)), after
    assert set(rotated.values()) <= set(after), "the new keys are not published"
    assert before <= set(after), "a key of the tokens still alive was dropped"
    for key in document["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)

    new_token, _, nonce, _ = login_flow(page, session, discovery, address, consent_first=False)
    claims = verified_claims(server, discovery, client, new_token, nonce)
    assert jwt.decode(new_token["id_token"], JsonWebKey.import_key_set(document)).header["kid"] == rotated["RS256"]
    es_token, _, es_nonce, _ = login_flow(page, rp(es_client, discovery), discovery, address, consent_first=False, fresh=False)
    es_claims = verified_claims(server, discovery, es_client, es_token, es_nonce)
    header = jwt.decode(es_token["id_token"], JsonWebKey.import_key_set(document)).header
    assert (header["alg"], header["kid"]) == ("ES256", rotated["ES256"]), header
    assert es_claims["sub"] == claims["sub"]
    # What was signed before the rotation still verifies and works.
    assert verified_claims(server, discovery, client, old_token, old_nonce)["sub"] == claims["sub"]
    r = requests.get(discovery["userinfo_endpoint"], headers={"Authorization": f"Bearer {old_token['access_token']}"}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    r = requests.get(discovery["userinfo_endpoint"], headers={"Authorization": f"Bearer {new_token['access_token']}"}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
