"""One JSON line per request on stderr: when, method, path, status, milliseconds, and the
id of the event decided (when there is one).

Never a header, a query string or a body: the token travels in a header, and a query
(``?email=``) or a body holds personal data. The path and the event id are cut to 200
characters, so a line stays short enough to be written in one piece by one ``write``, and
lines of several workers sharing stderr never interleave. A pure ASGI middleware, outermost:
it sees every answer, the refusals of the other middlewares included, and turns a failure
no handler caught into a 500 with a JSON body (its type in the log line, never its text,
which could quote a value).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..decision import dumps
from .responses import send_error

#: the longest path or event id written in a line
CUT = 200

Sink = Callable[[dict[str, Any]], None]


def write_stderr(entry: dict[str, Any]) -> None:
    """Write ``entry`` as one JSON line on stderr, in one ``write`` call."""
    with suppress(OSError):  # stderr closed: the request was still served
        os.write(2, (dumps(entry) + "\n").encode("utf-8", "replace"))


def _cut(text: str | None) -> str | None:
    return text if text is None or len(text) <= CUT else text[:CUT] + "..."


class AccessLog:
    """Log each HTTP request through ``sink`` once it is answered."""

    def __init__(self, app: ASGIApp, sink: Sink = write_stderr, debug: bool = False) -> None:
        self.app = app
        self.sink = sink
        self.debug = debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        failure: str | None = None
        state = scope.setdefault("state", {})

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            failure = type(exc).__name__
            if self.debug:
                raise
            if status is None:
                status = 500
                await send_error(send, 500, "internal error: see the server's log")
        finally:
            entry: dict[str, Any] = {
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "method": scope["method"],
                "path": _cut(scope["path"]),
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 2),
                "event_id": _cut(state.get("event_id")),
            }
            if failure is not None:
                entry["error"] = failure
            self.sink(entry)
