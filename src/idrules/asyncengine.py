"""The engine for asyncio code (FastAPI, Starlette, aiohttp): decisions off the event loop.

An event's work is one store transaction (read, plan, write) that the stores already make
atomic and isolated, and the planner reads the store synchronously between its steps. So
rather than a second, async planner over async drivers, :class:`AsyncEngine` runs the very
same :meth:`Engine.decide` on threads of its own, and the loop only awaits the result: one
code path decides, whichever API calls it.

The threads are a bounded pool that the wrapper owns, sized to how many events the store can
decide at once: a :class:`PostgresStore` of ``pool_size`` N decides N in parallel (one
connection each); a SQLite or memory store holds one lock per event, so one thread is all it
can use, and more would only queue on that lock (taking threads from no one else: the pool is
not the loop's default executor, which ``asyncio.to_thread`` and other libraries share).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from .decision import Decision
from .engine import Engine
from .events import Event, InvalidEvent
from .plan import Plan
from .store.base import Store

P = ParamSpec("P")
T = TypeVar("T")


def parallelism(store: Store) -> int:
    """How many events ``store`` decides at once: its connection pool's size, else 1."""
    size = getattr(store, "pool_size", 1)
    return size if isinstance(size, int) and size > 1 else 1


class AsyncEngine:
    """An :class:`Engine` for coroutines: the same methods, awaited, never blocking the loop.

    ``threads`` is the size of the pool deciding events (default: :func:`parallelism` of the
    engine's store). Calls beyond it wait their turn in order, without holding a thread.

    A decision is all or nothing, also when the task awaiting it is cancelled (a client gone,
    a timeout): an event not yet started is never decided; one already started completes in
    its thread, its transaction committed (or rolled back) whole, and only its answer is lost
    (deciding the same ``id`` again answers ``duplicate``). :meth:`aclose` (or leaving
    ``async with``) waits for the decisions in flight, then closes the store.
    """

    def __init__(self, engine: Engine, *, threads: int | None = None) -> None:
        self.engine = engine
        self.threads = parallelism(engine.store) if threads is None else threads
        if self.threads < 1:
            raise ValueError("threads must be at least 1")
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="idrules-decide")
        self._closed = False

    @property
    def store(self) -> Store:
        """The wrapped engine's store."""
        return self.engine.store

    async def _off_loop(self, call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        if self._closed:
            raise RuntimeError("this AsyncEngine is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(call, *args, **kwargs))

    # the engine's methods, awaited -----------------------------------------------------
    async def decide(self, event: Event | InvalidEvent | Mapping[str, Any]) -> Decision:
        """:meth:`Engine.decide`: decide one event and apply it to the store."""
        return await self._off_loop(self.engine.decide, event)

    async def decide_line(self, raw: bytes | str, line: int | None = None) -> Decision:
        """:meth:`Engine.decide_line`: decide one log line."""
        return await self._off_loop(self.engine.decide_line, raw, line)

    async def plan(self, event: Event | InvalidEvent) -> Plan:
        """:meth:`Engine.plan`: the plan against the store as it is now; writes nothing."""
        return await self._off_loop(self.engine.plan, event)

    async def identify(
        self,
        payload: Mapping[str, Any] | None,
        *,
        session: str | None = None,
        id: str | None = None,
        ts: str | None = None,
    ) -> Decision:
        """:meth:`Engine.identify`: ``identify(payload)`` as the widget sent it."""
        return await self._off_loop(self.engine.identify, payload, session=session, id=id, ts=ts)

    async def track(
        self,
        name: str,
        *,
        session: str,
        properties: Mapping[str, Any] | None = None,
        email: str | None = None,
        id: str | None = None,
        ts: str | None = None,
    ) -> Decision:
        """:meth:`Engine.track`: activity, optionally with an inline email."""
        return await self._off_loop(
            self.engine.track,
            name,
            session=session,
            properties=properties,
            email=email,
            id=id,
            ts=ts,
        )

    async def logout(
        self, *, session: str, id: str | None = None, ts: str | None = None
    ) -> Decision:
        """:meth:`Engine.logout`: the session leaves its identity."""
        return await self._off_loop(self.engine.logout, session=session, id=id, ts=ts)

    # lifetime ------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Refuse new calls, wait for the decisions in flight (off the loop), close the store.
        Again: a no-op."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._pool.shutdown(wait=True)
        self.engine.store.close()

    async def __aenter__(self) -> AsyncEngine:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
