"""The ``idrules`` command line (SPEC §6). Every failure is one line on stderr, never a
traceback: ``idrules: error: ...`` and exit 1 for bad input, exit 2 for a usage error (click's,
reworded onto one line), ``idrules: interrupted`` and exit 130 for Ctrl-C.

No command destroys its input: an ``--out`` naming an input (the events, a rules file, the
secrets, the store or one of its companion files) is refused before anything is opened for
writing, and two replays of one run into one store never run at once (:mod:`.runlock`)."""

from __future__ import annotations

import errno
import gc
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, suppress
from functools import wraps
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from ._errors import IdrulesError, InputError, RulesError, StoreError
from .chain import verify_lines
from .decision import Decision, dumps
from .diff import diff
from .engine import Engine
from .events import (
    MAX_LINE_BYTES,
    NotFinite,
    not_json_text,
    parse_line,
    parse_ts,
    read_lines,
    strict_loads,
    strip_bom,
)
from .history import find_profile, record_dict, record_text
from .keys import SecretsFile, read_keys
from .replay import cut_back, resume_position
from .replay import replay as run_replay
from .rules import load_ruleset, pack_names
from .rules.packs import pack_path
from .signing import Signer
from .store import MemoryStore, SqliteStore, export_rows
from .store.base import DecisionRecord, Store, record_of

F = TypeVar("F", bound=Callable[..., Any])

RULES_HELP = "a shipped pack's name (" + ", ".join(pack_names()) + ") or a rules file path"


#: exit status of a command stopped by Ctrl-C (128 + SIGINT, the shell's convention)
INTERRUPTED = 130


def _say(line: str) -> None:
    """One line on stderr, never raising: stderr itself may be gone."""
    with suppress(OSError, ValueError):
        click.echo(line, err=True)


def _fail(message: str) -> None:
    _say(f"idrules: error: {_one_line(message)}")
    sys.exit(1)


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


