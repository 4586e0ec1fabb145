"""The README's first walk-throughs ("Walk-through with curl", then "Orgs and members", which goes on
from it) run as written, with curl and jq, against a fresh server: the docs cannot drift from the
code without this test failing."""

import os
import re
import subprocess
from pathlib import Path

from conftest import DEFAULT_BIN, REPO_ROOT
from portcullis_server import running_server

SECTIONS = ["## Walk-through with curl", "## Orgs and members"]


def first_shell_block(readme: str, heading: str) -> str:
    section = readme[readme.index(heading + "\n"):]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, f"no sh block under {heading}"
    return match.group(1)


def test_walkthrough_runs_as_written(tmp_path: Path):
    readme = (REPO_ROOT / "README.md").read_text()
    script = "\n".join(first_shell_block(readme, h) for h in SECTIONS)
    assert script.startswith("BASE=http://127.0.0.1:8080\n")
    with running_server(Path(os.environ.get("PORTCULLIS_BIN", DEFAULT_BIN)), tmp_path) as base:
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", script.replace("BASE=http://127.0.0.1:8080", f"BASE={base}", 1)],
                             capture_output=True, text=True, timeout=120)
    out = run.stdout
    assert run.returncode == 0, run.stderr + out
    # What the comments promise, in order.
    assert re.search(r'"email": "ada@example.com"', out)
    assert re.search(r"^204\n401$", out, re.M), out  # logout, then the dead token
    assert re.search(r'"status": 403,\s*"code": "forbidden"', out), out  # Grace grants above her rank
    assert len(re.findall(r'"code": "last_owner"', out)) == 2, out  # Ada cannot leave nor step down
    assert re.search(r"^204\n404$", out, re.M), out  # Linus leaves, then the org is a 404 to him
    assert re.search(r'"role": "editor"', out) and re.search(r'"role": "viewer"', out)
    assert '"action": "member.added"' in out and '"action": "member.left"' in out
