"""Remembers every password and token the black-box suite sends or receives, and every server
log it produced, so that test_zz_log_secrets.py can check that no secret reached a log.

Installed by conftest.py: it wraps `requests.Session.send`, which every `requests` call uses.
"""
import json
from pathlib import Path

import requests

# Request fields that carry secrets, and response fields that return them.
REQUEST_FIELDS = {"password", "new_password", "current_password", "token", "refresh_token", "invite_token"}
RESPONSE_FIELDS = {"access_token", "refresh_token", "key"}
MIN_LENGTH = 8  # shorter strings ("x", "wrong") would match unrelated log text

SECRETS: set[str] = set()
LOG_FILES: list[Path] = []
LOG_TEXTS: list[tuple[str, str]] = []


def note(value):
    if isinstance(value, str) and len(value) >= MIN_LENGTH:
        SECRETS.add(value)


def _walk(obj, fields):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in fields:
                note(v)
            _walk(v, fields)
    elif isinstance(obj, list):
        for v in obj:
            _walk(v, fields)


def register_log(path: Path):
    LOG_FILES.append(Path(path))


def collect_log(path: Path):
    """Keeps a server's log once it has stopped (its folder may be deleted afterwards)."""
    try:
        LOG_TEXTS.append((str(path), Path(path).read_text(errors="replace")))
    except OSError:
        pass


def all_logs():
    seen = {p for p, _ in LOG_TEXTS}
    texts = list(LOG_TEXTS)
    for path in LOG_FILES:
        if str(path) not in seen and path.exists():
            texts.append((str(path), path.read_text(errors="replace")))
    return texts


_original_send = requests.Session.send


def _recording_send(self, request, **kwargs):
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        note(auth[7:].strip())
    if request.body:
        try:
            _walk(json.loads(request.body), REQUEST_FIELDS)
        except (ValueError, TypeError, UnicodeDecodeError, RecursionError):
            pass
    response = _original_send(self, request, **kwargs)
    if "json" in response.headers.get("Content-Type", "") and not kwargs.get("stream"):
        try:
            _walk(response.json(), RESPONSE_FIELDS)
        except (ValueError, RecursionError):
            pass
    return response


def install():
    requests.Session.send = _recording_send
