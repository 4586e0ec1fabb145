"""The rest of Portcullis's OpenID provider (SPEC §14), black-box: ID tokens signed RS256 or ES256
per client, refresh tokens (offline_access) rotated with reuse detection, the client_credentials
grant for a client acting as an org's service account, `organization=` on the authorization
request, claim templates (the Hasura preset, the org:role list, constants), per-client token
lifetimes, org deletion ending its clients' sessions, and consent surviving backup and restore.

Two relying parties nobody here wrote drive it: Authlib (through the helpers of
test_openid_provider.py) and requests-oauth2client, which runs the whole code flow with PKCE through
the real login page in Chromium and validates the ID token itself. ID tokens are also verified with
PyJWT against the JWKS, the `kid` choosing the key. Tests named `test_oidcc_*` follow modules of the
OpenID Foundation's certification plans. The tests about stored state (client fields, refresh
rotation, client_credentials) run on SQLite and, when PORTCULLIS_TEST_POSTGRES_URL is set, on
PostgreSQL too."""

import base64
import json
import os
import subprocess
import uuid
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
import pytest
import requests
from requests_oauth2client import ClientSecretBasic, InvalidGrant, OAuth2Client
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import secrets_seen
from portcullis_server import ServerStartError, running_server
from security_support import backend_database
from test_openid_provider import (  # noqa: F401  (server and discovery are fixtures used by name)
    CALLBACK, ROOT_EMAIL, ROOT_PASSWORD, authorization_url, consent, discovery, login_flow, person, redirected_to,
    register, root_token, rp, server, sign_in_there, signed_out)
from test_pages_browser import (  # noqa: F401  (browser and page are fixtures used by name)
    PASSWORD, TIMEOUT, Server, binary, browser, page, smtp_sink)

HASURA = "https://hasura.io/jwt/claims"
ALL_SCOPES = ["openid", "profile", "email", "orgs", "offline_access"]


# --- servers: the module's SQLite one, and the same on PostgreSQL for the stored-state tests --------

@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def any_server(request, tmp_path_factory):
    """The module's SQLite server, or one on a fresh PostgreSQL database (skipped without
    PORTCULLIS_TEST_POSTGRES_URL, a failure when PORTCULLIS_REQUIRE_POSTGRES=1)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("server")
        return
    tmp = tmp_path_factory.mktemp("oidc-pg")
    secrets_seen.note(ROOT_PASSWORD)
    with smtp_sink(tmp) as sink, backend_database("postgres", tmp) as database_url:
        workdir = tmp / "server"
        workdir.mkdir()
        try:
            with running_server(binary(), workdir, DATABASE_URL=database_url, SMTP_URL=sink.url, SIGNUP="open",
                                IP_BURST="1000", ROOT_EMAIL=ROOT_EMAIL, ROOT_PASSWORD=ROOT_PASSWORD) as base:
                yield Server(base, sink, workdir / "server.log")
        except ServerStartError as error:
            pytest.fail(str(error), pytrace=False)


def discover(server) -> dict:
    r = requests.get(server.url("/.well-known/openid-configuration"), timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


# --- small helpers ----------------------------------------------------------------------------------

def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def user_token(server, address: str) -> str:
    r = server.login(address, PASSWORD)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def api(server, method: str, path: str, token: str, expect: int | None = None, **kw) -> requests.Response:
    r = requests.request(method, server.url(path), headers=bearer(token), timeout=TIMEOUT, **kw)
    if expect is not None:
        assert r.status_code == expect, (method, path, r.status_code, r.text)
    return r


def register_as(server, token: str, **fields) -> requests.Response:
    body = {"name": "App", "redirect_uris": [CALLBACK], "scopes": ["openid", "profile", "email"]} | fields
    r = api(server, "POST", "/v1/clients", token, json=body)
    if r.status_code == 201 and r.json().get("client_secret"):
        secrets_seen.note(r.json()["client_secret"])
    return r


def new_org(server, token: str, name: str = "Acme") -> str:
    return api(server, "POST", "/v1/orgs", token, 201, json={"name": name}).json()["id"]


def service_account(server, token: str, org: str, role: str = "viewer") -> str:
    return api(server, "POST", f"/v1/orgs/{org}/service-accounts", token, 201, json={"name": "sync", "role": role}).json()["id"]


def jwks(discovery) -> dict:
    r = requests.get(discovery["jwks_uri"], timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()


def unverified(token: str) -> tuple[dict, dict]:
    return pyjwt.get_unverified_header(token), pyjwt.decode(token, options={"verify_signature": False})


def id_token_claims(discovery, client: dict, id_token: str, alg: str = "RS256", nonce: str | None = None) -> dict:
    """The ID token verified with PyJWT against the JWKS: the header's `kid` picks the key, which
    must be of the algorithm's type; issuer, audience and expiry checked, the nonce when given."""
    header = pyjwt.get_unverified_header(id_token)
    assert header["alg"] == alg, header
    document = jwks(discovery)
    matching = [k for k in document["keys"] if k.get("kid") == header.get("kid")]
    assert len(matching) == 1, f"kid {header.get('kid')!r} is not exactly one key of the JWKS: {document}"
    assert matching[0]["kty"] == {"RS256": "RSA", "ES256": "EC"}[alg], matching[0]
    key = pyjwt.PyJWK.from_dict(matching[0]).key
    claims = pyjwt.decode(id_token, key, algorithms=[alg], audience=client["client_id"], issuer=discovery["issuer"],
                          options={"require": ["iss", "sub", "aud", "exp", "iat"]})
    if nonce is not None:
        assert claims["nonce"] == nonce
    return claims


