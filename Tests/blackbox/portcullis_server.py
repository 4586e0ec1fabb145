"""Runs a built `portcullis serve` as a real process on loopback; shared by the black-box
tests and `make bench`. Standard library only, so benchmarks need nothing extra."""

import contextlib
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

try:  # the black-box suite checks every server log for secrets; benchmarks don't need it
    import secrets_seen
except ImportError:  # pragma: no cover
    secrets_seen = None

START_TIMEOUT = 30.0
# What the servers started here accept on /metrics (PORTCULLIS_METRICS_TOKEN): metrics are not public.
METRICS_TOKEN = "test-metrics-token-0123456789abcdef0123"


def read_metrics(base: str, timeout: float = 10) -> str:
    """The server's Prometheus text, read as a scraper does (with the metrics bearer token)."""
    request = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    return urllib.request.urlopen(request, timeout=timeout).read().decode()


class ServerStartError(RuntimeError):
    """The server exited during start-up or never answered /health; carries its log tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def running_server(binary: Path, workdir: Path, **settings: str):
    """Starts the server with its own SQLite file, master key and port under `workdir`
    (also its cwd, so a default ./data lands there) and yields its base URL.
    `settings` are extra PORTCULLIS_* variables, e.g. ISSUER="…"."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Drop the caller's PORTCULLIS_* so a developer's shell cannot steer the server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env.update(
        PORTCULLIS_DATABASE_URL=f"sqlite:{workdir}/p.db",
        PORTCULLIS_PORT=str(port),
        PORTCULLIS_HOST="127.0.0.1",
        PORTCULLIS_MASTER_KEY_FILE=f"{workdir}/master.key",
        # Where clients really reach it; the issuer and audience default to this.
        PORTCULLIS_PUBLIC_URL=base,
        # The most verbose logs, one JSON object a line: what the log-secret check reads.
        PORTCULLIS_LOG_FORMAT="json",
        PORTCULLIS_LOG_LEVEL="debug",
        PORTCULLIS_METRICS_TOKEN=METRICS_TOKEN,
    )
    env.update({f"PORTCULLIS_{k}": v for k, v in settings.items()})
    log_path = workdir / "server.log"
    if secrets_seen:
        secrets_seen.register_log(log_path)
    try:
        with serve_process(binary, workdir, env, base, log_path):
            yield base
    finally:
        if secrets_seen:
            secrets_seen.collect_log(log_path)


@contextlib.contextmanager
def serve_process(binary: Path, workdir: Path, env: dict, base: str, log_path: Path):
    """`portcullis serve` with exactly `env`, its output in `log_path`; returns once `base`/health
    answers (ServerStartError if it exits or never does) and stops the server afterwards."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(binary), "serve"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if proc.poll() is not None:
                    raise ServerStartError(f"server exited with {proc.returncode} during start-up:\n{log_tail(log_path)}")
                try:
                    with urllib.request.urlopen(base + "/health", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise ServerStartError(f"server not healthy after {START_TIMEOUT:.0f}s:\n{log_tail(log_path)}")
                time.sleep(0.1)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

@contextlib.contextmanager
def smtp_sink(tmp: Path):
    """`make test`'s SMTP sink when it runs one (PORTCULLIS_TEST_SMTP_URL/_DIR), else one of our own
    under `tmp`. Yields (smtp URL, directory, names of the messages already there)."""
    url, directory = os.environ.get("PORTCULLIS_TEST_SMTP_URL"), os.environ.get("PORTCULLIS_TEST_SMTP_DIR")
    if url and directory:
        os.makedirs(directory, exist_ok=True)
        yield url, Path(directory), set(os.listdir(directory))
        return
    directory = tmp / "mail"
    sink_script = Path(__file__).resolve().parents[2] / "scripts" / "smtp_sink.py"
    proc = subprocess.Popen(["python3", str(sink_script), "--dir", str(directory), "--port", "0",
                             "--user", "portcullis", "--password", "sink-secret"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("ready "), f"the SMTP sink did not start: {line!r}"
        port = int(line.split()[1])
        yield f"smtp://portcullis:sink-secret@127.0.0.1:{port}?insecure_auth=1", directory, set()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
