"""JSON answers written straight to ASGI ``send``: for the middlewares, which answer before
(or instead of) the application."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import Send

from ..decision import dumps

Headers = Sequence[tuple[bytes, bytes]]


def error_body(message: str, **extra: object) -> bytes:
    """``{"error": message, ...}`` as bytes."""
    return dumps({"error": message, **extra}).encode("utf-8")


async def send_error(send: Send, status: int, message: str, headers: Headers = ()) -> None:
    """Answer ``status`` with ``{"error": message}``."""
    body = error_body(message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
