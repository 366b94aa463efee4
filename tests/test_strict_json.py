"""Strict JSON everywhere (docs/events.md): a number JSON cannot carry (NaN, Infinity, a number that
overflows to infinity such as ``1e400``, an integer too long to read) makes an event malformed
and a token invalid; it never reaches a decision, the store or the export, and never stops a
replay with an exception. A UTF-8 byte order mark before a log's first line is ignored."""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path
from typing import Any

import jwt
import pytest
import support

from idrules import (
    Engine,
    Event,
    InputError,
    InvalidEvent,
    export_rows,
    load_ruleset,
    parse_line,
    replay,
)
from idrules.events import strip_bom
from idrules.signing import Signer

SECRET = "strict-json-tests-secret-0123456789abcdef"
TS = "2026-03-01T12:00:00Z"
T0_S = 1_772_366_400
BOM = b"\xef\xbb\xbf"


def event_line(payload: str, event_id: str = "e1") -> bytes:
    """An identify line written by hand, ``payload`` as raw JSON text."""
    text = f'{{"id": "{event_id}", "ts": "{TS}", "type": "identify", "payload": {payload}}}'
    return text.encode()


#: an HS256 token signed by hand over exactly ``payload`` (PyJWT will not write 1e400)
raw_token = partial(support.raw_token, secret=SECRET)


def replyful() -> Engine:
    return Engine("replyful", secrets={"current": SECRET}, environ={})


