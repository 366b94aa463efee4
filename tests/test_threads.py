"""One engine shared by threads: a backend builds it once and calls it from every request."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support import check_invariants

from idrules import Decision, Engine, MemoryStore, SqliteStore, Store, export_rows

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "flask_app.py"
USERS = [f"u{n}" for n in range(12)]


def hammer(engine: Engine, worker: int, rounds: int = 60) -> list[Decision]:
    """A worker's calls: identify, track and logout over shared users and sessions."""
    out = []
    for n in range(rounds):
        session = f"s{(worker * 7 + n) % 10}"
        user = USERS[(worker + n) % len(USERS)]
        kind = n % 4
        if kind == 0:
            out.append(
                engine.identify(
                    {"userId": user, "userEmail": f"{user}@example.com"},
                    session=session,
                    id=f"w{worker}-{n}",
                )
            )
        elif kind == 3 and n % 8 == 3:
            out.append(engine.logout(session=session, id=f"w{worker}-{n}"))
        else:
            out.append(engine.track("vote", session=session, id=f"w{worker}-{n}"))
    return out


class TestSharedEngine:
    """Threads calling one Engine decide one event at a time and keep every invariant."""

    @pytest.mark.parametrize("kind", ["memory", "sqlite"])
    def test_many_threads_one_engine(self, tmp_path: Path, kind: str) -> None:
        """Eight threads on one engine: no error, no user id on two profiles, each track once."""
        store: Store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "s.db")
        engine = Engine("helpshift", store)
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda w: hammer(engine, w), range(8)))
        decisions = [d for part in results for d in part]
        assert len(decisions) == 8 * 60
        assert {d.outcome for d in decisions} <= {"identified", "recorded", "logged_out"}
        check_invariants(engine, decisions)
        store.close()

    def test_sqlite_store_made_in_another_thread(self, tmp_path: Path) -> None:
        """A store opened in one thread serves calls from another (as in a web server)."""
        engine = Engine("helpshift", SqliteStore(tmp_path / "s.db"))
        with ThreadPoolExecutor(max_workers=1) as pool:
            d = pool.submit(engine.identify, {"userId": "u1"}, session="s").result()
        assert d.outcome == "identified"
        assert [row["user_id"] for row in export_rows(engine.store)] == ["u1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def post(port: int, path: str, body: Any, session: str | None) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if session is not None:
        headers["Cookie"] = f"widget_session={session}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class TestFlaskExample:
    """The README's Flask example, served by `flask run` (threaded) on loopback."""

    def test_readme_shows_the_example(self) -> None:
        """The README's Flask code is examples/flask_app.py, line for line."""
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
        assert EXAMPLE.read_text(encoding="utf-8") in blocks

    def test_concurrent_requests(self, tmp_path: Path) -> None:
        """Many concurrent requests: every answer 200, bad bodies 400, invariants kept."""
        pytest.importorskip("flask")
        port = free_port()
        store = tmp_path / "app.db"
        env = {**os.environ, "IDRULES_STORE": str(store), "IDRULES_RULES": "helpshift"}
        server = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", str(EXAMPLE), "run", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    assert server.poll() is None, server.stdout.read() if server.stdout else ""
                    assert time.monotonic() < deadline, "the example did not start"
                    time.sleep(0.1)

            def client(worker: int) -> list[tuple[int, dict[str, Any]]]:
                out = []
                for n in range(25):
                    session = f"s{(worker * 3 + n) % 9}"
                    user = USERS[(worker + n) % len(USERS)]
                    if n % 3 == 0:
                        identity = {"userId": user, "userEmail": f"{user}@example.com"}
                        out.append(post(port, "/widget/identify", {"identity": identity}, session))
                    else:
                        out.append(post(port, "/widget/track", {"name": "vote"}, session))
                return out

            with ThreadPoolExecutor(max_workers=12) as pool:
                answers = [a for part in pool.map(client, range(12)) for a in part]
            assert [status for status, _ in answers] == [200] * len(answers)
            for bad in (b"not json", b"[1, 2]", b'{"user": 1}', b'{"identity": 5}'):
                status, body = post(port, "/widget/identify", bad, "s0")
                assert status == 400 and "error" in body
        finally:
            server.terminate()
            output = server.communicate(timeout=30)[0].decode()
        assert "Traceback" not in output, output
        tracked = [a["event"] for s, a in answers if "event" in a]
        rows = list(export_rows(SqliteStore(store, readonly=True)))
        users = [r["user_id"] for r in rows if r["state"] == "active" and r["user_id"]]
        assert len(users) == len(set(users))
        activity = [event for r in rows for event in r["activity"]]
        assert sorted(activity) == sorted(tracked)
