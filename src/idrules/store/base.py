"""The store contract: profiles, sessions, activity and decided event ids, and the records a
durable store keeps.

The planner only *reads* a store (:class:`StoreReader`); the engine then hands the planned
:class:`Changes` to :meth:`Store.apply`, the only write, inside :meth:`Store.transaction`.
Three implementations: :mod:`.memory` (tests, benchmarks, replays without ``--store``),
:mod:`.sqlite` (durable, several processes on one file) and :mod:`.postgres` (durable, many
processes on many machines against one database).

A store may also offer ``prefetch(event_id, session, user_key)``: the engine calls it inside
the event's transaction, before planning, with what the event will read first, so a store
across a network reads it all in one round trip (the PostgreSQL store does). And
``claim_event(event_id) -> bool``: called instead of ``is_decided`` inside the event's
transaction, it records the id as decided in the statement that checks it (True: it already
was), and the store's ``apply`` then skips the id's insert (the SQLite store does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

State = Literal["active", "merged", "cleared", "expired"]


@attrs.frozen(slots=True)
class Profile:
    """One profile. ``user_key``/``email_key`` are the match keys (:mod:`idrules.matchkeys`);
    a value the caller did not prove is kept without a key (see :mod:`idrules.engine`)."""

    id: str
    created_by: str
    user_id: str | None = None
    user_key: str | None = None
    email: str | None = None
    email_key: str | None = None
    name: str | None = None
    avatar: str | None = None
    verified: bool = False
    anonymous: bool = False
    state: State = "active"
    merged_into: str | None = None
    attributes: Mapping[str, Any] = attrs.field(factory=dict)
    #: the event time (µs) of the last activity; an anonymous profile's TTL counts from it
    last_seen: int = 0


def profile_id_for(event_id: str) -> str:
    """The id of the profile an event creates (one event creates at most one): derived from
    the event's id, so stable and deterministic; a store may rely on no other event making it."""
    digest = hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()
    return "p_" + digest[:16]


@attrs.frozen(slots=True)
class Session:
    """A browser/device session: the profile it acts as, and its own anonymous profile."""

    id: str
    current: str | None = None
    anon: str | None = None


@attrs.frozen(slots=True)
class ProfileWrite:
    """A profile to insert (``before`` is None) or to update from ``before`` to ``after``."""

    after: Profile
    before: Profile | None = None


@attrs.frozen(slots=True)
class DecisionRecord:
    """The compact form of an applied decision the store keeps, for ``history`` and resume.

    ``run`` and ``line`` place it in a replay (None for library calls); ``hash`` is its line's
    hash in the replay's decisions chain; ``reasons`` is compact JSON ``[[code, rule, field,
    detail], ...]``.
    """

    event_id: str | None
    outcome: str
    profile: str | None
    merged: tuple[str, ...]
    reasons: str
    run: int | None = None
    line: int | None = None
    hash: str | None = None


@attrs.frozen(slots=True)
class Run:
    """A replay of one log under one ruleset in a durable store, and where it stopped: how
    many decisions it holds and the last one's line, event id and chain hash."""

    id: int
    count: int
    last_line: int
    last_event_id: str | None
    last_hash: str | None


@attrs.frozen(slots=True)
class Changes:
    """Everything one event changes; applied atomically with the record of its id."""

    event_id: str | None
    profiles: tuple[ProfileWrite, ...] = ()
    sessions: tuple[Session, ...] = ()
    activity: tuple[tuple[str, str], ...] = ()  # (track event id, profile id)
    moves: tuple[tuple[str, str], ...] = ()  # move all activity: (from profile, to profile)


