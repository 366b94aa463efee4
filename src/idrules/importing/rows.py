"""Reading a users file for ``idrules import`` (docs/import.md): CSV with a header, or JSON
lines, into :class:`UserRow` values, one per row, numbered by the line where the row starts.

A row that cannot be read (not UTF-8, not a JSON object, a duplicate key, ``verified`` neither
true nor false, more cells than the header) is not an exception: it is a :class:`UserRow`
with a ``problem``, which the importer turns into a ``rejected`` decision (``event.invalid``),
and the import goes on. Only what makes the whole file unreadable is an :class:`InputError`:
a CSV header naming a column twice or naming neither ``user_id`` nor ``email``, a CSV record
the csv module cannot parse. The file is streamed: memory stays flat however many rows.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, BinaryIO, Literal

import attrs

from .._errors import InputError
from ..events import (
    MAX_LINE_BYTES,
    DuplicateKey,
    NotFinite,
    not_json_text,
    read_lines,
    strict_unique_loads,
    strip_bom,
)

Format = Literal["auto", "csv", "jsonl"]
#: the canonical identity fields a row may carry, in the order a decision shows them
FIELDS = ("user_id", "email", "name", "avatar")
#: every key a JSON-lines row may have
KEYS = frozenset((*FIELDS, "verified", "attributes"))
#: CSV header spellings taken for a canonical column (after :func:`_normal_header`)
_ALIASES = {"userid": "user_id", "e_mail": "email", "email_address": "email"}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[\s\-]+")
#: by extension; anything else (and stdin) is told by its first character
_EXTENSIONS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_SHORT = 60


@attrs.frozen(slots=True)
class UserRow:
    """One row of a users file: the canonical fields as given (an absent or empty one is not
    in ``values``), the attributes, whether the row marks the user verified, and ``problem``
    when the row cannot be read at all. ``number`` is the line where the row starts."""

    number: int
    values: Mapping[str, Any] = attrs.field(factory=dict)
    attributes: Any = None
    attributes_given: bool = False
    verified: bool = False
    problem: str | None = None


def rows_of_objects(objects: Iterable[Any]) -> Iterator[UserRow]:
    """Rows from JSON-like objects (a library caller's dicts), numbered from 1: a value JSON
    cannot carry (a date, a set, a key that is not text) refuses its row, as in a file."""
    for number, obj in enumerate(objects, start=1):
        problem = _not_json(obj)
        yield row_of_object(obj, number) if problem is None else UserRow(number, problem=problem)


def _not_json(value: Any) -> str | None:
    """Why a library caller's value is not JSON data (None when it is)."""
    stack = [value]
    while stack:  # iterative: values may nest deeply
        item = stack.pop()
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                return "an object key is not text"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif item is not None and not isinstance(item, (str, int, float)):
            return f"a value is not JSON data ({type(item).__name__})"
    return None  # lone surrogates and non-finite numbers: row_of_object's check


def row_of_object(obj: Any, number: int) -> UserRow:
    """One JSON-lines row: an object of ``user_id``, ``email``, ``name``, ``avatar``,
    ``verified`` (a JSON boolean) and ``attributes`` (an object); null is absent."""
    if not isinstance(obj, dict):
        return UserRow(number, problem="a row must be a JSON object")
    unknown = sorted(str(key) for key in obj if key not in KEYS)
    if unknown:
        return UserRow(
            number,
            problem=f"unknown key {_short(unknown[0])} (a row has user_id, email, name, "
            "avatar, verified and attributes)",
        )
    problem = not_json_text(obj)
    if problem is not None:
        return UserRow(number, problem=problem)
    verified = obj.get("verified")
    if verified is not None and not isinstance(verified, bool):
        return UserRow(number, problem="'verified' must be true or false")
    values = {name: obj[name] for name in FIELDS if obj.get(name) is not None}
    attributes = obj.get("attributes")
    return UserRow(number, values, attributes, attributes is not None, bool(verified))


class UsersFile:
    """A users file opened for reading: the format is settled and, for CSV, the header read
    and checked here, before the caller opens anything for writing. ``source`` is a path or
    ``-`` (stdin); ``fmt`` is ``csv``, ``jsonl`` or ``auto`` (by extension: ``.csv``,
    ``.jsonl``/``.ndjson``; else by the first character: ``{`` is JSON lines)."""

    def __init__(self, source: str | os.PathLike[str], fmt: Format = "auto") -> None:
        if fmt not in ("auto", "csv", "jsonl"):
            raise ValueError(f"format must be auto, csv or jsonl, not {fmt!r}")
        self.source = str(source)
        self._handle = _open(self.source)
        self._text: io.TextIOWrapper | None = None
        try:
            self.format: Format = fmt if fmt != "auto" else _format_of(self.source, self._handle)
            self._header: _Header | None = None
            self._reader: Iterator[list[str]] | None = None
            if self.format == "csv":
                # undecodable bytes become lone surrogates: that row alone is refused
                self._text = io.TextIOWrapper(
                    self._handle, encoding="utf-8-sig", errors="surrogateescape", newline=""
                )
                self._reader = csv.reader(self._text)
                self._header = _Header.read(self._reader, self.source)
        except BaseException:
            self.close()
            raise

    def rows(self) -> Iterator[UserRow]:
        """Every row, in file order (blank lines skipped, counted in the numbering)."""
        if self._reader is not None and self._header is not None:
            return _csv_rows(self._reader, self._header, self.source)
        return _jsonl_rows(self._handle)

    def close(self) -> None:
        if self._text is not None:
            self._text.detach()  # the wrapper must not close stdin when it goes
            self._text = None
        if self._handle is not sys.stdin.buffer:
            self._handle.close()

    def __enter__(self) -> UsersFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open(source: str) -> BinaryIO:
    if source == "-":
        return sys.stdin.buffer
    if os.path.isdir(source):
        raise InputError(f"users file {source} is a directory")
    try:
        return open(source, "rb")  # closed by UsersFile.close
    except FileNotFoundError:
        raise InputError(f"users file not found: {source}") from None
    except PermissionError:
        raise InputError(f"users file {source} is not readable (permission denied)") from None


def _format_of(source: str, handle: BinaryIO) -> Format:
    """The format an extension names, else the first character that is not blank: ``{``
    starts JSON lines (as does a file of nothing but blanks: no rows), anything else a CSV
    header."""
    by_name = _EXTENSIONS.get(os.path.splitext(source)[1].lower())
    if by_name is not None:
        return by_name
    peek = getattr(handle, "peek", None)
    head = strip_bom(peek(64) if peek is not None else b"").lstrip()
    return "jsonl" if head.startswith(b"{") or not head else "csv"


# JSON lines --------------------------------------------------------------------------------


def _jsonl_rows(handle: BinaryIO) -> Iterator[UserRow]:
    for number, raw in enumerate(read_lines(handle), start=1):
        line = strip_bom(raw) if number == 1 else raw
        if not line.strip():
            continue
        yield _parse_jsonl(line, number)


def _parse_jsonl(raw: bytes, number: int) -> UserRow:
    if len(raw) > MAX_LINE_BYTES:
        return UserRow(number, problem=f"line longer than {MAX_LINE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return UserRow(number, problem="line is not UTF-8 text")
    try:
        obj = strict_unique_loads(text)
    except DuplicateKey as exc:
        return UserRow(number, problem=str(exc))
    except NotFinite:
        return UserRow(number, problem="a number is NaN or Infinity, or overflows to infinity")
    except (ValueError, RecursionError):
        return UserRow(number, problem="line is not valid JSON")
    return row_of_object(obj, number)


# CSV ---------------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class _Header:
    """The CSV header: per column, the canonical field, ``verified``, or an attribute's name."""

    columns: tuple[tuple[str, str], ...]  # (kind: field | verified | attribute, name)

    @classmethod
    def read(cls, reader: Iterator[list[str]], source: str) -> _Header:
        try:
            cells = next((record for record in reader if record), None)
        except csv.Error as exc:
            raise InputError(f"users file {source}: the header is not CSV: {exc}") from None
        if cells is None:
            raise InputError(f"users file {source} has no header row (CSV needs one)")
        columns: list[tuple[str, str]] = []
        seen: set[str] = set()
        for index, cell in enumerate(cells, start=1):
            if not_json_text(cell) is not None:
                raise InputError(f"users file {source}: the header is not UTF-8 text")
            name = cell.strip()
            if not name:
                raise InputError(f"users file {source}: column {index} of the header has no name")
            canonical = _normal_header(name)
            if canonical in FIELDS or canonical == "verified":
                kind, name = ("field" if canonical in FIELDS else "verified"), canonical
            else:
                kind = "attribute"
            if name in seen:
                raise InputError(f"users file {source}: column {_short(name)} appears twice")
            seen.add(name)
            columns.append((kind, name))
        if not seen & {"user_id", "email"}:
            raise InputError(
                f"users file {source}: the header names neither user_id nor email, so no row "
                "could be matched"
            )
        return cls(tuple(columns))


def _normal_header(name: str) -> str:
    """How a header cell names a canonical column: case, spaces, hyphens and camelCase do
    not matter (``User ID``, ``userId``, ``user-id`` are ``user_id``)."""
    snake = _SEPARATORS.sub("_", _CAMEL.sub("_", name)).lower()
    return _ALIASES.get(snake, snake)


def _csv_rows(reader: Iterator[list[str]], header: _Header, source: str) -> Iterator[UserRow]:
    line_num = getattr(reader, "line_num", 0)
    while True:
        start = line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(
                f"users file {source}: the row at line {start} is not CSV: {exc}"
            ) from None
        line_num = getattr(reader, "line_num", line_num + 1)
        if not record:  # a blank line
            continue
        yield _csv_row(record, header, start)


def _csv_row(record: list[str], header: _Header, number: int) -> UserRow:
    columns = header.columns
    if len(record) > len(columns):
        return UserRow(
            number, problem=f"the row has {len(record)} cells, the header {len(columns)}"
        )
    if any(not_json_text(cell) is not None for cell in record):
        return UserRow(number, problem="the row is not UTF-8 text")
    values: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    verified = False
    for (kind, name), cell in zip(columns, record, strict=False):
        if cell == "":  # an empty cell is absent
            continue
        if kind == "field":
            values[name] = cell
        elif kind == "attribute":
            attributes[name] = cell
        elif cell.lower() in ("true", "false"):
            verified = cell.lower() == "true"
        else:
            return UserRow(number, problem=f"'verified' must be true or false, not {_short(cell)}")
    return UserRow(number, values, attributes, bool(attributes), verified)


def _short(text: str) -> str:
    """A value from the file, quoted and cut short, for a problem's text."""
    return repr(text if len(text) <= _SHORT else text[:_SHORT] + "...")
