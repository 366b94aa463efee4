"""Reading one rules file, bounded: its text, one YAML parse, and the checks made on the node
graph before any value is built.

A rules file may come from someone else (a pack, a shared base), so reading one is bounded
before anything is built: MAX_BYTES of text, MAX_NODES values once aliases are expanded,
MAX_DEPTH levels. Numbers are finite, keys are text and unique, values are JSON values. PyYAML
composes the node graph once; the graph is checked and gives the line of every key, then the
values are built from that same graph (SafeLoader's constructor).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from .._errors import Problem, RulesError
from .schema import SHORT, SHORT_KEY, shorten

KnobPath = tuple[str | int, ...]
Locations = dict[KnobPath, tuple[str, int]]

#: a rules file is a few KB; the largest shipped pack is under 4 KB
MAX_BYTES = 1 << 20
#: values in one file once every alias is expanded (the shipped packs have a few hundred):
#: PyYAML builds aliases as shared objects, but merging, hashing and validating walk them
#: out in full, so a file of nested aliases ("billion laughs") must stop here
MAX_NODES = 100_000
#: mappings and lists nested in one file (the shipped packs nest 4 deep, an attribute
#: schema a few more): deeper input would only exhaust Python's recursion
MAX_DEPTH = 64
#: characters of one number (Python refuses to read integers of over 4,300 digits)
MAX_NUMBER_CHARS = 64
#: files in one ``extends`` chain
MAX_CHAIN = 32
#: parts of a knob path a message shows
MAX_PARTS = 12


def read_text(path: Path, display: str) -> str:
    """A rules file's text: at most MAX_BYTES of UTF-8 (one line naming the problem else)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise RulesError(
                [
                    Problem(
                        display, None, "", f"larger than {MAX_BYTES // 1024} KiB: not a rules file"
                    )
                ]
            )
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise RulesError(
            [Problem(display, None, "", f"cannot read rules file: {reason}")]
        ) from None


