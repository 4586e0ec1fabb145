"""Black-box fixtures: run the already-built server binary as a real process.

Nothing is built here (`make test` builds first). The server gets its own temp dir,
SQLite file, master key and loopback port, so runs never share state.
"""

import os
from pathlib import Path

import pytest

import secrets_seen
from portcullis_server import ServerStartError, running_server

# Every password and token the suite sends or receives is remembered for test_zz_log_secrets.py.
secrets_seen.install()

REPO_ROOT = Path(__file__).resolve().parents[2]
# PORTCULLIS_BIN lets `make test CONFIG=release` (or a developer) point at another build.
DEFAULT_BIN = REPO_ROOT / ".build" / "debug" / "portcullis"


class Server:
    def __init__(self, base_url: str, log_path: Path):
        self.base_url = base_url
        self.issuer = base_url  # running_server sets the public URL, which the issuer defaults to
        self.log_path = log_path

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    binary = Path(os.environ.get("PORTCULLIS_BIN", DEFAULT_BIN))
    if not binary.is_file():
        # A failure, not a skip: a missing binary must never turn into a green run.
        pytest.fail(f"server binary {binary} not found; run `swift build` first", pytrace=False)

    tmp = tmp_path_factory.mktemp("portcullis")
    try:
        with running_server(binary, tmp, SIGNUP="open") as base:
            yield Server(base, tmp / "server.log")
    except ServerStartError as error:
        pytest.fail(str(error), pytrace=False)
