"""Planning of an identify: resolution against the store (docs/rules.md ``matching``).

Look the claim's match keys up in ``precedence`` order; the first that finds an active
profile decides. A profile found by email is checked against the call's user id: none on the
profile -> attach (or a new profile); another one -> conflict (a new profile or a refusal).
Nothing found -> a new profile, or the session's anonymous profile promoted to it. Then the
session enters the profile (:meth:`Sessions.enter`).
"""

from __future__ import annotations

from typing import Any

import attrs

from ..claim import Claim
from ..decision import Decision, Identity, Reason, RulesetRef
from ..events import Event
from ..reasons import Code
from ..rules.model import Ruleset
from ..store.base import Profile, StoreReader
from .cited import Cited
from .draft import Draft, Plan
from .sessions import Sessions

#: email holders read per lookup: the winner, a second (ambiguity), the session's own
#: anonymous profile, and one to spare
_HOLDERS = 4


class Resolver:
    """The compiled ``matching`` section (and ``protect_verified``)."""

    def __init__(self, ruleset: Ruleset, cited: Cited, ref: RulesetRef, sessions: Sessions):
        matching = ruleset.matching
        self.ref = ref
        self.c = cited
        self.sessions = sessions
        self._precedence = matching.precedence
        self._without_user_id = matching.email_matches_profile_without_user_id
        self._other_user_id = matching.email_matches_profile_with_other_user_id
        self._update = frozenset(matching.update_on_match)
        self._updated_fields = tuple(f for f in ("email", "name", "avatar") if f in self._update)
        self._protect = ruleset.verification.protect_verified

    def identify(self, event: Event, claim: Claim, store: StoreReader) -> Plan:
        """Plan an identify from its claim."""
        d = Draft(store, event)
        d.reasons.extend(claim.reasons)
        if claim.verdict == "reject":
            return d.unchanged(self.ref, "rejected", claim.identity)
        if claim.verdict == "anonymous":
            return self.sessions.anonymous(d, claim.identity)
        return self._identified(d, claim)

    def resolve(self, d: Draft, claim: Claim) -> Plan:
        """Plan a claim that proceeds, in a draft the caller made: an import's, which names the
        profiles it creates after the row's identifiers (:mod:`idrules.importing`)."""
        d.reasons.extend(claim.reasons)
        return self._identified(d, claim)

    def _identified(self, d: Draft, claim: Claim) -> Plan:
        c, identity = self.c, claim.identity
        session = d.session(d.event.session) if d.event.session else None
        own = {session.anon} if session is not None and session.anon is not None else set()
        found, via = self._match(d, claim, own)
        user_key = claim.user_key
        attach = False
        create_reason = c.created
        if found is not None and via == "email" and user_key not in (None, found.user_key):
            if found.user_key is None:
                holder = d.by_user_key(user_key) if user_key is not None else None
                if holder is not None:  # the user id has a profile of its own: it wins
                    d.reasons.append(c.match_user_id)
                    found = holder
                elif self._without_user_id == "attach":
                    attach = True
                else:
                    create_reason = c.created_without
                    found = None
            else:
                d.reasons.append(c.conflict)
                if self._other_user_id == "reject":
                    return d.unchanged(self.ref, "rejected", identity)
                found = None
        if found is None and user_key is not None:
            found = d.by_user_key(user_key)  # keep user ids unique whatever the precedence
            if found is not None:
                d.reasons.append(c.match_user_id)
        if found is not None and found.verified and not identity.verified and self._protect:
            d.reasons.append(c.protected)
            return d.unchanged(self.ref, "rejected", identity)
        created = promoted = False
        changed = True
        if found is not None:
            target, changed = self._update_found(d, found, claim, attach)
        else:
            anon = self.sessions.promotable(d, session)
            if anon is not None:
                target, promoted = self._promote(d, anon, claim), True
            else:
                d.reasons.append(create_reason)
                target, created = self._create(d, claim), True
        merged: tuple[str, ...] = ()
        if session is not None:
            merged = self.sessions.enter(d, session, target, promoted)
        if changed:
            d.put(target)
        decision = Decision(
            d.event.id,
            "identified",
            self.ref,
            target.id,
            created,
            merged,
            identity,
            dict(claim.attributes),
            tuple(d.reasons),
            d.event.line,
        )
        return Plan(decision, d.changes())

    def _match(self, d: Draft, claim: Claim, own: set[str]) -> tuple[Profile | None, str | None]:
        """The profile the claim's keys find, in precedence order, and by which."""
        for kind in self._precedence:
            if kind == "user_id":
                if claim.user_key is None:
                    continue
                found = d.by_user_key(claim.user_key)
                if found is not None:
                    d.reasons.append(self.c.match_user_id)
                    return found, kind
                continue
            if claim.email_key is None:
                continue
            candidates = self._email_holders(d, claim.email_key, own)
            if candidates:
                d.reasons.append(self.c.match_email)
                if len(candidates) > 1:
                    d.reasons.append(self.c.ambiguous)
                return candidates[0], kind
        return None, None

    def _email_holders(self, d: Draft, key: str, own: set[str]) -> list[Profile]:
        """The first two profiles that may answer to this email key, earliest created first:
        active holders other than the session's own anonymous profile, whose TTL has not run
        out. Holders found expired on the way are marked so (once: the next lookup no longer
        meets them), so a lookup reads a few profiles however many hold the key."""
        sessions = self.sessions
        limit = _HOLDERS
        expired = 0
        while True:
            holders, complete = d.by_email_key(key, limit)
            live: list[Profile] = []
            for p in holders:
                if p.id in own:
                    continue
                if sessions.expired(p, d.event.ts):
                    d.put(attrs.evolve(p, state="expired"))  # a longer look skips it
                    sessions.detach(d, p.id)  # its sessions start afresh, as at its expiry
                    expired += 1
                    continue
                live.append(p)
                if len(live) == 2:
                    break
            if len(live) == 2 or complete:
                break
            limit *= 4  # expired holders filled the page: look further, once each
        if expired:
            d.reasons.append(
                Reason(
                    Code.ANONYMOUS_EXPIRED,
                    self.c.ttl,
                    "email",
                    f"{expired} anonymous profile(s) holding this email unused for "
                    "longer than ttl_days",
                )
            )
        return live

    def _create(self, d: Draft, claim: Claim) -> Profile:
        return Profile(
            id=d.new_profile_id(),
            created_by=d.event.id,
            attributes=dict(claim.attributes),
            last_seen=d.event.ts,
            **_identified_as(claim),
        )

    def _update_found(
        self, d: Draft, found: Profile, claim: Claim, attach: bool
    ) -> tuple[Profile, bool]:
        """The profile found, with what the call changes in it (``update_on_match``), and
        whether it changes at all."""
        identity = claim.identity
        changes: dict[str, Any] = {}
        if attach:
            changes.update(user_id=identity.user_id, user_key=claim.user_key)
            d.reasons.append(self.c.attached)
        if found.anonymous:  # another session's anonymous profile, found by its inline email
            changes["anonymous"] = False
            self.sessions.detach(d, found.id)
        for name in self._updated_fields:
            value = getattr(identity, name)
            if value is None or value == getattr(found, name):
                continue
            if name == "email":
                key = claim.email_key
                if key is not None and key == found.email_key:
                    continue  # the same address, retyped in another case: nothing changed
                changes["email_key"] = key
            changes[name] = value
            d.reasons.append(self.c.updated[name])
        if "attributes" in self._update and claim.attributes:
            combined = {**found.attributes, **claim.attributes}
            if combined != found.attributes:
                changes["attributes"] = combined
                d.reasons.append(self.c.updated["attributes"])
        if identity.verified and not found.verified:
            changes["verified"] = True
        if not changes:
            return found, False
        return attrs.evolve(found, **changes), True

    def _promote(self, d: Draft, anon: Profile, claim: Claim) -> Profile:
        d.reasons.append(self.c.promoted)
        fields = _identified_as(claim)
        if fields["email"] is None:  # keep the email the visitor typed into the prompt
            fields.update(email=anon.email, email_key=anon.email_key)
        return attrs.evolve(
            anon,
            anonymous=False,
            attributes={**anon.attributes, **claim.attributes},
            last_seen=d.event.ts,
            **fields,
        )


def _identified_as(claim: Claim) -> dict[str, Any]:
    """What a new (or newly promoted) profile takes from the claim that made it."""
    identity: Identity = claim.identity
    return {
        "user_id": identity.user_id,
        "user_key": claim.user_key,
        "email": identity.email,
        "email_key": claim.email_key,
        "name": identity.name,
        "avatar": identity.avatar,
        "verified": identity.verified,
    }
