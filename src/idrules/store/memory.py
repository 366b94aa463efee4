"""The in-memory store: dicts and indexes, for tests, benchmarks and replays without ``--store``."""

from __future__ import annotations

import threading
from bisect import bisect_left, insort
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import attrs

from .._copy import detached, is_nested
from .base import Changes, DecisionRecord, Profile, Session


class MemoryStore:
    """A store held in dicts. ``transaction`` holds a lock, so threads sharing one engine
    decide one event at a time. It keeps no decision records (``history`` and resumable
    replays need a durable store).

    Every per-event operation costs the same however many profiles share a key or were
    merged into one: each email key's holders are kept sorted by creation (an insertion is a
    bisection, and new profiles append), and a merge moves only the merged profile's
    activity (it is put in order when read, by :meth:`activity_of`)."""

    keeps_decisions = False

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._profiles: dict[str, Profile] = {}  # insertion order = creation order
        self._by_user: dict[str, str] = {}
        #: email key -> (creation order, profile id) of its active holders, sorted
        self._by_email: defaultdict[str, list[tuple[int, str]]] = defaultdict(list)
        self._sessions: dict[str, Session] = {}
        self._session_index: defaultdict[str, set[str]] = defaultdict(set)
        # per profile: (recording order, track event id), in no particular order after a
        # merge: activity_of sorts, so merges keep the order of events without sorting
        self._activity: defaultdict[str, list[tuple[int, str]]] = defaultdict(list)
        self._recorded = 0
        self._decided: set[str] = set()
        self._seq: dict[str, int] = {}

    # reading ---------------------------------------------------------------------------
    def is_decided(self, event_id: str) -> bool:
        return event_id in self._decided

    def profile(self, profile_id: str) -> Profile | None:
        return self._profiles.get(profile_id)

    def by_user_key(self, user_key: str) -> Profile | None:
        pid = self._by_user.get(user_key)
        return None if pid is None else self._profiles[pid]

    def by_email_key(self, email_key: str, limit: int) -> list[Profile]:
        holders = self._by_email.get(email_key)
        if not holders:
            return []
        return [self._profiles[pid] for _, pid in holders[:limit]]

    def session(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def sessions_of(self, profile_id: str) -> list[Session]:
        return [self._sessions[sid] for sid in sorted(self._session_index.get(profile_id, ()))]

    def profiles(self) -> Iterator[Profile]:
        with self._lock:
            return iter(list(self._profiles.values()))

    def activity_of(self, profile_id: str) -> list[str]:
        with self._lock:
            return [event_id for _, event_id in sorted(self._activity.get(profile_id, ()))]

    def acting_sessions(self, profile_id: str) -> list[str]:
        with self._lock:
            return sorted(
                sid
                for sid in self._session_index.get(profile_id, ())
                if self._sessions[sid].current == profile_id
            )

    # writing ---------------------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[None]:
        """One event: the store's lock, held while the event is planned and applied."""
        return self._lock  # type: ignore[return-value]  # a lock is a context manager

    def apply(
        self, changes: Changes, seal: Callable[[], DecisionRecord | None] | None = None
    ) -> None:
        for write in changes.profiles:
            self._put_profile(write.after, write.before)
        for session in changes.sessions:
            self._put_session(session)
        for event_id, pid in changes.activity:
            self._recorded += 1
            self._activity[pid].append((self._recorded, event_id))
        for source, target in changes.moves:
            moved = self._activity.pop(source, None)
            if moved:
                self._activity[target].extend(moved)
        if changes.event_id is not None:
            self._decided.add(changes.event_id)
        if seal is not None:
            seal()  # the decision is written out; this store keeps no record of it

    def close(self) -> None:
        return None

    def _put_profile(self, after: Profile, before: Profile | None) -> None:
        old = before if before is not None else self._profiles.get(after.id)
        if after.attributes and is_nested(after.attributes):
            after = attrs.evolve(after, attributes=detached(after.attributes))
        self._profiles[after.id] = after
        if old is not None:
            if (old.state, old.user_key, old.email_key) == (
                after.state,
                after.user_key,
                after.email_key,
            ):
                return  # indexed as before
            self._unindex(old)
        else:
            self._seq[after.id] = len(self._seq)
        if after.state == "active":
            if after.user_key is not None:
                self._by_user[after.user_key] = after.id
            if after.email_key is not None:
                insort(self._by_email[after.email_key], (self._seq[after.id], after.id))

    def _unindex(self, old: Profile) -> None:
        if old.user_key is not None and self._by_user.get(old.user_key) == old.id:
            del self._by_user[old.user_key]
        if old.email_key is not None and old.state == "active":
            holders = self._by_email.get(old.email_key)
            entry = (self._seq[old.id], old.id)
            if holders:
                at = bisect_left(holders, entry)
                if at < len(holders) and holders[at] == entry:
                    del holders[at]
                if not holders:
                    del self._by_email[old.email_key]

    def _put_session(self, session: Session) -> None:
        old = self._sessions.get(session.id)
        if old is not None:
            for pid in (old.current, old.anon):
                if pid is not None:
                    self._session_index[pid].discard(session.id)
        self._sessions[session.id] = session
        for pid in (session.current, session.anon):
            if pid is not None:
                self._session_index[pid].add(session.id)
