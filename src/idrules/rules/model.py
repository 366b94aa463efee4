"""The typed, frozen ruleset: what the rules file says, after ``extends``, defaults and schema.

These classes hold knob values only. Where each knob was written (file and line) is kept
beside them in :class:`Provenance`, so a decision can cite ``helpshift.yaml:NN
fields.user_id.max_length`` without the model having to carry locations in every value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ..decision import Citation

Source = str | tuple[str, ...] | None

#: canonical identity fields, in the order their checks run and decisions list them
IDENTITY_FIELDS: tuple[str, ...] = ("user_id", "email", "name", "avatar")


@attrs.frozen
class InputMap:
    """Where each canonical field comes from in the client's payload (the dialect)."""

    user_id: Source = None
    email: Source = None
    name: Source = None
    avatar: Source = None
    signature: Source = None
    token: Source = None
    attributes: str | None = None


@attrs.frozen
class FieldRule:
    """Checks and normalisation for one canonical identity field."""

    type: Literal["string", "scalar"] = "string"
    required: bool = False
    empty: Literal["absent", "given"] = "absent"
    whitespace: Literal["invalid", "strip", "keep"] = "invalid"
    max_length: int | None = None
    too_long: Literal["invalid", "truncate"] = "invalid"
    blocked: tuple[str, ...] = ()
    on_invalid: Literal["anonymous", "reject", "drop"] = "drop"
    case_sensitive: bool = True
    email_shaped: Literal["allow", "warn", "invalid"] = "allow"
    validate: bool = False


@attrs.frozen
class Fields:
    user_id: FieldRule
    email: FieldRule
    name: FieldRule
    avatar: FieldRule


@attrs.frozen
class HmacRule:
    message: str = "{user_id}"
    encoding: Literal["hex", "base64"] = "hex"


@attrs.frozen
class JwtRule:
    algorithms: tuple[str, ...] = ("HS256",)
    claims: Mapping[str, str | None] = attrs.field(factory=dict)
    required: tuple[str, ...] = ()
    leeway_s: int = 30
    max_age_s: int | None = None
    extra_claims: Literal["attributes", "ignore"] = "attributes"


@attrs.frozen
class Verification:
    mode: Literal["disabled", "optional", "required"]
    method: Literal["hmac", "jwt"]
    hmac: HmacRule
    jwt: JwtRule
    keys: tuple[str, ...]
    on_failure: Literal["reject", "anonymous"]
    protect_verified: bool


@attrs.frozen
class Matching:
    precedence: tuple[Literal["user_id", "email"], ...]
    email_matches_profile_without_user_id: Literal["attach", "new_profile"]
    email_matches_profile_with_other_user_id: Literal["new_profile", "reject"]
    update_on_match: tuple[Literal["email", "name", "avatar", "attributes"], ...]


@attrs.frozen
class AttributeRules:
    schema: Mapping[str, Any]
    unknown: Literal["drop", "keep", "reject"]
    invalid: Literal["drop", "reject"]


@attrs.frozen
class AnonymousRules:
    on_identify: Literal["merge", "keep", "clear"]
    after_logout: Literal["restore", "new"]
    ttl_days: float | None
    activity_requires_email: bool | tuple[str, ...]

    def requires_email(self, track_name: str) -> bool:
        """Whether anonymous activity of this name needs an email."""
        rule = self.activity_requires_email
        return rule if isinstance(rule, bool) else track_name in rule


@attrs.frozen
class AuditRules:
    """How decisions show personal data: emails and names kept, masked or keyed-hashed."""

    emails: Literal["keep", "mask", "hash"] = "keep"
    names: Literal["keep", "mask", "hash"] = "keep"
    key: str = "audit"


@attrs.frozen
class Provenance:
    """Where each knob of the effective ruleset was written: knob path -> (source, line)."""

    locations: Mapping[tuple[str | int, ...], tuple[str, int]]

    def cite(self, *path: str) -> Citation:
        """Where a knob is written: a dotted path (``"matching.precedence"``) or its parts
        (``"attributes", "schema", name``, for names that hold dots).

        Every knob of an effective ruleset is located (defaults.yaml writes them all), so a
        path that is not is a mistyped knob in the engine: it is an error when the engine
        compiles the rules, never a citation of some other knob."""
        parts = tuple(path[0].split(".")) if len(path) == 1 else path
        where = self.locations.get(parts)
        if where is None:
            raise LookupError(f"no knob {'.'.join(parts)!r} in the rules: it cannot be cited")
        return Citation(where[0], where[1], ".".join(parts))


@attrs.frozen
class Ruleset:
    """A loaded ruleset: its knobs, its identity (name, version, sha256) and provenance."""

    name: str
    version: str
    sha256: str
    input: InputMap
    fields: Fields
    verification: Verification
    matching: Matching
    attributes: AttributeRules
    anonymous: AnonymousRules
    audit: AuditRules
    provenance: Provenance = attrs.field(eq=False, repr=False)
    #: the effective document (after extends and defaults), canonical JSON is hashed
    document: Mapping[str, Any] = attrs.field(eq=False, repr=False)

    def cite(self, *path: str) -> Citation:
        """The citation a decision's reason carries for a knob (see :meth:`Provenance.cite`)."""
        return self.provenance.cite(*path)

    def field(self, name: str) -> FieldRule:
        rule: FieldRule = getattr(self.fields, name)
        return rule
