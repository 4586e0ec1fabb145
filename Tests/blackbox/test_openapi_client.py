"""A client generated from the served /openapi.yaml works: openapi-python-client builds it without a
warning (every error response kept), and through it a user signs up, logs in and reads /v1/me, and
a 401 comes back as the generated Problem model.

The generator's input is what GET /openapi.yaml answers, not docs/openapi.yaml: that is what
client authors download. Its `servers` entry must name the server's public URL."""

import importlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
import yaml

import secrets_seen

PACKAGE = "portcullis_client"
PROBLEM_REF = "#/components/schemas/Problem"
PASSWORD = "generated-client-password-1"


@pytest.fixture(scope="module")
def served_document(server):
    response = requests.get(server.url("/openapi.yaml"), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/yaml")
    return response.text


@pytest.fixture(scope="module")
def generated(served_document, tmp_path_factory):
    """Runs the generator on the served document in a temp dir; yields (its output, the package)."""
    tmp = tmp_path_factory.mktemp("openapi-client")
    (tmp / "openapi.yaml").write_text(served_document)
    config = {
        # GET /openapi.yaml answers YAML, which the generator knows nothing of; read it as text,
        # as a client author would tell it to. Without this its one warning is about that 200.
        "content_type_overrides": {"application/yaml": "text/plain"},
        # No ruff pass over the generated code: importing and using it is the test.
        "post_hooks": [],
    }
    (tmp / "config.json").write_text(json.dumps(config))
    result = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(tmp / "openapi.yaml"),
         "--output-path", str(tmp / PACKAGE), "--meta", "none", "--config", str(tmp / "config.json")],
        capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"openapi-python-client failed:\n{output[-4000:]}"
    sys.path.insert(0, str(tmp))
    try:
        yield output, importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(name: str):
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_served_document_names_the_public_url(served_document, server):
    document = yaml.safe_load(served_document)
    assert document["openapi"].startswith("3.1")
    assert document["servers"][0]["url"] == server.base_url, (
        f"servers[0].url of the served /openapi.yaml is {document['servers'][0]['url']!r}, "
        f"not the server's PORTCULLIS_PUBLIC_URL {server.base_url!r}"
    )


def test_every_error_response_is_the_one_problem_schema(served_document):
    """The shape the generator needs: each 4xx/5xx response is application/problem+json whose schema
    refers to Problem itself (an allOf around it is what made the generator drop them)."""
    document = yaml.safe_load(served_document)
    components = document["components"]["responses"]
    checked, wrong = 0, []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in {"get", "put", "post", "patch", "delete"}:
                continue
            for status, response in operation["responses"].items():
                if not status.startswith(("4", "5")):
                    continue
                if "$ref" in response:
                    response = components[response["$ref"].rsplit("/", 1)[1]]
                content = response.get("content", {})
                schema = content.get("application/problem+json", {}).get("schema")
                checked += 1
                if list(content) != ["application/problem+json"] or schema != {"$ref": PROBLEM_REF}:
                    wrong.append(f"{method.upper()} {path} {status}: {json.dumps(content)[:200]}")
    assert checked > 250, f"only {checked} error responses found: is this the whole document?"
    assert not wrong, "error responses that are not the Problem schema:\n" + "\n".join(wrong[:20])


def test_generator_keeps_every_response(generated):
    output, _ = generated
    assert "Generating" in output, f"unexpected generator output:\n{output[-2000:]}"
    dropped = [line for line in output.splitlines() if "will be omitted" in line or "WARNING" in line]
    assert not dropped, f"{len(dropped)} generator warnings, e.g.:\n" + "\n".join(dropped[:10]) + f"\n\n{output[-3000:]}"
    assert "Warning" not in output, output[-3000:]


def test_signup_login_me_and_a_problem_through_the_generated_client(generated, server):
    _, package = generated
    signup = _module("api.auth.signup")
    login = _module("api.auth.login")
    get_me = _module("api.me.get_me")
    models = _module("models")
    # raise_on_unexpected_status: a status the document does not list raises instead of parsing to None.
    client = package.Client(base_url=server.base_url, raise_on_unexpected_status=True)

    email = f"generated-{uuid.uuid4().hex[:12]}@example.com"
    secrets_seen.note(PASSWORD)  # httpx, not requests: the log-secret check learns it here
    created = signup.sync_detailed(client=client, body=models.SignupRequest(email=email, password=PASSWORD, name="Gen"))
    assert created.status_code == 201, created.content
    assert isinstance(created.parsed, models.User), created.parsed
    assert created.parsed.email == email

    # An error the generated client parses too: the same address again is 409 email_taken.
    again = signup.sync_detailed(client=client, body=models.SignupRequest(email=email, password=PASSWORD))
    assert again.status_code == 409, again.content
    assert isinstance(again.parsed, models.Problem), again.parsed
    assert again.parsed.code == "email_taken"

    tokens = login.sync_detailed(client=client, body=models.LoginRequest(email=email, password=PASSWORD))
    assert tokens.status_code == 200, tokens.content
    assert isinstance(tokens.parsed, models.Tokens), tokens.parsed
    secrets_seen.note(tokens.parsed.access_token)
    secrets_seen.note(tokens.parsed.refresh_token)
    assert tokens.parsed.user.id == created.parsed.id

    authed = package.AuthenticatedClient(base_url=server.base_url, token=tokens.parsed.access_token,
                                         raise_on_unexpected_status=True)
    me = get_me.sync_detailed(client=authed)
    assert me.status_code == 200, me.content
    assert isinstance(me.parsed, models.User), me.parsed
    assert (me.parsed.id, me.parsed.email) == (created.parsed.id, email)

    bad = package.AuthenticatedClient(base_url=server.base_url, token="not-a-real-token",
                                      raise_on_unexpected_status=True)
    refused = get_me.sync_detailed(client=bad)
    assert refused.status_code == 401, refused.content
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    problem = refused.parsed
    assert isinstance(problem, models.Problem), f"401 parsed as {problem!r}"
    assert problem.code == "unauthenticated"
    assert problem.status == 401
    assert problem.type_ == "https://portcullis.dev/problems/unauthenticated"
