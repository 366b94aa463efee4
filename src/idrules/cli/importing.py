"""``idrules import``: load an existing user base into a store (docs/import.md)."""

from __future__ import annotations

import sqlite3
import sys
from contextlib import nullcontext, suppress
from typing import IO, cast

import click

from .._errors import IdrulesError
from ..importing import Importer, UsersFile
from ..importing.rows import Format
from ..rules import load_ruleset
from .base import (
    RULES_HELP,
    STORE_HELP,
    friendly,
    load_secrets_file,
    main,
    open_store,
    refuse_overwrite,
    rules_file,
    store_files,
)
from .deciding import progress_line


@main.command("import")
@click.argument("users")
@click.option("--rules", "rules", required=True, help=RULES_HELP)
@click.option("--store", "store_path", required=True, help=STORE_HELP)
@click.option("--out", "out", help="write one decision per row to this file (default: stdout)")
@click.option(
    "--secrets", "secrets", help="JSON file of key name -> secret (the audit redaction key)"
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "csv", "jsonl"]),
    default="auto",
    show_default=True,
    help="the users file's format (auto: by extension, else by its first character)",
)
@click.option(
    "--commit-every",
    "commit_every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="commit every N rows (faster; a crash loses up to N-1 imported rows, which "
    "importing the file again imports)",
)
@click.option("--quiet", "-q", is_flag=True, help="no progress and no summary on stderr")
@friendly
def import_command(
    users: str,
    rules: str,
    store_path: str,
    out: str | None,
    secrets: str | None,
    fmt: str,
    commit_every: int,
    quiet: bool,
) -> None:
    """Import the users of USERS (CSV with a header, or JSON lines; - for stdin) into the
    store: one decision per row; a refused row never stops the import.

    Profiles get ids derived from the row's user id (else its email), so importing the same
    file again changes nothing.
    """
    ruleset = load_ruleset(rules)
    secret_map = load_secrets_file(secrets)
    if out:
        refuse_overwrite(
            out,
            [
                ("the users file", users),
                ("the rules file", rules_file(rules)),
                ("the secrets file", secrets),
                *store_files(store_path),
            ],
        )
    with UsersFile(users, cast(Format, fmt)) as users_file:  # the header checked first
        store = open_store(store_path, commit_every=commit_every)
        sink: IO[str] | None = None
        done = False
        try:
            importer = Importer(ruleset, store, secrets=secret_map)
            sink = open(out, "w", encoding="utf-8", newline="\n") if out else sys.stdout  # noqa: SIM115
            summary = importer.run(users_file.rows(), sink.write, progress_line(quiet, "rows"))
            sink.flush()
            done = True
        finally:
            if sink is not None and sink is not sys.stdout:
                with suppress(OSError, ValueError):
                    sink.close()
            # every row is whole in its transaction (or commit group): closing commits them,
            # and an error while closing after a failure never hides that failure
            with nullcontext() if done else suppress(IdrulesError, sqlite3.Error, OSError):
                store.close()
    if not quiet:
        click.echo(f"idrules: {summary.line()}", err=True)
