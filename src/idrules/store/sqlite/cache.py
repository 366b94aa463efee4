"""What a SQLite store's connection last saw of the file, keyed as the planner asks for it.

While the connection holds the write lock nobody else can change the file, so the cache is
exact if nobody did in between: each transaction starts by comparing ``PRAGMA data_version``
(which changes when *another* connection commits) with the value at the last check, and drops
the cache when it moved (:class:`~idrules.store.sqlite.groups.Transactions`). Every write of
this connection keeps it up to date (:meth:`ReadCache.wrote_profile`).

Absences are kept too (no such profile or session, no active profile holding a key): a new
user's or session's lookups would otherwise query the file each time, as the planner asks
again before writing. Each map is bounded, so memory stays flat however many profiles the
file holds.
"""

from __future__ import annotations

import attrs

from ..._copy import detached, is_nested
from ...caches import BoundedCache
from ..base import Profile, Session

#: entries per map: a busy widget's working set (the benchmark's 10k returning users and their
#: sessions) in ~25 MiB at most, filled early in a long replay and then flat
CACHE_ENTRIES = 16_384


class ReadCache:
    """Profiles, sessions and key lookups, as this connection last read or wrote them."""

    def __init__(self, limit: int = CACHE_ENTRIES) -> None:
        self.profiles: BoundedCache[str, Profile | None] = BoundedCache(limit)
        self.sessions: BoundedCache[str, Session | None] = BoundedCache(limit)
        #: user key -> the active profile holding it (earliest created), as an id
        self.user_keys: BoundedCache[str, str | None] = BoundedCache(limit)
        #: email key -> (the limit asked for, the first active holders found, as ids): the
        #: answer to any limit up to the one asked, and to every limit when fewer were found
        self.email_keys: BoundedCache[str, tuple[int, tuple[str, ...]]] = BoundedCache(limit)

    def clear(self) -> None:
        for part in (self.profiles, self.sessions, self.user_keys, self.email_keys):
            part.clear()

    def wrote_profile(self, after: Profile, before: Profile | None) -> None:
        """Keep up with a profile write: the profile itself, and the key lookups it changes.

        A new profile is created after every other, so it can only join the end of a key's
        holders: a cached answer is extended (an absence becomes it; a complete list of email
        holders gains it) rather than dropped, and a key many profiles share stays cached. An
        update that moves a key or the state forgets the lookups of both keys."""
        self.profiles.put(after.id, owned(after))
        if before is None:
            if after.state != "active":
                return
            key = after.user_key
            if key is not None and key in self.user_keys and self.user_keys[key] is None:
                self.user_keys.put(key, after.id)
            if after.email_key is not None and after.email_key in self.email_keys:
                asked, ids = self.email_keys[after.email_key]
                if len(ids) < asked:
                    self.email_keys.put(after.email_key, (asked, (*ids, after.id)))
            return
        moved = before.state != after.state
        if moved or before.user_key != after.user_key:
            for key in (before.user_key, after.user_key):
                if key is not None:
                    self.user_keys.pop(key, None)
        if moved or before.email_key != after.email_key:
            for key in (before.email_key, after.email_key):
                if key is not None:
                    self.email_keys.pop(key, None)


def owned(p: Profile) -> Profile:
    """``p`` sharing no nested attribute value with the caller's objects: a cached profile
    must not change when the caller later mutates its payload."""
    if is_nested(p.attributes):
        return attrs.evolve(p, attributes=detached(p.attributes))
    return p
