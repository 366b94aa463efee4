"""Stage 1: parsing one log line into an Event or an InvalidEvent (docs/events.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from idrules import Engine, Event, InvalidEvent, parse_line, replay
from idrules.events import format_ts, parse_object, parse_ts

TS = "2026-03-01T12:00:00Z"
TS_US = 1_772_366_400_000_000


def line(**fields: Any) -> str:
    return json.dumps(fields)


def raw_event(rest: str, event_id: str = "e1") -> str:
    """An event line written by hand (for escapes and constants json.dumps would not write)."""
    return '{"id": "' + event_id + '", "ts": "' + TS + '", ' + rest + "}"


def invalid(raw: bytes | str) -> InvalidEvent:
    event = parse_line(raw)
    assert isinstance(event, InvalidEvent), event
    return event


class TestWellFormed:
    def test_identify_event_is_parsed(self) -> None:
        """A well-formed identify becomes an Event with its id, time, session and payload."""
        payload = {"userId": "u_1", "userEmail": "ada@example.com"}
        event = parse_line(line(id="e1", ts=TS, type="identify", session="b7", payload=payload))
        assert event == Event("e1", TS_US, "identify", "b7", payload)

    def test_identify_needs_no_session(self) -> None:
        """An identify without a session is well formed (the session is optional for it)."""
        event = parse_line(line(id="e1", ts=TS, type="identify", payload={"userId": "u"}))
        assert isinstance(event, Event)
        assert event.session is None

    def test_identify_null_payload(self) -> None:
        """An identify with payload null (identify(null)) is well formed."""
        event = parse_line(line(id="e1", ts=TS, type="identify", session="s", payload=None))
        assert isinstance(event, Event)
        assert event.payload is None

    def test_track_and_logout(self) -> None:
        """A track with a string name and a logout with a session are well formed."""
        track = parse_line(
            line(id="e2", ts=TS, type="track", session="s", payload={"name": "vote"})
        )
        logout = parse_line(line(id="e3", ts=TS, type="logout", session="s"))
        assert isinstance(track, Event)
        assert track.type == "track"
        assert isinstance(logout, Event)
        assert logout.type == "logout"

    def test_bytes_line_and_line_number(self) -> None:
        """A UTF-8 bytes line is decoded, and the line number is carried through."""
        raw = line(id="é1", ts=TS, type="logout", session="s").encode("utf-8")
        event = parse_line(raw, 7)
        assert isinstance(event, Event)
        assert event.id == "é1"
        assert event.line == 7

    def test_parse_object_takes_a_decoded_value(self) -> None:
        """parse_object checks an already-decoded object the same way."""
        event = parse_object({"id": "e1", "ts": TS, "type": "logout", "session": "s"}, 3)
        assert isinstance(event, Event)
        assert event.line == 3


class TestMalformed:
    @pytest.mark.parametrize(
        "raw",
        ["{", "not json", "{'id': 'e1'}", '{"id": "e1",}', "\x00", b"\xff\xfe", b'{"id":"\xc3"}'],
    )
    def test_not_json_or_not_utf8(self, raw: str | bytes) -> None:
        """A line that is not JSON (or not UTF-8) is invalid and no id can be read."""
        assert invalid(raw).id is None

    @pytest.mark.parametrize("raw", ["[]", '"e1"', "1", "null", "true", '[{"id": "e1"}]'])
    def test_not_an_object(self, raw: str) -> None:
        """A JSON value that is not an object is invalid, with no id."""
        event = invalid(raw)
        assert event.id is None
        assert "object" in event.problem

    @pytest.mark.parametrize("event_id", [None, 1, 1.5, True, ["e1"], {"v": "e1"}, ""])
    def test_id_missing_or_not_a_string(self, event_id: Any) -> None:
        """An id that is missing, not a string (or empty) is invalid, with no id."""
        fields: dict[str, Any] = {"ts": TS, "type": "logout", "session": "s"}
        if event_id is not None:
            fields["id"] = event_id
        event = invalid(line(**fields))
        assert event.id is None
        assert "'id'" in event.problem

    @pytest.mark.parametrize("ts", [None, 1_772_366_400, "yesterday", "2026-03-01", ""])
    def test_ts_missing_or_not_rfc3339(self, ts: Any) -> None:
        """A ts that is missing or not RFC 3339 is invalid, keeping the readable id."""
        fields: dict[str, Any] = {"id": "e1", "type": "logout", "session": "s"}
        if ts is not None:
            fields["ts"] = ts
        event = invalid(line(**fields))
        assert event.id == "e1"
        assert "'ts'" in event.problem

    @pytest.mark.parametrize("kind", [None, "Identify", "page", "", 1, ["track"]])
    def test_unknown_type(self, kind: Any) -> None:
        """A missing or unknown type is invalid, keeping the id."""
        fields: dict[str, Any] = {"id": "e1", "ts": TS, "session": "s", "payload": None}
        if kind is not None:
            fields["type"] = kind
        event = invalid(line(**fields))
        assert event.id == "e1"
        assert "'type'" in event.problem

    @pytest.mark.parametrize("kind", ["track", "logout"])
    def test_track_or_logout_without_session(self, kind: str) -> None:
        """A track or logout without a session is invalid, keeping the id."""
        event = invalid(line(id="e1", ts=TS, type=kind, payload={"name": "vote"}))
        assert event.id == "e1"
        assert "session" in event.problem

    @pytest.mark.parametrize("session", [1, "", ["s"], {"id": "s"}, True])
    def test_session_not_a_non_empty_string(self, session: Any) -> None:
        """A session that is not a non-empty string is invalid, keeping the id."""
        event = invalid(line(id="e1", ts=TS, type="identify", session=session, payload=None))
        assert event.id == "e1"

    @pytest.mark.parametrize("payload", [[], "u_1", 1, True, [{"userId": "u"}]])
    def test_identify_payload_neither_object_nor_null(self, payload: Any) -> None:
        """An identify payload that is neither an object nor null is invalid, keeping the id."""
        event = invalid(line(id="e1", ts=TS, type="identify", session="s", payload=payload))
        assert event.id == "e1"
        assert "payload" in event.problem

    @pytest.mark.parametrize(
        "payload",
        [None, "vote", [], {}, {"name": None}, {"name": 1}, {"name": ["vote"]}, {"title": "v"}],
    )
    def test_track_payload_without_string_name(self, payload: Any) -> None:
        """A track payload that is not an object with a string name is invalid, keeping the id."""
        event = invalid(line(id="e1", ts=TS, type="track", session="s", payload=payload))
        assert event.id == "e1"

    @pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
    def test_nan_and_infinity_are_refused(self, constant: str) -> None:
        """NaN and Infinity are not JSON: the line is refused rather than echoed."""
        invalid(raw_event('"type": "identify", "payload": {"userId": ' + constant + "}"))

    @pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "x\\udc00"])
    def test_escaped_lone_surrogate_in_payload(self, escape: str) -> None:
        """An escaped lone surrogate in the payload is invalid; the clean id is kept."""
        event = invalid(raw_event('"type": "identify", "payload": {"userId": "' + escape + '"}'))
        assert event.id == "e1"
        assert "surrogate" in event.problem

    def test_escaped_lone_surrogate_in_id(self) -> None:
        """A lone surrogate in the id itself means no id could be read."""
        event = invalid(raw_event('"type": "logout", "session": "s"', event_id="e\\ud800"))
        assert event.id is None

    def test_literal_lone_surrogate_in_text_line(self) -> None:
        """A str line holding a real (unescaped) lone surrogate is refused too."""
        event = invalid(raw_event('"type": "logout", "session": "s\ud800"'))
        assert event.id == "e1"

    def test_escaped_surrogate_pair_is_fine(self) -> None:
        """A properly paired escape (an emoji) is ordinary text."""
        event = parse_line(raw_event('"type": "logout", "session": "\\ud83d\\ude00"'))
        assert isinstance(event, Event)
        assert event.session == "\U0001f600"

    def test_deeply_nested_json_does_not_crash(self) -> None:
        """A pathologically nested line is refused, not a RecursionError."""
        invalid("[" * 100_000 + "]" * 100_000)

    def test_line_number_is_kept_on_invalid(self) -> None:
        """An invalid line keeps its line number."""
        assert parse_line("nope", 12) == InvalidEvent(None, "line is not valid JSON", 12)


class TestTimestamps:
    @pytest.mark.parametrize(
        ("text", "micros"),
        [
            ("2026-03-01T12:00:00Z", TS_US),
            ("2026-03-01t12:00:00z", TS_US),
            ("2026-03-01 12:00:00Z", TS_US),
            ("2026-03-01T14:00:00+02:00", TS_US),
            ("2026-03-01T06:30:00-05:30", TS_US),
            ("2026-03-01T12:00:00+00:00", TS_US),
            ("2026-03-01T12:00:00-00:00", TS_US),
            ("2026-03-01T12:00:00.5Z", TS_US + 500_000),
            ("2026-03-01T12:00:00.000001Z", TS_US + 1),
            ("2026-03-01T12:00:00.123456789Z", TS_US + 123_456),
            ("2026-03-01T12:00:00.1234567890123Z", TS_US + 123_456),
            ("2026-03-01T13:00:00.25+01:00", TS_US + 250_000),
            ("1970-01-01T00:00:00Z", 0),
            ("1969-12-31T23:59:59Z", -1_000_000),
        ],
    )
    def test_accepted(self, text: str, micros: int) -> None:
        """RFC 3339 variants (case, separator, offsets, any fractional digits) are accepted."""
        assert parse_ts(text) == micros

    @pytest.mark.parametrize(
        "text",
        [
            "2026-03-01T12:00:00",  # no offset
            "2026-03-01",
            "2026-03-01T12:00Z",  # no seconds
            "2026-03-01T12:00:00+0200",  # offset without colon
            "2026-03-01T12:00:00+02",
            "20260301T120000Z",  # basic format
            "2026-3-1T12:00:00Z",
            "2026-13-01T12:00:00Z",
            "2026-02-30T12:00:00Z",
            "2026-03-01T25:00:00Z",
            "2026-03-01T12:60:00Z",
            "2026-03-01T12:00:00+24:00",
            "2026-03-01T12:00:00.Z",
            "2026-03-01T12:00:00,5Z",
            " 2026-03-01T12:00:00Z",
            "2026-03-01T12:00:00Z ",
            "2026-03-01T12:00:00ZZ",
            "2026-03-01X12:00:00Z",
            "\u0662\u0660\u0662\u0666-03-01T12:00:00Z",  # non-ASCII digits
            "2026-03-01T12:00:00.\u0661Z",
        ],
    )
    def test_refused(self, text: str) -> None:
        """Text that is not RFC 3339 (or not a real moment) is refused."""
        assert parse_ts(text) is None

    @pytest.mark.parametrize("value", [None, 0, 1.5, True, [], {}])
    def test_non_string_refused(self, value: Any) -> None:
        """A ts that is not a string is refused."""
        assert parse_ts(value) is None

    def test_fractional_digits_are_truncated_not_rounded(self) -> None:
        """Sub-microsecond digits are cut, so .9999999 stays in the same microsecond."""
        assert parse_ts("2026-03-01T12:00:00.9999999Z") == TS_US + 999_999

    def test_format_ts_round_trips(self) -> None:
        """format_ts gives RFC 3339 UTC text that parses back to the same microsecond."""
        for micros in (TS_US, TS_US + 1, TS_US + 999_999, 0):
            text = format_ts(micros)
            assert text.endswith("Z")
            assert parse_ts(text) == micros


class TestBlankLines:
    def test_parse_line_does_not_skip_blank_lines(self) -> None:
        """Skipping blank lines is the replay's job: parse_line calls one invalid."""
        assert isinstance(parse_line(""), InvalidEvent)
        assert isinstance(parse_line("   "), InvalidEvent)

    def test_replay_skips_blank_lines_but_counts_them(self) -> None:
        """The replay skips blank lines and numbers decisions by physical line."""
        lines = [
            b"\n",
            line(id="e1", ts=TS, type="logout", session="s").encode() + b"\n",
            b"   \r\n",
            b"\t\n",
            b"garbage\r\n",
        ]
        out: list[str] = []
        summary = replay(Engine("helpshift"), lines, out.append)
        decisions = [json.loads(text) for text in out]
        assert [d["line"] for d in decisions] == [2, 5]
        assert [d["outcome"] for d in decisions] == ["logged_out", "rejected"]
        assert decisions[1]["reasons"] == [
            {"code": "event.invalid", "rule": None, "detail": "line is not valid JSON"}
        ]
        assert summary.events == 2


