"""The ``idrules`` command line (SPEC §6). Errors are one line on stderr and exit 1, never a
traceback; usage errors exit 2 (click's own)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from functools import wraps
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from ._errors import IdrulesError, InputError, RulesError, StoreError
from .decision import dumps
from .engine import Engine
from .events import parse_ts
from .proof import Prover
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


def open_store(path: str | None, *, must_exist: bool = False) -> Store:
    if path is None:
        return MemoryStore()
    if must_exist and not os.path.exists(path):
        raise StoreError(f"store not found: {path}")
    if os.path.isdir(path):
        raise StoreError(f"store {path} is a directory, not a file")
    return SqliteStore(path)


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
@click.option("--quiet", "-q", is_flag=True, help="no progress and no summary on stderr")
@friendly
def replay(
    events: str,
    rules: str,
    store_path: str | None,
    out: str | None,
    secrets: str | None,
    quiet: bool,
) -> None:
    """Decide every event of EVENTS (a JSON-lines log, or - for stdin) in order."""
    ruleset = load_ruleset(rules)
    secret_map = load_secrets_file(secrets)
    if events != "-" and not os.path.exists(events):
        raise InputError(f"events file not found: {events}")
    with ExitStack() as stack:
        store = open_store(store_path)
        stack.callback(store.close)
        engine = Engine(ruleset, store, secrets=secret_map)
        sink: IO[str] = (
            stack.enter_context(open(out, "w", encoding="utf-8", newline="\n"))
            if out
            else sys.stdout
        )
        progress = None
        if not quiet and sys.stderr.isatty():

            def progress(count: int, seconds: float) -> None:
                rate = count / seconds if seconds > 0 else 0.0
                click.echo(f"\r{count:,} events  {rate:,.0f}/s", err=True, nl=False)

        summary = run_replay(engine, _read_lines(events), sink.write, progress)
        sink.flush()
        if progress is not None:
            click.echo("", err=True)
        if not quiet:
            click.echo(f"idrules: {summary.line()}", err=True)


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
