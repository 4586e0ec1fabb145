"""Bad configuration stops start-up with one line naming the variable (SPEC §9). For the URLs
that carry credentials (PORTCULLIS_DATABASE_URL, PORTCULLIS_SMTP_URL) that line shows the
expected shape and never the value: no part of the user name or password reaches stderr."""
import os
import subprocess
from pathlib import Path

import pytest

BIN = Path(os.environ.get("PORTCULLIS_BIN", Path(__file__).resolve().parents[2] / ".build" / "debug" / "portcullis"))

USER = "kpzvq"
PASSWORD = "Zq9Xw7tL0pS3cr3t"

# Malformed URLs with credentials in them: a wrong scheme, a password with an unencoded
# / ? # or space, a port that is not a number, an unknown sslmode, no host.
BAD = [
    ("PORTCULLIS_DATABASE_URL", f"mysql://{USER}:{PASSWORD}@db.example.com/app"),
    ("PORTCULLIS_DATABASE_URL", f"postgres://{USER}:12/{PASSWORD}@db.example.com/app"),
    ("PORTCULLIS_DATABASE_URL", f"postgres://{USER}:{PASSWORD}#x@db.example.com/app"),
    ("PORTCULLIS_DATABASE_URL", f"postgres://{USER}:{PASSWORD} x@db.example.com/app"),
    ("PORTCULLIS_DATABASE_URL", f"postgres://{USER}:{PASSWORD}@db.example.com:port/app"),
    ("PORTCULLIS_DATABASE_URL", f"postgres://{USER}:{PASSWORD}@db.example.com/app?sslmode=sometimes"),
    ("PORTCULLIS_SMTP_URL", f"smtpx://{USER}:{PASSWORD}@mail.example.com"),
    ("PORTCULLIS_SMTP_URL", f"smtp://{USER}:{PASSWORD} x@mail.example.com"),
    ("PORTCULLIS_SMTP_URL", f"smtp://{USER}:12/{PASSWORD}@mail.example.com"),
    ("PORTCULLIS_SMTP_URL", f"smtp://{USER}:{PASSWORD}@"),
]


def _pieces(text: str, size: int = 4):
    return {text[i:i + size] for i in range(len(text) - size + 1)}


@pytest.mark.parametrize("variable,value", BAD, ids=[f"{v}={u.split('://')[0]}#{i}" for i, (v, u) in enumerate(BAD)])
def test_malformed_url_names_the_variable_and_hides_the_credentials(tmp_path, variable, value):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env.update(PORTCULLIS_DATABASE_URL=f"sqlite:{tmp_path}/p.db", PORTCULLIS_MASTER_KEY_FILE=f"{tmp_path}/master.key",
               PORTCULLIS_PORT="0", PORTCULLIS_LOG_LEVEL="debug")
    env[variable] = value
    try:
        result = subprocess.run([str(BIN), "serve"], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                                capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{variable} was accepted: the server started")
    out = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 1, out
    assert variable in result.stderr.decode(), out
    leaked = sorted(p for p in _pieces(USER) | _pieces(PASSWORD) if p in out)
    assert not leaked, f"credentials in the output ({leaked}):\n{out}"
