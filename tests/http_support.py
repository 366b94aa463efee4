"""Helpers for tests that run a real HTTP server process on loopback (the framework examples):
a free port, a JSON POST with the widget's session cookie, and the server's lifetime."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def post(port: int, path: str, body: Any, session: str | None) -> tuple[int, dict[str, Any]]:
    """POST ``body`` (JSON, or raw bytes) with ``session`` as the widget_session cookie: the
    status and the JSON answer."""
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


@attrs.define
class Server:
    """A running server: its process, and (once stopped) its exit status and output."""

    process: subprocess.Popen[bytes]
    port: int
    status: int | None = None
    output: str = ""


@contextmanager
def serving(
    argv: Sequence[str], port: int, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Start ``argv`` (a server listening on 127.0.0.1:``port``), wait until it accepts a
    connection, and stop it with SIGTERM on leaving, collecting its status and output."""
    process = subprocess.Popen(
        list(argv),
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    server = Server(process, port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None:
                    out = process.stdout.read().decode() if process.stdout else ""
                    raise AssertionError(f"the server exited: {out}") from None
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            out = process.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            out = process.communicate()[0]
        server.status, server.output = process.returncode, out.decode()
