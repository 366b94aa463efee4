"""Impact diff: what a rules change would have done to the same log.

Both rulesets decide every event in one pass over the log, each against its own fresh store;
profile ids derive from the event that created them, so "the same profile" means the same
thing under both. An event *changed* when its outcome, profile, ``created``, ``merged`` or set
of reason codes differs (the citations themselves differ whenever the files do, so they are
not compared).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import attrs

from .decision import Decision
from .engine import Engine
from .events import parse_line


@attrs.frozen
class Change:
    """One event decided differently: its line and both decisions."""

    line: int
    a: Decision
    b: Decision

    def to_dict(self) -> dict[str, object]:
        return {
            "line": self.line,
            "event_id": self.a.event_id,
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
        }


@attrs.define
class DiffSummary:
    """Counts of what changed between ruleset A and ruleset B on one log."""

    name_a: str
    name_b: str
    events: int = 0
    changed: int = 0
    outcomes: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    profiles: int = 0
    merges: int = 0
    codes_a: Counter[str] = attrs.field(factory=Counter)
    codes_b: Counter[str] = attrs.field(factory=Counter)

    def table(self) -> str:
        """The summary as an aligned plain-text table."""
        rows = [
            ("events", str(self.events)),
            ("decisions changed", str(self.changed)),
            ("outcome changed", str(sum(self.outcomes.values()))),
            ("profile assignment changed", str(self.profiles)),
            ("merges changed", str(self.merges)),
        ]
        for (before, after), count in sorted(self.outcomes.items()):
            rows.append((f"  {before} -> {after}", str(count)))
        out = [f"idrules diff: A = {self.name_a}, B = {self.name_b}", ""]
        width = max(len(r[0]) for r in rows)
        out += [f"{label:<{width}}  {value:>8}" for label, value in rows]
        codes = sorted(set(self.codes_a) | set(self.codes_b))
        moved = [c for c in codes if self.codes_a[c] != self.codes_b[c]]
        if moved:
            out += ["", f"{'reason code':<{width}}  {'A':>8}  {'B':>8}  change"]
            for code in moved:
                a, b = self.codes_a[code], self.codes_b[code]
                tag = "appeared" if a == 0 else "vanished" if b == 0 else f"{b - a:+d}"
                out.append(f"{code:<{width}}  {a:>8}  {b:>8}  {tag}")
        return "\n".join(out)


def diff(
    lines: Iterable[bytes],
    engine_a: Engine,
    engine_b: Engine,
    on_change: Callable[[Change], object] | None = None,
    labels: tuple[str, str] | None = None,
) -> DiffSummary:
    """Decide every line under both engines; count (and report) the events that differ.

    ``labels`` name the two sides in the summary (default: the rulesets' names)."""
    name_a, name_b = labels or (engine_a.ruleset.name, engine_b.ruleset.name)
    summary = DiffSummary(name_a, name_b)
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        event = parse_line(raw.rstrip(b"\r\n"), number)
        a, b = engine_a.decide(event), engine_b.decide(event)
        summary.events += 1
        codes_a, codes_b = a.codes, b.codes
        summary.codes_a.update(codes_a)
        summary.codes_b.update(codes_b)
        changed = False
        if a.outcome != b.outcome:
            summary.outcomes[(a.outcome, b.outcome)] += 1
            changed = True
        if a.profile != b.profile:
            summary.profiles += 1
            changed = True
        if a.merged != b.merged:
            summary.merges += 1
            changed = True
        if changed or a.created != b.created or set(codes_a) != set(codes_b):
            summary.changed += 1
            if on_change is not None:
                on_change(Change(number, a, b))
    return summary
