"""The tamper-evident decision log: each line carries the hash of the line before and its own.

A line is the decision's canonical JSON with two keys appended, ``"prev"`` and ``"hash"``:
``hash = sha256(prev + body)`` where ``body`` is the line without those two keys. The chain
starts from the ruleset's sha256, so the first line is bound to the rules that decided it.
Editing, dropping, inserting or reordering a line breaks the chain at a line
:func:`verify_lines` names. (Cutting lines off the *end* leaves a valid shorter chain: keep the
last hash somewhere else, and check it with ``verify-log --head``.)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable

import attrs

_SUFFIX = re.compile(rb',"prev":"([0-9a-f]{64})","hash":"([0-9a-f]{64})"\}\r?\n?$')


def link(prev: str, body: str) -> str:
    """The hash of a line whose body is ``body`` following a line whose hash is ``prev``."""
    return hashlib.sha256((prev + body).encode("utf-8")).hexdigest()


def seal(body: str, prev: str, end: str = "") -> tuple[str, str]:
    """``body`` (a JSON object's text) with ``prev`` and its own ``hash`` appended (then
    ``end``, e.g. the newline a decisions file puts after each line)."""
    digest = link(prev, body)
    return f'{body[:-1]},"prev":"{prev}","hash":"{digest}"}}{end}', digest


@attrs.frozen
class Verdict:
    """The result of checking a decisions file."""

    ok: bool
    lines: int
    head: str | None  # the hash of the last line
    problem: str | None = None
    bad_line: int | None = None


def verify_lines(lines: Iterable[bytes]) -> Verdict:
    """Check a chain; on failure, name the first line that was edited, dropped, inserted or
    reordered (1-based physical line of the decisions file).

    The hash is checked over the line's bytes as they are: a byte edit that makes the line
    invalid UTF-8 must not pass by decoding to the same replacement character as the
    original (a U+FFFD the decision really held)."""
    parsed: list[tuple[str, str, str, bool]] = []  # (prev, hash, genesis, own hash valid)
    for number, raw in enumerate(lines, start=1):
        match = _SUFFIX.search(raw)
        if match is None:
            return Verdict(
                False, number - 1, None, "no prev/hash: not a sealed decision line", number
            )
        body = raw[: match.start()] + b"}"
        try:  # strictly: a line that is not UTF-8 was not written by a replay
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return Verdict(
                False, number - 1, None, "edited: the line is not valid UTF-8 text", number
            )
        prev, own = match.group(1).decode(), match.group(2).decode()
        try:
            genesis = json.loads(text)["ruleset"]["sha256"]
        except (ValueError, KeyError, TypeError, RecursionError):
            genesis = ""
        digest = hashlib.sha256(match.group(1) + body).hexdigest()  # the bytes as they are
        parsed.append((prev, own, genesis, digest == own))
    hashes: dict[str, int] = {}
    for index, (_, own, _, _) in enumerate(parsed):
        hashes.setdefault(own, index)
    expected: str | None = None
    for index, (prev, own, genesis, valid) in enumerate(parsed):
        number = index + 1
        if not valid:
            return _bad(number, parsed, "edited: its hash does not match its content")
        wanted = genesis if expected is None else expected
        if hashes[own] < index:
            return _bad(number, parsed, f"inserted: a copy of line {hashes[own] + 1}")
        if prev != wanted:
            earlier = hashes.get(prev)
            if expected is None:
                return _bad(
                    number,
                    parsed,
                    "the chain does not start from the ruleset's sha256 "
                    "(a line before it was dropped, or it was moved)",
                )
            if earlier is not None and earlier > index:
                return _bad(number, parsed, f"reordered: it follows line {earlier + 1}")
            if earlier is not None and earlier < index - 1:
                return _bad(
                    earlier + 2, parsed, f"inserted: line {number} chains to line {earlier + 1}"
                )
            return _bad(number, parsed, "a line before it was dropped (or inserted)")
        expected = own
    head = parsed[-1][1] if parsed else None
    return Verdict(True, len(parsed), head)


def _bad(number: int, parsed: list[tuple[str, str, str, bool]], problem: str) -> Verdict:
    return Verdict(False, len(parsed), None, problem, number)
