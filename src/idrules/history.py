"""``idrules history``: finding the profile asked about, and printing what the store kept
of each decision that touched it."""

from __future__ import annotations

import json
from typing import Any

from ._errors import InputError
from .emails import normalize_email
from .matchkeys import email_key_of
from .store.base import DecisionRecord
from .store.sqlite import SqliteStore


def find_profile(store: SqliteStore, kind: str, value: str) -> str:
    """The profile a ``history`` question is about: by id, user id (exact) or email (its
    match key). Profiles merged into another count as that one."""
    if kind == "profile":
        found = store.find_profiles("id", value)
    elif kind == "user_id":
        found = store.find_profiles("user_id", value)
    else:
        _, key, _ = normalize_email(value.strip())
        found = store.find_profiles("email_key", key or email_key_of(value.strip()))
    roots = list(dict.fromkeys(store.root_of(pid) for pid in found))
    if not roots:
        raise InputError(f"no profile with {kind.replace('_', ' ')} {value!r} in {store.path}")
    if len(roots) > 1:
        raise InputError(
            f"{len(roots)} profiles hold {kind.replace('_', ' ')} {value!r} "
            f"({', '.join(roots)}): ask for one with --profile"
        )
    return roots[0]


def record_dict(record: DecisionRecord) -> dict[str, Any]:
    """A stored decision as a JSON object (reasons expanded)."""
    reasons = []
    for code, rule, field, detail in json.loads(record.reasons):
        reason: dict[str, Any] = {"code": code, "rule": rule}
        if field is not None:
            reason["field"] = field
        if detail is not None:
            reason["detail"] = detail
        reasons.append(reason)
    return {
        "event_id": record.event_id,
        "line": record.line,
        "outcome": record.outcome,
        "profile": record.profile,
        "merged": list(record.merged),
        "reasons": reasons,
        "hash": record.hash,
    }


def record_text(record: DecisionRecord) -> str:
    """A stored decision as one readable line."""
    where = f"line {record.line}" if record.line is not None else "library call"
    parts = []
    for code, rule, field, detail in json.loads(record.reasons):
        about = f" {field}" if field else ""
        note = f": {detail}" if detail else ""
        parts.append(f"{code}{about} [{rule}]{note}")
    merged = f" merged {', '.join(record.merged)};" if record.merged else ""
    return f"{where}  {record.event_id}  {record.outcome} {record.profile}{merged}  " + (
        "; ".join(parts) or "no reasons"
    )
