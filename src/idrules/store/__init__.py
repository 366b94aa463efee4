"""Stores: a small contract (:mod:`.base`) with two implementations, memory and SQLite."""

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
