"""The lean resolver: the code a competent team writes in an afternoon, the yardstick of issue 14.

    IDRULES_SECRET_CURRENT=... python benchmarks/lean.py --pack helpshift LOG --out FILE

A whole process, like ``idrules replay --rules PACK LOG --out FILE``: per line ``json.loads``;
a set of seen ids; ``datetime.fromisoformat`` on ``ts``; for an identify, type/strip/length
checks on the user id, ``email_validator.validate_email(..., check_deliverability=False)`` on
every email (no cache), name truncation; HMACs (``hmac.compare_digest``) and JWTs (PyJWT)
checked where the pack's rules verify them; dicts by user id and by email key (the earliest
profile wins); a dict of sessions; an anonymous profile per session with its expiry; a counter
for profile ids (``p1``, ``p2``, ...); ``json.dumps`` of a small decision per line (event id,
outcome, profile, created, identity, reason codes).

One core for every pack, its knobs hard-coded per pack as constants (``baseline.PACKS``, what
each widget's integration guide says): the matching, sessions and expiry are the straight-line
resolver's (:class:`baseline.Baseline`); what a lean team leaves out is left out here:

- no regular expressions on the timestamp or the signature (``fromisoformat`` and
  ``compare_digest`` decide), no hashing to make profile ids (a counter);
- the decision: six keys, its reasons as codes only (no rule citations, ruleset reference or
  hash chain).

It agrees with idrules on every event's outcome, and on its profile up to the ids' names (one
lean id for one idrules id), over generated logs of every pack (tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline import PACKS, Baseline

_TYPES = frozenset(("identify", "track", "logout"))
#: the reason code a lean decision gives for its outcome (and for a created profile)
_CODES = {
    "rejected": "event.rejected",
    "duplicate": "event.duplicate",
    "anonymous": "anonymous",
    "logged_out": "session.logged_out",
    "recorded": "activity.recorded",
}


class Lean(Baseline):
    """One widget's lean resolver over plain dicts. ``decide_line`` -> a small decision dict."""

    def replay(self, lines: Iterable[bytes], write: Callable[[str], object]) -> dict[str, int]:
        outcomes: dict[str, int] = {}
        dumps = json.dumps
        for number, raw in enumerate(lines, start=1):
            if raw.isspace() or not raw:
                continue
            decision = self.decide_line(raw, number)
            write(dumps(decision, ensure_ascii=False, separators=(",", ":")) + "\n")
            outcome = decision["outcome"]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return outcomes

    def decide_line(self, raw: bytes | str, line: int | None = None) -> dict[str, Any]:
        try:
            obj = json.loads(raw)
        except ValueError:
            return self._invalid(None, line)
        if type(obj) is not dict:
            return self._invalid(None, line)
        eid = obj.get("id")
        if type(eid) is not str or not eid:
            return self._invalid(None, line)
        if eid in self.decided:
            return self._decision(eid, line, "duplicate")
        ts_text = obj.get("ts")
        kind = obj.get("type")
        session = obj.get("session")
        payload = obj.get("payload")
        if type(ts_text) is not str or kind not in _TYPES:
            return self._invalid(eid, line)
        if session is not None and (type(session) is not str or not session):
            return self._invalid(eid, line)
        try:
            when = datetime.fromisoformat(ts_text)
        except ValueError:
            return self._invalid(eid, line)
        if when.tzinfo is None:
            return self._invalid(eid, line)
        ts = when.timestamp()
        if kind == "identify":
            if payload is not None and type(payload) is not dict:
                return self._invalid(eid, line)
        elif session is None or (
            kind == "track"
            and (
                type(payload) is not dict
                or type(payload.get("name")) is not str
                or not (payload.get("properties") is None or type(payload["properties"]) is dict)
            )
        ):
            return self._invalid(eid, line)
        self.decided.add(eid)
        if kind == "track":
            return self.track(eid, line, ts, session, payload)
        if kind == "logout" or payload is None:
            if session is not None and session in self.sessions:
                self._logged_out(session, ts)
            return self._decision(eid, line, "logged_out")
        return self.identify(eid, line, ts, session, payload)

    def _signature_ok(self, user_id: Any, signature: Any) -> bool:
        if type(signature) is not str or type(user_id) is not str:
            return False
        expected = hmac.new(self.key, user_id.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature.lower())

    def _profile_id(self, eid: str) -> str:
        """A counter, as a lean team numbers its profiles."""
        return f"p{self.seq}"

    @staticmethod
    def _decision(
        eid: str | None,
        line: int | None,
        outcome: str,
        *,
        profile: str | None = None,
        created: bool = False,
        merged: list[str] | None = None,
        identity: dict[str, Any] | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if outcome == "identified":
            reasons = ["profile.created"] if created else ["match"]
            if merged:
                reasons.append("anonymous.merged")
        else:
            reasons = [_CODES[outcome]]
        return {
            "event_id": eid,
            "outcome": outcome,
            "profile": profile,
            "created": created,
            "identity": identity,
            "reasons": reasons,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("events", help="the log (JSON lines)")
    parser.add_argument("--pack", required=True, choices=sorted(PACKS))
    parser.add_argument("--out", required=True, help="write decisions to this file")
    args = parser.parse_args(argv)
    secret = os.environ.get("IDRULES_SECRET_CURRENT", "")
    lean = Lean(args.pack, secret)
    with open(args.events, "rb") as log, open(args.out, "w", encoding="utf-8") as out:
        outcomes = lean.replay(log, out.write)
    print(json.dumps(outcomes, sort_keys=True), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
