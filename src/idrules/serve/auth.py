"""Bearer-token authentication: every request but ``/healthz`` must carry
``Authorization: Bearer <IDRULES_API_TOKEN>``, compared in constant time.

A pure ASGI middleware: a refused request never reaches the router, so an unauthenticated
caller learns nothing (not even which routes exist) and no body is read.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from .responses import send_error

#: what answers without a token: a load balancer's health check carries none
PUBLIC_PATHS = frozenset({"/healthz"})


class BearerAuth:
    """Refuse (401) a request without the right bearer token; ``token`` None lets all in."""

    def __init__(self, app: ASGIApp, token: bytes | None) -> None:
        self.app = app
        self.token = token
        self._expected = _digest(token or b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.token is None
            or scope["type"] != "http"
            or scope["path"] in PUBLIC_PATHS
            or self.authorized(scope["headers"])
        ):
            await self.app(scope, receive, send)
            return
        await send_error(
            send,
            401,
            "send the API token: Authorization: Bearer <IDRULES_API_TOKEN>",
            [(b"www-authenticate", b'Bearer realm="idrules"')],
        )

    def authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """Exactly one Authorization header, ``Bearer`` (any case) and the token."""
        given = [value for name, value in headers if name == b"authorization"]
        if len(given) != 1:
            return False
        scheme, _, credential = given[0].partition(b" ")
        ok_scheme = scheme.lower() == b"bearer"
        # compared whatever the scheme, as digests of equal length, so the time taken says
        # nothing about the token, not even its length
        same = hmac.compare_digest(_digest(credential.strip(b" ")), self._expected)
        return ok_scheme and same


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()
