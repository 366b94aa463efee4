"""Stage 1: parse an event (one JSON object per line) into an :class:`Event`, or say why not.

A malformed event is not an exception: it becomes an :class:`InvalidEvent`, which the engine
turns into a ``rejected`` decision with ``event.invalid``, and a replay goes on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO, Literal

import attrs

EventType = Literal["identify", "track", "logout"]
_TYPES: frozenset[str] = frozenset(("identify", "track", "logout"))
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_JSON_SPACE = " \t\n\r"


#: the UTF-8 byte order mark some editors put before a file's first line (docs/events.md: ignored)
BOM = b"\xef\xbb\xbf"


class NotFinite(ValueError):
    """A number JSON text cannot carry: NaN, Infinity, or a literal overflowing to infinity."""


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON: refuse them rather than echo them into decisions."""
    raise NotFinite(name)


def _finite_float(text: str) -> float:
    """A float literal, refused when it overflows to infinity (``1e400``): Python's decoder
    would otherwise carry ``inf`` into decisions, the store and the export as ``Infinity``.
    Called for float literals only, so the usual event (text and whole numbers) pays nothing."""
    value = float(text)
    if value - value != 0.0:  # inf - inf is nan; cheaper than math.isfinite's lookup
        raise NotFinite(text)
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_LENIENT = json.JSONDecoder()  # only to read the id of a line refused for its numbers
_SCAN: Any = _DECODER.scan_once  # type: ignore[attr-defined]  # set by JSONDecoder.__init__


@attrs.frozen(slots=True)
class Event:
    """A well-formed event. ``ts`` is microseconds since the epoch (UTC): the event's clock."""

    id: str
    ts: int
    type: EventType
    session: str | None
    payload: Any
    line: int | None = None


@attrs.frozen(slots=True)
class InvalidEvent:
    """A malformed event: the id if one could be read, and what is wrong with it."""

    id: str | None
    problem: str
    line: int | None = None


def parse_line(raw: bytes | str, line: int | None = None) -> Event | InvalidEvent:
    """Parse one log line (not blank) into an event."""
    if len(raw) > MAX_LINE_BYTES:
        return InvalidEvent(None, f"line longer than {MAX_LINE_BYTES} bytes", line)
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return InvalidEvent(None, "line is not UTF-8 text", line)
    try:
        obj = _decode(raw)
    except NotFinite:
        return _not_finite(raw, line)
    except ValueError as exc:  # JSONDecodeError, or an integer of too many digits
        return InvalidEvent(None, _json_problem(exc), line)
    except RecursionError:
        return InvalidEvent(None, "line is not valid JSON", line)
    if "\\u" in raw or not raw.isascii():
        problem = not_json_text(obj)
        if problem is not None:
            return invalid_value(obj, problem, line)
    return parse_object(obj, line)


_NOT_FINITE = "a number is NaN or Infinity, or overflows to infinity, which JSON cannot carry"


def _not_finite(text: str, line: int | None) -> InvalidEvent:
    """A line refused for a non-finite number, keeping its id when the rest is JSON (the rare
    path: decoded again, this time letting the number through, only to read the id)."""
    try:
        obj = _LENIENT.decode(text)
    except ValueError as exc:  # not JSON anyway: that is the first thing to say
        return InvalidEvent(None, _json_problem(exc), line)
    except RecursionError:
        return InvalidEvent(None, "line is not valid JSON", line)
    return invalid_value(obj, _NOT_FINITE, line)


def _json_problem(exc: ValueError) -> str:
    """Why a line failed to decode, in words: Python refuses integers of more than 4,300
    digits (``sys.get_int_max_str_digits``) with a ValueError that is not a JSON error."""
    if "integer string conversion" in str(exc):
        return "a number has more digits than can be read"
    return "line is not valid JSON"


def strict_loads(text: str) -> Any:
    """One strict JSON value filling ``text``: NaN, Infinity and numbers overflowing to
    infinity are refused (:class:`NotFinite`, a ValueError), like any other non-JSON."""
    return _decode(text)


