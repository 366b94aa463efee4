"""Stage 6: plan the resolution. Pure: it reads the store and returns a :class:`Plan`.

A plan is the decision plus the :class:`~idrules.store.base.Changes` that make it true;
:meth:`Store.apply` is the only write. Keeping this stage free of I/O is what makes replay,
diff and benchmarks simple: the same log, ruleset and store give the same plans.

Resolution (SPEC §4 ``matching``): look the call's identifiers up in ``precedence`` order; the
first that finds an active profile decides. A profile found by email is checked against the
call's user id: none on the profile -> attach (or a new profile); another one -> conflict (a new
profile or a refusal). Sessions (``anonymous``): what the session acted as before the call
decides whether its anonymous profile is merged, promoted, kept or cleared, or whether this is
a switch between two identified users, which never merges them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import attrs

from .decision import Decision, Identity, Outcome, Reason, RulesetRef
from .events import Event, InvalidEvent
from .fields import Checked, CheckedIdentity
from .proof import Proof
from .rules.model import Ruleset
from .store.base import Changes, Profile, ProfileWrite, Session, StoreReader, detached

_DAY_US = 86_400 * 1_000_000
#: email holders read per lookup: the winner, a second (ambiguity), the session's own
#: anonymous profile, and one to spare
_HOLDERS = 4
#: the identity of a call whose proof failed: none of its values passed (SPEC §2)
_UNPROVEN = Identity()
_UNREAD = Session("")  # never equal to a real session: an unread session is always written


@attrs.frozen(slots=True)
class Plan:
    """A decision and the changes that make it true."""

    decision: Decision
    changes: Changes


class _Draft:
    """The planner's scratch view: the store as read, overlaid with what this event changes."""

    __slots__ = (
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

    def profile(self, profile_id: str | None) -> Profile | None:
        if profile_id is None:
            return None
        write = self._profiles.get(profile_id)
        return write.after if write is not None else self.store.profile(profile_id)

    def put(self, profile: Profile) -> Profile:
        write = self._profiles.get(profile.id)
        before = write.before if write is not None else self.store.profile(profile.id)
        self._profiles[profile.id] = ProfileWrite(profile, before)
        return profile

    def session(self, session_id: str) -> Session:
        if session_id in self._sessions:
            return self._sessions[session_id]
        if session_id not in self._read:
            self._read[session_id] = self.store.session(session_id)
        found = self._read[session_id]
        return found if found is not None else Session(session_id)

    def set_session(self, session: Session) -> None:
        self._sessions[session.id] = session

    def new_profile_id(self) -> str:
        """Deterministic: one event creates at most one profile, named after the event."""
        digest = hashlib.sha256(self.event.id.encode("utf-8", "surrogatepass")).hexdigest()
        return "p_" + digest[:16]

    def changes(self) -> Changes:
        """What differs from the store as read. The planner puts a new profile object only
        when something in it changed; a profile put back as read is not written, nor is a
        session set to what the store holds."""
        profiles = (
            tuple([w for w in self._profiles.values() if w.after is not w.before])
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


class Planner:
    """Plans each kind of event against a store, for one ruleset."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.ref = RulesetRef(ruleset.name, ruleset.version, ruleset.sha256)
        matching, anonymous = ruleset.matching, ruleset.anonymous
        self._precedence = matching.precedence
        self._without_user_id = matching.email_matches_profile_without_user_id
        self._other_user_id = matching.email_matches_profile_with_other_user_id
        self._update = frozenset(matching.update_on_match)
        self._updated_fields = tuple(f for f in ("email", "name", "avatar") if f in self._update)
        self._on_identify = anonymous.on_identify
        self._after_logout = anonymous.after_logout
        self._anonymous_rules = anonymous
        self._ttl_us = None if anonymous.ttl_days is None else int(anonymous.ttl_days * _DAY_US)
        self._protect = ruleset.verification.protect_verified
        self._inline_email_needs_proof = ruleset.verification.mode == "required"
        cite = ruleset.cite
        self._c = {
            "precedence": cite("matching.precedence"),
            "without": cite("matching.email_matches_profile_without_user_id"),
            "other": cite("matching.email_matches_profile_with_other_user_id"),
            "update": cite("matching.update_on_match"),
            "on_identify": cite("anonymous.on_identify"),
            "after_logout": cite("anonymous.after_logout"),
            "anonymous": cite("anonymous"),
            "ttl": cite("anonymous.ttl_days"),
            "requires_email": cite("anonymous.activity_requires_email"),
            "protect": cite("verification.protect_verified"),
            "mode": cite("verification.mode"),
        }
        c = self._c
        # the reasons that carry nothing of the event: built once, encoded once
        self._r = {
            "match.user_id": Reason("match.user_id", c["precedence"], "user_id"),
            "match.email": Reason("match.email", c["precedence"], "email"),
            "conflict": Reason(
                "conflict.email_other_user_id",
                c["other"],
                "email",
                "the email's profile has another user id",
            ),
            "protected": Reason(
                "auth.protected_profile",
                c["protect"],
                None,
                "an unverified call may not act as a verified profile",
            ),
            "attached": Reason("identifier.attached", c["without"], "user_id"),
            "created": Reason("profile.created", c["precedence"]),
            "created.without": Reason(
                "profile.created", c["without"], None, "the email's profile has no user id"
            ),
            "promoted": Reason(
                "anonymous.promoted",
                c["on_identify"],
                None,
                "the session's anonymous profile became this profile",
            ),
            "blocked": Reason(
                "merge.blocked",
                c["on_identify"],
                None,
                "two identified profiles are never merged",
            ),
            "inline.needs_proof": Reason(
                "auth.missing", c["mode"], "email", "an inline email is not accepted without proof"
            ),
            "email_required": Reason(
                "activity.email_required",
                c["requires_email"],
                "email",
                "anonymous activity needs an email",
            ),
            "inline.updated": Reason("profile.updated", c["anonymous"], "email", "inline email"),
            "anonymous.created": Reason("anonymous.created", c["anonymous"]),
            "anonymous.fresh": Reason(
                "anonymous.created",
                c["after_logout"],
                None,
                "the session's identity had ended; it starts a fresh anonymous profile",
            ),
            "ambiguous": Reason(
                "match.email_ambiguous",
                c["precedence"],
                "email",
                "several profiles hold this email; the earliest created wins",
            ),
        }
        self._r_updated = {
            name: Reason("profile.updated", c["update"], name)
            for name in ("email", "name", "avatar", "attributes")
        }
        self._r_duplicate = Reason(
            "event.duplicate", None, None, "this event id was already decided"
        )

    # events that change nothing ------------------------------------------------------
    def invalid(self, event: InvalidEvent) -> Plan:
        reason = Reason("event.invalid", None, None, event.problem)
        decision = Decision(event.id, "rejected", self.ref, reasons=(reason,), line=event.line)
        return Plan(decision, Changes(event.id))

    def duplicate(self, event_id: str, line: int | None) -> Plan:
        decision = Decision(
            event_id, "duplicate", self.ref, reasons=(self._r_duplicate,), line=line
        )
        return Plan(decision, Changes(None))

    # identify --------------------------------------------------------------------------
    def identify(
        self,
        event: Event,
        checked: CheckedIdentity,
        proof: Proof,
        attributes: Mapping[str, Any],
        reasons: tuple[Reason, ...],
        refuse: bool,
        store: StoreReader,
    ) -> Plan:
        """Plan an identify whose payload went through proof, fields and attributes.

        ``reasons`` are those of the earlier stages, in order; ``refuse`` says whether one of
        them (attributes) refused the call.
        """
        d = _Draft(store, event)
        d.reasons.extend(reasons)
        if proof.refuse or proof.anonymous:  # the values did not pass their proof
            identity = _UNPROVEN
        else:
            identity = Identity(
                checked.value("user_id"),
                checked.value("email"),
                checked.value("name"),
                checked.value("avatar"),
                proof.verified,
            )
        if refuse or proof.refuse or checked.failed == "reject":
            return self._refused(d, identity)
        no_identifier = checked.key("user_id") is None and checked.key("email") is None
        if proof.anonymous or checked.failed == "anonymous" or no_identifier:
            return self._anonymous(d, identity)
        return self._identified(d, checked, identity, attributes)

    def _identified(
        self,
        d: _Draft,
        checked: CheckedIdentity,
        identity: Identity,
        attributes: Mapping[str, Any],
    ) -> Plan:
        session = d.session(d.event.session) if d.event.session else None
        own = {session.anon} if session is not None and session.anon is not None else set()
        found, via = self._match(d, checked, own)
        user_key = checked.key("user_id")
        attach = False
        create_reason = self._r["created"]
        if found is not None and via == "email" and user_key not in (None, found.user_key):
            if found.user_key is None:
                holder = d.store.by_user_key(user_key) if user_key is not None else None
                if holder is not None:  # the user id has a profile of its own: it wins
                    d.reasons.append(self._r["match.user_id"])
                    found = holder
                elif self._without_user_id == "attach":
                    attach = True
                else:
                    create_reason = self._r["created.without"]
                    found = None
            else:
                d.reasons.append(self._r["conflict"])
                if self._other_user_id == "reject":
                    return self._refused(d, identity)
                found = None
        if found is None and user_key is not None:
            found = d.store.by_user_key(user_key)  # keep user ids unique whatever the precedence
            if found is not None:
                d.reasons.append(self._r["match.user_id"])
        if found is not None and found.verified and not identity.verified and self._protect:
            d.reasons.append(self._r["protected"])
            return self._refused(d, identity)
        merged: tuple[str, ...] = ()
        promoted = False
        if found is not None:
            target, created = (
                self._update_found(d, found, checked, identity, attributes, attach),
                False,
            )
        else:
            anon = self._promotable(d, session)
            if anon is not None:
                target, created, promoted = (
                    self._promote(d, anon, checked, identity, attributes),
                    False,
                    True,
                )
            else:
                target, created = (
                    self._create(d, checked, identity, attributes, create_reason),
                    True,
                )
        if session is not None:
            merged = self._enter(d, session, target, promoted)
        if target is not found:  # found unchanged: nothing to write
            d.put(target)
        decision = Decision(
            d.event.id,
            "identified",
            self.ref,
            target.id,
            created,
            merged,
            identity,
            dict(attributes),
            tuple(d.reasons),
            d.event.line,
        )
        return Plan(decision, d.changes())

    def _match(
        self, d: _Draft, checked: CheckedIdentity, own: set[str]
    ) -> tuple[Profile | None, str | None]:
        """The profile the call's identifiers find, in precedence order, and by which."""
        for kind in self._precedence:
            key = checked.key(kind)
            if key is None:
                continue
            if kind == "user_id":
                found = d.store.by_user_key(key)
                if found is not None:
                    d.reasons.append(self._r["match.user_id"])
                    return found, kind
                continue
            candidates = self._email_holders(d, key, own)
            if candidates:
                d.reasons.append(self._r["match.email"])
                if len(candidates) > 1:
                    d.reasons.append(self._r["ambiguous"])
                return candidates[0], kind
        return None, None

    def _email_holders(self, d: _Draft, key: str, own: set[str]) -> list[Profile]:
        """The first two profiles that may answer to this email key, earliest created first:
        active holders other than the session's own anonymous profile, whose TTL has not run
        out. Holders found expired on the way are marked so (once: the next lookup no longer
        meets them), so a lookup reads a few profiles however many hold the key."""
        limit = _HOLDERS
        expired: dict[str, None] = {}
        while True:
            holders = d.store.by_email_key(key, limit)
            live: list[Profile] = []
            for p in holders:
                if p.id in own:
                    continue
                if self._expired(p, d.event.ts):
                    if p.id not in expired:  # a longer look meets it again
                        d.put(attrs.evolve(p, state="expired"))
                        self._detach(d, p.id)  # its sessions start afresh, as at its expiry
                        expired[p.id] = None
                    continue
                live.append(p)
                if len(live) == 2:
                    break
            if len(live) == 2 or len(holders) < limit:
                break
            limit *= 4  # expired holders filled the page: look further, once each
        if expired:
            d.reasons.append(
                Reason(
                    "anonymous.expired",
                    self._c["ttl"],
                    "email",
                    f"{len(expired)} anonymous profile(s) holding this email unused for "
                    "longer than ttl_days",
                )
            )
        return live

    def _create(
        self,
        d: _Draft,
        checked: CheckedIdentity,
        identity: Identity,
        attributes: Mapping[str, Any],
        reason: Reason,
    ) -> Profile:
        d.reasons.append(reason)
        return Profile(
            id=d.new_profile_id(),
            created_by=d.event.id,
            attributes=dict(attributes),
            last_seen=d.event.ts,
            **_identified_as(checked, identity),
        )

    def _update_found(
        self,
        d: _Draft,
        found: Profile,
        checked: CheckedIdentity,
        identity: Identity,
        attributes: Mapping[str, Any],
        attach: bool,
    ) -> Profile:
        changes: dict[str, Any] = {}
        if attach:
            changes.update(user_id=identity.user_id, user_key=checked.key("user_id"))
            d.reasons.append(self._r["attached"])
        if found.anonymous:  # another session's anonymous profile, found by its inline email
            changes["anonymous"] = False
            self._detach(d, found.id)
        for name in self._updated_fields:
            value = getattr(identity, name)
            if value is None or value == getattr(found, name):
                continue
            if name == "email":
                key = checked.key("email")
                if key is not None and key == found.email_key:
                    continue  # the same address, retyped in another case: nothing changed
                changes["email_key"] = key
            changes[name] = value
            d.reasons.append(self._r_updated[name])
        if "attributes" in self._update and attributes:
            combined = {**found.attributes, **attributes}
            if combined != found.attributes:
                changes["attributes"] = combined
                d.reasons.append(self._r_updated["attributes"])
        if identity.verified and not found.verified:
            changes["verified"] = True
        return attrs.evolve(found, **changes) if changes else found

    def _promotable(self, d: _Draft, session: Session | None) -> Profile | None:
        """The session's anonymous profile, when ``merge`` promotes it to a new identity."""
        if session is None or self._on_identify != "merge":
            return None
        current = d.profile(session.current)
        if current is not None and current.state == "active" and not current.anonymous:
            return None
        return self._live_anon(d, session.anon)

    def _promote(
        self,
        d: _Draft,
        anon: Profile,
        checked: CheckedIdentity,
        identity: Identity,
        attributes: Mapping[str, Any],
    ) -> Profile:
        d.reasons.append(self._r["promoted"])
        fields = _identified_as(checked, identity)
        if fields["email"] is None:  # keep the email the visitor typed into the prompt
            fields.update(email=anon.email, email_key=anon.email_key)
        return attrs.evolve(
            anon,
            anonymous=False,
            attributes={**anon.attributes, **attributes},
            last_seen=d.event.ts,
            **fields,
        )

    def _enter(
        self, d: _Draft, session: Session, target: Profile, promoted: bool
    ) -> tuple[str, ...]:
        """The session now acts as ``target``; decide the fate of its anonymous profile."""
        current = d.profile(session.current)
        anon_id = None if promoted else session.anon
        merged: tuple[str, ...] = ()
        if current is not None and current.state == "active" and not current.anonymous:
            if current.id != target.id:
                d.reasons.append(
                    Reason(
                        "session.switched",
                        self._c["on_identify"],
                        None,
                        f"was acting as {current.id}",
                    )
                )
                if self._on_identify == "merge":
                    d.reasons.append(self._r["blocked"])
        elif not promoted:
            anon = self._live_anon(d, anon_id)
            if anon is None:
                anon_id = None
            elif self._on_identify == "merge":
                d.put(attrs.evolve(anon, state="merged", merged_into=target.id))
                d.moves.append((anon.id, target.id))
                merged = (anon.id,)
                d.reasons.append(
                    Reason(
                        "anonymous.merged",
                        self._c["on_identify"],
                        None,
                        f"folded {anon.id} into this profile",
                    )
                )
                anon_id = None
            elif self._on_identify == "clear":
                d.put(attrs.evolve(anon, state="cleared"))
                d.reasons.append(
                    Reason(
                        "anonymous.cleared", self._c["on_identify"], None, f"discarded {anon.id}"
                    )
                )
                anon_id = None
            else:
                d.reasons.append(
                    Reason("anonymous.kept", self._c["on_identify"], None, f"{anon.id} stays apart")
                )
        if session.current != target.id or session.anon != anon_id:
            d.set_session(Session(session.id, target.id, anon_id))
        return merged

    # anonymous and refused -------------------------------------------------------------
    def _refused(self, d: _Draft, identity: Identity | None) -> Plan:
        return self._unchanged(d, "rejected", identity)

    def _unchanged(self, d: _Draft, outcome: Outcome, identity: Identity | None) -> Plan:
        """A decision with no profile that changes nothing but the record of its event id."""
        decision = Decision(
            d.event.id,
            outcome,
            self.ref,
            identity=identity,
            reasons=tuple(d.reasons),
            line=d.event.line,
        )
        return Plan(decision, Changes(d.event.id))

    def _anonymous(self, d: _Draft, identity: Identity) -> Plan:
        """The caller is anonymous: the session acts as its anonymous profile, as after logout."""
        if d.event.session is None:
            return self._unchanged(d, "anonymous", identity)
        session = self._logged_out(d, d.session(d.event.session))
        anon, created = self._anon_for(d, session, self._live_anon(d, session.anon))
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

    # logout ----------------------------------------------------------------------------
    def logout(self, event: Event, store: StoreReader) -> Plan:
        """``logout``, or ``identify(null)``: the session leaves its identity (``after_logout``),
        and the decision says what it acts as now."""
        d = _Draft(store, event)
        if event.session is not None and store.session(event.session) is not None:
            after = self._logged_out(d, d.session(event.session))
            if after.current is not None:
                now = f"acts as its anonymous profile {after.current}"
            else:
                now = "starts a fresh anonymous state"
        else:
            now = "held no identity"
        d.reasons.append(
            Reason("session.logged_out", self._c["after_logout"], None, f"the session {now}")
        )
        decision = Decision(
            event.id, "logged_out", self.ref, reasons=tuple(d.reasons), line=event.line
        )
        return Plan(decision, d.changes())

    def _logged_out(self, d: _Draft, session: Session) -> Session:
        """The session's state after it stops acting as an identified profile."""
        current = d.profile(session.current)
        if current is not None and current.anonymous:
            return session
        if self._after_logout == "new":
            after = Session(session.id)
        else:
            anon = self._live_anon(d, session.anon)
            after = Session(session.id, anon.id if anon else None, anon.id if anon else None)
        if after != session:
            d.set_session(after)
        return after

    # track -----------------------------------------------------------------------------
    def track(self, event: Event, email: Checked | None, store: StoreReader) -> Plan:
        """Attribute activity to the session's profile, creating an anonymous one if needed."""
        assert event.session is not None
        known = store.session(event.session)
        current = None if known is None or known.current is None else store.profile(known.current)
        if current is not None and current.state == "active" and not current.anonymous:
            # the common case, a session acting as an identified profile: nothing but the
            # activity changes, so no draft is needed
            recorded = Changes(event.id, (), (), ((event.id, current.id),))
            return Plan(self._track_decision(event, current, False, ()), recorded)
        d = _Draft(store, event, {event.session: known})
        session = known if known is not None else Session(event.session)
        if email is not None:
            if self._inline_email_needs_proof:
                d.reasons.append(self._r["inline.needs_proof"])
                return self._refused(d, None)
            d.reasons.extend(email.reasons)
            if email.failed == "reject":
                return self._refused(d, None)
        anon = self._live_anon(d, session.anon)
        has_email = (email is not None and email.value is not None) or (
            anon is not None and anon.email is not None
        )
        if (
            not has_email
            and self._anonymous_rules.activity_requires_email is not False
            and self._anonymous_rules.requires_email(event.payload["name"])
        ):
            d.reasons.append(self._r["email_required"])
            return self._refused(d, None)
        anon, created = self._anon_for(d, session, anon)
        changes: dict[str, Any] = {}
        if event.ts > anon.last_seen:
            changes["last_seen"] = event.ts
        if email is not None and email.value is not None and email.key != anon.email_key:
            changes.update(email=email.value, email_key=email.key)
            if not created:
                d.reasons.append(self._r["inline.updated"])
        if changes:
            anon = d.put(attrs.evolve(anon, **changes))
        d.activity.append((event.id, anon.id))
        return self._recorded(d, anon, created)

    def _recorded(self, d: _Draft, profile: Profile, created: bool) -> Plan:
        decision = self._track_decision(d.event, profile, created, tuple(d.reasons))
        return Plan(decision, d.changes())

    def _track_decision(
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

    # anonymous profiles ----------------------------------------------------------------
    def _anon_for(self, d: _Draft, session: Session, anon: Profile | None) -> tuple[Profile, bool]:
        """The session's live anonymous profile (``anon``: what :meth:`_live_anon` found),
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
            fresh = session.current is None and d.store.session(session.id) is not None
            d.reasons.append(self._r["anonymous.fresh" if fresh else "anonymous.created"])
        if session.current != anon.id or session.anon != anon.id:
            d.set_session(Session(session.id, anon.id, anon.id))
        return anon, created

    def _live_anon(self, d: _Draft, profile_id: str | None) -> Profile | None:
        """The anonymous profile if it is still usable; an expired one is marked so, once."""
        anon = d.profile(profile_id)
        if anon is None or anon.state != "active" or not anon.anonymous:
            return None
        if self._expired(anon, d.event.ts):
            d.put(attrs.evolve(anon, state="expired"))
            d.reasons.append(
                Reason(
                    "anonymous.expired",
                    self._c["ttl"],
                    None,
                    f"{anon.id} unused for longer than ttl_days",
                )
            )
            return None
        return anon

    def _expired(self, profile: Profile, now: int) -> bool:
        return (
            profile.anonymous
            and self._ttl_us is not None
            and now - profile.last_seen > self._ttl_us
        )

    def _detach(self, d: _Draft, profile_id: str) -> None:
        """Sessions of an anonymous profile another session claimed start afresh."""
        for session in d.store.sessions_of(profile_id):
            if session.id != d.event.session:
                # a session identified as someone else keeps that identity; only its anonymous
                # state starts afresh
                current = None if session.current == profile_id else session.current
                d.set_session(Session(session.id, current))


def _identified_as(checked: CheckedIdentity, identity: Identity) -> dict[str, Any]:
    """What a new (or newly promoted) profile takes from the identity that made it."""
    return {
        "user_id": identity.user_id,
        "user_key": checked.key("user_id"),
        "email": identity.email,
        "email_key": checked.key("email"),
        "name": identity.name,
        "avatar": identity.avatar,
        "verified": identity.verified,
    }
