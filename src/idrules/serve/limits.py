"""What a request body may be: at most 64 KiB (413), and one strict JSON object (400).

The size is checked twice: the declared ``Content-Length`` before anything is read, and the
bytes actually received, counted as they stream in (a chunked body declares no length), so
a large body is refused without ever being held in memory. The JSON is idrules' strict JSON
(docs/events.md: no NaN, no Infinity, no number overflowing to infinity), and an object
naming a key twice is refused too: a proxy in front that reads the first value and idrules
the last would be judging two different events.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from ..events import DuplicateKey, NotFinite, strict_unique_loads

#: the largest body accepted, in bytes
MAX_BODY = 64 * 1024


def too_large() -> HTTPException:
    return HTTPException(413, f"the body is over {MAX_BODY // 1024} KiB ({MAX_BODY} bytes)")


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request's body, refused (413) past ``limit`` bytes, declared or received."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def json_object(body: bytes) -> dict[str, Any]:
    """The body as one strict JSON object, or a 400 saying what it is instead."""
    if not body.strip():
        raise HTTPException(400, "the body is empty: send one JSON object (an event)")
    try:
        value = strict_unique_loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise HTTPException(400, "the body is not UTF-8 text") from None
    except NotFinite:
        raise HTTPException(400, "the body holds NaN or Infinity, not JSON numbers") from None
    except DuplicateKey as exc:
        raise HTTPException(400, f"the body is ambiguous: {exc}") from None
    except (ValueError, RecursionError):
        raise HTTPException(400, "the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise HTTPException(400, f"the body is {_kind(value)}, not a JSON object (an event)")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool) or value is None:
        return "a literal"
    return "a number"
