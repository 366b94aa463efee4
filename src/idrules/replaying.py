"""Replay an identity log: every line decided in order, one sealed decision line per event.

It streams: one line in, one decision out, nothing kept per event in Python, so memory stays
flat however long the log (state lives in the store). Blank lines are skipped but counted, so
a decision's ``line`` is the event's physical line in the log.

Each decision line is sealed into a hash chain (:mod:`idrules.audit.chain`) that starts from the
ruleset's sha256. With a durable store, each decision is also recorded in the store in the same
transaction as its effects, under a *run* (this log, this ruleset): a replay killed at any
moment and started again with the same arguments skips what the store holds, cuts the
decisions file back to exactly those decisions (the file is flushed before every commit, so it
is never behind the store) and carries on, ending with the same bytes as an uninterrupted run.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import chain as chained

import attrs

from ._errors import InputError
from .audit.journal import Journal, Position
from .engine import Engine
from .events import parse_line, strip_bom

Progress = Callable[[int, float], None]


@attrs.frozen
class Summary:
    """What a replay did: events decided, outcomes by kind, wall seconds (and lines skipped
    because a previous run of the same log had decided them)."""

    events: int
    outcomes: dict[str, int]
    seconds: float
    resumed: int = 0

    def line(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())) or "none"
        rate = self.events / self.seconds if self.seconds > 0 else 0.0
        done = f"{self.events} events in {self.seconds:.2f}s ({rate:,.0f}/s): {kinds}"
        return done + (f"; resumed after {self.resumed} already decided" if self.resumed else "")


def replay(
    engine: Engine,
    lines: Iterable[bytes],
    write: Callable[[str], object],
    progress: Progress | None = None,
    *,
    start: Position | None = None,
    every: float = 0.25,
) -> Summary:
    """Decide every event of ``lines`` (raw log lines) after ``start`` and ``write`` each
    sealed decision line."""
    with _fewer_gc_passes():
        return _replay(engine, lines, write, progress, start, every)


@contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Fewer cyclic-GC passes while a replay runs, restored after.

    A replay allocates a few short-lived objects per event and keeps a growing, acyclic state
    (the store); every default-threshold pass of the oldest generation walks all of that state,
    so the cost per event would grow with the store. Raising the thresholds for the duration
    costs nothing in memory: nothing the replay keeps is cyclic garbage."""
    before = gc.get_threshold()
    gc.set_threshold(100_000, 50, 1_000)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _replay(
    engine: Engine,
    lines: Iterable[bytes],
    write: Callable[[str], object],
    progress: Progress | None,
    start: Position | None,
    every: float,
) -> Summary:
    position = start or Position(None, engine.ruleset.sha256)
    journal = Journal(write, position.prev, position.run)
    outcomes: Counter[str] = Counter()
    started = last = time.perf_counter()
    count = 0
    number = 0
    for number, raw in enumerate(_without_bom(lines), start=1):
        if number <= position.last_line:
            if number == position.last_line:
                position.check_continuity(raw, number)
            continue
        if not raw or raw.isspace():  # blank (isspace: no copy, unlike strip)
            continue
        decision = engine.decide(parse_line(raw.rstrip(b"\r\n"), number), journal=journal)
        outcomes[decision.outcome] += 1
        count += 1
        if progress is not None:
            now = time.perf_counter()
            if now - last >= every:
                last = now
                progress(count, now - started)
    if number < position.last_line:
        raise InputError(
            f"the log has {number} lines but the store's replay of it reached line "
            f"{position.last_line}: the log changed; replay it into a fresh store"
        )
    seconds = time.perf_counter() - started
    if progress is not None:
        progress(count, seconds)
    return Summary(count, dict(outcomes), seconds, position.done)


def _without_bom(lines: Iterable[bytes]) -> Iterator[bytes]:
    """``lines`` with a byte order mark before the first one dropped (docs/events.md). The first
    line is peeled off rather than every line tested: the loop over the rest stays as it was."""
    rest = iter(lines)
    first = next(rest, None)
    if first is None:
        return rest
    return chained((strip_bom(first),), rest)