def token_request(discovery, client: dict, **data) -> requests.Response:
    """A token request authenticated as the client: client_secret_basic for a confidential one,
    its client_id in the form for a public one."""
    auth = None
    if client.get("client_secret"):
        auth = (client["client_id"], client["client_secret"])
    else:
        data.setdefault("client_id", client["client_id"])
    return requests.post(discovery["token_endpoint"], data=data, auth=auth, timeout=TIMEOUT)


def refresh(discovery, client: dict, refresh_token: str) -> requests.Response:
    return token_request(discovery, client, grant_type="refresh_token", refresh_token=refresh_token)


def userinfo(discovery, access_token: str) -> requests.Response:
    return requests.get(discovery["userinfo_endpoint"], headers=bearer(access_token), timeout=TIMEOUT)


def oauth_error(r: requests.Response, status: int, error: str):
    assert r.status_code == status and r.json().get("error") == error, (r.status_code, r.text)


def authorization_error(page, discovery, client: dict, address: str, **extra) -> dict:
    """Signs `address` in for an authorization request with `extra` parameters that should come
    back as an error; returns the query the redirect URI received."""
    url, state, _ = authorization_url(rp(client, discovery), discovery, uuid.uuid4().hex * 2, **extra)
    page.get(url)
    sign_in_there(page, address, required=False)
    query = parse_qs(urlsplit(redirected_to(page)).query)
    assert query.get("state") == [state], query
    assert "code" not in query, query
    return query


def is_problem_400(r: requests.Response) -> bool:
    return r.status_code == 400 and r.headers.get("Content-Type", "").startswith("application/problem+json")


# --- discovery and keys -----------------------------------------------------------------------------

