"""Black-box fixtures: run the already-built server binary as a real process.

Nothing is built here (`make test` builds first). The server gets its own temp dir,
SQLite file, master key and loopback port, so runs never share state.
"""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
# PORTCULLIS_BIN lets `make test CONFIG=release` (or a developer) point at another build.
DEFAULT_BIN = REPO_ROOT / ".build" / "debug" / "portcullis"
START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Server:
    def __init__(self, base_url: str, log_path: Path):
        self.base_url = base_url
        self.issuer = base_url
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
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    # Drop the caller's PORTCULLIS_* so a developer's shell cannot steer the server under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env.update(
        PORTCULLIS_DATABASE_URL=f"sqlite:{tmp}/p.db",
        PORTCULLIS_PORT=str(port),
        PORTCULLIS_HOST="127.0.0.1",
        PORTCULLIS_MASTER_KEY_FILE=f"{tmp}/master.key",
        PORTCULLIS_ISSUER=base,
        PORTCULLIS_SIGNUP="open",
    )
    log_path = tmp / "server.log"
    log = open(log_path, "wb")
    # cwd=tmp: any default relative path (./data) lands in the temp dir, not the repo.
    proc = subprocess.Popen(
        [str(binary), "serve"], cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode} during start-up:\n{_log_tail(log_path)}",
                            pytrace=False)
            try:
                if requests.get(base + "/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not healthy after {START_TIMEOUT:.0f}s:\n{_log_tail(log_path)}",
                            pytrace=False)
            time.sleep(0.1)
        yield Server(base, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
