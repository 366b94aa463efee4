"""The PostgreSQL store (see :mod:`.store`), which needs the ``postgres`` extra (psycopg 3).

:mod:`.url` needs nothing beyond the standard library, so a command can recognise and name a
``postgresql://`` store (password masked) before it knows whether psycopg is installed; the
store itself is imported on first use (PEP 562).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .url import is_postgres_url, masked

if TYPE_CHECKING:
    from .schema import SCHEMA_VERSION
    from .store import PostgresStore

_WHERE = {"PostgresStore": ".store", "SCHEMA_VERSION": ".schema"}

__all__ = ["SCHEMA_VERSION", "PostgresStore", "is_postgres_url", "masked"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)
