"""Secrets: read by key name, never from a rules file, never printed.

A key named ``current`` comes from the mapping given to the engine (``--secrets FILE`` on the
command line), else from the environment variable ``IDRULES_SECRET_CURRENT``. A secret must be
at least 32 bytes. Errors name the key and its variable, never the value.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._errors import SecretsError

MIN_SECRET_BYTES = 32


def secret_env_var(name: str) -> str:
    """The environment variable that holds the secret of key ``name``."""
    return f"IDRULES_SECRET_{name.upper()}"


def read_secret(
    name: str, given: Mapping[str, str | bytes] | None, environ: Mapping[str, str]
) -> bytes:
    """The secret of key ``name``: given first, then the environment.

    Raises :class:`SecretsError` when it is missing or shorter than 32 bytes.
    """
    value = (given or {}).get(name)
    if value is None:
        value = environ.get(secret_env_var(name))
    if value is None or value == "":
        raise SecretsError(
            f"the secret of key {name!r} is missing: set {secret_env_var(name)} "
            f"or give it in a secrets file"
        )
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if len(raw) < MIN_SECRET_BYTES:
        raise SecretsError(
            f"the secret of key {name!r} ({secret_env_var(name)}) is {len(raw)} bytes; at "
            f"least {MIN_SECRET_BYTES} are required"
        )
    return raw
