"""Replay an identity log: every line decided in order, one decision line out per event.

It streams: one line in, one decision out, nothing kept per event in Python, so memory stays
flat however long the log (state lives in the store). Blank lines are skipped but counted, so
a decision's ``line`` is the event's physical line in the log.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable

import attrs

from .engine import Engine

Progress = Callable[[int, float], None]


@attrs.frozen
class Summary:
    """What a replay did: events decided, outcomes by kind, wall seconds."""

    events: int
    outcomes: dict[str, int]
    seconds: float

    def line(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())) or "none"
        rate = self.events / self.seconds if self.seconds > 0 else 0.0
        return f"{self.events} events in {self.seconds:.2f}s ({rate:,.0f}/s): {kinds}"


def replay(
    engine: Engine,
    lines: Iterable[bytes],
    write: Callable[[str], object],
    progress: Progress | None = None,
    every: float = 0.25,
) -> Summary:
    """Decide every event of ``lines`` (raw log lines) and ``write`` each decision's JSON line."""
    outcomes: Counter[str] = Counter()
    started = last = time.perf_counter()
    count = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        decision = engine.decide_line(raw.rstrip(b"\r\n"), number)
        write(decision.to_json() + "\n")
        outcomes[decision.outcome] += 1
        count += 1
        if progress is not None:
            now = time.perf_counter()
            if now - last >= every:
                last = now
                progress(count, now - started)
    seconds = time.perf_counter() - started
    if progress is not None:
        progress(count, seconds)
    return Summary(count, dict(outcomes), seconds)
