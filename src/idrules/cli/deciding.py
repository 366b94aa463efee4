"""Commands that decide events: ``replay`` (a log, resumable into a durable store, one replay
per run at a time), ``resolve`` (one event) and ``diff`` (a log under two rulesets)."""

from __future__ import annotations

import gc
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, suppress
from typing import IO

import click

from .._errors import IdrulesError, InputError
from ..audit import (
    cut_back,
    record_of,
    resume_position,
)
from ..decision import Decision, dumps
from ..diff import diff
from ..engine import Engine
from ..events import (
    MAX_LINE_BYTES,
    NotFinite,
    parse_line,
    strict_loads,
    strip_bom,
)
from ..replaying import replay as run_replay
from ..rules import load_ruleset
from ..store import MemoryStore
from ..store.base import DecisionRecord, DurableStore, Store
from .base import (
    RULES_HELP,
    STORE_HELP,
    check_events_file,
    first_without_bom,
    friendly,
    load_secrets_file,
    log_lines,
    main,
    open_store,
    refuse_overwrite,
    rules_file,
    store_files,
)


@main.command()
@click.argument("events")
@click.option("--rules", "rules", required=True, help=RULES_HELP)
@click.option("--store", "store_path", help=STORE_HELP + " (default: a fresh in-memory store)")
@click.option("--out", "out", help="write decisions to this file (default: stdout)")
@click.option("--secrets", "secrets", help="JSON file of key name -> secret")
@click.option(
    "--commit-every",
    "commit_every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="with --store: commit every N events (faster; a crash loses up to N-1 "
    "decided events, which a resumed replay decides again)",
)
@click.option("--quiet", "-q", is_flag=True, help="no progress and no summary on stderr")
@friendly
def replay(
    events: str,
    rules: str,
    store_path: str | None,
    out: str | None,
    secrets: str | None,
    commit_every: int,
    quiet: bool,
) -> None:
    """Decide every event of EVENTS (a JSON-lines log, or - for stdin) in order.

    Into a store that already holds part of this replay, it resumes: the decided events are
    skipped and --out is cut back to the decisions the store holds, then continued.
    """
    ruleset = load_ruleset(rules)
    secret_map = load_secrets_file(secrets)
    check_events_file(events)
    if out:
        refuse_overwrite(
            out,
            [
                ("the events file", events),
                ("the rules file", rules_file(rules)),
                ("the secrets file", secrets),
                *store_files(store_path),
            ],
        )
    store = open_store(store_path, commit_every=commit_every)
    sink: IO[str] | None = None
    claim: AbstractContextManager[object] | None = None
    done = False
    try:
        engine = Engine(ruleset, store, secrets=secret_map)
        lines: Iterator[bytes] = log_lines(events)
        start = None
        if isinstance(store, DurableStore):
            # claims the run: a second replay of it is refused here, before --out is touched
            start, lines, claim = resume_position(store, ruleset.sha256, lines)
        if out:
            cut_back(out, start.done if start else 0)
            sink = open(out, "a", encoding="utf-8", newline="\n")  # noqa: SIM115
        else:
            sink = sys.stdout
        if isinstance(store, DurableStore):
            store.before_commit = sink.flush
        # this process is the replay: what start-up made (rules, schema, libraries) lives
        # until the end, so the cyclic GC need never walk it (replay raises its thresholds)
        gc.freeze()
        summary = run_replay(engine, lines, sink.write, progress_line(quiet), start=start)
        sink.flush()
        store.close()  # commits the last group (flushing the decisions first)
        done = True
    finally:
        try:
            if not done:
                _stop(store, sink, sys.exc_info()[1])
            if sink is not None and sink is not sys.stdout:
                with suppress(OSError, ValueError):
                    sink.close()
        finally:
            if claim is not None:  # last: the run is ours until the store is closed
                claim.__exit__(None, None, None)
    if not quiet:
        click.echo(f"idrules: {summary.line()}", err=True)


class _Abandoned(Exception):
    """Raised by a store's ``before_commit`` to close it without committing."""


def _stop(store: Store, sink: IO[str] | None, failure: BaseException | None) -> None:
    """Close the store after a replay failed or was interrupted, keeping it consistent with
    what was delivered: the decisions of the open commit group are committed only when their
    lines reached the output (a flush that succeeds); otherwise, or when the failure was the
    output's own (a closed pipe, a full disk), the group is rolled back, so the store never
    holds a decision whose line is missing, and a resumed replay decides those events again.
    Errors while cleaning up never hide the failure being reported."""
    delivered = not isinstance(failure, OSError)
    if delivered and sink is not None:
        try:
            sink.flush()
        except (OSError, ValueError):
            delivered = False
    if not delivered and isinstance(store, DurableStore):

        def abandon() -> None:
            raise _Abandoned

        store.before_commit = abandon  # the close below then rolls the group back
    with suppress(_Abandoned, IdrulesError, sqlite3.Error, OSError, ValueError):
        store.close()


def progress_line(quiet: bool, unit: str = "events") -> Callable[[int, float], None] | None:
    """A progress line with ``unit``/s (events, rows), only when stderr is a terminal."""
    if quiet or not sys.stderr.isatty():
        return None

    def show(count: int, seconds: float) -> None:
        rate = count / seconds if seconds > 0 else 0.0
        click.echo(f"\r{count:,} {unit}  {rate:,.0f}/s ", err=True, nl=False)

    return show


@main.command()
@click.option("--rules", "rules", required=True, help=RULES_HELP)
@click.option("--store", "store_path", required=True, help=STORE_HELP)
@click.option("--secrets", "secrets", help="JSON file of key name -> secret")
@friendly
def resolve(rules: str, store_path: str, secrets: str | None) -> None:
    """Decide one event read from stdin; print its decision."""
    ruleset = load_ruleset(rules)
    secret_map = load_secrets_file(secrets)
    body = strip_bom(sys.stdin.buffer.read(MAX_LINE_BYTES + 1)).strip()
    if len(body) > MAX_LINE_BYTES:
        raise InputError(f"the event on stdin is longer than {MAX_LINE_BYTES} bytes")
    if not body:
        raise InputError("no event on stdin: give one JSON event object")
    _one_event(body)
    store = open_store(store_path)
    try:
        engine = Engine(ruleset, store, secrets=secret_map)
        engine.decide(parse_line(body), journal=_Printer(sys.stdout))
    except BaseException:
        _stop(store, None, sys.exc_info()[1])
        raise
    store.close()


def _one_event(body: bytes) -> None:
    """Refuse stdin holding several events (one JSON value may still span several lines)."""
    count = sum(1 for line in body.splitlines() if line.strip())
    if count < 2:
        return
    try:
        strict_loads(body.decode("utf-8"))
    except NotFinite:
        return  # one value, refused as an event.invalid decision
    except (ValueError, RecursionError):
        raise InputError(
            f"give exactly one event on stdin; found {count} lines (to decide a log, use "
            "`idrules replay`)"
        ) from None


class _Printer:
    """``resolve``'s journal: prints the decision inside the event's transaction, before the
    commit, so a decision that could not be printed (a closed stdout) is not kept either."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def seal(self, decision: Decision, keep: bool) -> DecisionRecord | None:
        self._out.write(decision.to_json() + "\n")
        self._out.flush()
        return record_of(decision) if keep else None


@main.command("diff")
@click.argument("events")
@click.option("--rules", "rules", required=True, help="ruleset A: " + RULES_HELP)
@click.option("--against", "against", required=True, help="ruleset B, the same way")
@click.option("--out", "out", help="write every changed event (both decisions) as JSON lines")
@click.option("--secrets", "secrets", help="JSON file of key name -> secret")
@friendly
def diff_command(
    events: str, rules: str, against: str, out: str | None, secrets: str | None
) -> None:
    """Replay EVENTS under two rulesets (in memory, one pass) and summarise what changed."""
    secret_map = load_secrets_file(secrets)
    engine_a = Engine(load_ruleset(rules), MemoryStore(), secrets=secret_map)
    engine_b = Engine(load_ruleset(against), MemoryStore(), secrets=secret_map)
    check_events_file(events)
    if out:
        refuse_overwrite(
            out,
            [
                ("the events file", events),
                ("the rules file", rules_file(rules)),
                ("the rules file", rules_file(against)),
                ("the secrets file", secrets),
            ],
        )
    sink = open(out, "w", encoding="utf-8", newline="\n") if out else None  # noqa: SIM115
    try:
        labels = (
            f"{rules} ({engine_a.ruleset.name} {engine_a.ruleset.sha256[:12]})",
            f"{against} ({engine_b.ruleset.name} {engine_b.ruleset.sha256[:12]})",
        )
        summary = diff(
            first_without_bom(log_lines(events)),
            engine_a,
            engine_b,
            (lambda c: sink.write(dumps(c.to_dict()) + "\n")) if sink else None,
            labels,
        )
    finally:
        if sink is not None:
            sink.close()
    click.echo(summary.table())
