"""Reason codes: the one registry the engine, the docs and the tests read.

A decision's ``reasons`` name codes from this module only (the engine's modules use the
:class:`Code` members, never a string literal; a test holds them to it). Each code carries
what it means and which knob it cites, so ``docs/reasons.md`` and the tests' list of known
codes come from here too. The ``<field>.<check>`` family is built by :func:`field_code`.
"""

from __future__ import annotations

from enum import StrEnum

import attrs


class Code(StrEnum):
    """Every fixed reason code (docs/reasons.md, idrules' own too). A member is its text, so
    a decision's JSON carries the code itself."""

    EVENT_INVALID = "event.invalid"
    EVENT_DUPLICATE = "event.duplicate"
    USER_ID_EMAIL_SHAPED = "user_id.email_shaped"
    EMAIL_INVALID = "email.invalid"
    AUTH_VERIFIED = "auth.verified"
    AUTH_MISSING = "auth.missing"
    AUTH_INVALID = "auth.invalid"
    AUTH_EXPIRED = "auth.expired"
    AUTH_NOT_YET_VALID = "auth.not_yet_valid"
    AUTH_ALGORITHM = "auth.algorithm"
    AUTH_CLAIMS = "auth.claims"
    AUTH_PROTECTED_PROFILE = "auth.protected_profile"
    ATTRIBUTE_UNKNOWN = "attribute.unknown"
    ATTRIBUTE_INVALID = "attribute.invalid"
    MATCH_USER_ID = "match.user_id"
    MATCH_EMAIL = "match.email"
    MATCH_EMAIL_AMBIGUOUS = "match.email_ambiguous"
    PROFILE_CREATED = "profile.created"
    PROFILE_UPDATED = "profile.updated"
    IDENTIFIER_ATTACHED = "identifier.attached"
    CONFLICT_EMAIL_OTHER_USER_ID = "conflict.email_other_user_id"
    ANONYMOUS_CREATED = "anonymous.created"
    ANONYMOUS_PROMOTED = "anonymous.promoted"
    ANONYMOUS_MERGED = "anonymous.merged"
    ANONYMOUS_KEPT = "anonymous.kept"
    ANONYMOUS_CLEARED = "anonymous.cleared"
    ANONYMOUS_EXPIRED = "anonymous.expired"
    SESSION_SWITCHED = "session.switched"
    SESSION_LOGGED_OUT = "session.logged_out"
    MERGE_BLOCKED = "merge.blocked"
    ACTIVITY_EMAIL_REQUIRED = "activity.email_required"


class Check(StrEnum):
    """The field checks of the ``<field>.<check>`` family (``user_id.too_long``, ...)."""

    MISSING = "missing"
    INVALID_TYPE = "invalid_type"
    WHITESPACE = "whitespace"
    TRIMMED = "trimmed"
    TOO_LONG = "too_long"
    TRUNCATED = "truncated"
    BLOCKED = "blocked"


def field_code(field: str, check: Check) -> str:
    """The code of a field check: ``<field>.<check>``."""
    return f"{field}.{check}"


@attrs.frozen
class Entry:
    """What the docs say of a group of codes: when they appear and which knob they cite."""

    codes: tuple[str, ...]
    when: str
    cites: str


