"""Access and refresh tokens seen from outside, as a client library would (SPEC §2, §7, §10, §11)."""

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import requests
from cryptography.hazmat.primitives import serialization

PASSWORD = "correct horse battery staple"


def _signup_and_login(server):
    email = f"bb-{uuid.uuid4().hex[:12]}@example.com"
    r = requests.post(server.url("/v1/users"), json={"email": email, "password": PASSWORD, "name": "Black Box"})
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["email"] == email
    uuid.UUID(user["id"])

    r = requests.post(server.url("/v1/auth/login"), json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    tokens = r.json()
    _assert_token_pair(tokens)
    return user, tokens


def _assert_token_pair(tokens):
    for field in ("access_token", "refresh_token", "token_type", "expires_in"):
        assert field in tokens, f"missing {field}: {tokens}"
    assert tokens["token_type"] == "Bearer"
    assert isinstance(tokens["expires_in"], int) and tokens["expires_in"] > 0


def _me(server, token):
    return requests.get(server.url("/v1/me"), headers={"Authorization": f"Bearer {token}"})


def _assert_unauthenticated(r):
    assert r.status_code == 401, (r.status_code, r.text)
    assert r.headers.get("content-type", "").startswith("application/problem+json"), r.headers
    assert r.json()["code"] == "unauthenticated"


def _discovery(server):
    r = requests.get(server.url("/.well-known/openid-configuration"))
    assert r.status_code == 200, r.text
    conf = r.json()
    assert conf["issuer"] == server.issuer
    assert conf["jwks_uri"]
    return conf


def _jwks(conf):
    r = requests.get(conf["jwks_uri"])
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    assert keys, "JWKS has no keys"
    return keys


def _signing_key(jwks, kid):
    matches = [k for k in jwks if k.get("kid") == kid]
    assert len(matches) == 1, f"kid {kid} not exactly once in JWKS {[k.get('kid') for k in jwks]}"
    return jwt.PyJWK(matches[0])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict, payload: dict, sign) -> str:
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    return signing_input + "." + sign(signing_input.encode())


def test_login_token_verifies_and_refresh_reuse_revokes_session(server):
    user, tokens = _signup_and_login(server)
    conf = _discovery(server)
    issuer = conf["issuer"]

    access = tokens["access_token"]
    header = jwt.get_unverified_header(access)
    assert header.get("typ") == "at+jwt"
    assert header.get("kid")
    assert header.get("alg") == "ES256"

    key = _signing_key(_jwks(conf), header["kid"])
    claims = jwt.decode(access, key=key.key, algorithms=["ES256"], audience=issuer, issuer=issuer,
                        options={"require": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"]})
    for claim in ("iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid"):
        assert claim in claims, f"missing claim {claim}: {claims}"
    assert claims["sub"] == user["id"]
    now = time.time()
    assert claims["iat"] <= now + 5 and claims["exp"] > now

    r = _me(server, access)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == user["id"]

    # Rotation: a refresh gives a new pair, and the new access token works.
    old_refresh = tokens["refresh_token"]
    r = requests.post(server.url("/v1/auth/refresh"), json={"refresh_token": old_refresh})
    assert r.status_code == 200, r.text
    fresh = r.json()
    _assert_token_pair(fresh)
    assert fresh["refresh_token"] != old_refresh
    fresh_claims = jwt.decode(fresh["access_token"], key=key.key, algorithms=["ES256"], audience=issuer,
                              issuer=issuer)
    assert fresh_claims["sub"] == user["id"]
    assert fresh_claims["sid"] == claims["sid"]
    assert _me(server, fresh["access_token"]).status_code == 200

    # Reuse of the rotated-out refresh token is theft: refused, and the whole session dies at once.
    r = requests.post(server.url("/v1/auth/refresh"), json={"refresh_token": old_refresh})
    _assert_unauthenticated(r)
    _assert_unauthenticated(_me(server, fresh["access_token"]))
    _assert_unauthenticated(_me(server, access))
    r = requests.post(server.url("/v1/auth/refresh"), json={"refresh_token": fresh["refresh_token"]})
    _assert_unauthenticated(r)


def test_alg_none_and_hs256_with_public_key_are_rejected(server):
    user, tokens = _signup_and_login(server)
    access = tokens["access_token"]
    # The genuine token works, so the rejections below are about the algorithm alone.
    assert _me(server, access).status_code == 200

    header = jwt.get_unverified_header(access)
    payload = jwt.decode(access, options={"verify_signature": False})
    assert payload["sub"] == user["id"]
    jwk = _signing_key(_jwks(_discovery(server)), header["kid"])

    forged = []
    none_header = {**header, "alg": "none"}
    forged.append(_forge(none_header, payload, lambda _: ""))
    forged.append(_forge(none_header, payload, lambda _: access.rsplit(".", 1)[1]))
    forged.append(_forge({**header, "alg": "None"}, payload, lambda _: ""))

    # Classic key confusion: HMAC keyed with the public key as a verifier might hold it.
    public = jwk.key
    key_bytes = [
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint),
    ]
    for secret in key_bytes:
        forged.append(_forge({**header, "alg": "HS256"}, payload,
                             lambda msg, k=secret: _b64(hmac.new(k, msg, hashlib.sha256).digest())))

    for token in forged:
        _assert_unauthenticated(_me(server, token))

    # Still fine afterwards: the forgeries did not disturb the real session.
    assert _me(server, access).status_code == 200
