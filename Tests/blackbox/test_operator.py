"""What an operator meets at the command line: help and version, one clear line for each start-up
failure (naming the variable, the path and why), admin commands that refuse a missing database,
the listening line only after the bind, and a SIGTERM that says what it does."""
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

BIN = Path(os.environ.get("PORTCULLIS_BIN", Path(__file__).resolve().parents[2] / ".build" / "debug" / "portcullis"))


def env_for(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env["PORTCULLIS_PORT"] = "0"
    env.update({f"PORTCULLIS_{k}": v for k, v in extra.items()})
    return env


def run(tmp_path, *args, timeout=30, **extra):
    return subprocess.run([str(BIN), *args], cwd=tmp_path, env=env_for(tmp_path, **extra), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def test_version_and_help(tmp_path):
    version = run(tmp_path, "--version")
    assert version.returncode == 0
    assert re.fullmatch(r"portcullis \d+\.\d+\.\d+ \(commit ([0-9a-f]{12}|unknown)\)\n", version.stdout), version.stdout
    bare = run(tmp_path)
    assert bare.returncode == 0 and "USAGE: portcullis <subcommand>" in bare.stdout and "serve" in bare.stdout
    assert not (tmp_path / "data").exists(), "no arguments must not start a server or make a database"
    serve_help = run(tmp_path, "serve", "--help").stdout
    for variable in ["PORTCULLIS_DATABASE_URL", "PORTCULLIS_PORT", "PORTCULLIS_PUBLIC_URL", "PORTCULLIS_SMTP_URL", "PORTCULLIS_MASTER_KEY_FILE"]:
        assert variable in serve_help, serve_help


@pytest.mark.parametrize("command", [["keys", "rotate"], ["backup"], ["admin", "outbox"], ["admin", "create-root", "--email", "a@example.com"]])
def test_admin_commands_refuse_a_missing_database(tmp_path, command):
    result = run(tmp_path, *command, ROOT_EMAIL="a@example.com", ROOT_PASSWORD="correct horse battery")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("portcullis: PORTCULLIS_DATABASE_URL: no database at ./data/portcullis.db"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists(), "nothing may be created"


def test_admin_commands_do_not_make_a_master_key(tmp_path):
    # A database made by `migrate`, but no master key here: rotating would seal a signing key with
    # a new key nobody else has. The command refuses and creates nothing.
    assert run(tmp_path, "migrate").returncode == 0
    result = run(tmp_path, "keys", "rotate")
    assert result.returncode == 1
    assert result.stderr == "portcullis: PORTCULLIS_MASTER_KEY_FILE: ./data/master.key does not exist; run this command where the instance's master key is (or set PORTCULLIS_MASTER_KEY or PORTCULLIS_MASTER_KEY_FILE)\n", result.stderr
    assert not (tmp_path / "data" / "master.key").exists()


def test_a_file_that_is_not_a_database_is_not_called_a_directory_problem(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "portcullis.db").write_text("this is not SQLite")
    result = run(tmp_path, "keys", "rotate")
    assert result.returncode == 1 and result.stderr.startswith("portcullis: PORTCULLIS_DATABASE_URL: "), result.stderr
    assert "not a directory" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_unwritable_data_path_and_master_key_name_variable_path_and_reason(tmp_path):
    (tmp_path / "plain").write_text("a file, not a directory")
    db = run(tmp_path, "serve", DATABASE_URL="sqlite:./plain/portcullis.db")
    assert db.returncode == 1
    assert re.fullmatch(r"portcullis: PORTCULLIS_DATABASE_URL: cannot create the directory \S*plain for the SQLite database: \S*plain is a file, not a directory\n", db.stderr), db.stderr
    key = run(tmp_path, "serve", DATABASE_URL=f"sqlite:{tmp_path}/p.db", MASTER_KEY_FILE="./plain/master.key")
    assert key.returncode == 1
    assert "PORTCULLIS_MASTER_KEY_FILE: cannot create the directory ./plain for ./plain/master.key" in key.stderr and "is a file, not a directory" in key.stderr, key.stderr
    (tmp_path / "garbage.key").write_text("not a key\n")
    bad = run(tmp_path, "serve", DATABASE_URL=f"sqlite:{tmp_path}/p2.db", MASTER_KEY_FILE="./garbage.key")
    assert "PORTCULLIS_MASTER_KEY_FILE: ./garbage.key does not hold a master key" in bad.stderr, bad.stderr


def test_postgres_unreachable_is_one_line_with_host_port_and_reason(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    result = run(tmp_path, "serve", DATABASE_URL=f"postgres://someone:Sup3rSecretPw@127.0.0.1:{port}/app")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"portcullis: PORTCULLIS_DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:{port} (database app, user someone): connection refused (is PostgreSQL running and listening on that host and port?)", result.stderr
    assert "Sup3rSecretPw" not in result.stdout + result.stderr
    assert lines[-1].count("(") == lines[-1].count(")")


def test_port_in_use_names_the_variable_and_is_never_announced(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = run(tmp_path, "serve", PORT=str(port), DATABASE_URL=f"sqlite:{tmp_path}/p.db")
    assert result.returncode == 1
    assert f"portcullis: PORTCULLIS_PORT: 127.0.0.1:{port} is already in use" in result.stderr, result.stderr
    assert "listening" not in result.stdout.lower(), result.stdout


def test_sigterm_says_shutting_down_then_stopped(tmp_path):
    proc = subprocess.Popen([str(BIN), "serve"], cwd=tmp_path, env=env_for(tmp_path, DATABASE_URL=f"sqlite:{tmp_path}/p.db"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("Portcullis listening on"):
                break
        assert re.match(r"Portcullis listening on http://127\.0\.0\.1:(\d+)", lines[-1]), "".join(lines)
        assert int(re.match(r".*:(\d+) ", lines[-1]).group(1)) > 0, "the bound port, not 0"
        assert any("starting portcullis " in l for l in lines), "".join(lines)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, rest
    shutting = [l for l in rest.splitlines() if "shutting down" in l]
    assert shutting and "requests_in_flight=0" in shutting[0], rest
    assert rest.strip().splitlines()[-1].endswith("stopped"), rest
