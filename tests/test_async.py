"""The async API: AsyncEngine decides off the event loop, as Engine would, all or nothing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import check_invariants, iso

from idrules import AsyncEngine, Decision, Engine, MemoryStore, SqliteStore, StoreError
from idrules.asyncengine import parallelism

pytest_plugins = ["pg_support"]

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

#: how long a gated store waits for the test to open the gate before it gives up
GATE_S = 10.0


class Gated:
    """A memory store whose ``apply`` (mid-transaction, after planning) waits for ``release``:
    the test decides when an event's writes go in. ``entered`` is set once one is waiting."""

    def __init__(self, timeout: float = GATE_S) -> None:
        self.inner = MemoryStore()
        self.timeout = timeout
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: set[str] = set()
        self.closed = False
        self.fail: Exception | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def apply(self, changes: Any, seal: Any = None) -> None:
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        if not self.release.wait(self.timeout):
            raise AssertionError("the gate was never opened: the event loop was blocked")
        if self.fail is not None:
            raise self.fail
        self.inner.apply(changes, seal)

    def close(self) -> None:
        self.closed = True
        self.inner.close()


async def until(flag: threading.Event) -> None:
    """Wait for ``flag`` by polling from the loop (so only a free loop sees it)."""
    for _ in range(int(GATE_S / 0.005)):
        if flag.is_set():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the flag was never set")


async def opener(store: Gated) -> None:
    """Open the gate once an event waits at it: only a loop left free gets to do it."""
    await until(store.entered)
    store.release.set()


def gated_engine(threads: int | None = None) -> tuple[AsyncEngine, Gated]:
    store = Gated()
    return AsyncEngine(Engine("helpshift", store), threads=threads), store


def run(main: Callable[[], Any]) -> Any:
    return asyncio.run(main())


class TestOffTheLoop:
    """The loop keeps running while a decision waits on the store."""

    def test_loop_runs_while_the_store_works(self) -> None:
        """A decision finishes only if the loop opens its gate meanwhile: it does."""
        engine, store = gated_engine()

        async def main() -> Decision:
            task = asyncio.create_task(engine.identify({"userId": "u1"}, session="s1"))
            await opener(store)  # runs while the store is mid-transaction
            decision = await task
            await engine.aclose()
            return decision

        decision = run(main)
        assert decision.outcome == "identified" and decision.created
        assert store.closed

    def test_a_blocking_call_would_stall(self) -> None:
        """The control: the sync engine called on the loop stalls it until the gate gives up."""
        store = Gated(timeout=0.3)
        engine = Engine("helpshift", store)

        async def main() -> None:
            task = asyncio.create_task(opener(store))
            await asyncio.sleep(0)
            engine.identify({"userId": "u1"}, session="s1")  # on the loop's own thread
            await task

        with pytest.raises(AssertionError, match="event loop was blocked"):
            run(main)

    def test_threads_are_the_engines_own(self) -> None:
        """Decisions run on the engine's named threads, never on the loop's thread."""
        engine, store = gated_engine(threads=3)
        store.release.set()
        loop_thread = threading.current_thread().name

        async def main() -> None:
            async with engine:
                await asyncio.gather(
                    *(engine.identify({"userId": f"u{n}"}, session=f"s{n}") for n in range(30))
                )

        run(main)
        assert store.threads and loop_thread not in store.threads
        assert all(name.startswith("idrules-decide") for name in store.threads)
        assert len(store.threads) <= 3


class TestParallelism:
    """The pool is sized to what the store can decide at once."""

    def test_one_lock_one_thread(self, tmp_path: Path) -> None:
        """Memory and SQLite stores decide one event at a time: one thread."""
        sqlite = SqliteStore(tmp_path / "s.db")
        assert parallelism(MemoryStore()) == 1
        assert parallelism(sqlite) == 1
        assert AsyncEngine(Engine("helpshift", sqlite)).threads == 1
        sqlite.close()

    def test_a_pool_sets_the_threads(self) -> None:
        """A store with a connection pool of N gets N threads; ``threads`` overrides it."""
        store = Gated()
        store.pool_size = 4  # as a PostgresStore(url, pool_size=4) says
        assert AsyncEngine(Engine("helpshift", store)).threads == 4
        assert AsyncEngine(Engine("helpshift", store), threads=2).threads == 2

    def test_no_threads_refused(self) -> None:
        """Fewer than one thread is a ValueError."""
        with pytest.raises(ValueError, match="at least 1"):
            AsyncEngine(Engine("helpshift"), threads=0)