class TestInvalidThroughEngine:
    def test_invalid_event_is_rejected_and_recorded(self) -> None:
        """An invalid event with a readable id is rejected (event.invalid) and its id recorded."""
        engine = Engine("helpshift")
        first = engine.decide_line(line(id="e1", ts="nope", type="logout", session="s"))
        assert first.outcome == "rejected"
        assert first.event_id == "e1"
        assert [r.to_dict() for r in first.reasons] == [
            {
                "code": "event.invalid",
                "rule": None,
                "detail": "'ts' is missing or not an RFC 3339 timestamp",
            }
        ]
        again = engine.decide_line(line(id="e1", ts=TS, type="logout", session="s"))
        assert again.outcome == "duplicate"

    def test_invalid_event_changes_no_profile_or_session(self) -> None:
        """An invalid event changes nothing in the store."""
        engine = Engine("helpshift")
        engine.identify({"userId": "u1"}, session="s", id="e0", ts=TS)
        before = (list(engine.store.profiles()), engine.store.session("s"))
        engine.decide_line(line(id="e1", ts=TS, type="track", session="s", payload={"x": 1}))
        engine.decide_line(line(id="e2", ts=TS, type="identify", session="s", payload=[1]))
        assert (list(engine.store.profiles()), engine.store.session("s")) == before

    def test_decide_dict_with_surrogate_keeps_the_readable_id(self) -> None:
        """A mapping holding a lone surrogate is invalid via decide() too, keeping the id."""
        engine = Engine("helpshift")
        decision = engine.decide(
            {"id": "e1", "ts": TS, "type": "identify", "payload": {"userName": "\ud800"}}
        )
        assert decision.event_id == "e1"
        assert decision.codes == ["event.invalid"]
        decision.to_json().encode("utf-8")
