"""Commands that read what was decided: ``export``, ``history`` and ``verify-log``."""

from __future__ import annotations

import sys

import click

from .._errors import InputError, StoreError
from ..audit import (
    find_profile,
    record_dict,
    record_text,
    verify_lines,
)
from ..decision import dumps
from ..store import export_rows
from ..store.base import DurableStore
from .base import (
    STORE_HELP,
    fail,
    friendly,
    main,
    open_store,
)


@main.command()
@click.option("--store", "store_path", required=True, help=STORE_HELP)
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
        fail(f"{decisions} is empty: it holds no decisions to verify")
    if not verdict.ok:
        fail(f"{decisions}:{verdict.bad_line}: {verdict.problem}")
    if head is not None and verdict.head != head:
        fail(
            f"{decisions}: the last line's hash is not {head}: lines were cut off the end, "
            "or this is another log"
        )
    click.echo(f"ok: {verdict.lines} decisions, chain intact; head {verdict.head}")


@main.command()
@click.option("--store", "store_path", required=True, help=STORE_HELP)
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
    try:
        if not isinstance(store, DurableStore):  # pragma: no cover - --store is required
            raise StoreError(f"store {store_path} keeps no history")
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
