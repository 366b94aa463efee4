"""Stores: a small interface (:mod:`.base`) with two implementations, memory and SQLite."""

from .base import Changes, Profile, ProfileWrite, Session, Store, StoreReader, export_rows
from .memory import MemoryStore
from .sqlite import SqliteStore

__all__ = [
    "Changes",
    "MemoryStore",
    "Profile",
    "ProfileWrite",
    "Session",
    "SqliteStore",
    "Store",
    "StoreReader",
    "export_rows",
]
