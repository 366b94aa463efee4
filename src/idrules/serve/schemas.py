"""JSON Schemas (draft 2020-12) of what goes over the wire: an event (docs/events.md), a
decision (docs/decisions.md), a profile as the export writes it (docs/export.md), a stored
decision record (``history``) and an error.

Defined once, here: the OpenAPI document (:mod:`.openapi`) embeds these very objects as its
components, and the tests validate real decisions and export rows of the library against
them, so the document cannot drift from what the engine writes. Plain data, no web
framework: importing this module needs nothing beyond the standard library.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_TEXT: Schema = {"type": "string"}
_TEXT_OR_NULL: Schema = {"type": ["string", "null"]}
_IDS: Schema = {"type": "array", "items": {"type": "string"}}
_OUTCOMES = ["identified", "anonymous", "rejected", "logged_out", "recorded", "duplicate"]
_STATES = ["active", "merged", "cleared", "expired"]

#: one event (docs/events.md); over HTTP ``id`` and ``ts`` may be left out (the server
#: assigns them). A JSON object that is not a valid event is still decided: ``rejected``.
EVENT: Schema = {
    "title": "Event",
    "type": "object",
    "required": ["type"],
    "properties": {
        "id": {"type": "string", "minLength": 1, "description": "unique per store"},
        "ts": {"type": "string", "format": "date-time", "description": "RFC 3339"},
        "type": {"enum": ["identify", "track", "logout"]},
        "session": {"type": "string", "minLength": 1},
        "payload": {
            "type": ["object", "null"],
            "description": "identify: the widget's object in the ruleset's dialect, or null; "
            'track: {"name", "properties"?, "email"?}',
        },
    },
}

_REASON: Schema = {
    "type": "object",
    "required": ["code", "rule"],
    "additionalProperties": False,
    "properties": {
        "code": _TEXT,
        "rule": {**_TEXT_OR_NULL, "description": "FILE:LINE KNOB, the rule that decided"},
        "field": _TEXT,
        "detail": _TEXT,
    },
}

_IDENTITY: Schema = {
    "type": ["object", "null"],
    "required": ["user_id", "email", "name", "avatar", "verified"],
    "additionalProperties": False,
    "properties": {
        "user_id": _TEXT_OR_NULL,
        "email": _TEXT_OR_NULL,
        "name": _TEXT_OR_NULL,
        "avatar": _TEXT_OR_NULL,
        "verified": {"type": "boolean"},
    },
}

_RULESET: Schema = {
    "type": "object",
    "required": ["name", "version", "sha256"],
    "additionalProperties": False,
    "properties": {
        "name": _TEXT,
        "version": _TEXT,
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
}

#: one decision (docs/decisions.md); ``line`` only in a replay's output
DECISION: Schema = {
    "title": "Decision",
    "type": "object",
    "required": [
        "event_id",
        "outcome",
        "profile",
        "created",
        "merged",
        "identity",
        "attributes",
        "reasons",
        "ruleset",
    ],
    "additionalProperties": False,
    "properties": {
        "event_id": _TEXT_OR_NULL,
        "line": {"type": "integer", "minimum": 1},
        "outcome": {"enum": _OUTCOMES},
        "profile": _TEXT_OR_NULL,
        "created": {"type": "boolean"},
        "merged": _IDS,
        "identity": _IDENTITY,
        "attributes": {"type": "object"},
        "reasons": {"type": "array", "items": _REASON},
        "ruleset": _RULESET,
    },
}

#: one profile, as ``idrules export`` writes it (docs/export.md)
PROFILE: Schema = {
    "title": "Profile",
    "type": "object",
    "required": [
        "profile",
        "user_id",
        "email",
        "name",
        "avatar",
        "verified",
        "anonymous",
        "state",
        "attributes",
        "sessions",
        "activity",
        "merged_into",
    ],
    "additionalProperties": False,
    "properties": {
        "profile": _TEXT,
        "user_id": _TEXT_OR_NULL,
        "email": _TEXT_OR_NULL,
        "name": _TEXT_OR_NULL,
        "avatar": _TEXT_OR_NULL,
        "verified": {"type": "boolean"},
        "anonymous": {"type": "boolean"},
        "state": {"enum": _STATES},
        "attributes": {"type": "object"},
        "sessions": _IDS,
        "activity": _IDS,
        "merged_into": _TEXT_OR_NULL,
    },
}

#: a decision as a durable store keeps it (``idrules history --json``: reasons expanded)
RECORD: Schema = {
    "title": "DecisionRecord",
    "type": "object",
    "required": ["event_id", "line", "outcome", "profile", "merged", "reasons", "hash"],
    "additionalProperties": False,
    "properties": {
        "event_id": _TEXT_OR_NULL,
        "line": {"type": ["integer", "null"]},
        "outcome": {"enum": _OUTCOMES},
        "profile": _TEXT_OR_NULL,
        "merged": _IDS,
        "reasons": {"type": "array", "items": _REASON},
        "hash": _TEXT_OR_NULL,
    },
}

#: ``GET /v1/history``: the profile asked about, the profiles merged into it, and every
#: decision that touched one of them, oldest first
HISTORY: Schema = {
    "title": "History",
    "type": "object",
    "required": ["profile", "merged", "decisions"],
    "additionalProperties": False,
    "properties": {
        "profile": _TEXT,
        "merged": _IDS,
        "decisions": {"type": "array", "items": RECORD},
    },
}

#: every refusal: ``{"error": "one line saying what is wrong"}``
ERROR: Schema = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {"error": _TEXT, "profiles": _IDS},
}

HEALTH: Schema = {
    "title": "Health",
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"const": "ok"}},
}

#: the components of the OpenAPI document, by name
COMPONENTS: dict[str, Schema] = {
    "Event": EVENT,
    "Decision": DECISION,
    "Profile": PROFILE,
    "DecisionRecord": RECORD,
    "History": HISTORY,
    "Error": ERROR,
    "Health": HEALTH,
}
