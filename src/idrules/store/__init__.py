"""Stores: a small contract (:mod:`.base`) with three implementations: memory, SQLite and
PostgreSQL (:mod:`.postgres`, imported on first use: it needs the ``postgres`` extra)."""

from .base import (
    Changes,
    DecisionRecord,
    DurableStore,
    Profile,
    ProfileWrite,
    Run,
    Session,
    Store,
    StoreReader,
    export_rows,
)
from .memory import MemoryStore
from .sqlite import SqliteStore

__all__ = [
    "Changes",
    "DecisionRecord",
    "DurableStore",
    "MemoryStore",
    "Profile",
    "ProfileWrite",
    "Run",
    "Session",
    "SqliteStore",
    "Store",
    "StoreReader",
    "export_rows",
]