#: the documentation of every code, in the order a reader meets them
CATALOG: tuple[Entry, ...] = (
    Entry(
        (Code.EVENT_INVALID, Code.EVENT_DUPLICATE),
        "a malformed event (``detail`` says what is wrong); an event id already decided. "
        "In an import (docs/import.md): a row that cannot be read or has no identifier; a "
        "row whose user id an earlier row of the import imported (``field`` ``user_id``)",
        "nothing (``rule`` is null)",
    ),
    Entry(
        tuple(f"<field>.{check}" for check in Check),
        "a field check fired (``field`` names it): a required field missing, a value of "
        "the wrong type, whitespace refused or trimmed, a blocked value, a value too long "
        "or truncated",
        "``fields.<field>.required`` / ``.type`` / ``.whitespace`` / ``.blocked`` / "
        "``.max_length``",
    ),
    Entry(
        (Code.USER_ID_EMAIL_SHAPED, Code.EMAIL_INVALID),
        "a user id that looks like an email; an email that fails the syntax check",
        "``fields.user_id.email_shaped``, ``fields.email.validate``",
    ),
    Entry(
        (
            Code.AUTH_VERIFIED,
            Code.AUTH_MISSING,
            Code.AUTH_INVALID,
            Code.AUTH_EXPIRED,
            Code.AUTH_NOT_YET_VALID,
            Code.AUTH_ALGORITHM,
            Code.AUTH_CLAIMS,
        ),
        "proof of identity: verified (``detail`` names the key and the signature's or "
        "token's fingerprint), missing, invalid, expired, not yet valid, an algorithm not "
        "allowed, a required claim missing",
        "``verification.*``",
    ),
    Entry(
        (Code.AUTH_PROTECTED_PROFILE,),
        "an unverified call would act as a verified profile",
        "``verification.protect_verified``",
    ),
    Entry(
        (Code.ATTRIBUTE_UNKNOWN, Code.ATTRIBUTE_INVALID),
        "an attribute not configured (dropped or kept); one failing its schema "
        "(``field`` names the attribute)",
        "``attributes.unknown``, ``attributes.schema.<name>``, ``attributes.invalid``",
    ),
    Entry(
        (Code.MATCH_USER_ID, Code.MATCH_EMAIL, Code.MATCH_EMAIL_AMBIGUOUS, Code.PROFILE_CREATED),
        "the profile was found by user id or email (the earliest created when several hold "
        "the email), or made",
        "``matching.precedence``",
    ),
    Entry(
        (Code.IDENTIFIER_ATTACHED,),
        "a user id added to a profile found by email that had none",
        "``matching.email_matches_profile_without_user_id``",
    ),
    Entry(
        (Code.CONFLICT_EMAIL_OTHER_USER_ID,),
        "the email's profile has another user id",
        "``matching.email_matches_profile_with_other_user_id``",
    ),
    Entry(
        (Code.PROFILE_UPDATED,),
        "a matched profile took a new value (``field``)",
        "``matching.update_on_match``",
    ),
    Entry(
        (Code.ANONYMOUS_CREATED,),
        "a session's anonymous profile was made",
        "``anonymous``, or ``anonymous.after_logout`` when the session's identity had ended",
    ),
    Entry(
        (
            Code.ANONYMOUS_PROMOTED,
            Code.ANONYMOUS_MERGED,
            Code.ANONYMOUS_KEPT,
            Code.ANONYMOUS_CLEARED,
            Code.SESSION_SWITCHED,
            Code.MERGE_BLOCKED,
        ),
        "what became of the session's anonymous profile at identify, or a switch between "
        "two identified profiles (never merged)",
        "``anonymous.on_identify``",
    ),
    Entry(
        (Code.SESSION_LOGGED_OUT,),
        "a logout or ``identify(null)``; ``detail`` says what the session acts as now",
        "``anonymous.after_logout``",
    ),
    Entry(
        (Code.ANONYMOUS_EXPIRED,),
        "an anonymous profile unused for longer than its TTL",
        "``anonymous.ttl_days``",
    ),
    Entry(
        (Code.ACTIVITY_EMAIL_REQUIRED,),
        "anonymous activity without an email",
        "``anonymous.activity_requires_email``",
    ),
)


def is_known(code: str, fields: tuple[str, ...] = ("user_id", "email", "name", "avatar")) -> bool:
    """Whether ``code`` is a code of this registry (a fixed one, or a field check)."""
    if code in Code.__members__.values():
        return True
    field, _, check = code.partition(".")
    return field in fields and check in Check.__members__.values()
