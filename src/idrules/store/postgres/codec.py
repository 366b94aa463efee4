"""Values to and from PostgreSQL's text format, as the wire (:mod:`.wire`) sends and reads them.

PostgreSQL's ``text`` cannot hold the NUL character, which an event's id, session or user id
may (JSON allows ``"\\u0000"``, and the other stores keep it). So every text value is stored
with NUL written as ``\\x01\\x01`` and ``\\x01`` as ``\\x01\\x02``: a prefix code whose
codewords sort as the characters they stand for, so the stored values sort (under the ``"C"``
collation the tables use) exactly as the originals do in Python and in SQLite, and equal
values stay equal. Text without either character (all ordinary text) is stored unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: a parameter as the store passes it: text, a number, a flag, nothing, or a list of them
Param = str | int | bool | None | Sequence[str | int | None]

_ESCAPE = str.maketrans({"\x00": "\x01\x01", "\x01": "\x01\x02"})
_BOOL = 16
_INTS = frozenset({20, 21, 23, 26})  # int8, int2, int4, oid


def to_pg(text: str) -> str:
    """``text`` as stored (see the module's doc)."""
    if "\x00" in text or "\x01" in text:
        return text.translate(_ESCAPE)
    return text


def from_pg(text: str) -> str:
    """A stored text value as the original."""
    if "\x01" not in text:
        return text
    out: list[str] = []
    at = 0
    while True:
        found = text.find("\x01", at)
        if found < 0:
            out.append(text[at:])
            return "".join(out)
        out.append(text[at:found])
        out.append("\x00" if text[found + 1 : found + 2] == "\x01" else "\x01")
        at = found + 2


def encode(value: Param) -> bytes | None:
    """One parameter in text format (None: SQL NULL)."""
    if value is None:
        return None
    if isinstance(value, str):
        return to_pg(value).encode("utf-8")
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, int):
        return b"%d" % value
    return _array(value).encode("utf-8")


def _array(values: Sequence[str | int | None]) -> str:
    """A one-dimensional array literal: ``{"a","b",NULL,3}``."""
    items = []
    for item in values:
        if item is None:
            items.append("NULL")
        elif isinstance(item, int):
            items.append(str(item))
        else:
            escaped = to_pg(item).replace("\\", "\\\\").replace('"', '\\"')
            items.append(f'"{escaped}"')
    return "{" + ",".join(items) + "}"


Decoder = Callable[[bytes], Any]


def _text(raw: bytes) -> str:
    return from_pg(raw.decode("utf-8"))


def _bool(raw: bytes) -> bool:
    return raw == b"t"


def decoder(type_oid: int) -> Decoder:
    """How a result column of this type is read: text, integers and booleans (everything the
    store's queries return; anything else is read as text)."""
    if type_oid in _INTS:
        return int
    if type_oid == _BOOL:
        return _bool
    return _text
