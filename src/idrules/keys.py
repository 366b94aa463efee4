"""Secrets: read by key name, never from a rules file, never printed.

A key named ``current`` comes from the mapping given to the engine (``--secrets FILE`` on the
command line), else from the environment variable ``IDRULES_SECRET_CURRENT``. A secret is UTF-8
text (the customer's server signs with the same text) of at least 32 bytes. Errors name the key
and where its value came from (the variable, the secrets file), never the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ._errors import SecretsError
from .rules.model import Ruleset

MIN_SECRET_BYTES = 32


class SecretsFile(dict[str, str]):
    """Secrets read from a file: a plain mapping that also knows where it was read, so an
    error about one of its secrets names the file rather than the environment variable."""

    def __init__(self, values: Mapping[str, str], source: str) -> None:
        super().__init__(values)
        self.source = source


def secret_env_var(name: str) -> str:
    """The environment variable that holds the secret of key ``name``."""
    return f"IDRULES_SECRET_{name.upper()}"


def read_secret(
    name: str, given: Mapping[str, str | bytes] | None, environ: Mapping[str, str]
) -> bytes:
    """The secret of key ``name``: given first, then the environment.

    Raises :class:`SecretsError` when it is missing, not UTF-8 text, or shorter than 32 bytes,
    naming where it came from.
    """
    value = (given or {}).get(name)
    if value is not None:
        where = f"in {getattr(given, 'source', 'the secrets given to the engine')}"
    else:
        value = environ.get(secret_env_var(name))
        where = f"in {secret_env_var(name)}"
    if value is None or value == "":
        raise SecretsError(
            f"the secret of key {name!r} is missing: set {secret_env_var(name)} "
            f"or give it in a secrets file"
        )
    if isinstance(value, str):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError:
            # an environment variable's bytes that are not UTF-8 reach Python as lone
            # surrogates (os.environ decodes with surrogateescape), as does a "\udc80" escape
            # in a JSON secrets file: neither is text the customer's server could sign with
            raise SecretsError(
                f"the secret of key {name!r} {where} is not valid UTF-8 text"
            ) from None
    else:
        raw = bytes(value)
    if len(raw) < MIN_SECRET_BYTES:
        raise SecretsError(
            f"the secret of key {name!r} {where} is {len(raw)} bytes; at least "
            f"{MIN_SECRET_BYTES} are required"
        )
    return raw


def read_keys(
    ruleset: Ruleset,
    secrets: Mapping[str, str | bytes] | None,
    environ: Mapping[str, str] | None = None,
    *,
    always: bool = False,
) -> dict[str, bytes]:
    """The secret of every key ``verification.keys`` lists, checked at start-up: none when
    the ruleset verifies nothing (unless ``always``: signing needs them whatever the mode)."""
    rules = ruleset.verification
    if rules.mode == "disabled" and not always:
        return {}
    env = os.environ if environ is None else environ
    return {name: read_secret(name, secrets, env) for name in rules.keys}
