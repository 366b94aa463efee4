"""The ``idrules`` command line (SPEC §6). Errors are one line on stderr and exit 1, never a
traceback; usage errors exit 2 (click's own)."""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from ._errors import IdrulesError, InputError, RulesError, StoreError
from .chain import verify_lines
from .decision import dumps
from .diff import diff
from .engine import Engine
from .events import parse_ts
from .history import find_profile, record_dict, record_text
from .proof import Prover
from .replay import cut_back, resume_position
from .replay import replay as run_replay
from .rules import load_ruleset, pack_names
from .store import MemoryStore, SqliteStore, export_rows
from .store.base import Store

F = TypeVar("F", bound=Callable[..., Any])

RULES_HELP = "a shipped pack's name (" + ", ".join(pack_names()) + ") or a rules file path"


def _fail(message: str) -> None:
    click.echo(f"idrules: error: {message}", err=True)
    sys.exit(1)


def friendly(func: F) -> F:
    """Turn every expected failure into one line on stderr and exit 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except IdrulesError as exc:
            _fail(str(exc))
        except BrokenPipeError:
            sys.stderr.close()  # the reader went away (| head): not an error
            sys.exit(0)
        except KeyboardInterrupt:
            click.echo("idrules: interrupted", err=True)
            sys.exit(130)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{where}{exc.strerror or exc}")
        except sqlite3.Error as exc:
            _fail(f"store error: {exc}")

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="idrules")
def main() -> None:
    """idrules: declarative identity resolution with auditable decisions."""


def load_secrets_file(path: str | None) -> dict[str, str] | None:
    """A ``--secrets`` JSON file: ``{"current": "..."}``. Its contents are never printed."""
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"secrets file not found: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError):
        raise InputError(f"secrets file {path} is not readable JSON") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise InputError(f"secrets file {path} must be a JSON object of name -> secret text")
    return data


def open_store(path: str | None, *, must_exist: bool = False, commit_every: int = 1) -> Store:
    """The SQLite store at ``path`` (a fresh memory store without one). ``must_exist``:
    only read an existing idrules store, read-only: never create or change a file. Notes
    from the opening (an older store re-keyed) go to stderr, one line each."""
    if path is None:
        return MemoryStore()
    if os.path.isdir(path):
        raise StoreError(f"store {path} is a directory, not a file")
    if must_exist:
        return SqliteStore(path, readonly=True)
    store = SqliteStore(path, commit_every=commit_every)
    for note in store.notes:
        click.echo(f"idrules: note: {note}", err=True)
    return store


def _read_lines(source: str) -> Iterator[bytes]:
    if source == "-":
        yield from sys.stdin.buffer
        return
    try:
        handle = open(source, "rb")  # noqa: SIM115 - closed below, streamed
    except FileNotFoundError:
        raise InputError(f"events file not found: {source}") from None
    except IsADirectoryError:
        raise InputError(f"events file {source} is a directory") from None
    with handle:
        yield from handle


@main.command()
@click.argument("events")
@click.option("--rules", "rules", required=True, help=RULES_HELP)
@click.option("--store", "store_path", help="SQLite store file (default: a fresh in-memory store)")
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
    if events != "-" and not os.path.exists(events):
        raise InputError(f"events file not found: {events}")
    if events != "-" and os.path.isdir(events):
        raise InputError(f"events file {events} is a directory")
    store = open_store(store_path, commit_every=commit_every)
    sink: IO[str] | None = None
    try:
        engine = Engine(ruleset, store, secrets=secret_map)
        lines: Iterator[bytes] = _read_lines(events)
        start = None
        if isinstance(store, SqliteStore):
            start, lines = resume_position(store, engine, lines)
        if out:
            cut_back(out, start.done if start else 0)
            sink = open(out, "a", encoding="utf-8", newline="\n")  # noqa: SIM115
        else:
            sink = sys.stdout
        if isinstance(store, SqliteStore):
            store.before_commit = sink.flush
        # this process is the replay: what start-up made (rules, schema, libraries) lives
        # until the end, so the cyclic GC need never walk it (replay raises its thresholds)
        gc.freeze()
        summary = run_replay(engine, lines, sink.write, _progress(quiet), start=start)
        store.close()  # commits the last group, flushing the decisions first
        sink.flush()
    finally:
        if sink is not None and sink is not sys.stdout:
            sink.close()
        store.close()
    if not quiet:
        click.echo(f"idrules: {summary.line()}", err=True)


def _progress(quiet: bool) -> Callable[[int, float], None] | None:
    """A progress line with events/s, only when stderr is a terminal."""
    if quiet or not sys.stderr.isatty():
        return None

    def show(count: int, seconds: float) -> None:
        rate = count / seconds if seconds > 0 else 0.0
        click.echo(f"\r{count:,} events  {rate:,.0f}/s ", err=True, nl=False)

    return show


@main.command()
@click.option("--rules", "rules", required=True, help=RULES_HELP)
@click.option("--store", "store_path", required=True, help="SQLite store file")
@click.option("--secrets", "secrets", help="JSON file of key name -> secret")
@friendly
def resolve(rules: str, store_path: str, secrets: str | None) -> None:
    """Decide one event read from stdin; print its decision."""
    ruleset = load_ruleset(rules)
    secret_map = load_secrets_file(secrets)
    text = sys.stdin.buffer.read()
    if not text.strip():
        raise InputError("no event on stdin: give one JSON event object")
    store = open_store(store_path)
    try:
        decision = Engine(ruleset, store, secrets=secret_map).decide_line(text.strip())
    finally:
        store.close()
    click.echo(decision.to_json())


@main.command()
@click.option("--store", "store_path", required=True, help="SQLite store file")
@friendly
def export(store_path: str) -> None:
    """Print every profile of the store, one JSON object per line (creation order)."""
    store = open_store(store_path, must_exist=True)
    try:
        out = sys.stdout
        for row in export_rows(store):
            out.write(dumps(row) + "\n")
    finally:
        store.close()


@main.command()
@click.option("--rules", "rules", required=True, help=RULES_HELP)
@click.option("--user-id", help="the user id to sign for")
@click.option("--email", help="the email (for templates or claims that use it)")
@click.option("--name", help="the display name")
@click.option("--avatar", help="the avatar URL")
@click.option(
    "--claim",
    "claims",
    multiple=True,
    metavar="KEY=VALUE",
    help="an extra JWT claim (VALUE parsed as JSON when it can be); repeatable",
)
@click.option("--key", "key_name", help="the key to sign with (default: the first listed)")
@click.option("--secrets", "secrets", help="JSON file of key name -> secret")
@click.option("--at", "at", help="issue time for a JWT, RFC 3339 (default: now)")
@click.option(
    "--expires-in",
    "expires_in",
    type=int,
    default=300,
    show_default=True,
    help="JWT lifetime in seconds (0: no exp claim)",
)
@friendly
def sign(
    rules: str,
    user_id: str | None,
    email: str | None,
    name: str | None,
    avatar: str | None,
    claims: tuple[str, ...],
    key_name: str | None,
    secrets: str | None,
    at: str | None,
    expires_in: int,
) -> None:
    """Print what the customer's server sends: an HMAC signature or a signed JWT.

    The secret is read as the engine reads it (IDRULES_SECRET_<NAME> or --secrets), never
    from the command line.
    """
    ruleset = load_ruleset(rules)
    prover = Prover(ruleset, load_secrets_file(secrets), signing=True)
    values = {
        k: v
        for k, v in (("user_id", user_id), ("email", email), ("name", name), ("avatar", avatar))
        if v is not None
    }
    if not values:
        raise InputError("nothing to sign: give --user-id, --email, --name or --avatar")
    if ruleset.verification.method == "hmac":
        if claims:
            raise InputError(f"--claim is for JWT rulesets; {ruleset.name} signs with an HMAC")
        click.echo(prover.sign_hmac(values, key_name))
        return
    extra: dict[str, Any] = {}
    for item in claims:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(f"--claim takes KEY=VALUE, got {item!r}")
        try:
            extra[key] = json.loads(raw)
        except ValueError:
            extra[key] = raw
    if at is None:
        issued = int(time.time())
    else:
        micros = parse_ts(at)
        if micros is None:
            raise InputError(f"--at takes an RFC 3339 timestamp, got {at!r}")
        issued = micros // 1_000_000
    click.echo(prover.sign_jwt(values, extra, issued, expires_in or None, key_name))


@main.command("verify-log")
@click.argument("decisions")
@click.option("--head", help="the hash the last line must have (kept apart from the file)")
@friendly
def verify_log(decisions: str, head: str | None) -> None:
    """Check the hash chain of a decisions file; name the first line that was edited,
    dropped, inserted or reordered (exit 1)."""
    try:
        handle = open(decisions, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise InputError(f"decisions file not found: {decisions}") from None
    with handle:
        verdict = verify_lines(handle)
    if not verdict.ok:
        _fail(f"{decisions}:{verdict.bad_line}: {verdict.problem}")
    if head is not None and verdict.head != head:
        _fail(
            f"{decisions}: the last line's hash is not {head}: lines were cut off the end, "
            "or this is another log"
        )
    click.echo(f"ok: {verdict.lines} decisions, chain intact; head {verdict.head}")


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
    if events != "-" and not os.path.exists(events):
        raise InputError(f"events file not found: {events}")
    sink = open(out, "w", encoding="utf-8", newline="\n") if out else None  # noqa: SIM115
    try:
        labels = (
            f"{rules} ({engine_a.ruleset.name} {engine_a.ruleset.sha256[:12]})",
            f"{against} ({engine_b.ruleset.name} {engine_b.ruleset.sha256[:12]})",
        )
        summary = diff(
            _read_lines(events),
            engine_a,
            engine_b,
            (lambda c: sink.write(dumps(c.to_dict()) + "\n")) if sink else None,
            labels,
        )
    finally:
        if sink is not None:
            sink.close()
    click.echo(summary.table())


@main.command()
@click.option("--store", "store_path", required=True, help="SQLite store file")
@click.option("--user-id", "user_id", help="the profile holding this user id")
@click.option("--email", help="the profile holding this email (compared case-insensitively)")
@click.option("--profile", "profile", help="a profile id")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of text")
@friendly
def history(
    store_path: str, user_id: str | None, email: str | None, profile: str | None, as_json: bool
) -> None:
    """Every decision that touched a profile (and the profiles merged into it), in order,
    with its reasons: why does this account look like this?"""
    chosen = [
        (k, v)
        for k, v in (("user_id", user_id), ("email", email), ("profile", profile))
        if v is not None
    ]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --user-id, --email, --profile")
    kind, value = chosen[0]
    store = open_store(store_path, must_exist=True)
    assert isinstance(store, SqliteStore)
    try:
        target = find_profile(store, kind, value)
        merged = store.merged_into(target)
        if not as_json:
            click.echo(
                f"profile {target}" + (f" (merged into it: {', '.join(merged)})" if merged else "")
            )
        for record in store.history([target, *merged]):
            if as_json:
                click.echo(dumps(record_dict(record)))
            else:
                click.echo(record_text(record))
    finally:
        store.close()


@main.command()
@click.argument("rules")
def check(rules: str) -> None:
    """Validate a rules file (or a shipped pack); list every problem with file:line."""
    try:
        ruleset = load_ruleset(rules)
    except RulesError as exc:
        for problem in exc.problems:
            click.echo(f"idrules: {problem}", err=True)
        count = len(exc.problems)
        click.echo(f"idrules: {count} problem{'s' if count != 1 else ''} in {rules}", err=True)
        sys.exit(1)
    v = ruleset.verification
    proof = (
        "no proof"
        if v.mode == "disabled"
        else f"{v.mode} {v.method} proof (keys: {', '.join(v.keys)})"
    )
    click.echo(
        f"ok: ruleset {ruleset.name} version {ruleset.version} sha256 {ruleset.sha256[:12]}; "
        f"matches by {' > '.join(ruleset.matching.precedence)}; {proof}; "
        f"anonymous sessions: {ruleset.anonymous.on_identify}"
    )
