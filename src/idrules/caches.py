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
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(dict[K, V]):
    """A dict of at most ``limit`` entries that forgets its oldest one first: write through
    :meth:`put` (reads are the dict's own, at C speed: caches sit on the per-event path)."""

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a cache holds at least one entry")
        super().__init__()
        self.limit = limit

    def put(self, key: K, value: V) -> V:
        """Remember ``value`` under ``key`` (forgetting the oldest entry when full)."""
        if len(self) >= self.limit and key not in self:
            # emptied or changed by another thread meanwhile: nothing to forget
            with suppress(StopIteration, RuntimeError, KeyError):
                del self[next(iter(self))]
        self[key] = value
        return value


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
