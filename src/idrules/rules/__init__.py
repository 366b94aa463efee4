"""Rulesets: loading (YAML, ``extends``, defaults), the JSON Schema, and the typed model."""

from .loader import load_ruleset
from .model import (
    IDENTITY_FIELDS,
    AnonymousRules,
    AttributeRules,
    AuditRules,
    FieldRule,
    Fields,
    HmacRule,
    InputMap,
    JwtRule,
    Matching,
    Provenance,
    Ruleset,
    Verification,
)
from .packs import pack_names

__all__ = [
    "IDENTITY_FIELDS",
    "AnonymousRules",
    "AttributeRules",
    "AuditRules",
    "FieldRule",
    "Fields",
    "HmacRule",
    "InputMap",
    "JwtRule",
    "Matching",
    "Provenance",
    "Ruleset",
    "Verification",
    "load_ruleset",
    "pack_names",
]
