"""The framework examples, each run as written by its real server on loopback: Flask under
`flask run` (threaded), FastAPI under uvicorn (async, through AsyncEngine), Django under
`runserver` (a view). Every one identifies over HTTP with the widget_session cookie and
answers with the decision as JSON; concurrent requests keep every invariant of SPEC §3."""

from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import pytest
from http_support import free_port, post, serving
from support import check_invariants

from idrules import SqliteStore

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@attrs.frozen
class Example:
    """An example: its file, the command serving it on a port, the page showing it verbatim,
    the modules it needs, and the status it gives a malformed body."""

    file: Path
    page: Path
    needs: tuple[str, ...]
    bad_body: int

    def argv(self, port: int) -> list[str]:
        name = self.file.stem
        if name == "flask_app":
            return [
                sys.executable,
                "-m",
                "flask",
                "--app",
                str(self.file),
                "run",
                "--port",
                str(port),
            ]
        if name == "fastapi_app":
            app = f"{name}:app"
            return [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(EXAMPLES),
                app,
                "--port",
                str(port),
            ]
        return [sys.executable, str(self.file), "runserver", f"127.0.0.1:{port}", "--noreload"]


EXAMPLE = {
    "flask": Example(EXAMPLES / "flask_app.py", ROOT / "README.md", ("flask",), 400),
    # FastAPI's own answer to a body its model refuses: 422, with the details
    "fastapi": Example(
        EXAMPLES / "fastapi_app.py", ROOT / "README.md", ("fastapi", "uvicorn"), 422
    ),
    "django": Example(
        EXAMPLES / "django_app.py", ROOT / "docs" / "frameworks.md", ("django",), 400
    ),
}
USERS = [f"u{n}" for n in range(9)]


def client(port: int, worker: int, rounds: int = 12) -> list[tuple[int, dict[str, Any]]]:
    """A browser's requests: identifies and votes over shared users and sessions."""
    out = []
    for n in range(rounds):
        session, user = f"s{(worker * 3 + n) % 7}", USERS[(worker + n) % len(USERS)]
        if n % 3 == 0:
            identity = {"userId": user, "userEmail": f"{user}@example.com"}
            out.append(post(port, "/widget/identify", {"identity": identity}, session))
        else:
            out.append(post(port, "/widget/track", {"name": "vote"}, session))
    return out


@pytest.mark.parametrize("name", list(EXAMPLE))
class TestExample:
    """An example served by its framework's own server, on a free loopback port."""

    def test_shown_verbatim(self, name: str) -> None:
        """The docs show the example's file, line for line."""
        example = EXAMPLE[name]
        blocks = re.findall(r"```python\n(.*?)```", example.page.read_text(encoding="utf-8"), re.S)
        assert example.file.read_text(encoding="utf-8") in blocks

    def test_decides_over_http(self, name: str, tmp_path: Path) -> None:
        """Created then matched across sessions, bad bodies refused, concurrent requests all
        answered, and the store keeps every invariant."""
        example = EXAMPLE[name]
        for module in example.needs:
            pytest.importorskip(module)
        port, store = free_port(), tmp_path / "app.db"
        env = {"IDRULES_STORE": str(store), "IDRULES_RULES": "helpshift"}
        with serving(example.argv(port), port, tmp_path, env) as server:
            identity = {"userId": "ada", "userEmail": "ada@example.com"}
            status, first = post(port, "/widget/identify", {"identity": identity}, "b1")
            assert status == 200 and (first["outcome"], first["created"]) == ("identified", True)
            status, again = post(port, "/widget/identify", {"identity": {"userId": "ada"}}, "b2")
            assert (again["outcome"], again["created"]) == ("identified", False)
            assert again["profile"] == first["profile"]
            status, vote = post(port, "/widget/track", {"name": "vote"}, "b2")
            assert (vote["outcome"], vote["profile"]) == ("recorded", first["profile"])
            for bad in (b"not json", b"[1, 2]", b'{"user": 1}', b'{"identity": 5}'):
                status, body = post(port, "/widget/identify", bad, "b1")
                assert status == example.bad_body and isinstance(body, dict), (bad, body)
            status, _ = post(port, "/widget/track", {"name": "vote"}, None)
            assert status == 400  # no session: no one to credit
            with ThreadPoolExecutor(max_workers=8) as pool:
                answers = [
                    a for part in pool.map(lambda w: client(port, w), range(8)) for a in part
                ]
            assert [status for status, _ in answers] == [200] * len(answers)
        assert "Traceback" not in server.output, server.output
        if name == "fastapi":  # on SIGTERM uvicorn ends the lifespan, which closes the store
            assert "Application shutdown complete." in server.output, server.output
            assert not Path(f"{store}-wal").exists()  # SQLite's last close folds the WAL in
        decisions = [first, again, vote, *(body for _, body in answers)]
        reader = SqliteStore(store, readonly=True)
        check_invariants(
            SimpleNamespace(store=reader),  # type: ignore[arg-type]
            [SimpleNamespace(**d) for d in decisions],  # type: ignore[misc]
        )
        reader.close()
