"""SIGTERM drains: requests already in flight are answered, a watch stream ends, the process
exits 0, and nothing new is accepted after."""
import threading
import time
import uuid

import requests

from faultkit import Node, write_master_key

PASSWORD = "correct horse battery staple"


def test_sigterm_answers_in_flight_requests_then_exits(tmp_path):
    write_master_key(tmp_path / "master.key")
    node = Node(__import__("os").environ.get("PORTCULLIS_BIN", "") or _default_bin(), tmp_path, "drain",
                f"sqlite:{tmp_path}/p.db", tmp_path / "master.key",
                env={"ROOT_EMAIL": "root@drain.example", "ROOT_PASSWORD": PASSWORD}).start()
    try:
        login = {"email": "root@drain.example", "password": PASSWORD}
        token = requests.post(node.url("/v1/auth/login"), json=login, timeout=10).json()["access_token"]
        # A root follower of the change log: a stream that would otherwise never end.
        watch = requests.get(node.url("/v1/watch"), headers={"Authorization": f"Bearer {token}"}, stream=True, timeout=10)
        assert watch.status_code == 200
        lines = watch.iter_lines()
        assert next(lines).startswith(b": watching")

        # Logins take an argon2id hash each: slow enough to be in flight when SIGTERM arrives.
        results: list = []
        started = threading.Barrier(9)

        def one():
            started.wait()
            try:
                r = requests.post(node.url("/v1/auth/login"), json=login, timeout=20)
                results.append(r.status_code)
            except requests.RequestException as error:
                results.append(repr(error))

        threads = [threading.Thread(target=one) for _ in range(8)]
        for t in threads:
            t.start()
        started.wait()
        time.sleep(0.05)  # the requests are on the wire
        node.proc.terminate()
        for t in threads:
            t.join(timeout=30)
        assert results == [200] * 8, results
        # The watch stream ended instead of holding the shutdown up.
        for _ in lines:
            pass
        exit_code = node.proc.wait(timeout=15)
        assert exit_code == 0
        # Nothing listens any more.
        try:
            requests.get(node.url("/health"), timeout=2)
            raise AssertionError("the server still answers after SIGTERM")
        except requests.ConnectionError:
            pass
    finally:
        node.kill9()


def _default_bin():
    from pathlib import Path
    return str(Path(__file__).resolve().parents[2] / ".build" / "debug" / "portcullis")
