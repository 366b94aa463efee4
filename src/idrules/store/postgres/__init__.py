"""The PostgreSQL store (see :mod:`.store`): needs the ``postgres`` extra (psycopg 3)."""

from .schema import SCHEMA_VERSION
from .store import PostgresStore
from .url import is_postgres_url, masked

__all__ = ["SCHEMA_VERSION", "PostgresStore", "is_postgres_url", "masked"]