def test_oidcc_discovery_lists_the_new_algorithms_grants_and_scopes(server, discovery):
    """oidcc-discovery-endpoint-verification for what §14 adds."""
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]
    assert set(discovery["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}
    assert len(discovery["grant_types_supported"]) == 3
    assert "offline_access" in discovery["scopes_supported"]


def test_jwks_has_an_rsa_and_an_ec_p256_signing_key(server, discovery):
    keys = jwks(discovery)["keys"]
    rsa = [k for k in keys if k["kty"] == "RSA" and k.get("alg") == "RS256"]
    ec = [k for k in keys if k["kty"] == "EC" and k.get("alg") == "ES256" and k.get("crv") == "P-256"]
    assert rsa and ec, keys
    for k in keys:
        assert "d" not in k and "p" not in k, "a private key part in the JWKS"
        assert k.get("kid"), k
    assert len({k["kid"] for k in keys}) == len(keys), "two keys share a kid"
    modulus = base64.urlsafe_b64decode(rsa[0]["n"] + "=" * (-len(rsa[0]["n"]) % 4))
    assert len(modulus) * 8 >= 2048, "RSA key shorter than 2048 bits"


# --- client registration: the new fields --------------------------------------------------------------

def test_client_registration_echoes_the_new_fields(any_server):
    server = any_server
    root = root_token(server)
    plain = register_as(server, root)
    assert plain.status_code == 201, plain.text
    body = plain.json()
    assert body["id_token_signed_response_alg"] == "RS256"
    for field in ("access_token_lifetime", "refresh_token_lifetime", "claim_template", "service_account_id"):
        assert field in body and body[field] is None, (field, body)

    template = {"presets": ["hasura", "org_roles"], "constants": {"tenant": "acme", "region": "eu-west"}}
    r = register_as(server, root, scopes=ALL_SCOPES, id_token_signed_response_alg="ES256", access_token_lifetime=60,
                    refresh_token_lifetime=7776000, claim_template=template)
    assert r.status_code == 201, r.text
    created = r.json()
    wanted = {"id_token_signed_response_alg": "ES256", "access_token_lifetime": 60, "refresh_token_lifetime": 7776000,
              "claim_template": template, "service_account_id": None, "scopes": ALL_SCOPES}
    assert {k: created.get(k) for k in wanted} == wanted
    got = api(server, "GET", f"/v1/clients/{created['client_id']}", root, 200).json()
    assert {k: got.get(k) for k in wanted} == wanted
    assert "client_secret" not in got

    # The other ends of the ranges are accepted too; PATCH changes and echoes.
    r = api(server, "PATCH", f"/v1/clients/{created['client_id']}", root, json={
        "id_token_signed_response_alg": "RS256", "access_token_lifetime": 86400, "refresh_token_lifetime": 3600,
        "claim_template": {"presets": ["org_roles"], "constants": {}}})
    assert r.status_code == 200, r.text
    patched = {"id_token_signed_response_alg": "RS256", "access_token_lifetime": 86400, "refresh_token_lifetime": 3600}
    assert {k: r.json().get(k) for k in patched} == patched
    assert r.json()["claim_template"]["presets"] == ["org_roles"]
    got = api(server, "GET", f"/v1/clients/{created['client_id']}", root, 200).json()
    assert {k: got.get(k) for k in patched} == patched

    # An org's confidential client may act as one of that org's service accounts.
    owner_address = person(server)
    owner = user_token(server, owner_address)
    org = new_org(server, owner)
    account = service_account(server, owner, org)
    r = register_as(server, owner, org_id=org, service_account_id=account)
    assert r.status_code == 201, r.text
    assert r.json()["service_account_id"] == account
    listed = api(server, "GET", f"/v1/clients?org_id={org}", owner, 200).json()["items"]
    assert [c["service_account_id"] for c in listed] == [account]


def test_client_registration_refuses_bad_new_fields(any_server):
    server = any_server
    root = root_token(server)
    owner = user_token(server, person(server))
    org, other_org = new_org(server, owner, "Mine"), new_org(server, owner, "Also mine")
    account, foreign_account = service_account(server, owner, org), service_account(server, owner, other_org)
    big = {"presets": [], "constants": {"blob": "x" * 5000}}
    bad_fields = [
        {"id_token_signed_response_alg": "HS256"},
        {"id_token_signed_response_alg": "none"},
        {"id_token_signed_response_alg": "PS256"},
        {"id_token_signed_response_alg": 256},
        {"access_token_lifetime": 59},
        {"access_token_lifetime": 86401},
        {"access_token_lifetime": 0},
        {"access_token_lifetime": "900"},
        {"refresh_token_lifetime": 3599},
        {"refresh_token_lifetime": 7776001},
        {"refresh_token_lifetime": -1},
        {"claim_template": {"presets": ["okta"]}},
        {"claim_template": {"presets": "hasura"}},
        {"claim_template": {"constants": ["tenant"]}},
        {"claim_template": "hasura"},
        {"claim_template": big},
        {"scopes": ["openid", "offline"]},
    ] + [{"claim_template": {"presets": [], "constants": {name: "x"}}} for name in
         ("sub", "iss", "aud", "exp", "iat", "nonce", "email", "orgs", "org_id", "org_roles", HASURA)]
    for fields in bad_fields:
        r = register_as(server, root, **fields)
        assert is_problem_400(r), (fields, r.status_code, r.text)
    # A template just under the cap is fine.
    r = register_as(server, root, claim_template={"presets": ["hasura"], "constants": {"blob": "x" * 3000}})
    assert r.status_code == 201, r.text

    # service_account_id: only an org's confidential client, only that org's account.
    for owner_or_root, fields in [
        (root, {"service_account_id": account}),  # a platform client
        (owner, {"org_id": org, "type": "public", "service_account_id": account}),
        (owner, {"org_id": org, "service_account_id": foreign_account}),
        (owner, {"org_id": org, "service_account_id": str(uuid.uuid4())}),
        (owner, {"org_id": org, "service_account_id": "not-a-uuid"}),
    ]:
        r = register_as(server, owner_or_root, **fields)
        assert is_problem_400(r), (fields, r.status_code, r.text)

    # PATCH checks the same rules.
    client = register_as(server, owner, org_id=org).json()
    for fields in [{"access_token_lifetime": 59}, {"id_token_signed_response_alg": "HS256"},
                   {"claim_template": {"presets": [], "constants": {"sub": "x"}}}, {"service_account_id": foreign_account}]:
        r = api(server, "PATCH", f"/v1/clients/{client['client_id']}", owner, json=fields)
        assert is_problem_400(r), (fields, r.status_code, r.text)
    assert api(server, "GET", f"/v1/clients/{client['client_id']}", owner, 200).json()["service_account_id"] is None


# --- ID token algorithms --------------------------------------------------------------------------------

def test_oidcc_id_token_rs256(server, discovery, page):
    """oidcc-id-token-rs256: a client that chose nothing gets RS256, verifiable with the JWKS's RSA key;
    without offline_access there is no refresh token, and the access token lives the default 900 s."""
    client = register(server, first_party=True)
    token, _, nonce, _ = login_flow(page, rp(client, discovery), discovery, person(server), consent_first=False)
    claims = id_token_claims(discovery, client, token["id_token"], "RS256", nonce)
    assert userinfo(discovery, token["access_token"]).json()["sub"] == claims["sub"]
    assert "refresh_token" not in token, "a refresh token without offline_access"
    assert token["expires_in"] == 900
    _, access = unverified(token["access_token"])
    assert access["exp"] - access["iat"] == 900


def test_oidcc_id_token_es256_for_a_client_that_chose_it(server, discovery, page):
    """The same login for a client registered with ES256: verified with the JWKS's EC P-256 key."""
    client = register(server, first_party=True, id_token_signed_response_alg="ES256")
    address = person(server)
    token, _, nonce, _ = login_flow(page, rp(client, discovery), discovery, address, consent_first=False)
    claims = id_token_claims(discovery, client, token["id_token"], "ES256", nonce)
    assert claims["email"] == address
    assert userinfo(discovery, token["access_token"]).status_code == 200


# --- refresh tokens ---------------------------------------------------------------------------------------

def test_oidcc_refresh_token(any_server, page):
    """oidcc-refresh-token: offline_access brings a refresh token; a refresh rotates it and brings a new
    ID token for the same person and login; another client cannot use it (nor spend it); the spent
    one presented again is refused and ends the whole session."""
    server = any_server
    discovery = discover(server)
    client = register(server, first_party=True, scopes=ALL_SCOPES)
    other = register(server, name="Other", first_party=True, scopes=ALL_SCOPES)
    session = rp(client, discovery, scope="openid email offline_access")
    first, _, nonce, _ = login_flow(page, session, discovery, person(server), consent_first=False)
    assert first.get("refresh_token"), first
    before = id_token_claims(discovery, client, first["id_token"], "RS256", nonce)

    # Another client presenting it: refused, and it is not spent.
    oauth_error(refresh(discovery, other, first["refresh_token"]), 400, "invalid_grant")

    r = refresh(discovery, client, first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["token_type"].lower() == "bearer" and second["expires_in"] == 900
    assert second["refresh_token"] and second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert set(second["scope"].split()) == {"openid", "email", "offline_access"}
    after = id_token_claims(discovery, client, second["id_token"], "RS256")
    assert (after["sub"], after["aud"], after["auth_time"]) == (before["sub"], before["aud"], before["auth_time"])
    assert after["iat"] >= before["iat"]
    assert userinfo(discovery, second["access_token"]).json()["sub"] == before["sub"]

    # The spent one again: refused, and the session is over.
    oauth_error(refresh(discovery, client, first["refresh_token"]), 400, "invalid_grant")
    assert userinfo(discovery, second["access_token"]).status_code == 401, "the session survived refresh-token reuse"
    oauth_error(refresh(discovery, client, second["refresh_token"]), 400, "invalid_grant")


def test_public_client_refreshes_with_its_client_id(server, discovery, page):
    client = register(server, type="public", first_party=True, scopes=ALL_SCOPES)
    token, _, _, _ = login_flow(page, rp(client, discovery, scope="openid offline_access"), discovery, person(server),
                                consent_first=False)
    assert token.get("refresh_token"), token
    r = refresh(discovery, client, token["refresh_token"])
    assert r.status_code == 200 and r.json()["refresh_token"] != token["refresh_token"], r.text
    # Without naming itself, nobody is authenticated.
    r = requests.post(discovery["token_endpoint"], data={"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]},
                      timeout=TIMEOUT)
    assert r.status_code in (400, 401) and r.json()["error"] in ("invalid_client", "invalid_request"), r.text


def test_refresh_tokens_of_the_two_worlds_do_not_mix(server, discovery, page):
    """An OpenID refresh token is refused by Portcullis's own /v1/auth/refresh, and a Portcullis
    login's refresh token is no refresh grant at the token endpoint."""
    client = register(server, first_party=True, scopes=ALL_SCOPES)
    address = person(server)
    token, _, _, _ = login_flow(page, rp(client, discovery, scope="openid offline_access"), discovery, address, consent_first=False)
    r = requests.post(server.url("/v1/auth/refresh"), json={"refresh_token": token["refresh_token"]}, timeout=TIMEOUT)
    assert r.status_code == 401, r.text
    own = server.login(address, PASSWORD).json()["refresh_token"]
    oauth_error(refresh(discovery, client, own), 400, "invalid_grant")
    assert requests.post(server.url("/v1/auth/refresh"), json={"refresh_token": own}, timeout=TIMEOUT).status_code == 200


def test_client_token_lifetimes(server, discovery, page):
    """access_token_lifetime is the access token's exp - iat and expires_in, at the code and at each refresh."""
    client = register(server, first_party=True, scopes=ALL_SCOPES, access_token_lifetime=120, refresh_token_lifetime=3600)
    token, _, _, _ = login_flow(page, rp(client, discovery, scope="openid offline_access"), discovery, person(server),
                                consent_first=False)
    assert token["expires_in"] == 120
    _, access = unverified(token["access_token"])
    assert access["exp"] - access["iat"] == 120
    r = refresh(discovery, client, token["refresh_token"])
    assert r.status_code == 200, r.text
    assert r.json()["expires_in"] == 120
    _, access = unverified(r.json()["access_token"])
    assert access["exp"] - access["iat"] == 120


# --- client_credentials ----------------------------------------------------------------------------------

def service_client(server, owner: str, org: str, account: str) -> dict:
    r = register_as(server, owner, name="Sync job", org_id=org, service_account_id=account)
    assert r.status_code == 201, r.text
    return r.json()


def client_credentials(discovery, client: dict) -> requests.Response:
    return requests.post(discovery["token_endpoint"], data={"grant_type": "client_credentials"},
                         auth=(client["client_id"], client["client_secret"]), timeout=TIMEOUT)


def decide(server, token: str, org: str, action: str) -> requests.Response:
    return api(server, "POST", "/v1/authorize", token, json={"action": action, "object": f"org:{org}"})


def test_client_credentials_acts_as_the_service_account(any_server):
    server = any_server
    discovery = discover(server)
    owner = user_token(server, person(server))
    org = new_org(server, owner)
    account = service_account(server, owner, org, role="viewer")
    client = service_client(server, owner, org, account)
    r = client_credentials(discovery, client)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"].lower() == "bearer" and isinstance(body["expires_in"], int) and body["expires_in"] > 0
    assert "refresh_token" not in body and "id_token" not in body, body
    header, claims = unverified(body["access_token"])
    assert header["typ"].lower() in ("at+jwt", "application/at+jwt"), header
    assert claims["sub"] == account and claims["client_id"] == client["client_id"], claims
    assert claims["iss"] == discovery["issuer"]
    token = body["access_token"]

    # The service account's decisions, its role (viewer) and no more.
    r = decide(server, token, org, "org.read")
    assert r.status_code == 200 and r.json()["allowed"] is True, r.text
    r = decide(server, token, org, "org.update")
    assert r.status_code == 200 and r.json()["allowed"] is False, r.text
    evaluation = {"subject": {"type": "service_account", "id": account}, "resource": {"type": "org", "id": org}}
    r = api(server, "POST", "/access/v1/evaluation", token, json=evaluation | {"action": {"name": "org.read"}})
    assert r.status_code == 200 and r.json()["decision"] is True, r.text
    r = api(server, "POST", "/access/v1/evaluation", token, json=evaluation | {"action": {"name": "members.write"}})
    assert r.status_code == 200 and r.json()["decision"] is False, r.text
    # It is no key to the account API.
    assert api(server, "GET", "/v1/orgs", token).status_code == 403
    assert api(server, "GET", f"/v1/orgs/{org}/members", token).status_code == 403

    resource_server = register(server, name="API gateway")
    r = requests.post(discovery["introspection_endpoint"], data={"token": token},
                      auth=(resource_server["client_id"], resource_server["client_secret"]), timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.json()["active"] is True and r.json()["sub"] == account and r.json()["client_id"] == client["client_id"], r.json()


def test_client_credentials_refused_without_a_service_account(any_server):
    server = any_server
    discovery = discover(server)
    owner = user_token(server, person(server))
    org = new_org(server, owner)
    account = service_account(server, owner, org)
    plain = register_as(server, owner, org_id=org).json()
    oauth_error(client_credentials(discovery, plain), 400, "unauthorized_client")
    platform = register(server)
    oauth_error(client_credentials(discovery, platform), 400, "unauthorized_client")
    public = register_as(server, owner, org_id=org, type="public").json()
    r = requests.post(discovery["token_endpoint"], data={"grant_type": "client_credentials", "client_id": public["client_id"]},
                      timeout=TIMEOUT)
    assert (r.status_code, r.json().get("error")) in ((401, "invalid_client"), (400, "unauthorized_client")), r.text
    assert "access_token" not in r.json()
    client = service_client(server, owner, org, account)
    r = requests.post(discovery["token_endpoint"], data={"grant_type": "client_credentials"},
                      auth=(client["client_id"], "pcs_wrong"), timeout=TIMEOUT)
    oauth_error(r, 401, "invalid_client")


def test_client_credentials_token_dies_with_the_client_or_its_service_account_link(any_server):
    server = any_server
    discovery = discover(server)
    owner = user_token(server, person(server))
    org = new_org(server, owner)
    account = service_account(server, owner, org)
    unlinked, deleted = service_client(server, owner, org, account), service_client(server, owner, org, account)
    unlinked_token = client_credentials(discovery, unlinked).json()["access_token"]
    deleted_token = client_credentials(discovery, deleted).json()["access_token"]
    for token in (unlinked_token, deleted_token):
        assert decide(server, token, org, "org.read").status_code == 200

    r = api(server, "PATCH", f"/v1/clients/{unlinked['client_id']}", owner, json={"service_account_id": None})
    assert r.status_code == 200 and r.json()["service_account_id"] is None, r.text
    assert decide(server, unlinked_token, org, "org.read").status_code == 401
    oauth_error(client_credentials(discovery, unlinked), 400, "unauthorized_client")
    assert decide(server, deleted_token, org, "org.read").status_code == 200, "one client's change ended another's token"

    api(server, "DELETE", f"/v1/clients/{deleted['client_id']}", owner, 204)
    assert decide(server, deleted_token, org, "org.read").status_code == 401


def test_client_credentials_token_dies_with_its_service_account(server, discovery):
    owner = user_token(server, person(server))
    org = new_org(server, owner)
    account = service_account(server, owner, org)
    client = service_client(server, owner, org, account)
    token = client_credentials(discovery, client).json()["access_token"]
    assert decide(server, token, org, "org.read").status_code == 200
    api(server, "DELETE", f"/v1/orgs/{org}/service-accounts/{account}", owner, 204)
    assert decide(server, token, org, "org.read").status_code == 401
    assert api(server, "GET", f"/v1/clients/{client['client_id']}", owner, 200).json()["service_account_id"] is None
    oauth_error(client_credentials(discovery, client), 400, "unauthorized_client")


# --- organization= and claim templates ---------------------------------------------------------------------

def two_orgs(server, address: str) -> tuple[str, str]:
    """An org `address` owns, and another org it is an editor of."""
    own = new_org(server, user_token(server, address), "Own")
    someone = user_token(server, person(server, name="Someone"))
    joined = new_org(server, someone, "Joined")
    api(server, "POST", f"/v1/orgs/{joined}/members", someone, 201, json={"user_id": server.me(address, PASSWORD)["id"], "role": "editor"})
    return own, joined


def test_organization_scopes_the_login_to_a_member_org(server, discovery, page):
    client = register(server, first_party=True, scopes=ALL_SCOPES)
    address = person(server)
    _, joined = two_orgs(server, address)
    session = rp(client, discovery, scope="openid profile email orgs offline_access")
    token, _, nonce, _ = login_flow(page, session, discovery, address, consent_first=False, organization=joined)
    claims = id_token_claims(discovery, client, token["id_token"], "RS256", nonce)
    assert claims["org_id"] == joined
    info = userinfo(discovery, token["access_token"])
    assert info.status_code == 200 and info.json()["org_id"] == joined, info.text
    # A refresh keeps the login's org.
    r = refresh(discovery, client, token["refresh_token"])
    assert r.status_code == 200, r.text
    assert id_token_claims(discovery, client, r.json()["id_token"], "RS256")["org_id"] == joined
    assert userinfo(discovery, r.json()["access_token"]).json()["org_id"] == joined
    # Without organization=, no org_id.
    token, _, nonce, _ = login_flow(page, session, discovery, address, consent_first=False, fresh=False)
    assert "org_id" not in id_token_claims(discovery, client, token["id_token"], "RS256", nonce)
    assert "org_id" not in userinfo(discovery, token["access_token"]).json()


def test_organization_of_a_non_member_or_malformed_is_an_error_for_the_client(server, discovery, page):
    client = register(server, first_party=True)
    address = person(server)
    stranger = user_token(server, person(server, name="Stranger"))
    theirs = new_org(server, stranger, "Not yours")
    signed_out(page, discovery)
    assert authorization_error(page, discovery, client, address, organization=theirs)["error"] == ["access_denied"]
    assert authorization_error(page, discovery, client, address, organization=str(uuid.uuid4()))["error"] == ["access_denied"]
    assert authorization_error(page, discovery, client, address, organization="not-an-org")["error"] == ["invalid_request"]


def test_claim_templates_hasura_org_roles_and_constants(server, discovery, page):
    template = {"presets": ["hasura", "org_roles"], "constants": {"tenant": "acme", "region": "eu-west"}}
    client = register(server, first_party=True, claim_template=template)
    address = person(server)
    own, joined = two_orgs(server, address)
    session = rp(client, discovery, scope="openid profile email orgs")

    token, _, nonce, _ = login_flow(page, session, discovery, address, consent_first=False, organization=joined)
    claims = id_token_claims(discovery, client, token["id_token"], "RS256", nonce)
    info = userinfo(discovery, token["access_token"])
    assert info.status_code == 200, info.text
    for where, seen in (("id token", claims), ("userinfo", info.json())):
        hasura = seen[HASURA]
        assert hasura["x-hasura-user-id"] == claims["sub"], (where, hasura)
        assert hasura["x-hasura-default-role"] == "editor", (where, hasura)
        assert "editor" in hasura["x-hasura-allowed-roles"], (where, hasura)
        assert hasura["x-hasura-org-id"] == joined, (where, hasura)
        assert sorted(seen["org_roles"]) == sorted([f"{own}:owner", f"{joined}:editor"]), (where, seen)
        assert seen["tenant"] == "acme" and seen["region"] == "eu-west", (where, seen)

    token, _, nonce, _ = login_flow(page, session, discovery, address, consent_first=False, fresh=False)
    claims = id_token_claims(discovery, client, token["id_token"], "RS256", nonce)
    for where, seen in (("id token", claims), ("userinfo", userinfo(discovery, token["access_token"]).json())):
        hasura = seen[HASURA]
        assert hasura["x-hasura-default-role"] == "user" and "user" in hasura["x-hasura-allowed-roles"], (where, hasura)
        assert "x-hasura-org-id" not in hasura, (where, hasura)
        assert hasura["x-hasura-user-id"] == claims["sub"], (where, hasura)


def test_a_client_without_a_template_adds_no_template_claims(server, discovery, page):
    client = register(server, first_party=True)
    address = person(server)
    two_orgs(server, address)
    token, _, nonce, _ = login_flow(page, rp(client, discovery, scope="openid profile email orgs"), discovery, address,
                                    consent_first=False)
    claims = id_token_claims(discovery, client, token["id_token"], "RS256", nonce)
    assert HASURA not in claims and "org_roles" not in claims and "tenant" not in claims
    assert len(claims["orgs"]) == 2


# --- org deletion ---------------------------------------------------------------------------------------------

def test_deleting_an_org_ends_the_sessions_of_its_clients(server, discovery, page):
    address = person(server)
    owner = user_token(server, address)
    org = new_org(server, owner)
    client = register_as(server, owner, org_id=org, scopes=ALL_SCOPES).json()
    token, _, _, _ = login_flow(page, rp(client, discovery, scope="openid email offline_access"), discovery, address)
    assert userinfo(discovery, token["access_token"]).status_code == 200
    assert token.get("refresh_token")
    api(server, "DELETE", f"/v1/orgs/{org}", owner, 204)
    assert userinfo(discovery, token["access_token"]).status_code == 401, "an org client's session outlived its org"
    r = refresh(discovery, client, token["refresh_token"])
    assert r.status_code in (400, 401) and r.json()["error"] in ("invalid_grant", "invalid_client"), r.text
    # The person's own sign-in is untouched.
    assert api(server, "GET", "/v1/me", owner).status_code == 200


# --- consent across backup and restore ---------------------------------------------------------------------------

def reaches_callback_or_consent(driver) -> str:
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: d.current_url.startswith(CALLBACK) or d.find_elements(By.CSS_SELECTOR, "button[value=allow]"),
        f"neither the callback nor a consent page: {driver.current_url}")
    return "callback" if driver.current_url.startswith(CALLBACK) else "consent"


def test_consent_survives_backup_and_restore(server, discovery, page, tmp_path):
    consented = register(server, name="Consented app")
    never = register(server, name="Never asked")
    address = person(server)
    login_flow(page, rp(consented, discovery), discovery, address)
    backup = api(server, "GET", "/v1/admin/backup", root_token(server), 200).content

    target = tmp_path / "restored"
    target.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env.update(PORTCULLIS_DATABASE_URL=f"sqlite:{target}/p.db", PORTCULLIS_MASTER_KEY_FILE=f"{target}/master.key",
               PORTCULLIS_LOG_LEVEL="error")
    loaded = subprocess.run([str(binary()), "restore"], cwd=target, env=env, input=backup, capture_output=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr.decode()

    with running_server(binary(), target, SIGNUP="open", IP_BURST="1000") as base:
        restored = requests.get(base + "/.well-known/openid-configuration", timeout=TIMEOUT).json()
        session = rp(consented, restored)
        verifier = uuid.uuid4().hex * 2
        url, _, _ = authorization_url(session, restored, verifier)
        signed_out(page, restored)
        page.get(url)
        sign_in_there(page, address)
        assert reaches_callback_or_consent(page) == "callback", "the restored instance asked for consent again"
        token = session.fetch_token(restored["token_endpoint"], authorization_response=page.current_url, code_verifier=verifier)
        assert json.loads(base64.urlsafe_b64decode(token["id_token"].split(".")[1] + "==")).get("aud") in (
            consented["client_id"], [consented["client_id"]])
        # A client the person never consented to still asks.
        url, _, _ = authorization_url(rp(never, restored), restored, verifier)
        page.get(url)
        assert reaches_callback_or_consent(page) == "consent"


# --- a second relying party: requests-oauth2client ---------------------------------------------------------------

def test_requests_oauth2client_code_flow_refresh_introspect_revoke(server, discovery, page):
    client = register(server, name="Second RP", scopes=ALL_SCOPES)
    address = person(server, name="Margaret Hamilton")
    oauth = OAuth2Client.from_discovery_document(
        discovery, issuer=discovery["issuer"], auth=ClientSecretBasic(client["client_id"], client["client_secret"]),
        redirect_uri=CALLBACK, authorization_server_jwks=jwks(discovery), id_token_signed_response_alg="RS256", testing=True)
    request = oauth.authorization_request(scope="openid profile email offline_access")
    assert request.code_challenge_method == "S256" and request.nonce
    signed_out(page, discovery)
    page.get(str(request.uri))
    sign_in_there(page, address)
    consent(page)
    response = request.validate_callback(redirected_to(page))  # state and iss checked by the library
    token = oauth.authorization_code(response)  # and the ID token: signature (by kid), iss, aud, nonce, exp
    assert token.id_token.claims["email"] == address and token.id_token.claims["name"] == "Margaret Hamilton"
    assert token.id_token.alg == "RS256"
    assert token.refresh_token
    info = oauth.userinfo(token)
    assert info["sub"] == token.id_token.subject and info["email"] == address

    refreshed = oauth.refresh_token(token)
    assert refreshed.refresh_token and refreshed.refresh_token != token.refresh_token
    assert refreshed.id_token.verify_signature(oauth.authorization_server_jwks, alg="RS256")
    assert refreshed.id_token.subject == token.id_token.subject and refreshed.id_token.audiences == [client["client_id"]]
    assert oauth.userinfo(refreshed)["email"] == address

    seen = oauth.introspect_token(refreshed.access_token, token_type_hint="access_token")
    assert seen["active"] is True and seen["sub"] == token.id_token.subject and seen["client_id"] == client["client_id"]

    assert oauth.revoke_refresh_token(refreshed) is True
    with pytest.raises(InvalidGrant):
        oauth.refresh_token(refreshed)
    assert oauth.introspect_token(refreshed.access_token)["active"] is False


# --- what a security review of the above found -------------------------------------------------------------

def test_an_admin_cannot_take_an_owner_accounts_client_by_rotating_its_secret(server, discovery):
    owner = user_token(server, person(server))
    org = new_org(server, owner)
    admin_address = person(server, name="Admin")
    api(server, "POST", f"/v1/orgs/{org}/members", owner, 201, json={"user_id": server.me(admin_address, PASSWORD)["id"], "role": "admin"})
    admin = user_token(server, admin_address)
    deploy = service_account(server, owner, org, role="owner")
    client = service_client(server, owner, org, deploy)
    r = api(server, "POST", f"/v1/clients/{client['client_id']}/secret", admin)
    assert r.status_code == 403, r.text
    assert "client_secret" not in r.text
    # The owner's rotation works, and voids the tokens the old secret got at once.
    before = client_credentials(discovery, client).json()["access_token"]
    assert decide(server, before, org, "org.read").status_code == 200
    rotated = api(server, "POST", f"/v1/clients/{client['client_id']}/secret", owner, 200).json()
    secrets_seen.note(rotated["client_secret"])
    assert decide(server, before, org, "org.read").status_code == 401
    after = client_credentials(discovery, client | {"client_secret": rotated["client_secret"]}).json()["access_token"]
    assert decide(server, after, org, "org.read").status_code == 200


def test_a_login_for_an_org_ends_when_the_person_leaves_it(server, discovery, page):
    client = register(server, first_party=True, scopes=ALL_SCOPES)
    address = person(server)
    _, joined = two_orgs(server, address)
    session = rp(client, discovery, scope="openid offline_access")
    token, _, _, _ = login_flow(page, session, discovery, address, consent_first=False, organization=joined)
    assert userinfo(discovery, token["access_token"]).json()["org_id"] == joined
    # The org's owner removes the person: userinfo and refresh stop vouching for the org.
    org_owner = api(server, "GET", f"/v1/orgs/{joined}/members", user_token(server, address), 200).json()
    owner_id = next(m["user_id"] for m in org_owner["items"] if m["role"] == "owner")
    owner_email = next(m["email"] for m in org_owner["items"] if m["user_id"] == owner_id)
    me = server.me(address, PASSWORD)["id"]
    api(server, "DELETE", f"/v1/orgs/{joined}/members/{me}", user_token(server, owner_email), 204)
    r = userinfo(discovery, token["access_token"])
    assert r.status_code == 401 and "invalid_token" in r.headers.get("WWW-Authenticate", ""), (r.status_code, r.headers)
    oauth_error(refresh(discovery, client, token["refresh_token"]), 400, "invalid_grant")


def test_template_presets_show_no_org_list_without_the_orgs_scope(server, discovery, page):
    client = register(server, first_party=True, claim_template={"presets": ["hasura", "org_roles"]})
    address = person(server)
    own, joined = two_orgs(server, address)
    session = rp(client, discovery, scope="openid")
    token, _, nonce, _ = login_flow(page, session, discovery, address, consent_first=False)
    for seen in (id_token_claims(discovery, client, token["id_token"], "RS256", nonce), userinfo(discovery, token["access_token"]).json()):
        assert seen["org_roles"] == [], seen
        # Roles held in other orgs are not offered to the app (anyone can own an org).
        assert seen[HASURA]["x-hasura-allowed-roles"] == ["user"] and seen[HASURA]["x-hasura-default-role"] == "user", seen


def test_prompt_none_does_not_tell_members_from_others_before_consent(server, discovery, page):
    client = register(server)  # not first-party: consent is needed
    address = person(server)
    own, _ = two_orgs(server, address)
    stranger = user_token(server, person(server, name="Stranger"))
    theirs = new_org(server, stranger, "Not yours")
    signed_out(page, discovery)
    page.get(server.url("/login"))
    sign_in_there(page, address)
    # The sign-in lands before the next request goes out (else the two navigations race).
    WebDriverWait(page, TIMEOUT).until(lambda d: urlsplit(d.current_url).path == "/account", f"not signed in: {page.current_url}")
    # Signed in, not consented, prompt=none: the same answer for the person's org and another's,
    # so a client learns nothing about memberships without the person.
    answers = [authorization_error(page, discovery, client, address, organization=org, prompt="none")["error"] for org in (own, theirs)]
    assert answers == [["consent_required"], ["consent_required"]], answers


def test_a_refresh_may_narrow_the_scope_never_widen_it(server, discovery, page):
    client = register(server, first_party=True, scopes=ALL_SCOPES)
    session = rp(client, discovery, scope="openid email offline_access")
    first, _, _, _ = login_flow(page, session, discovery, person(server), consent_first=False)
    # Wider (profile was not granted): refused before the token is spent, so it still works.
    r = token_request(discovery, client, grant_type="refresh_token", refresh_token=first["refresh_token"], scope="openid email profile")
    oauth_error(r, 400, "invalid_scope")
    r = token_request(discovery, client, grant_type="refresh_token", refresh_token=first["refresh_token"], scope="openid offline_access")
    assert r.status_code == 200, r.text
    narrowed = r.json()
    assert narrowed["scope"].split() == ["openid", "offline_access"]
    info = userinfo(discovery, narrowed["access_token"]).json()
    assert "email" not in info and info["sub"], info
    # The session keeps what was granted: a plain refresh brings email back.
    r = refresh(discovery, client, narrowed["refresh_token"])
    assert r.status_code == 200 and set(r.json()["scope"].split()) == {"openid", "email", "offline_access"}, r.text


def test_oidcc_prompt_consent(server, discovery, page):
    """prompt=consent asks again even when the person consented before, and even for a first-party
    app; prompt=none cannot be combined with it."""
    for first_party in (False, True):
        client = register(server, first_party=first_party)
        session = rp(client, discovery)
        login_flow(page, session, discovery, person(server), consent_first=not first_party)
        url, state, _ = authorization_url(session, discovery, uuid.uuid4().hex * 2)
        page.get(url)
        assert reaches_callback_or_consent(page) == "callback", "asked again without prompt=consent"
        url, state, _ = authorization_url(session, discovery, uuid.uuid4().hex * 2, prompt="consent")
        page.get(url)
        assert reaches_callback_or_consent(page) == "consent", f"prompt=consent did not ask (first-party: {first_party})"
        consent(page)
        query = parse_qs(urlsplit(redirected_to(page)).query)
        assert "code" in query and query["state"] == [state], query
        url, _, _ = authorization_url(session, discovery, uuid.uuid4().hex * 2, prompt="none consent")
        page.get(url)
        assert parse_qs(urlsplit(redirected_to(page)).query)["error"] == ["invalid_request"]