def all_finite(value: Any) -> bool:
    """Whether every number in a JSON-like value is finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(all_finite(v) for v in value)
    return True


class TestOverflowingNumbers:
    """A float literal that overflows to infinity is refused like NaN and Infinity."""

    @pytest.mark.parametrize(
        "payload",
        [
            '{"userId": "u", "x": 1e400}',
            '{"userId": "u", "x": -1e400}',
            '{"userId": "u", "deep": [1, {"y": 2.5e999}]}',
            '{"userId": "u", "x": 1E+309}',
        ],
    )
    def test_refused_keeping_the_id(self, payload: str) -> None:
        """The event is invalid (the id is kept: the rest of the line is JSON)."""
        event = parse_line(event_line(payload))
        assert isinstance(event, InvalidEvent), event
        assert event.id == "e1"
        assert "infinity" in event.problem.lower()

    @pytest.mark.parametrize("number", ["1e308", "-1.7976931348623157e308", "1e-400", "0.5"])
    def test_finite_numbers_pass(self, number: str) -> None:
        """Large, tiny and ordinary finite numbers are ordinary values."""
        event = parse_line(event_line('{"userId": "u", "x": ' + number + "}"))
        assert isinstance(event, Event), event
        assert math.isfinite(event.payload["x"])

    def test_broken_line_with_overflow_is_not_json(self) -> None:
        """A line that is not JSON anyway says so first, with no id."""
        event = parse_line(b'{"id": "e1", "x": 1e400,')
        assert isinstance(event, InvalidEvent)
        assert (event.id, event.problem) == (None, "line is not valid JSON")

    def test_never_in_a_decision_or_the_export(self) -> None:
        """Through the engine: a rejected event.invalid decision, no Infinity anywhere."""
        e = Engine("helpshift")
        out: list[str] = []
        lines = [
            event_line('{"userId": "u_1", "plan": 1e400}', "e1"),
            event_line('{"userId": "u_2", "plan": 2}', "e2"),
        ]
        replay(e, lines, out.append)
        first, second = (json.loads(line) for line in out)
        assert (first["event_id"], first["outcome"]) == ("e1", "rejected")
        assert [r["code"] for r in first["reasons"]] == ["event.invalid"]
        assert second["outcome"] == "identified"
        assert all(all_finite(json.loads(line)) for line in out)
        for row in export_rows(e.store):  # strict: Python's json would write Infinity
            json.dumps(row, allow_nan=False)


class TestHugeIntegers:
    """Python refuses integers of more than 4,300 digits: an invalid event, not a traceback."""

    @pytest.mark.parametrize("digits", [4301, 5000, 20_000])
    def test_refused(self, digits: int) -> None:
        """A huge integer literal makes the line invalid, with a word for why."""
        event = parse_line(event_line('{"userId": "u", "n": ' + "9" * digits + "}"))
        assert isinstance(event, InvalidEvent), event
        assert "digits" in event.problem

    def test_replay_goes_on(self) -> None:
        """A replay decides it as rejected and carries on with the next line."""
        out: list[str] = []
        lines = [event_line('{"n": -' + "1" * 5000 + "}", "e1"), event_line("null", "e2")]
        summary = replay(Engine("helpshift"), lines, out.append)
        assert summary.outcomes == {"rejected": 1, "logged_out": 1}

    def test_long_but_readable_integer_passes(self) -> None:
        """An integer of 4,300 digits is still a number (arbitrary precision)."""
        event = parse_line(event_line('{"userId": "u", "n": ' + "7" * 4300 + "}"))
        assert isinstance(event, Event)


class TestByteOrderMark:
    """A UTF-8 BOM before the first line is ignored; anywhere else it is part of the text."""

    def test_first_line_decided(self) -> None:
        """The first event of a log saved with a BOM is decided as without one, line 1."""
        out: list[str] = []
        lines = [BOM + event_line('{"userId": "u_1"}') + b"\n", b"\n", event_line("null", "e2")]
        replay(Engine("helpshift"), lines, out.append)
        decided = [json.loads(line) for line in out]
        assert [(d["event_id"], d["line"], d["outcome"]) for d in decided] == [
            ("e1", 1, "identified"),
            ("e2", 3, "logged_out"),
        ]

    def test_same_bytes_as_without(self) -> None:
        """With and without the mark: byte-identical decisions."""
        plain = [event_line('{"userId": "u_1"}') + b"\n", event_line("null", "e2") + b"\n"]
        marked = [BOM + plain[0], plain[1]]
        a: list[str] = []
        b: list[str] = []
        replay(Engine("helpshift"), plain, a.append)
        replay(Engine("helpshift"), marked, b.append)
        assert a == b

    def test_bom_only_first_line_is_blank(self) -> None:
        """A first line holding only the mark is a blank line (skipped, counted)."""
        out: list[str] = []
        replay(Engine("helpshift"), [BOM + b"\n", event_line("null", "e2")], out.append)
        assert [json.loads(line)["line"] for line in out] == [2]

    def test_only_the_first_line(self) -> None:
        """A BOM before a later line is not JSON: that line is invalid."""
        out: list[str] = []
        lines = [event_line("null", "e1") + b"\n", BOM + event_line("null", "e2")]
        replay(Engine("helpshift"), lines, out.append)
        assert [json.loads(line)["outcome"] for line in out] == ["logged_out", "rejected"]

    def test_strip_bom(self) -> None:
        """strip_bom drops one leading mark and nothing else."""
        assert strip_bom(BOM + b"{}") == b"{}"
        assert strip_bom(b"{}") == b"{}"
        assert strip_bom(BOM + BOM + b"{}") == BOM + b"{}"


class TestTokenNumbers:
    """A signed token's numbers: strict JSON, and time claims that are real times."""

    @pytest.mark.parametrize(
        "payload",
        [
            b'{"userId": "r_1", "plan": 1e400}',
            b'{"userId": "r_1", "exp": 1e400}',
            b'{"userId": "r_1", "n": ' + b"1" * 5000 + b"}",
        ],
    )
    def test_unreadable_payload_is_malformed(self, payload: bytes) -> None:
        """A payload with a number JSON cannot carry is auth.invalid "malformed"."""
        d = replyful().identify({"token": raw_token(payload)}, session="s1", id="e1", ts=TS)
        assert d.outcome == "anonymous"  # replyful: on_failure anonymous
        (r,) = [r for r in d.reasons if r.code == "auth.invalid"]
        assert r.detail is not None and "malformed" in r.detail
        assert all_finite(json.loads(d.to_json()))

    @pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
    @pytest.mark.parametrize("value", [1e308, -1e308, 1.7976931348623157e308, 10**30, -(10**30)])
    def test_absurd_time_claim_is_invalid(self, claim: str, value: float) -> None:
        """A time claim beyond the year 9999 (or before year 1) is auth.invalid, never an
        OverflowError that would stop the replay."""
        tok = jwt.encode({"userId": "r_1", claim: value}, SECRET, algorithm="HS256")
        d = replyful().identify({"token": tok}, session="s1", id="e1", ts=TS)
        assert d.outcome == "anonymous", d.to_json()  # replyful: on_failure anonymous
        (r,) = [r for r in d.reasons if r.code == "auth.invalid"]
        assert r.field == "token" and r.detail is not None and claim in r.detail

    def test_far_but_real_expiry_is_fine(self) -> None:
        """An exp in the year 9000 is a real (if long) lifetime: verified."""
        tok = jwt.encode({"userId": "r_1", "exp": 221_845_392_000}, SECRET, algorithm="HS256")
        d = replyful().identify({"token": tok}, session="s1", id="e1", ts=TS)
        assert d.outcome == "identified" and "auth.verified" in d.codes

    def test_replay_goes_on_after_an_absurd_exp(self) -> None:
        """The token that used to raise OverflowError is one rejected line among others."""
        bad = jwt.encode({"userId": "r_1", "exp": 1e308}, SECRET, algorithm="HS256")
        good = jwt.encode({"userId": "r_2", "exp": T0_S + 60}, SECRET, algorithm="HS256")
        lines = [
            event_line(json.dumps({"token": bad}), "e1"),
            event_line(json.dumps({"token": good}), "e2"),
        ]
        out: list[str] = []
        summary = replay(replyful(), lines, out.append)
        assert summary.outcomes == {"anonymous": 1, "identified": 1}


class TestSignNumbers:
    """Signer.token never writes a token whose payload is not JSON."""

    @pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, "\udc80"])
    def test_refused(self, value: Any) -> None:
        """A non-finite number or unpaired surrogate in a claim: InputError, no token."""
        signer = Signer(load_ruleset("replyful"), {"current": SECRET.encode()})
        with pytest.raises(InputError, match="not JSON"):
            signer.token({"user_id": "u_1"}, {"x": value}, T0_S, 300)

    def test_finite_claims_sign(self, tmp_path: Path) -> None:
        """Ordinary claims still sign, and the token decodes."""
        signer = Signer(load_ruleset("replyful"), {"current": SECRET.encode()})
        tok = signer.token({"user_id": "u_1"}, {"x": 1.5, "n": 10**20}, T0_S, 300)
        claims = jwt.decode(tok, SECRET, algorithms=["HS256"], options={"verify_exp": False})
        assert (claims["x"], claims["n"]) == (1.5, 10**20)
