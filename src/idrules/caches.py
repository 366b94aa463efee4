"""One bounded cache for everything the engine remembers between events.

A long replay or a long-running server meets an unbounded stream of new values (addresses,
tokens, signatures, attribute names), so every cache has a bound and forgets its oldest entry
beyond it (first in, first out: an insertion-ordered dict, O(1) per call). Memory then levels
off however long the run. Several threads may share a cache: a lost or repeated entry under a
race is harmless (each value is recomputed the same way), and the methods never raise for one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from contextlib import suppress
from typing import Generic, TypeVar, overload

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")


class BoundedCache(Generic[K, V]):
    """A map of at most ``limit`` entries that forgets its oldest one first."""

    __slots__ = ("_data", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a cache holds at least one entry")
        self.limit = limit
        self._data: dict[K, V] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._data

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __len__(self) -> int:
        return len(self._data)

    @overload
    def get(self, key: K) -> V | None: ...

    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        return self._data.get(key, default)

    def put(self, key: K, value: V) -> V:
        """Remember ``value`` under ``key`` (forgetting the oldest entry when full)."""
        data = self._data
        if key not in data and len(data) >= self.limit:
            # emptied or changed by another thread meanwhile: nothing to forget
            with suppress(StopIteration, RuntimeError):
                data.pop(next(iter(data)), None)
        data[key] = value
        return value

    def pop(self, key: K) -> V | None:
        return self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def keys(self) -> list[K]:
        return list(self._data)


def memoized(function: Callable[[K], V], limit: int) -> Callable[[K], V]:
    """``function`` remembering its last ``limit`` answers (it must be pure)."""
    cache: BoundedCache[K, V] = BoundedCache(limit)
    missing = object()

    def lookup(key: K) -> V:
        found = cache.get(key, missing)
        if found is missing:
            return cache.put(key, function(key))
        return found  # type: ignore[return-value]

    return lookup
