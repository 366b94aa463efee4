"""The ``idrules`` command line: the group, its error handling, and what the commands share
(secrets files, stores, refusing to overwrite an input, reading a log). Every failure is one
line on stderr, never a traceback: ``idrules: error: ...`` and exit 1 for bad input, exit 2 for
a usage error (click's, reworded onto one line), ``idrules: interrupted`` and exit 130 for
Ctrl-C. No command destroys its input: an ``--out`` naming an input (the events, a rules file,
the secrets, the store or one of its companion files) is refused before anything is opened
for writing."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from functools import wraps
from importlib import import_module
from pathlib import Path
from typing import Any, TypeVar

import click

from .._errors import IdrulesError, InputError, StoreError
from ..events import (
    read_lines,
    strip_bom,
)
from ..keys import SecretsFile
from ..rules import pack_names
from ..rules.packs import pack_path
from ..store import MemoryStore, SqliteStore
from ..store.base import Store

F = TypeVar("F", bound=Callable[..., Any])

RULES_HELP = "a shipped pack's name (" + ", ".join(pack_names()) + ") or a rules file path"
STORE_HELP = "a SQLite store file, or a PostgreSQL database: postgresql://USER@HOST/DB"


#: exit status of a command stopped by Ctrl-C (128 + SIGINT, the shell's convention)
INTERRUPTED = 130


def say(line: str) -> None:
    """One line on stderr, never raising: stderr itself may be gone."""
    with suppress(OSError, ValueError):
        click.echo(line, err=True)


def fail(message: str) -> None:
    say(f"idrules: error: {one_line(message)}")
    sys.exit(1)


def one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text or "\r" in text else text


def output_closed() -> None:
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
            fail(str(exc))
        except KeyboardInterrupt:
            say("idrules: interrupted")
            sys.exit(INTERRUPTED)
        except OSError as exc:
            if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
                output_closed()
                fail("the output was closed before every line was written (broken pipe)")
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc}")
        except sqlite3.Error as exc:
            fail(f"store error: {exc}")
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: reported by the group (usage errors on one line)
        except Exception as exc:
            if os.environ.get("IDRULES_DEBUG"):
                raise
            fail(
                f"unexpected {type(exc).__name__}; this is a bug in idrules: please report it "
                "with the command (IDRULES_DEBUG=1 shows where it happened)"
            )

    return wrapper  # type: ignore[return-value]


#: each command and the module of :mod:`idrules.cli` that defines it: a command's module is
#: imported when the command is asked for, so ``idrules replay`` does not pay for the imports
#: of ``serve``, ``import`` or ``sign`` (a whole-process replay's start-up is part of its time)
COMMANDS = {
    "check": "authoring",
    "diff": "deciding",
    "export": "auditing",
    "history": "auditing",
    "import": "importing",
    "replay": "deciding",
    "resolve": "deciding",
    "schema": "authoring",
    "serve": "serving",
    "sign": "authoring",
    "verify-log": "auditing",
}


class _Main(click.Group):
    """The ``idrules`` group: click's usage errors as one ``idrules: error:`` line with the
    help hint (exit 2) instead of click's three-line block, the same on every click version.
    Its commands load on demand (:data:`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            import_module(f"idrules.cli.{module}")  # its decorators add its commands to main
        return super().get_command(ctx, cmd_name)

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> Any:
        extra.pop("standalone_mode", None)
        try:
            code = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.UsageError as exc:
            message = one_line(exc.format_message()).rstrip(".")
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            say(f"idrules: error: {message}{hint}")
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            say(f"idrules: error: {one_line(exc.format_message())}")
            sys.exit(exc.exit_code)
        except click.Abort:  # Ctrl-C while click itself was parsing
            say("idrules: interrupted")
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


def rules_file(spec: str) -> str:
    """The file ``--rules SPEC`` reads: the pack's own file for a pack name, else the path."""
    if spec in pack_names() and not spec.endswith((".yaml", ".yml")):
        found = pack_path(spec)
        if found is not None:
            return str(found)
    return spec


def store_files(store_path: str | None) -> list[tuple[str, str | None]]:
    """A store file and its companions, as inputs an ``--out`` must not name."""
    if store_path is None or "://" in store_path:  # none, or a database server's URL
        return []
    return [(label, store_path + suffix) for suffix, label in _STORE_COMPANIONS]


def open_store(
    path: str | None, *, must_exist: bool = False, commit_every: int = 1, pool_size: int = 1
) -> Store:
    """The store ``path`` names: a SQLite file, or a PostgreSQL database for a
    ``postgresql://`` (or ``postgres://``) URL; a fresh memory store without one.
    ``must_exist``: only read an existing idrules store, read-only: never create or change a
    file, a schema or a table. ``pool_size``: connections to a PostgreSQL database, for
    threads deciding in parallel (``serve``). Notes from the opening (an older store
    re-keyed) go to stderr, one line each."""
    if path is None:
        return MemoryStore()
    if path.startswith(POSTGRES_SCHEMES):
        return open_postgres(
            path, readonly=must_exist, commit_every=commit_every, pool_size=pool_size
        )
    if os.path.isdir(path):
        raise StoreError(f"store {path} is a directory, not a file")
    if must_exist:
        return SqliteStore(path, readonly=True)
    store = SqliteStore(path, commit_every=commit_every)
    for note in store.notes:
        click.echo(f"idrules: note: {note}", err=True)
    return store


#: the URL schemes of a PostgreSQL store (see idrules.store.postgres.url)
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_postgres(url: str, *, readonly: bool, commit_every: int = 1, pool_size: int = 1) -> Store:
    """A PostgreSQL store; psycopg is an optional dependency, so its absence is one line."""
    try:
        from ..store.postgres import PostgresStore
    except ImportError as exc:
        if not (exc.name or "").startswith("psycopg") and "psycopg" not in str(exc):
            raise
        from ..store.postgres.url import masked

        raise StoreError(
            f"store {masked(url)} is a PostgreSQL database, which needs psycopg: "
            "pip install 'idrules[postgres]'"
        ) from None
    return PostgresStore(url, readonly=readonly, commit_every=commit_every, pool_size=pool_size)


def check_events_file(source: str) -> None:
    """Refuse, before anything is opened for writing, an events file that is not there."""
    if source != "-" and not os.path.exists(source):
        raise InputError(f"events file not found: {source}")
    if source != "-" and os.path.isdir(source):
        raise InputError(f"events file {source} is a directory")


def log_lines(source: str) -> Iterator[bytes]:
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


def first_without_bom(lines: Iterator[bytes]) -> Iterator[bytes]:
    """``lines`` with a byte order mark before the first one dropped (docs/events.md; replay does
    this itself, ``diff`` gets its lines from here)."""
    for number, raw in enumerate(lines):
        yield strip_bom(raw) if number == 0 else raw
