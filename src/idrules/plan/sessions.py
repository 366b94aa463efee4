"""Planning of sessions and anonymous profiles (docs/rules.md ``anonymous``).

A session acts as one profile at a time: an identified one, or its own anonymous profile,
made on first use. This module decides what becomes of the anonymous profile at identify
(merged, promoted, kept or cleared), after a logout (restored or begun afresh), when its TTL
runs out, and where a ``track``'s activity goes.
"""

from __future__ import annotations

import attrs

from .._copy import detached
from ..claim import Claim
from ..decision import Decision, Identity, Reason, RulesetRef
from ..events import Event
from ..reasons import Code
from ..rules.model import Ruleset
from ..store.base import Changes, Profile, Session, StoreReader
from .cited import Cited
from .draft import Draft, Plan

_DAY_US = 86_400 * 1_000_000


class Sessions:
    """The compiled ``anonymous`` section (and what of ``verification`` concerns sessions)."""

    def __init__(self, ruleset: Ruleset, cited: Cited, ref: RulesetRef) -> None:
        rules = ruleset.anonymous
        self.ref = ref
        self.c = cited
        self.on_identify = rules.on_identify
        self._after_logout = rules.after_logout
        self._rules = rules
        self._ttl_us = None if rules.ttl_days is None else int(rules.ttl_days * _DAY_US)
        self._inline_email_needs_proof = ruleset.verification.mode == "required"

    # identify ----------------------------------------------------------------------------
    def promotable(self, d: Draft, session: Session | None) -> Profile | None:
        """The session's anonymous profile, when ``merge`` promotes it to a new identity."""
        if session is None or self.on_identify != "merge":
            return None
        current = d.profile(session.current)
        if current is not None and current.state == "active" and not current.anonymous:
            return None
        return self.live_anon(d, session.anon)

    def enter(self, d: Draft, session: Session, target: Profile, promoted: bool) -> tuple[str, ...]:
        """The session now acts as ``target``; decide the fate of its anonymous profile."""
        c = self.c
        current = d.profile(session.current)
        anon_id = None if promoted else session.anon
        merged: tuple[str, ...] = ()
        if current is not None and current.state == "active" and not current.anonymous:
            if current.id != target.id:
                d.reasons.append(
                    c.on(Code.SESSION_SWITCHED, c.on_identify, f"was acting as {current.id}")
                )
                if self.on_identify == "merge":
                    d.reasons.append(c.blocked)
        elif not promoted:
            anon = self.live_anon(d, anon_id)
            if anon is None:
                anon_id = None
            elif self.on_identify == "merge":
                d.put(attrs.evolve(anon, state="merged", merged_into=target.id))
                d.moves.append((anon.id, target.id))
                merged = (anon.id,)
                d.reasons.append(
                    c.on(
                        Code.ANONYMOUS_MERGED, c.on_identify, f"folded {anon.id} into this profile"
                    )
                )
                anon_id = None
            elif self.on_identify == "clear":
                d.put(attrs.evolve(anon, state="cleared"))
                d.reasons.append(
                    c.on(Code.ANONYMOUS_CLEARED, c.on_identify, f"discarded {anon.id}")
                )
                anon_id = None
            else:
                d.reasons.append(c.on(Code.ANONYMOUS_KEPT, c.on_identify, f"{anon.id} stays apart"))
        if session.current != target.id or session.anon != anon_id:
            d.set_session(Session(session.id, target.id, anon_id))
        return merged

    def anonymous(self, d: Draft, identity: Identity) -> Plan:
        """The caller is anonymous: the session acts as its anonymous profile, as after logout."""
        if d.event.session is None:
            return d.unchanged(self.ref, "anonymous", identity)
        session = self.logged_out(d, d.session(d.event.session))
        anon, created = self.anon_for(d, session, self.live_anon(d, session.anon))
        if d.event.ts > anon.last_seen:
            d.put(attrs.evolve(anon, last_seen=d.event.ts))
        decision = Decision(
            d.event.id,
            "anonymous",
            self.ref,
            anon.id,
            created,
            (),
            identity,
            {},
            tuple(d.reasons),
            d.event.line,
        )
        return Plan(decision, d.changes())

    # logout ------------------------------------------------------------------------------
    def logout(self, event: Event, store: StoreReader) -> Plan:
        """``logout``, or ``identify(null)``: the session leaves its identity (``after_logout``),
        and the decision says what it acts as now."""
        d = Draft(store, event)
        if event.session is not None and d.stored_session(event.session) is not None:
            after = self.logged_out(d, d.session(event.session))
            if after.current is not None:
                now = f"acts as its anonymous profile {after.current}"
            else:
                now = "starts a fresh anonymous state"
        else:
            now = "held no identity"
        d.reasons.append(
            self.c.on(Code.SESSION_LOGGED_OUT, self.c.after_logout, f"the session {now}")
        )
        decision = Decision(
            event.id, "logged_out", self.ref, reasons=tuple(d.reasons), line=event.line
        )
        return Plan(decision, d.changes())

    def logged_out(self, d: Draft, session: Session) -> Session:
        """The session's state after it stops acting as an identified profile."""
        current = d.profile(session.current)
        if current is not None and current.anonymous:
            return session
        if self._after_logout == "new":
            after = Session(session.id)
        else:
            anon = self.live_anon(d, session.anon)
            after = Session(session.id, anon.id if anon else None, anon.id if anon else None)
        if after != session:
            d.set_session(after)
        return after

    # track -------------------------------------------------------------------------------
    def track(self, event: Event, email: Claim | None, store: StoreReader) -> Plan:
        """Attribute activity to the session's profile, creating an anonymous one if needed.

        ``email``: the claim of the inline email the track carries, if any."""
        assert event.session is not None
        known = store.session(event.session)
        current = None if known is None or known.current is None else store.profile(known.current)
        if current is not None and current.state == "active" and not current.anonymous:
            # the common case, a session acting as an identified profile: nothing but the
            # activity changes, so no draft is needed
            recorded = Changes(event.id, (), (), ((event.id, current.id),))
            return Plan(self._recorded(event, current, False, ()), recorded)
        c = self.c
        d = Draft(store, event, {event.session: known})
        session = known if known is not None else Session(event.session)
        if email is not None:
            if self._inline_email_needs_proof:
                d.reasons.append(c.inline_needs_proof)
                return d.unchanged(self.ref, "rejected", None)
            d.reasons.extend(email.reasons)
            if email.verdict == "reject":
                return d.unchanged(self.ref, "rejected", None)
        typed = None if email is None else email.identity.email
        anon = self.live_anon(d, session.anon)
        has_email = typed is not None or (anon is not None and anon.email is not None)
        rules = self._rules
        if (
            not has_email
            and rules.activity_requires_email is not False
            and rules.requires_email(event.payload["name"])
        ):
            d.reasons.append(c.email_required)
            return d.unchanged(self.ref, "rejected", None)
        anon, created = self.anon_for(d, session, anon)
        changed = anon
        if event.ts > anon.last_seen:
            changed = attrs.evolve(changed, last_seen=event.ts)
        if email is not None and typed is not None and email.email_key != anon.email_key:
            changed = attrs.evolve(changed, email=typed, email_key=email.email_key)
            if not created:
                d.reasons.append(c.inline_updated)
        if changed is not anon:
            anon = d.put(changed)
        d.activity.append((event.id, anon.id))
        decision = self._recorded(event, anon, created, tuple(d.reasons))
        return Plan(decision, d.changes())

    def _recorded(
        self, event: Event, profile: Profile, created: bool, reasons: tuple[Reason, ...]
    ) -> Decision:
        """A recorded track: its profile, and a snapshot of that profile's attributes."""
        return Decision(
            event.id,
            "recorded",
            self.ref,
            profile.id,
            created,
            (),
            None,
            detached(profile.attributes),
            reasons,
            event.line,
        )

    # anonymous profiles ------------------------------------------------------------------
    def anon_for(self, d: Draft, session: Session, anon: Profile | None) -> tuple[Profile, bool]:
        """The session's live anonymous profile (``anon``: what :meth:`live_anon` found),
        created on first use; the session acts as it."""
        created = anon is None
        if anon is None:
            anon = d.put(
                Profile(
                    id=d.new_profile_id(),
                    created_by=d.event.id,
                    anonymous=True,
                    last_seen=d.event.ts,
                )
            )
            # a session the store knows, acting as nothing: its identity ended (a logout, or
            # another session claimed its anonymous profile) and after_logout began afresh
            fresh = session.current is None and d.stored_session(session.id) is not None
            d.reasons.append(self.c.anonymous_fresh if fresh else self.c.anonymous_created)
        if session.current != anon.id or session.anon != anon.id:
            d.set_session(Session(session.id, anon.id, anon.id))
        return anon, created

    def live_anon(self, d: Draft, profile_id: str | None) -> Profile | None:
        """The anonymous profile if it is still usable; an expired one is marked so, once."""
        anon = d.profile(profile_id)
        if anon is None or anon.state != "active" or not anon.anonymous:
            return None
        if self.expired(anon, d.event.ts):
            d.put(attrs.evolve(anon, state="expired"))
            d.reasons.append(
                self.c.on(
                    Code.ANONYMOUS_EXPIRED, self.c.ttl, f"{anon.id} unused for longer than ttl_days"
                )
            )
            return None
        return anon

    def expired(self, profile: Profile, now: int) -> bool:
        return (
            profile.anonymous
            and self._ttl_us is not None
            and now - profile.last_seen > self._ttl_us
        )

    def detach(self, d: Draft, profile_id: str) -> None:
        """Sessions of an anonymous profile another session claimed start afresh."""
        for session in d.sessions_of(profile_id):
            if session.id != d.event.session:
                # a session identified as someone else keeps that identity; only its anonymous
                # state starts afresh
                current = None if session.current == profile_id else session.current
                d.set_session(Session(session.id, current))
