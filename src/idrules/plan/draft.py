"""The planner's scratch view of the store: what the event read, overlaid with what it changes.

Planning is pure: it reads through a :class:`Draft` and returns changes, writing nothing.
Every read the draft can answer, it answers from this event's own changes first (a profile
it put, a session it set, a key it moved), so the planner sees one consistent state whatever
the order of its reads; :meth:`Draft.changes` then lists what differs from the store, by
value: a profile or session put back as it was read is not written.
"""

from __future__ import annotations

import attrs

from ..decision import Decision, Identity, Outcome, Reason, RulesetRef
from ..events import Event
from ..store.base import Changes, Profile, ProfileWrite, Session, StoreReader, profile_id_for

_UNREAD = Session("")  # never equal to a real session: an unread session is always written


@attrs.frozen(slots=True)
class Plan:
    """A decision and the changes that make it true."""

    decision: Decision
    changes: Changes


class Draft:
    """The store as one event reads and changes it."""

    __slots__ = (
        "_minted",
        "_profiles",
        "_read",
        "_sessions",
        "activity",
        "event",
        "moves",
        "reasons",
        "store",
    )

    def __init__(
        self, store: StoreReader, event: Event, read: dict[str, Session | None] | None = None
    ) -> None:
        self.store = store
        self.event = event
        self.reasons: list[Reason] = []
        self._profiles: dict[str, ProfileWrite] = {}
        self._sessions: dict[str, Session] = {}
        # sessions as the store holds them (``read``: those the caller has read already)
        self._read: dict[str, Session | None] = {} if read is None else read
        self.activity: list[tuple[str, str]] = []
        self.moves: list[tuple[str, str]] = []
        #: the id of the profile this event creates, once it has asked for it
        self._minted: str | None = None

    # profiles --------------------------------------------------------------------------
    def profile(self, profile_id: str | None) -> Profile | None:
        if profile_id is None:
            return None
        write = self._profiles.get(profile_id)
        return write.after if write is not None else self.store.profile(profile_id)

    def put(self, profile: Profile) -> Profile:
        write = self._profiles.get(profile.id)
        if write is not None:
            before = write.before
        elif profile.id == self._minted:  # made by this event: no store holds it (no read)
            before = None
        else:
            before = self.store.profile(profile.id)
        self._profiles[profile.id] = ProfileWrite(profile, before)
        return profile

    def by_user_key(self, key: str) -> Profile | None:
        """The active profile holding this user id key, as this event left it."""
        written = self._profiles
        if written:
            for write in written.values():  # this event's writes: a handful
                p = write.after
                if p.user_key == key and p.state == "active":
                    return p
        found = self.store.by_user_key(key)
        if found is not None and written and found.id in written:
            return None  # this event moved the key away or ended the profile (seen above)
        return found

    def by_email_key(self, key: str, limit: int) -> tuple[list[Profile], bool]:
        """The first ``limit`` active holders of this email key in the store, earliest first,
        as this event left them (a holder it changed shows its new state, or drops out), then
        the profiles this event made with that key (the latest created of all); and whether
        the store has no more holders than these."""
        stored = self.store.by_email_key(key, limit)
        found: list[Profile] = []
        for p in stored:
            write = self._profiles.get(p.id)
            if write is None:
                found.append(p)
            elif write.after.email_key == key and write.after.state == "active":
                found.append(write.after)
        for write in self._profiles.values():
            p = write.after
            if write.before is None and p.email_key == key and p.state == "active":
                found.append(p)
        return found, len(stored) < limit

    def new_profile_id(self) -> str:
        """Deterministic: one event creates at most one profile, named after the event."""
        self._minted = profile_id_for(self.event.id)
        return self._minted

    # sessions --------------------------------------------------------------------------
    def session(self, session_id: str) -> Session:
        if session_id in self._sessions:
            return self._sessions[session_id]
        return self.stored_session(session_id) or Session(session_id)

    def stored_session(self, session_id: str) -> Session | None:
        """The session as the store holds it (None: the store has never seen it)."""
        if session_id not in self._read:
            self._read[session_id] = self.store.session(session_id)
        return self._read[session_id]

    def set_session(self, session: Session) -> None:
        self._sessions[session.id] = session

    def sessions_of(self, profile_id: str) -> list[Session]:
        """Sessions acting as, or holding as their anonymous profile, this profile (those
        this event set first)."""
        found = {s.id: s for s in self.store.sessions_of(profile_id)}
        for s in self._sessions.values():
            if profile_id in (s.current, s.anon):
                found[s.id] = s
            else:
                found.pop(s.id, None)
        return [found[sid] for sid in sorted(found)]

    # the result ------------------------------------------------------------------------
    def unchanged(self, ref: RulesetRef, outcome: Outcome, identity: Identity | None) -> Plan:
        """A decision with no profile that changes nothing but the record of its event id
        (refused, or anonymous without a session)."""
        event = self.event
        decision = Decision(
            event.id, outcome, ref, identity=identity, reasons=tuple(self.reasons), line=event.line
        )
        return Plan(decision, Changes(event.id))

    def changes(self) -> Changes:
        """What differs from the store as read, by value: a profile or a session put back as
        it was read is not written."""
        profiles = (
            tuple([w for w in self._profiles.values() if w.before is None or w.after != w.before])
            if self._profiles
            else ()
        )
        read = self._read
        sessions = (
            tuple([s for s in self._sessions.values() if read.get(s.id, _UNREAD) != s])
            if self._sessions
            else ()
        )
        return Changes(self.event.id, profiles, sessions, tuple(self.activity), tuple(self.moves))