class StoreReader(Protocol):
    """What planning may read."""

    def is_decided(self, event_id: str) -> bool: ...

    def profile(self, profile_id: str) -> Profile | None: ...

    def by_user_key(self, user_key: str) -> Profile | None:
        """The active profile holding this user id match key (the earliest created, should
        there be several): one indexed lookup."""
        ...

    def by_email_key(self, email_key: str, limit: int) -> list[Profile]:
        """At most ``limit`` active profiles whose current email has this match key, earliest
        created first. The planner asks for the few it needs (the winner, and whether there is
        a second): what a lookup costs never grows with how many profiles share the key."""
        ...

    def session(self, session_id: str) -> Session | None: ...

    def sessions_of(self, profile_id: str) -> list[Session]:
        """Sessions acting as, or holding as their anonymous profile, this profile."""
        ...


class Store(StoreReader, Protocol):
    """A store: readable by the planner, written only through :meth:`apply`."""

    #: whether :meth:`apply` keeps each decision's record (the engine builds none otherwise)
    keeps_decisions: bool

    def transaction(self) -> AbstractContextManager[None]:
        """One event's read-modify-write, atomic and isolated from other writers."""
        ...

    def apply(
        self, changes: Changes, seal: Callable[[], DecisionRecord | None] | None = None
    ) -> None:
        """Write one event's changes, then call ``seal`` once (it writes the decision out, to
        a replay's decisions file, say, and returns its record), and write the record when the
        store keeps records. A store whose writes may lose a race (``StoreConflict``) calls
        ``seal`` only after every write that can, so a decision is never written out for an
        event that is then planned again."""
        ...

    def profiles(self) -> Iterator[Profile]:
        """Every profile, in creation order."""
        ...

    def activity_of(self, profile_id: str) -> list[str]:
        """Track event ids attributed to the profile, in the order recorded."""
        ...

    def acting_sessions(self, profile_id: str) -> list[str]:
        """Ids of the sessions currently acting as the profile, sorted."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class DurableStore(Store, Protocol):
    """A store that keeps every decision's record with its effects: the audit trail
    (:mod:`idrules.audit`: resume, history, one replay per run) works over this contract, so
    any durable backend offers it by implementing these methods. ``path`` names the store in
    messages; ``before_commit`` runs just before each commit (a replay flushes its decisions
    file there, so the file never lags the store)."""

    path: str
    before_commit: Callable[[], object] | None

    def commit(self) -> None:
        """Make the events decided so far durable (a no-op when nothing is pending)."""
        ...

    def claim_run(self, log_key: str, ruleset: str) -> tuple[Run, AbstractContextManager[object]]:
        """The run of this log under this ruleset (made on first use), claimed for this
        process until the returned context manager exits; refused at once (``RunBusyError``)
        while another replay holds it."""
        ...

    def history(self, profile_ids: Iterable[str]) -> Iterator[DecisionRecord]:
        """Every decision about one of ``profile_ids``, in the order applied."""
        ...

    def merged_into(self, profile_id: str) -> list[str]:
        """Ids of the profiles folded into ``profile_id``, directly or through others."""
        ...

    def root_of(self, profile_id: str) -> str:
        """The profile ``profile_id`` was merged into, followed to the end (itself if none)."""
        ...

    def find_profiles(self, column: str, value: str) -> list[str]:
        """Ids of profiles (any state) whose ``id``, ``user_id``, ``user_key`` or
        ``email_key`` equals ``value``, earliest first."""
        ...


def export_rows(store: Store) -> Iterator[dict[str, Any]]:
    """The profiles as docs/stores.md lines (dicts in documented key order), creation order."""
    for p in store.profiles():
        yield export_row(store, p)


def export_row(store: Store, p: Profile) -> dict[str, Any]:
    """One profile as an export line (a dict in documented key order)."""
    return {
        "profile": p.id,
        "user_id": p.user_id,
        "email": p.email,
        "name": p.name,
        "avatar": p.avatar,
        "verified": p.verified,
        "anonymous": p.anonymous,
        "state": p.state,
        "attributes": dict(sorted(p.attributes.items())),
        "sessions": store.acting_sessions(p.id),
        "activity": store.activity_of(p.id),
        "merged_into": p.merged_into,
    }
