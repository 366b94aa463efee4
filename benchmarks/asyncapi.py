"""What the async API costs: an event decided by ``Engine`` called directly, by ``await
AsyncEngine`` one at a time, and by many concurrent awaits (``asyncio.gather``), in memory and
in SQLite, in CPU time and wall time per event (best of ``--repeat``).

    python benchmarks/asyncapi.py --events 3000 --repeat 3

Every event is an identify of one of 500 returning users on one of 300 sessions; each variant
starts from a fresh store, so the variants decide the same events against the same states.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from idrules import AsyncEngine, Engine, MemoryStore, SqliteStore, Store


def calls(events: int) -> list[tuple[dict[str, str], str]]:
    """The (payload, session) of every event."""
    return [
        ({"userId": f"u{n % 500}", "userEmail": f"u{n % 500}@example.com"}, f"s{n % 300}")
        for n in range(events)
    ]


def direct(engine: Engine, todo: list[tuple[dict[str, str], str]]) -> None:
    for payload, session in todo:
        engine.identify(payload, session=session)


def awaited(engine: Engine, todo: list[tuple[dict[str, str], str]]) -> None:
    async def main() -> None:
        async with AsyncEngine(engine) as decider:
            for payload, session in todo:
                await decider.identify(payload, session=session)

    asyncio.run(main())


def concurrent(engine: Engine, todo: list[tuple[dict[str, str], str]]) -> None:
    async def main() -> None:
        async with AsyncEngine(engine) as decider:
            await asyncio.gather(*(decider.identify(p, session=s) for p, s in todo))

    asyncio.run(main())


VARIANTS: dict[str, Callable[[Engine, list[tuple[dict[str, str], str]]], None]] = {
    "Engine": direct,
    "await, one at a time": awaited,
    "await, all at once": concurrent,
}


def measure(kind: str, events: int, repeat: int, workdir: Path) -> dict[str, tuple[float, float]]:
    """Variant -> (CPU µs, wall µs) per event, best of ``repeat`` (rounds over the variants,
    so a burst of other load hits them alike)."""
    todo = calls(events)
    best: dict[str, tuple[float, float]] = {}
    for round_ in range(repeat):
        for index, (name, run) in enumerate(VARIANTS.items()):
            path = workdir / f"{round_}-{index}.db"
            store: Store = MemoryStore() if kind == "memory" else SqliteStore(path)
            engine = Engine("helpshift", store)
            cpu, wall = time.process_time(), time.perf_counter()
            run(engine, todo)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            store.close()
            got = (cpu / events * 1e6, wall / events * 1e6)
            best[name] = min(best.get(name, got), got)
    return best


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stores", default="memory,sqlite")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {}
    print(f"{'store':<8} {'variant':<22} {'CPU µs/event':>13} {'wall µs/event':>14}")
    with tempfile.TemporaryDirectory() as workdir:
        for kind in args.stores.split(","):
            out[kind] = measure(kind, args.events, args.repeat, Path(workdir))
            for name, (cpu, wall) in out[kind].items():
                print(f"{kind:<8} {name:<22} {cpu:>13.0f} {wall:>14.0f}")
    return out


if __name__ == "__main__":
    main()
