"""The reasons a planner gives, compiled once per ruleset with their citations.

Most reasons carry nothing of the event (``match.user_id`` citing ``matching.precedence``):
they are built here once, so their JSON is encoded once too (:attr:`Reason.json`). The few
that name a profile are built per event from the same citations.
"""

from __future__ import annotations

from ..decision import Citation, Reason
from ..reasons import Code
from ..rules.model import Ruleset


class Cited:
    """Citations of the knobs planning applies, and its constant reasons."""

    def __init__(self, ruleset: Ruleset) -> None:
        cite = ruleset.cite
        self.precedence = cite("matching.precedence")
        self.without = cite("matching.email_matches_profile_without_user_id")
        self.other = cite("matching.email_matches_profile_with_other_user_id")
        self.update = cite("matching.update_on_match")
        self.on_identify = cite("anonymous.on_identify")
        self.after_logout = cite("anonymous.after_logout")
        self.anonymous = cite("anonymous")
        self.ttl = cite("anonymous.ttl_days")
        self.requires_email = cite("anonymous.activity_requires_email")
        self.protect = cite("verification.protect_verified")
        self.mode = cite("verification.mode")

        self.match_user_id = Reason(Code.MATCH_USER_ID, self.precedence, "user_id")
        self.match_email = Reason(Code.MATCH_EMAIL, self.precedence, "email")
        self.ambiguous = Reason(
            Code.MATCH_EMAIL_AMBIGUOUS,
            self.precedence,
            "email",
            "several profiles hold this email; the earliest created wins",
        )
        self.conflict = Reason(
            Code.CONFLICT_EMAIL_OTHER_USER_ID,
            self.other,
            "email",
            "the email's profile has another user id",
        )
        self.protected = Reason(
            Code.AUTH_PROTECTED_PROFILE,
            self.protect,
            None,
            "an unverified call may not act as a verified profile",
        )
        self.attached = Reason(Code.IDENTIFIER_ATTACHED, self.without, "user_id")
        self.created = Reason(Code.PROFILE_CREATED, self.precedence)
        self.created_without = Reason(
            Code.PROFILE_CREATED, self.without, None, "the email's profile has no user id"
        )
        self.updated = {
            name: Reason(Code.PROFILE_UPDATED, self.update, name)
            for name in ("email", "name", "avatar", "attributes")
        }
        self.promoted = Reason(
            Code.ANONYMOUS_PROMOTED,
            self.on_identify,
            None,
            "the session's anonymous profile became this profile",
        )
        self.blocked = Reason(
            Code.MERGE_BLOCKED, self.on_identify, None, "two identified profiles are never merged"
        )
        self.inline_needs_proof = Reason(
            Code.AUTH_MISSING, self.mode, "email", "an inline email is not accepted without proof"
        )
        self.email_required = Reason(
            Code.ACTIVITY_EMAIL_REQUIRED,
            self.requires_email,
            "email",
            "anonymous activity needs an email",
        )
        self.inline_updated = Reason(Code.PROFILE_UPDATED, self.anonymous, "email", "inline email")
        self.anonymous_created = Reason(Code.ANONYMOUS_CREATED, self.anonymous)
        self.anonymous_fresh = Reason(
            Code.ANONYMOUS_CREATED,
            self.after_logout,
            None,
            "the session's identity had ended; it starts a fresh anonymous profile",
        )
        self.duplicate = Reason(
            Code.EVENT_DUPLICATE, None, None, "this event id was already decided"
        )

    def on(self, code: Code, citation: Citation, detail: str, field: str | None = None) -> Reason:
        """A reason that names something of this event (a profile, a count)."""
        return Reason(code, citation, field, detail)
