"""What ``idrules serve`` runs: the options (:class:`ServeConfig`), the API token, which
addresses count as loopback, and the engine a server process builds from them.

No web framework here: the command line checks all of this, and builds the engine once,
before anything listens, so a bad rules file, secret, token or store is one line on stderr.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from .._errors import SecretsError
from ..engine import Engine
from ..rules import load_ruleset

#: the environment variable holding the bearer token clients must send
TOKEN_VARIABLE = "IDRULES_API_TOKEN"
#: the shortest token accepted, in bytes (as for the widget secrets)
MIN_TOKEN_BYTES = 32
#: PostgreSQL connections per server process: its request threads decide in parallel
POSTGRES_POOL = 4


@attrs.frozen
class ServeConfig:
    """The options of one ``idrules serve``. ``token`` (the bytes of ``IDRULES_API_TOKEN``)
    is never shown in a repr."""

    rules: str
    store: str | None = None
    secrets: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    token: bytes | None = attrs.field(default=None, repr=False)


def read_token(environ: Mapping[str, str]) -> bytes | None:
    """The API token from ``IDRULES_API_TOKEN`` (None when unset). Set but shorter than
    :data:`MIN_TOKEN_BYTES` (empty included) is refused: a guessable token is worse than a
    server that says it has none. The value is never printed."""
    value = environ.get(TOKEN_VARIABLE)
    if value is None:
        return None
    token = value.encode("utf-8", "surrogateescape")
    if len(token) < MIN_TOKEN_BYTES:
        raise SecretsError(
            f"{TOKEN_VARIABLE} must be at least {MIN_TOKEN_BYTES} bytes (it has {len(token)}); "
            'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
    return token


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``: only
    this machine can reach it. Any other name may resolve to a public address."""
    import ipaddress  # here: the command line imports this module for every command

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build_engine(config: ServeConfig) -> Engine:
    """The engine of one server process, over its own connection to the store (the command
    line's store opener: a SQLite file, a PostgreSQL URL, or a fresh memory store)."""
    from ..cli.base import load_secrets_file, open_store

    ruleset = load_ruleset(config.rules)
    secrets = load_secrets_file(config.secrets)
    store = open_store(config.store, pool_size=POSTGRES_POOL)
    try:
        return Engine(ruleset, store, secrets=secrets)
    except BaseException:
        store.close()
        raise
