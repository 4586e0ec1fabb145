"""deploy/: the systemd unit passes `systemd-analyze verify` and keeps its sandbox, the env example
names only variables the server reads (and every one of them) with values the server accepts, and
the container image builds and serves where a container engine works."""

import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import DEFAULT_BIN, REPO_ROOT
from portcullis_server import running_server

DEPLOY = REPO_ROOT / "deploy"
UNIT = DEPLOY / "portcullis.service"
ENV_EXAMPLE = DEPLOY / "portcullis.env.example"
CONFIG_SWIFT = REPO_ROOT / "Sources" / "Server" / "App" / "Config.swift"
INSTALLED_BINARY = "/opt/portcullis/portcullis"
STATE_DIR = "/var/lib/portcullis"


def binary() -> Path:
    path = Path(os.environ.get("PORTCULLIS_BIN", DEFAULT_BIN))
    if not path.is_file():
        pytest.fail(f"server binary {path} not found; run `swift build` first", pytrace=False)
    return path


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd): cannot verify the unit")
    return path


def unit_settings(text: str) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> values, in order (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"not a unit line: {raw!r}"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def unit_copy_with_binary(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at the built binary: verify checks that the command exists."""
    text = UNIT.read_text()
    assert text.count(f"ExecStart={INSTALLED_BINARY} serve") == 1, "ExecStart is not the installed binary's serve"
    copy = tmp_path / "portcullis.service"
    copy.write_text(text.replace(f"ExecStart={INSTALLED_BINARY} ", f"ExecStart={binary()} "))
    return copy


def test_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = systemd_analyze()
    result = subprocess.run([analyze, "verify", str(unit_copy_with_binary(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    # Unknown or misspelt keys are only warnings to verify ("Unknown key name ..., ignoring"): none.
    assert output == "", output


def test_unit_sandbox_exposure_is_low(tmp_path):
    analyze = systemd_analyze()
    result = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(unit_copy_with_binary(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for portcullis\.service: ([0-9.]+)", output)
    assert match, output[-2000:]
    # 0 is fully locked down, 10 unprotected; systemd calls up to 2.0 "OK". This unit scores 1.4.
    assert float(match.group(1)) <= 2.0, output[-4000:]


def test_unit_settings():
    unit = unit_settings(UNIT.read_text())
    service = unit["Service"]

    def one(key: str) -> str:
        values = service.get(key, [])
        assert len(values) == 1, f"{key}= is {values}, want one value"
        return values[0]

    assert one("ExecStart") == f"{INSTALLED_BINARY} serve"
    assert one("User") == "portcullis" and one("Group") == "portcullis"
    assert one("EnvironmentFile") == "/etc/portcullis/portcullis.env"
    assert one("StateDirectory") == "portcullis"
    assert one("WorkingDirectory") == STATE_DIR
    assert STATE_DIR in one("ReadWritePaths").split()
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "Restart": "on-failure"}.items():
        assert one(key) == value, f"{key}={one(key)}, want {value}"
    stop = re.fullmatch(r"(\d+)s?", one("TimeoutStopSec"))
    assert stop and 30 <= int(stop.group(1)) <= 120, f"TimeoutStopSec={one('TimeoutStopSec')}: leave the drain 30..120 s"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def known_variables() -> set[str]:
    """The PORTCULLIS_* names AppConfig.fromEnvironment reads: value("X"), count("X", ...) and env["PORTCULLIS_X"]."""
    source = CONFIG_SWIFT.read_text()
    names = set(re.findall(r'\bvalue\("([A-Z0-9_]+)"\)', source))
    names |= set(re.findall(r'\bcount\("([A-Z0-9_]+)"', source))
    names |= set(re.findall(r'env\["PORTCULLIS_([A-Z0-9_]+)"\]', source))
    # Not vacuous: the parse finds the settings every deployment has.
    assert {"DATABASE_URL", "PUBLIC_URL", "MASTER_KEY_FILE", "ROOT_PASSWORD", "IP_BURST"} <= names, sorted(names)
    assert len(names) >= 35, sorted(names)
    return {f"PORTCULLIS_{n}" for n in names}


def env_example() -> tuple[dict[str, str], dict[str, str]]:
    """(active settings, commented-out ones), each name -> value, checked for EnvironmentFile shape."""
    active: dict[str, str] = {}
    commented: dict[str, str] = {}
    for number, raw in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        match = re.fullmatch(r"(#?)\s*(PORTCULLIS_[A-Z0-9_]+)=(.*)", raw)
        if match:
            target = commented if match.group(1) else active
            name, value = match.group(2), match.group(3)
            assert name not in target, f"line {number}: {name} appears twice"
            assert value == value.strip() and not value.startswith(("'", '"')), f"line {number}: quote-free, no padding"
            target[name] = value
        else:
            assert raw == "" or raw.startswith("#"), f"line {number} is neither a setting nor a comment: {raw!r}"
    return active, commented


def test_env_example_names_only_variables_the_server_reads():
    known = known_variables()
    active, commented = env_example()
    assert len(active) >= 5, active
    unknown = (set(active) | set(commented)) - known
    assert not unknown, f"not read by the server (Sources/Server/App/Config.swift): {sorted(unknown)}"
    missing = known - set(active) - set(commented)
    assert not missing, f"read by the server but not in {ENV_EXAMPLE.name}: {sorted(missing)}"
    # The example keeps its data where the unit's sandbox lets it write.
    assert active["PORTCULLIS_DATABASE_URL"] == f"sqlite:{STATE_DIR}/portcullis.db"
    assert active["PORTCULLIS_MASTER_KEY_FILE"].startswith(STATE_DIR + "/")


# Settings the test must replace to run on this machine: where it listens and keeps its data,
# and files the example names that exist only on a configured host.
LOCAL = {"PORTCULLIS_HOST", "PORTCULLIS_PORT", "PORTCULLIS_DATABASE_URL", "PORTCULLIS_MASTER_KEY_FILE",
         "PORTCULLIS_POLICY_FILE", "PORTCULLIS_TEMPLATES_DIR"}


def _start_with(settings: dict[str, str], tmp_path: Path) -> dict:
    short = {k.removeprefix("PORTCULLIS_"): v for k, v in settings.items() if k not in LOCAL}
    with running_server(binary(), tmp_path, **short) as base:
        assert requests.get(base + "/ready", timeout=10).status_code == 200
        return requests.get(base + "/.well-known/openid-configuration", timeout=10).json()


def test_server_starts_with_the_env_example(tmp_path):
    active, _ = env_example()
    discovery = _start_with(active, tmp_path)
    assert discovery["issuer"] == active["PORTCULLIS_PUBLIC_URL"]


def test_server_accepts_the_commented_example_values(tmp_path):
    """Uncommenting any example line must not stop start-up: all of them at once, over the active ones."""
    active, commented = env_example()
    merged = {**active, **{k: v for k, v in commented.items() if v}}
    assert len(merged) - len(active) >= 20
    discovery = _start_with(merged, tmp_path)
    assert discovery["issuer"] == commented["PORTCULLIS_ISSUER"]


# --- the container image -----------------------------------------------------------------------

def container_engine() -> str:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no container engine: the docker CLI is not installed")
    info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"no working container engine: `docker info` failed: {reason}")
    return docker


def test_container_image_builds_and_serves():
    docker = container_engine()
    tag = f"portcullis-deploy-test:{uuid.uuid4().hex[:8]}"
    name = f"portcullis-deploy-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}  # BuildKit reads deploy/Dockerfile.dockerignore
    build = subprocess.run([docker, "build", "-f", str(DEPLOY / "Dockerfile"), "-t", tag, str(REPO_ROOT)],
                           capture_output=True, text=True, timeout=3600, env=env)
    assert build.returncode == 0, f"docker build failed:\n{(build.stdout + build.stderr)[-6000:]}"
    try:
        run = subprocess.run([docker, "run", "-d", "--name", name, "-p", "127.0.0.1::8080", tag],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        port = subprocess.run([docker, "port", name, "8080/tcp"], capture_output=True, text=True,
                              timeout=30).stdout.strip().splitlines()[0].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + "/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            logs = subprocess.run([docker, "logs", name], capture_output=True, text=True, timeout=30)
            assert time.monotonic() < deadline, f"no /health after 60 s:\n{(logs.stdout + logs.stderr)[-3000:]}"
            time.sleep(0.5)
        assert requests.get(base + "/ready", timeout=10).status_code == 200
        uid = subprocess.run([docker, "exec", name, "id", "-u"], capture_output=True, text=True, timeout=30).stdout.strip()
        assert uid not in ("", "0"), f"the server runs as uid {uid!r}"
        # Its data is on the volume: the SQLite file and master key are there.
        listing = subprocess.run([docker, "exec", name, "ls", STATE_DIR], capture_output=True, text=True, timeout=30).stdout
        assert {"portcullis.db", "master.key"} <= set(listing.split()), listing
        # SIGTERM drains and exits 0.
        subprocess.run([docker, "stop", "-t", "45", name], capture_output=True, timeout=120, check=True)
        code = subprocess.run([docker, "inspect", "-f", "{{.State.ExitCode}}", name], capture_output=True, text=True,
                              timeout=30).stdout.strip()
        assert code == "0", f"exit code after docker stop: {code}"
    finally:
        subprocess.run([docker, "rm", "-f", "-v", name], capture_output=True, timeout=120)
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True, timeout=120)
