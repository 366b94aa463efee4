"""A replay's journal: each decision sealed into the hash chain, written, and recorded in the
store in the event's own transaction; and where a replay of a log resumes.

With a durable store, each decision is recorded under a *run* (this log, this ruleset): a
replay killed at any moment and started again with the same arguments skips what the store
holds, cuts the decisions file back to exactly those decisions (the file is flushed before
every commit, so it is never behind the store) and carries on, ending with the same bytes as
an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from itertools import chain as chained
from typing import Protocol

import attrs

from .._errors import InputError
from ..decision import Decision
from ..events import parse_line, strip_bom
from ..store.base import DecisionRecord, DurableStore
from .chain import seal
from .records import record_of


@attrs.frozen
class Position:
    """Where a replay starts: the run it records under, the chain's last hash, and the last
    line (and its event id) already decided."""

    run: int | None
    prev: str
    done: int = 0
    last_line: int = 0
    last_event_id: str | None = None

    def check_continuity(self, raw: bytes, number: int) -> None:
        """The log's line ``number`` (the last one decided) still holds the same event."""
        event = parse_line(raw.rstrip(b"\r\n"), number)
        if event.id != self.last_event_id:
            raise InputError(
                f"the store's replay of this log stopped at line {number} (event "
                f"{self.last_event_id!r}), but that line now holds {event.id!r}: the log "
                "changed; replay it into a fresh store"
            )


class Sealer(Protocol):
    """What the engine hands each decision to inside the event's transaction, before the
    commit: it writes the decision out and returns the record the store keeps (``keep``)."""

    def seal(self, decision: Decision, keep: bool) -> DecisionRecord | None: ...


class Journal:
    """Seals each decision into the chain, writes its line, and makes the store's record."""

    def __init__(self, write: Callable[[str], object], prev: str, run: int | None) -> None:
        self._write = write
        self.prev = prev
        self.run = run

    def seal(self, decision: Decision, keep: bool = True) -> DecisionRecord | None:
        """Seal and write ``decision``; its record when ``keep`` (the store keeps records)."""
        line, self.prev = seal(decision.to_json(), self.prev, "\n")
        self._write(line)
        return record_of(decision, self.run, self.prev) if keep else None


def resume_position(
    store: DurableStore, genesis: str, lines: Iterator[bytes]
) -> tuple[Position, Iterator[bytes], AbstractContextManager[object]]:
    """The run of this log in ``store`` (under the ruleset whose sha256 is ``genesis``) and
    where it stopped; returns the lines to replay (the first ones, read to recognise the log,
    put back in front) and this process's claim on the run (hold it until the replay has
    ended; another replay of the same run raises ``RunBusyError`` here, before any output is
    touched).

    The log is recognised by its first non-blank line, a byte order mark before it ignored:
    the same log saved with or without one is the same run."""
    head: list[bytes] = []
    first = b""
    for raw in lines:
        text = strip_bom(raw) if not head else raw
        head.append(raw)
        if text.strip():
            first = text
            break
    log_key = hashlib.sha256(first.rstrip(b"\r\n")).hexdigest()
    run, claim = store.claim_run(log_key, genesis)
    prev = run.last_hash or genesis
    position = Position(run.id, prev, run.count, run.last_line, run.last_event_id)
    return position, chained(head, lines), claim


def cut_back(path: str, keep: int) -> None:
    """Cut a decisions file back to its first ``keep`` complete lines (dropping a torn last
    line and anything the store did not commit). Refuses when it holds fewer."""
    if keep == 0:
        with open(path, "wb"):
            return
    if not os.path.exists(path):
        raise InputError(
            f"cannot resume: {path} is missing but the store holds {keep} "
            "decisions of this replay; replay into a fresh store"
        )
    offset = 0
    seen = 0
    with open(path, "rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break
            offset += len(raw)
            seen += 1
            if seen == keep:
                break
    if seen < keep:
        raise InputError(
            f"cannot resume: {path} holds {seen} of the {keep} decisions the store "
            "holds for this replay; give the original --out or a fresh store"
        )
    with open(path, "r+b") as handle:
        handle.truncate(offset)
