"""Decision records: the compact form of a decision a durable store keeps, and how ``history``
shows it."""

from __future__ import annotations

import json
from typing import Any

from ..decision import Decision
from ..store.base import DecisionRecord


def record_of(
    decision: Decision, run: int | None = None, digest: str | None = None
) -> DecisionRecord:
    """The record a store keeps of an applied decision (``run`` and ``digest``: its replay
    run and its line's hash in the decisions chain)."""
    # ``dumps`` of the list of every reason's record, joined from the parts made once
    reasons = "[" + ",".join([r.record for r in decision.reasons]) + "]"
    return DecisionRecord(
        decision.event_id,
        decision.outcome,
        decision.profile,
        decision.merged,
        reasons,
        run,
        decision.line,
        digest,
    )


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