class DuplicateKey(ValueError):
    """A JSON object names one key twice: readers disagree on which value wins."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(f"the key {key[:40]!r} appears twice in one object")
            seen.add(key)
    return obj


_UNIQUE = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
)


def strict_unique_loads(text: str) -> Any:
    """:func:`strict_loads`, also refusing an object that names a key twice
    (:class:`DuplicateKey`): for input that crosses a trust boundary (an HTTP body), where a
    proxy that reads the first value and idrules the last would judge different events."""
    return _UNIQUE.decode(text)


#: the longest log line read whole (events are a few hundred bytes; a token is at most 8 KiB)
MAX_LINE_BYTES = 1024 * 1024


def read_lines(handle: BinaryIO) -> Iterator[bytes]:
    """The lines of a log, each read whole only up to :data:`MAX_LINE_BYTES`: of a longer one
    (a runaway writer, a file that is not a log) only the first ``MAX_LINE_BYTES + 1`` bytes
    are given (which :func:`parse_line` refuses), the rest skipped in bounded memory."""
    limit = MAX_LINE_BYTES
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        if len(line) > limit:
            rest = line
            while not rest.endswith(b"\n"):  # the rest of the line, a chunk at a time
                rest = handle.readline(limit)
                if not rest:
                    break
            line = line[: limit + 1].rstrip(b"\r\n") or b"?"
        yield line


def strip_bom(raw: bytes) -> bytes:
    """A log's first line without the UTF-8 byte order mark an editor may have put before it
    (only the first line: a BOM anywhere else is part of the text, and not JSON)."""
    return raw[3:] if raw[:3] == BOM else raw


def _decode(text: str) -> Any:
    """One JSON value filling ``text`` (JSON whitespace around it allowed).

    The decoder is built once: ``json.loads`` with an option builds a new one per call."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:  # leading whitespace (rare), or not JSON at all
        return _DECODER.decode(text)
    if end != len(text) and text[end:].strip(_JSON_SPACE):
        raise ValueError("extra data after the JSON value")
    return value


def invalid_value(obj: Any, problem: str, line: int | None = None) -> InvalidEvent:
    """An event refused for a value JSON text cannot carry (its id kept when readable)."""
    event_id = _read_id(obj)
    readable = event_id if event_id is not None and not_json_text(event_id) is None else None
    return InvalidEvent(readable, problem, line)


def parse_object(obj: Any, line: int | None = None) -> Event | InvalidEvent:
    """Check a decoded JSON value against docs/events.md and build the event."""
    if not isinstance(obj, dict):
        return InvalidEvent(None, "event is not a JSON object", line)
    event_id = _read_id(obj)
    if event_id is None:
        return InvalidEvent(None, "'id' is missing or not a non-empty string", line)
    ts = parse_ts(obj.get("ts"))
    if ts is None:
        return InvalidEvent(event_id, "'ts' is missing or not an RFC 3339 timestamp", line)
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in _TYPES:
        return InvalidEvent(event_id, "'type' must be identify, track or logout", line)
    session = obj.get("session")
    if session is not None and (not isinstance(session, str) or not session):
        return InvalidEvent(event_id, "'session' must be a non-empty string", line)
    payload = obj.get("payload")
    if kind == "identify":
        if payload is not None and not isinstance(payload, dict):
            return InvalidEvent(event_id, "identify 'payload' must be an object or null", line)
    else:
        if session is None:
            return InvalidEvent(event_id, f"a {kind} event needs a 'session'", line)
        if kind == "track":
            problem = _track_problem(payload)
            if problem:
                return InvalidEvent(event_id, problem, line)
    return Event(event_id, ts, kind, session, payload, line)  # type: ignore[arg-type]


def parse_ts(value: Any) -> int | None:
    """RFC 3339 text -> microseconds since the epoch, or None when it is not RFC 3339."""
    if not isinstance(value, str):
        return None
    if (  # the common shape, "2026-03-01T12:00:00Z": fromisoformat checks every digit
        len(value) == 20
        and value.isascii()
        and value[19] == "Z"
        and value[10] == "T"
        and value[4] == value[7] == "-"
        and value[13] == value[16] == ":"
    ):
        try:
            return int(datetime.fromisoformat(value).timestamp()) * 1_000_000
        except ValueError:
            return None
    if not _RFC3339.fullmatch(value):
        return None
    text = value.upper().replace(" ", "T")
    if "." in text:  # fromisoformat takes at most 6 fractional digits
        head, _, rest = text.partition(".")
        digits = re.match(r"\d+", rest)
        assert digits is not None
        frac = digits.group(0)
        text = f"{head}.{frac[:6].ljust(6, '0')}{rest[len(frac) :]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_ts(micros: int) -> str:
    """Microseconds since the epoch -> RFC 3339 in UTC (for library calls without ``ts``)."""
    moment = datetime.fromtimestamp(micros / 1_000_000, tz=UTC)
    return moment.isoformat().replace("+00:00", "Z")


def _read_id(obj: Any) -> str | None:
    if isinstance(obj, dict):
        value = obj.get("id")
        if isinstance(value, str) and value:
            return value
    return None


def _track_problem(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return "track 'payload' must be an object"
    if not isinstance(payload.get("name"), str):
        return "track 'payload.name' must be a string"
    properties = payload.get("properties")
    if properties is not None and not isinstance(properties, dict):
        return "track 'payload.properties' must be an object"
    return None


def not_json_text(value: Any) -> str | None:
    """Why ``value`` cannot be written as JSON UTF-8 text (None when it can).

    Catches unpaired UTF-16 surrogates (in keys too) and NaN/Infinity, which Python's json
    module would otherwise carry into a decision that no UTF-8 JSON reader accepts.
    """
    stack = [value]
    while stack:  # iterative: values may nest deeply
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "text holds an unpaired UTF-16 surrogate"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "a number is NaN or Infinity, which JSON cannot carry"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return None
