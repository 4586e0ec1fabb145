"""A tiny keep-alive JSON client for the benchmark scripts (standard library only)."""
import http.client
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "blackbox"))
from portcullis_server import running_server  # noqa: E402,F401  (re-exported for the scripts)

PASSWORD = "correct horse battery"


class Api:
    """One persistent HTTP/1.1 connection to one node."""

    def __init__(self, base: str, token: str | None = None):
        parts = urlsplit(base)
        self.base = base
        self.host, self.port = parts.hostname, parts.port
        self.token = token
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def with_token(self, token: str) -> "Api":
        return Api(self.base, token)

    def call(self, method: str, path: str, body=None, expect=(200, 201, 204)):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                raw = r.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection: reconnect once.
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                if attempt == 2:
                    raise
        if expect and r.status not in expect:
            raise RuntimeError(f"{method} {path} -> {r.status}: {raw[:300]!r}")
        return r.status, (json.loads(raw) if raw else None)

    def signup_and_login(self, email: str) -> tuple[str, str]:
        """Creates an account; returns (user id, access token)."""
        _, user = self.call("POST", "/v1/users", {"email": email, "password": PASSWORD})
        _, tokens = self.call("POST", "/v1/auth/login", {"email": email, "password": PASSWORD})
        return user["id"], tokens["access_token"]

    def authorize(self, obj: str, action: str) -> bool:
        _, d = self.call("POST", "/v1/authorize", {"object": obj, "action": action})
        return d["allowed"]

    def close(self):
        self.conn.close()
