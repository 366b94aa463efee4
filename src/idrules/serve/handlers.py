"""The endpoints of SPEC §7, each with the :class:`~.openapi.Operation` the OpenAPI document
is generated from.

The engine and the store block (a SQLite write, a PostgreSQL round trip), so no handler
calls them on the event loop: a decision goes through :class:`~idrules.AsyncEngine` (the
engine's own bounded threads, as many as the store decides at once), and reads through
Starlette's thread pool.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .._errors import StoreError
from ..asyncengine import AsyncEngine
from ..audit.history import candidates
from ..audit.records import record_dict
from ..decision import dumps
from ..events import format_ts
from ..store.base import DurableStore, export_row
from .limits import json_object, read_body
from .metrics import Metrics
from .openapi import Operation, Query, operation

T = TypeVar("T")
JSON = "application/json"
#: the ways to name a profile in ``GET /v1/history``, as query parameters
HISTORY_KEYS = ("user_id", "email", "profile")


async def read_off_loop(func: Callable[..., T], *args: Any) -> T:
    """A store read, in a worker thread."""
    return await run_in_threadpool(func, *args)


def json_answer(text: str, status: int = 200) -> Response:
    return Response(text.encode("utf-8"), status_code=status, media_type=JSON)


class Handlers:
    """The endpoints over one engine; ``document`` is set once the routes are known."""

    def __init__(self, engine: AsyncEngine, metrics: Metrics) -> None:
        #: decisions run on the async engine's own bounded threads, as many as the store can
        #: decide at once; reads go through Starlette's thread pool
        self.deciding = engine
        self.engine = engine.engine
        self.counters = metrics
        self.document: dict[str, Any] = {}

    @operation(
        Operation(
            "Decide one event (SPEC §1); `id` and `ts` may be left out: the server assigns a "
            "unique id and its own clock",
            {200: ("the decision; an event the engine refuses is `rejected`", "Decision")},
            body="Event",
        )
    )
    async def decide(self, request: Request) -> Response:
        event = json_object(await read_body(request))
        started = time.perf_counter()
        if "id" not in event:
            event["id"] = f"http-{uuid.uuid4().hex}"
        if "ts" not in event:
            event["ts"] = format_ts(time.time_ns() // 1000)
        try:
            decision = await self.deciding.decide(event)
        except StoreError as exc:
            raise HTTPException(503, f"the store failed: {exc}") from None
        self.counters.decided(decision.outcome, time.perf_counter() - started)
        request.state.event_id = decision.event_id
        return json_answer(decision.to_json())

    @operation(
        Operation(
            "A profile, as `idrules export` writes it",
            {200: ("the profile", "Profile"), 404: ("no such profile", "Error")},
        )
    )
    async def profile(self, request: Request) -> Response:
        profile_id = request.path_params["profile"]
        row = await read_off_loop(self._row, profile_id)
        if row is None:
            raise HTTPException(404, f"no profile {profile_id[:100]!r}")
        return json_answer(dumps(row))

    def _row(self, profile_id: str) -> dict[str, Any] | None:
        store = self.engine.store
        found = store.profile(profile_id)
        return None if found is None else export_row(store, found)

    @operation(
        Operation(
            "Every decision that touched a profile (and the profiles merged into it), oldest "
            "first; name it by exactly one of `user_id`, `email` (compared as a match key) "
            "or `profile`",
            {
                200: ("the profile and its decisions", "History"),
                400: ("not exactly one of user_id, email, profile", "Error"),
                404: ("no profile holds that value", "Error"),
                409: ("several profiles hold that email: ask by `profile`", "Error"),
            },
            query=(
                Query("user_id", "the profile holding this user id"),
                Query("email", "the profile holding this email"),
                Query("profile", "a profile id"),
            ),
        )
    )
    async def history(self, request: Request) -> Response:
        kind, value = _one_key(request)
        store = self.engine.store
        assert isinstance(store, DurableStore)  # the route exists only for durable stores
        found = await read_off_loop(candidates, store, kind, value)
        if not found:
            raise HTTPException(404, f"no profile with {kind.replace('_', ' ')} {value[:100]!r}")
        if len(found) > 1:
            return json_answer(
                dumps(
                    {
                        "error": f"{len(found)} profiles hold that {kind.replace('_', ' ')}: "
                        "ask for one with profile=",
                        "profiles": found,
                    }
                ),
                409,
            )
        return json_answer(dumps(await read_off_loop(self._history, store, found[0])))

    @staticmethod
    def _history(store: DurableStore, target: str) -> dict[str, Any]:
        merged = store.merged_into(target)
        records = [record_dict(r) for r in store.history([target, *merged])]
        return {"profile": target, "merged": merged, "decisions": records}

    @operation(Operation("Ready: the engine is built", {200: ("ready", "Health")}, public=True))
    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @operation(
        Operation(
            "Prometheus metrics, named `idrules_*`",
            {200: ("the metrics, in Prometheus' text format", None)},
            media_type="text/plain",
        )
    )
    async def metrics(self, request: Request) -> Response:
        body, media_type = self.counters.exposition()
        return Response(body, media_type=media_type)

    @operation(Operation("This document", {200: ("the OpenAPI document", None)}))
    async def openapi(self, request: Request) -> Response:
        return JSONResponse(self.document)


def _one_key(request: Request) -> tuple[str, str]:
    """The one ``user_id``, ``email`` or ``profile`` of a history query (400 otherwise:
    another key is a typo that would otherwise be silently ignored)."""
    items = request.query_params.multi_items()
    unknown = sorted({k for k, _ in items} - set(HISTORY_KEYS))
    if unknown:
        raise HTTPException(400, f"unknown query parameter {unknown[0][:40]!r}: give exactly "
                            "one of user_id, email, profile")  # fmt: skip
    if len(items) != 1 or not items[0][1]:
        raise HTTPException(400, "give exactly one of user_id, email, profile (not empty)")
    return items[0]
