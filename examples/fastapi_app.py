"""A FastAPI backend deciding who a widget's caller is, without blocking the event loop.

Run it with ``uvicorn --app-dir examples fastapi_app:app``. ``IDRULES_RULES`` names the
ruleset (a pack or a file; default ``helpshift``) and ``IDRULES_STORE`` a SQLite file (default:
in memory, gone when the process ends). The widget's session id travels in the
``widget_session`` cookie.
"""

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Cookie, FastAPI, HTTPException, Request
from pydantic import BaseModel

from idrules import AsyncEngine, Engine, MemoryStore, SqliteStore

log = logging.getLogger("idrules.decisions")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # one engine for the process, built once at start-up; its decisions run on threads of
    # its own, so a handler awaiting one leaves the loop free. Leaving the block waits for
    # the decisions in flight, then closes the store.
    path = os.environ.get("IDRULES_STORE")
    engine = Engine(
        os.environ.get("IDRULES_RULES", "helpshift"),
        SqliteStore(path) if path else MemoryStore(),
    )
    async with AsyncEngine(engine) as decider:
        app.state.engine = decider
        yield


app = FastAPI(lifespan=lifespan)


class Identify(BaseModel):
    # required, and an object or null: {"identity": null} is identify(null), a logout; a
    # broken body is a 422, never a logout by accident
    identity: dict[str, Any] | None


class Track(BaseModel):
    name: str
    properties: dict[str, Any] | None = None


@app.post("/widget/identify")
async def identify(
    body: Identify, request: Request, widget_session: Annotated[str | None, Cookie()] = None
) -> dict[str, Any]:
    engine: AsyncEngine = request.app.state.engine
    decision = await engine.identify(body.identity, session=widget_session)
    log.info(decision.to_json())  # the audit trail: one line per call
    return decision.to_dict()  # the whole decision (docs/decisions.md)


@app.post("/widget/track")
async def track(
    body: Track, request: Request, widget_session: Annotated[str | None, Cookie()] = None
) -> dict[str, Any]:
    if not widget_session:
        raise HTTPException(400, "track needs a widget_session cookie")
    engine: AsyncEngine = request.app.state.engine
    decision = await engine.track(body.name, session=widget_session, properties=body.properties)
    log.info(decision.to_json())
    return decision.to_dict()
