"""The ASGI application of ``idrules serve`` (SPEC §7): :func:`create_app` over one engine.

Starlette: routing, requests and responses, nothing more. The handlers are in
:mod:`.handlers`; around them, outermost first, the access log (:mod:`.accesslog`), the
token check (:mod:`.auth`), and Starlette's own error handling, whose refusals (404, 405 and
the handlers' 400, 409, 413) all answer ``{"error": "..."}``. The store is closed when the
server shuts down (the ASGI lifespan), after the requests in flight have been answered.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..asyncengine import AsyncEngine
from ..engine import Engine
from ..store.base import DurableStore
from .accesslog import AccessLog, Sink, write_stderr
from .auth import BearerAuth
from .handlers import Handlers
from .metrics import Metrics
from .openapi import document
from .responses import error_body


def create_app(
    engine: Engine,
    *,
    token: bytes | None = None,
    metrics: Metrics | None = None,
    log: Sink = write_stderr,
) -> Starlette:
    """The service over ``engine`` (which it owns: its store is closed at shutdown).
    ``token``: the bearer token every request but ``/healthz`` must carry (None: none).
    ``log``: where the access log's entries go (default: one JSON line each on stderr)."""
    metrics = metrics or Metrics()
    deciding = AsyncEngine(engine)
    handlers = Handlers(deciding, metrics)
    routes = [
        Route("/v1/decide", handlers.decide, methods=["POST"]),
        Route("/v1/profiles/{profile}", handlers.profile, methods=["GET"]),
        Route("/healthz", handlers.healthz, methods=["GET"]),
        Route("/metrics", handlers.metrics, methods=["GET"]),
        Route("/openapi.json", handlers.openapi, methods=["GET"]),
    ]
    if isinstance(engine.store, DurableStore):  # a memory store keeps no decision records
        routes.insert(2, Route("/v1/history", handlers.history, methods=["GET"]))
    handlers.document = document(
        routes, title="idrules", version=_version(), auth=token is not None
    )

    def answered(entry: dict[str, object]) -> None:
        if isinstance(entry["status"], int):
            metrics.answered(entry["status"])
        log(entry)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await deciding.aclose()  # the decisions in flight end, then the store closes

    return Starlette(
        routes=routes,
        middleware=[
            Middleware(AccessLog, sink=answered, debug=bool(os.environ.get("IDRULES_DEBUG"))),
            Middleware(BearerAuth, token=token),
        ],
        exception_handlers={HTTPException: _refusal},
        lifespan=lifespan,
    )


async def _refusal(request: Request, exc: Exception) -> Response:
    """Every refusal as ``{"error": "..."}``: the handlers' words, or the router's."""
    assert isinstance(exc, HTTPException)
    message = exc.detail
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such route: {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return Response(
        error_body(message),
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
        media_type="application/json",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("idrules")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"