def mixed(engine: AsyncEngine, worker: int, rounds: int = 30) -> Iterator[Any]:
    """A worker's calls (coroutines): identifies, tracks, logouts over shared users."""
    for n in range(rounds):
        session, user, event = f"s{(worker * 5 + n) % 11}", f"u{(worker + n) % 9}", f"w{worker}-{n}"
        if n % 3 == 0:
            payload = {"userId": user, "userEmail": f"{user}@example.com"}
            yield engine.identify(payload, session=session, id=event)
        elif n % 7 == 4:
            yield engine.logout(session=session, id=event)
        else:
            yield engine.track("vote", session=session, id=event)


class TestConcurrency:
    """Many concurrent coroutines keep every invariant of SPEC §3."""

    @pytest.mark.parametrize("kind", ["memory", "sqlite", "postgres"])
    def test_many_coroutines(self, tmp_path: Path, kind: str, request: Any) -> None:
        """240 concurrent calls: no error, invariants kept, each event decided once."""
        if kind == "memory":
            store: Any = MemoryStore()
        elif kind == "sqlite":
            store = SqliteStore(tmp_path / "s.db")
        else:
            from idrules.store.postgres import PostgresStore

            store = PostgresStore(request.getfixturevalue("pg_url"), pool_size=4)
        engine = AsyncEngine(Engine("helpshift", store))
        assert engine.threads == (4 if kind == "postgres" else 1)

        async def main() -> list[Decision]:
            calls = [call for worker in range(8) for call in mixed(engine, worker)]
            return list(await asyncio.gather(*calls))

        decisions = run(main)
        assert len(decisions) == 240
        assert {d.outcome for d in decisions} <= {"identified", "recorded", "logged_out"}
        check_invariants(engine.engine, decisions)
        assert len({d.event_id for d in decisions}) == 240
        store.close()

    def test_same_decisions_as_the_engine(self) -> None:
        """Awaited calls give, byte for byte, the decisions the sync engine gives."""
        sync = Engine("helpshift")
        engine = AsyncEngine(Engine("helpshift"))
        script: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
            ("identify", ({"userId": "u1", "userEmail": "a@example.com"},), {"session": "s1"}),
            ("track", ("vote",), {"session": "s1", "properties": {"n": 1}}),
            ("track", ("post",), {"session": "s2", "email": "a@example.com"}),
            ("identify", ({"userId": " padded"},), {"session": "s3"}),
            ("logout", (), {"session": "s1"}),
            ("identify", (None,), {"session": "s2"}),
        ]

        async def main() -> list[Decision]:
            out = []
            for n, (name, args, kwargs) in enumerate(script):
                out.append(await getattr(engine, name)(*args, id=f"e{n}", ts=iso(n), **kwargs))
            out.append(await engine.decide({"id": "e9", "ts": iso(9), "type": "logout"}))
            out.append(await engine.decide_line(b"not json", 10))
            return out

        got = run(main)
        want = [
            getattr(sync, name)(*args, id=f"e{n}", ts=iso(n), **kwargs)
            for n, (name, args, kwargs) in enumerate(script)
        ]
        want.append(sync.decide({"id": "e9", "ts": iso(9), "type": "logout"}))
        want.append(sync.decide_line(b"not json", 10))
        assert [d.to_json() for d in got] == [d.to_json() for d in want]


