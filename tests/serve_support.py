"""Helpers for the tests of ``idrules serve``: a real server process on loopback (a free port
the server picks itself, read from its start-up line), and plain ``http.client`` requests."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any

from cli_support import clean_env, command

#: a token of the right length (tests only)
Connection = http.client.HTTPConnection
TOKEN = "test-token-0123456789abcdef-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
_START = re.compile(r"^idrules: serving \S+ on (http://\S+) ", re.M)


class Server:
    """``idrules serve ARGS --port 0`` running until :meth:`stop`; its stderr (the start-up
    line, the access log) goes to a file, read by :meth:`log_lines`."""

    def __init__(self, tmp: Path, *args: str | Path, token: str | None = TOKEN) -> None:
        self.stderr_path = tmp / f"serve-{time.monotonic_ns()}.err"
        env = clean_env()
        env.pop("IDRULES_API_TOKEN", None)
        if token is not None:
            env["IDRULES_API_TOKEN"] = token
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            command("serve", *args, "--port", "0"),
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=env,
        )
        self.url = self._wait_for_start()
        parts = urllib.parse.urlsplit(self.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80

    def _wait_for_start(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _START.search(self.stderr_path.read_text(errors="replace"))
            if found:
                return found.group(1)
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited: {self.stderr_path.read_text()}")
            time.sleep(0.05)
        raise AssertionError("the server did not start")

    def wait_ready(self, timeout: float = 60) -> None:
        """Until ``/healthz`` answers 200 (every worker may still be starting)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the server never became ready")
            time.sleep(0.05)

    def connection(self, timeout: float = 60) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        conn: http.client.HTTPConnection | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request (on ``conn``, kept open, or a connection of its own): status,
        headers (lower-cased names) and body."""
        own = conn is None
        conn = conn or self.connection()
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        try:
            conn.request(method, path, body=data, headers=headers or {})
            answer = conn.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            if own:
                conn.close()

    def call(
        self, method: str, path: str, body: Any = None, conn: Connection | None = None
    ) -> tuple[int, Any]:
        """An authenticated request; its status and JSON body."""
        status, _, data = self.request(method, path, body, AUTH, conn)
        return status, json.loads(data)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._stderr.close()

    def log_lines(self) -> list[str]:
        return self.stderr_path.read_text(errors="replace").splitlines()

    def access_log(self) -> list[dict[str, Any]]:
        """The access log's entries so far (the JSON lines of stderr)."""
        return [json.loads(line) for line in self.log_lines() if line.startswith("{")]

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()
