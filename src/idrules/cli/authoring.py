"""Commands for rules authors and integrators: ``check`` a rules file, ``schema`` for an
editor, ``sign`` what the customer's server sends."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from .._errors import InputError, RulesError
from ..events import (
    NotFinite,
    not_json_text,
    parse_ts,
    strict_loads,
)
from ..keys import read_keys
from ..rules import load_ruleset
from ..rules.schema import authoring_schema, shipped_schema_text
from ..signing import Signer
from .base import (
    RULES_HELP,
    friendly,
    load_secrets_file,
    main,
    say,
)


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
        say(
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
    if authoring:
        click.echo(json.dumps(authoring_schema(), indent=2, ensure_ascii=False))
    else:
        click.echo(shipped_schema_text(), nl=False)