class TestErrors:
    """What goes wrong in the store reaches the awaiting coroutine, and nothing is half-done."""

    def test_exception_propagates(self) -> None:
        """A store error is raised by the await; the event is not decided; the engine goes on."""
        engine, store = gated_engine()
        store.release.set()
        store.fail = StoreError("disk on fire")

        async def main() -> Decision:
            with pytest.raises(StoreError, match="disk on fire"):
                await engine.identify({"userId": "u1"}, session="s1", id="e1")
            store.fail = None
            return await engine.identify({"userId": "u1"}, session="s1", id="e1")

        decision = run(main)
        assert decision.outcome == "identified" and decision.created

    def test_closed_engine_refuses(self) -> None:
        """After aclose, a call is a RuntimeError; aclose again is a no-op."""
        engine = AsyncEngine(Engine("helpshift"))

        async def main() -> None:
            await engine.aclose()
            await engine.aclose()
            with pytest.raises(RuntimeError, match="closed"):
                await engine.identify({"userId": "u1"}, session="s1")

        run(main)


class TestCancellation:
    """Cancelling the awaiting task never leaves half an event."""

    def test_cancelled_while_running_completes(self) -> None:
        """A decision cancelled mid-transaction still commits whole; its id is then a duplicate."""
        engine, store = gated_engine()

        async def main() -> tuple[Decision, Decision]:
            task = asyncio.create_task(
                engine.identify(
                    {"userId": "u1", "userEmail": "a@example.com"}, session="s1", id="e1"
                )
            )
            await until(store.entered)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            store.release.set()
            again = await engine.identify({"userId": "u1"}, session="s1", id="e1")
            other = await engine.identify({"userId": "u1"}, session="s2", id="e2")
            await engine.aclose()
            return again, other

        again, other = run(main)
        assert again.outcome == "duplicate"
        assert other.outcome == "identified" and not other.created  # e1 created the profile
        assert store.inner.is_decided("e1")
        [profile] = list(store.inner.profiles())
        assert (profile.user_id, profile.email) == ("u1", "a@example.com")

    def test_cancelled_while_queued_never_runs(self) -> None:
        """A call cancelled before a thread took it is never decided at all."""
        engine, store = gated_engine(threads=1)

        async def main() -> Decision:
            first = asyncio.create_task(engine.identify({"userId": "u1"}, session="s1", id="e1"))
            await until(store.entered)
            queued = asyncio.create_task(engine.identify({"userId": "u2"}, session="s2", id="e2"))
            await asyncio.sleep(0.05)
            queued.cancel()
            # the cancellation reaches the pool's future through loop callbacks: let them
            # run before the thread is free to take the queued call
            await asyncio.sleep(0.05)
            store.release.set()
            decision = await first
            with pytest.raises(asyncio.CancelledError):
                await queued
            await engine.aclose()
            return decision

        assert run(main).outcome == "identified"
        assert not store.inner.is_decided("e2")
        assert [p.user_id for p in store.inner.profiles()] == ["u1"]

    def test_aclose_waits_for_decisions_in_flight(self) -> None:
        """aclose lets a running decision finish, then closes the store."""
        engine, store = gated_engine()

        async def main() -> Decision:
            task = asyncio.create_task(engine.identify({"userId": "u1"}, session="s1", id="e1"))
            await until(store.entered)
            closing = asyncio.create_task(engine.aclose())
            await asyncio.sleep(0.05)
            assert not closing.done() and not store.closed
            store.release.set()
            await closing
            assert store.closed
            return await task

        assert run(main).outcome == "identified"
        assert store.inner.is_decided("e1")


class TestBenchmark:
    """benchmarks/asyncapi.py runs end to end (its timings are not checked)."""

    def test_runs(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every variant over both stores gives a CPU and a wall time per event."""
        monkeypatch.syspath_prepend(str(BENCHMARKS))
        import asyncapi

        result = asyncapi.main(["--events", "30", "--repeat", "1"])
        assert sorted(result) == ["memory", "sqlite"]
        for variants in result.values():
            assert list(variants) == list(asyncapi.VARIANTS)
            assert all(cpu >= 0 and wall > 0 for cpu, wall in variants.values())
