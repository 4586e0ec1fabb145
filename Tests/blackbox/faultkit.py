"""Process handles for the fault and cluster tests: a `portcullis serve` that can be killed with
SIGKILL and started again on the same database (optionally under `faketime`), and a private
throwaway PostgreSQL (scripts/pg-test.sh with its own PGTEST_STATE) that can be stopped, restarted,
frozen with SIGSTOP and thawed. Loopback only; standard library plus requests."""

import base64
import os
import shlex
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import secrets_seen
from portcullis_server import free_port, log_tail

REPO_ROOT = Path(__file__).resolve().parents[2]
PGBIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))

# How big a run is: `make test` runs the short form, `make chaos` (PORTCULLIS_CHAOS=full) the long one.
FULL = os.environ.get("PORTCULLIS_CHAOS", "").lower() == "full"


def rounds(short: int, full: int) -> int:
    return full if FULL else short


def write_master_key(path: Path) -> None:
    path.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    path.chmod(0o600)


class Node:
    """One `portcullis serve` process on a fixed loopback port. `start()` may be called again after
    `kill9()` or `stop()`: same port, same database, same master key, log appended."""

    def __init__(self, binary: Path, workdir: Path, name: str, database_url: str, master_key_file: Path,
                 public_url: str | None = None, prefix: list[str] | None = None, env: dict | None = None):
        self.binary, self.workdir, self.name = Path(binary), Path(workdir), name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / f"{name}.log"
        self.prefix = prefix or []
        self.proc: subprocess.Popen | None = None
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
        base_env.update(
            PORTCULLIS_DATABASE_URL=database_url,
            PORTCULLIS_HOST="127.0.0.1",
            PORTCULLIS_PORT=str(self.port),
            PORTCULLIS_MASTER_KEY_FILE=str(master_key_file),
            PORTCULLIS_PUBLIC_URL=public_url or self.base,
            PORTCULLIS_SMTP_URL="log",
            PORTCULLIS_LOG_FORMAT="json",
            # These tests log in a lot from one address: no per-IP throttling of login and signup.
            PORTCULLIS_IP_BURST="0",
            PORTCULLIS_IP_PER_MINUTE="0",
        )
        base_env.update({k if k.startswith("PORTCULLIS_") or k.startswith("FAKETIME") else f"PORTCULLIS_{k}": v
                         for k, v in (env or {}).items()})
        self.env = base_env
        secrets_seen.register_log(self.log_path)

    def url(self, path: str) -> str:
        return self.base + path

    def start(self, timeout: float = 30.0) -> "Node":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [*self.prefix, str(self.binary), "serve"], cwd=self.workdir, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} during start-up:\n{log_tail(self.log_path)}")
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill9()
                raise RuntimeError(f"{self.name} not healthy after {timeout:.0f}s:\n{log_tail(self.log_path)}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def _as_pg(args: list[str], **kw) -> subprocess.CompletedProcess:
    """initdb/pg_ctl refuse root; as root they run as the postgres user (like pg-test.sh)."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, cwd="/", capture_output=True, text=True, **kw)


class Postgres:
    """A private PostgreSQL 15 from scripts/pg-test.sh (its own PGTEST_STATE), never the shared one."""

    def __init__(self, state: Path):
        self.state = Path(state)
        self.env = dict(os.environ, PGTEST_STATE=str(self.state))
        out = subprocess.run([str(REPO_ROOT / "scripts" / "pg-test.sh"), "start"], env=self.env,
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"pg-test.sh start failed:\n{out.stderr}")
        self.url = out.stdout.strip().splitlines()[-1]
        self.dir = Path((self.state / "dir").read_text().strip())
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        self._databases = 0

    def new_database(self) -> str:
        """A fresh, empty database in this instance; returns its URL."""
        self._databases += 1
        name = f"fault_{os.getpid()}_{self._databases}"
        out = subprocess.run([str(PGBIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "portcullis", name],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"createdb failed: {out.stderr}")
        return self.url.rsplit("/", 1)[0] + "/" + name

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.dir / "data" / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def pids(self) -> list[int]:
        """The postmaster and every process it forked (backends, checkpointer, ...)."""
        master = self.postmaster_pid()
        if master is None:
            return []
        found = [master]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == master:
                found.append(int(entry))
        return found

    def stop_immediate(self) -> None:
        out = _as_pg([str(PGBIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-s", "stop"], timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {out.stderr}")

    def start_again(self) -> None:
        """Starts it again after stop_immediate(), with the options it had (postmaster.opts)."""
        opts = shlex.split((self.dir / "data" / "postmaster.opts").read_text())[1:]
        if "-D" in opts:
            i = opts.index("-D")
            del opts[i:i + 2]
        out = _as_pg([str(PGBIN / "pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "server.log"),
                      "-w", "-t", "60", "-s", "start", "-o", shlex.join(opts)], timeout=90)
        if out.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {out.stderr}")

    def signal_all(self, sig: int) -> list[int]:
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return pids

    def destroy(self) -> None:
        # Never leave it frozen: pg_ctl stop cannot stop a stopped process.
        self.signal_all(signal.SIGCONT)
        subprocess.run([str(REPO_ROOT / "scripts" / "pg-test.sh"), "stop"], env=self.env,
                       capture_output=True, text=True, timeout=120)