def _output_closed() -> None:
    """stdout's reader went away (``| head``): point stdout at /dev/null, so the interpreter's
    last flush of what is still buffered cannot fail again on the way out."""
    with suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def friendly(func: F) -> F:
    """Turn every failure into one line on stderr: exit 1, or 130 when interrupted.

    A closed stdout (``idrules replay ... | head``) is a failure too (exit 1), not a success:
    the decisions were not all delivered, and a replay into a store has rolled back whatever it
    had not delivered, so running it again resumes there. Anything unexpected is still one
    line (its type only: an exception's text could quote a secret), unless ``IDRULES_DEBUG``
    is set, which shows the traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except IdrulesError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _say("idrules: interrupted")
            sys.exit(INTERRUPTED)
        except OSError as exc:
            if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
                _output_closed()
                _fail("the output was closed before every line was written (broken pipe)")
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{where}{exc.strerror or exc}")
        except sqlite3.Error as exc:
            _fail(f"store error: {exc}")
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: reported by the group (usage errors on one line)
        except Exception as exc:
            if os.environ.get("IDRULES_DEBUG"):
                raise
            _fail(
                f"unexpected {type(exc).__name__}; this is a bug in idrules: please report it "
                "with the command (IDRULES_DEBUG=1 shows where it happened)"
            )

    return wrapper  # type: ignore[return-value]


class _Main(click.Group):
    """The ``idrules`` group: click's usage errors as one ``idrules: error:`` line with the
    help hint (exit 2) instead of click's three-line block, the same on every click version."""

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> Any:
        extra.pop("standalone_mode", None)
        try:
            code = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.UsageError as exc:
            message = _one_line(exc.format_message()).rstrip(".")
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            _say(f"idrules: error: {message}{hint}")
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            _say(f"idrules: error: {_one_line(exc.format_message())}")
            sys.exit(exc.exit_code)
        except click.Abort:  # Ctrl-C while click itself was parsing
            _say("idrules: interrupted")
            sys.exit(INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(
    cls=_Main,
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=True,
    no_args_is_help=False,
)
@click.version_option(package_name="idrules")
@click.pass_context
def main(ctx: click.Context) -> None:
    """idrules: declarative identity resolution with auditable decisions."""
    if ctx.invoked_subcommand is None:  # `idrules` alone: the help, as a usage error
        click.echo(ctx.get_help(), err=True)
        ctx.exit(2)


def load_secrets_file(path: str | None) -> SecretsFile | None:
    """A ``--secrets`` JSON file: ``{"current": "..."}``. Its contents are never printed; an
    error about one of its secrets names the file (:class:`SecretsFile`)."""
    if path is None:
        return None
    if os.path.isdir(path):
        raise InputError(f"secrets file {path} is a directory")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise InputError(f"secrets file not found: {path}") from None
    except PermissionError:
        raise InputError(f"secrets file {path} is not readable (permission denied)") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        raise InputError(f"secrets file {path} is not readable JSON") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise InputError(f"secrets file {path} must be a JSON object of name -> secret text")
    return SecretsFile(data, f"secrets file {path}")


#: the files SQLite keeps beside a store, and how an error names them
_STORE_COMPANIONS = (
    ("", "the store"),
    ("-wal", "the store's -wal file"),
    ("-shm", "the store's -shm file"),
    ("-journal", "the store's -journal file"),
    (".lock", "the store's lock file"),
)


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file: the same device and inode when both exist, else the
    same resolved path (a file about to be made, a symbolic link to one)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_overwrite(out: str, inputs: Iterable[tuple[str, str | None]]) -> None:
    """Refuse an ``--out`` that would overwrite an input (``(label, path)`` pairs; ``None``
    and ``-`` are no file), or that is a directory. Called before anything is opened for
    writing: ``replay --out events.jsonl`` would otherwise empty the log and report 0 events."""
    if os.path.isdir(out):
        raise InputError(f"--out {out} is a directory")
    for label, path in inputs:
        if path is not None and path != "-" and _same_file(out, path):
            raise InputError(f"--out {out} is {label}; refusing to overwrite an input")


def _rules_file(spec: str) -> str:
    """The file ``--rules SPEC`` reads: the pack's own file for a pack name, else the path."""
    if spec in pack_names() and not spec.endswith((".yaml", ".yml")):
        found = pack_path(spec)
        if found is not None:
            return str(found)
    return spec


def _store_files(store_path: str | None) -> list[tuple[str, str | None]]:
    """A store file and its companions, as inputs an ``--out`` must not name."""
    if store_path is None or "://" in store_path:  # none, or a database server's URL
        return []
    return [(label, store_path + suffix) for suffix, label in _STORE_COMPANIONS]


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
    """The raw lines of an events file, or of stdin for ``-``."""
    if source == "-":
        yield from read_lines(sys.stdin.buffer)
        return
    try:
        handle = open(source, "rb")  # noqa: SIM115 - closed below, streamed
    except FileNotFoundError:
        raise InputError(f"events file not found: {source}") from None
    except IsADirectoryError:
        raise InputError(f"events file {source} is a directory") from None
    with handle:
        yield from read_lines(handle)


def _first_without_bom(lines: Iterator[bytes]) -> Iterator[bytes]:
    """``lines`` with a byte order mark before the first one dropped (SPEC §1; ``replay`` does
    this itself, ``diff`` gets its lines from here)."""
    for number, raw in enumerate(lines):
        yield strip_bom(raw) if number == 0 else raw


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
    if out:
        refuse_overwrite(
            out,
            [
                ("the events file", events),
                ("the rules file", _rules_file(rules)),
                ("the secrets file", secrets),
                *_store_files(store_path),
            ],
        )
    store = open_store(store_path, commit_every=commit_every)
    sink: IO[str] | None = None
    claim: AbstractContextManager[object] | None = None
    done = False
    try:
        engine = Engine(ruleset, store, secrets=secret_map)
        lines: Iterator[bytes] = _read_lines(events)
        start = None
        if isinstance(store, SqliteStore):
            # claims the run: a second replay of it is refused here, before --out is touched
            start, lines, claim = resume_position(store, engine, lines)
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
    if not delivered and isinstance(store, SqliteStore):

        def abandon() -> None:
            raise _Abandoned

        store.before_commit = abandon  # the close below then rolls the group back
    with suppress(_Abandoned, IdrulesError, sqlite3.Error, OSError, ValueError):
        store.close()


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
    type=click.IntRange(min=0),
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
    from the command line. For a ruleset that verifies nothing (verification.mode: disabled)
    the signature is still printed, for a server that signs before verification is turned
    on, with a warning on stderr.
    """
    ruleset = load_ruleset(rules)
    signer = Signer(ruleset, read_keys(ruleset, load_secrets_file(secrets), always=True))
    values = {
        k: v
        for k, v in (("user_id", user_id), ("email", email), ("name", name), ("avatar", avatar))
        if v is not None
    }
    if not values:
        raise InputError("nothing to sign: give --user-id, --email, --name or --avatar")
    for field, value in values.items():
        if not_json_text(value) is not None:  # bytes of argv that are not UTF-8
            raise InputError(f"--{field.replace('_', '-')} is not valid UTF-8 text")
    if ruleset.verification.method == "hmac":
        if claims:
            raise InputError(f"--claim is for JWT rulesets; {ruleset.name} signs with an HMAC")
        signature = signer.hmac(values, key_name)
    else:
        extra = _claims(claims)
        if at is None:
            issued = int(time.time())
        else:
            micros = parse_ts(at)
            if micros is None:
                raise InputError(f"--at takes an RFC 3339 timestamp, got {at!r}")
            issued = micros // 1_000_000
        signature = signer.token(values, extra, issued, expires_in or None, key_name)
    if ruleset.verification.mode == "disabled":
        _say(
            f"idrules: warning: ruleset {ruleset.name} verifies nothing "
            "(verification.mode: disabled): this proof is checked only once mode is "
            "optional or required"
        )
    click.echo(signature)


def _claims(items: tuple[str, ...]) -> dict[str, Any]:
    """``--claim KEY=VALUE`` options: VALUE as strict JSON when it is JSON, else as text. A
    number JSON cannot carry (``1e400``, ``NaN``) is refused: Python would write it into the
    token as ``Infinity``, and no verifier could read the token's payload."""
    extra: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(f"--claim takes KEY=VALUE, got {item!r}")
        try:
            extra[key] = strict_loads(raw)
        except NotFinite:
            raise InputError(
                f"--claim {key}: {raw} is not a finite number, which JSON cannot carry"
            ) from None
        except (ValueError, RecursionError):
            extra[key] = raw
    return extra


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
    if verdict.ok and verdict.lines == 0:
        _fail(f"{decisions} is empty: it holds no decisions to verify")
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
    if events != "-" and os.path.isdir(events):
        raise InputError(f"events file {events} is a directory")
    if out:
        refuse_overwrite(
            out,
            [
                ("the events file", events),
                ("the rules file", _rules_file(rules)),
                ("the rules file", _rules_file(against)),
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
            _first_without_bom(_read_lines(events)),
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
@friendly
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


@main.command("schema")
@click.option(
    "--authoring",
    is_flag=True,
    help="the schema of a rules file as written, for an editor: extends allowed, every knob "
    "optional (a file without extends still names its ruleset and version), in draft-07 form",
)
@friendly
def schema_command(authoring: bool) -> None:
    """Print the JSON Schema (Draft 2020-12) that rulesets are validated against, as shipped.

    It checks a ruleset's effective form (after extends and the defaults). --authoring prints
    the variant for a file as written, for an editor: save it beside your rules files and name
    it in a `# yaml-language-server: $schema=...` line for completion and hover help.
    """
    from importlib import resources

    text = resources.files("idrules.rules").joinpath("schema.json").read_text(encoding="utf-8")
    if authoring:
        # the same knobs, descriptions and limits; written as draft-07 (`definitions`), the
        # draft editors' YAML language servers support in full (no keyword of the shipped
        # schema changes meaning, and nothing but descriptions sits beside a $ref)
        text = text.replace('"#/$defs/', '"#/definitions/')
        schema = json.loads(text)
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        schema["$id"] = schema["$id"] + ":file"
        schema["title"] = "idrules rules file, as written (extends allowed, every knob optional)"
        schema["description"] = (
            "A rules file before it is merged: any knob may be left out (the defaults and the "
            "base named by extends fill it in), and a file without extends names its ruleset "
            "and version. `idrules check FILE` validates the merged result."
        )
        schema.pop("required", None)
        extends = {
            "description": "A shipped pack's name (helpshift, quackback, ...) or a .yaml/.yml "
            "path relative to this file, whose knobs this file overrides: mappings merge "
            "deeply, lists and scalars replace. Default: null (no base).",
            "type": ["string", "null"],
            "minLength": 1,
        }
        schema["properties"] = {"extends": extends, **schema["properties"]}
        schema["if"] = {"properties": {"extends": {"type": "string"}}, "required": ["extends"]}
        schema["else"] = {"required": ["ruleset", "version"]}
        schema["definitions"] = schema.pop("$defs")
        text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    click.echo(text, nl=False)