class _RulesLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting deeper than MAX_DEPTH while it composes (its
    composer recurses once per level: 10,000 ``[`` would end in a RecursionError)."""

    def __init__(self, text: str, display: str) -> None:
        super().__init__(text)
        self.display = display
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                line = event.start_mark.line + 1
                raise RulesError([Problem(self.display, line, "", _TOO_DEEP)])
            node: yaml.Node | None = super().compose_node(parent, index)
            return node
        finally:
            self.depth -= 1


def parse(text: str, display: str) -> tuple[Any, Locations]:
    """The values of one YAML text and the line of each knob, from a single parse.

    The node graph is composed once and checked by :func:`_inspect` before any Python value
    is built from it, since building is where aliases would multiply (a 1 KB file of nested
    aliases is gigabytes of lists).
    """
    loader = _RulesLoader(text, display)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        locations = _inspect(node, display, loader)
        return loader.construct_document(node), locations
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = shorten(getattr(exc, "problem", None) or "invalid YAML", 2 * SHORT)
        raise RulesError([Problem(display, line, "", f"YAML syntax: {what}")]) from None
    except RecursionError:  # pragma: no cover - depth is refused first; a last resort
        raise RulesError([Problem(display, None, "", _TOO_DEEP)]) from None
    finally:
        loader.dispose()


_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels: a rules file is not that deep"
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{name}" for name in ("str", "int", "float", "bool", "null")}
_KINDS = {
    f"{_TAG}int": "a number",
    f"{_TAG}float": "a number",
    f"{_TAG}bool": "true or false",
    f"{_TAG}null": "null",
    f"{_TAG}timestamp": "a date",
}


def _inspect(root: yaml.Node, display: str, loader: yaml.SafeLoader) -> Locations:
    """Check a composed YAML graph and return the line of every knob path.

    Walks the graph as the values built from it will be walked, each alias expanded, and
    stops at MAX_NODES nodes or MAX_DEPTH levels: work and memory stay bounded whatever the
    file. Each node's own checks run once (an alias is not a second mistake): keys are text
    and unique in their mapping, scalars are JSON values (no dates, no binary, no custom
    tags), numbers are finite and of sane length. Raises :class:`RulesError` with every
    problem found, each at its line.
    """
    locations: Locations = {}
    problems: list[Problem] = []
    checked: set[int] = set()
    stack: list[tuple[yaml.Node, KnobPath, int]] = [(root, (), 1)]
    count = 0
    while stack:
        node, path, depth = stack.pop()
        line = node.start_mark.line + 1
        count += 1
        if count > MAX_NODES:  # cite the top knob that holds the explosion
            message = f"more than {MAX_NODES:,} values once aliases are expanded: not a rules file"
            top = locations.get(path[:1], (display, line))[1]
            raise RulesError([Problem(display, top, dotted(path[:1]), message)])
        if depth > MAX_DEPTH:
            raise RulesError([Problem(display, line, dotted(path), _TOO_DEEP)])
        first = id(node) not in checked
        checked.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            if first:
                problem = _check_scalar(node, loader)
                if problem:
                    problems.append(Problem(display, line, dotted(path), problem))
            continue
        if isinstance(node, yaml.SequenceNode):
            if first and node.tag != f"{_TAG}seq":
                problems.append(Problem(display, line, dotted(path), _not_json(node.tag)))
            children = [((*path, index), item) for index, item in enumerate(node.value)]
            for sub, item in children:
                locations[sub] = (display, item.start_mark.line + 1)
        else:
            if first and node.tag != f"{_TAG}map":
                problems.append(Problem(display, line, dotted(path), _not_json(node.tag)))
            children = []
            seen: dict[str, int] = {}
            for key, value in node.value:
                key_line = key.start_mark.line + 1
                if key.tag == f"{_TAG}merge":  # `<<: *base` merges a mapping: its keys may repeat
                    sub = (*path, "<<")
                elif isinstance(key, yaml.ScalarNode) and key.tag == f"{_TAG}str":
                    sub = (*path, key.value)
                    if first and not _is_unicode(key.value):
                        problems.append(Problem(display, key_line, dotted(path), _SURROGATE))
                        continue
                    if first and key.value in seen:
                        problems.append(
                            Problem(
                                display,
                                key_line,
                                dotted(path),
                                f"duplicate key {shorten(repr(key.value), SHORT_KEY)} "
                                f"(first at line {seen[key.value]})",
                            )
                        )
                    seen.setdefault(key.value, key_line)
                else:
                    if first:
                        problems.append(Problem(display, key_line, dotted(path), _bad_key(key)))
                    continue
                locations[sub] = (display, key_line)
                children.append((sub, value))
        stack.extend((item, sub, depth + 1) for sub, item in reversed(children))
    if problems:
        raise RulesError(sorted(problems, key=lambda p: p.line or 0))
    return locations


def _check_scalar(node: yaml.ScalarNode, loader: yaml.SafeLoader) -> str | None:
    """What is wrong with one scalar of a rules file, or None."""
    if node.tag not in _SCALAR_TAGS:
        return _not_json(node.tag)
    if not _is_unicode(node.value):
        return _SURROGATE
    if node.tag.endswith(":int") and len(node.value) > MAX_NUMBER_CHARS:
        return f"a number of more than {MAX_NUMBER_CHARS} characters"
    if node.tag.endswith(":float"):
        if len(node.value) > MAX_NUMBER_CHARS:
            return f"a number of more than {MAX_NUMBER_CHARS} characters"
        if not math.isfinite(loader.construct_yaml_float(node)):
            return f"{shorten(node.value)} is not a finite number (no .inf, .nan or overflow)"
    return None


_SURROGATE = "text with a lone surrogate (a \\ud800-\\udfff escape) is not Unicode"


def _is_unicode(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (YAML's \\ud800 escape makes a lone
    surrogate, which would break hashing the ruleset and writing decisions)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_json(tag: str) -> str:
    if _KINDS.get(tag) == "a date":
        return "a date or time is not a JSON value: quote it"
    return f"YAML type {shorten(tag)} is not a JSON value: a rules file holds JSON values"


def _bad_key(key: yaml.Node) -> str:
    kind = _KINDS.get(key.tag)
    if isinstance(key, yaml.ScalarNode) and kind is not None:
        return f"key {shorten(repr(key.value), SHORT_KEY)} is read as {kind}: quote it"
    return "a key must be text"


def dotted(path: KnobPath) -> str:
    """A knob path as messages show it: each part cut to SHORT_KEY characters, and at most
    MAX_PARTS parts (a path through a loop of aliases has no end worth printing)."""
    parts = [shorten(str(part), SHORT_KEY) for part in path[:MAX_PARTS]]
    return ".".join(parts) + (".…" if len(path) > MAX_PARTS else "")
