"""Load a ruleset: YAML (``safe_load``) -> ``extends`` over the defaults -> JSON Schema -> model.

Each layer (``defaults.yaml``, then each ``extends`` base, then the file itself) is read
twice from the same text: ``yaml.safe_load`` for the values and ``yaml.compose`` for the line
of every key, so every knob of the merged result remembers which file and line it came from.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import cattrs
import jsonschema
import yaml

from .._errors import Problem, RulesError
from .model import (
    AnonymousRules,
    AttributeRules,
    AuditRules,
    Fields,
    InputMap,
    Matching,
    Provenance,
    Ruleset,
    Source,
    Verification,
)
from .packs import DEFAULTS_FILE, pack_names, pack_path
from .schema import schema_errors, validator_for_attribute

KnobPath = tuple[str | int, ...]
Locations = dict[KnobPath, tuple[str, int]]

_PACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_MISSING: Any = object()
_converter = cattrs.Converter(forbid_extra_keys=True)
_converter.register_structure_hook(
    Source, lambda value, _: tuple(value) if isinstance(value, list) else value
)
_converter.register_structure_hook(
    bool | tuple[str, ...], lambda value, _: tuple(value) if isinstance(value, list) else value
)
_SECTIONS: tuple[tuple[str, type[Any]], ...] = (
    ("input", InputMap),
    ("fields", Fields),
    ("verification", Verification),
    ("matching", Matching),
    ("attributes", AttributeRules),
    ("anonymous", AnonymousRules),
    ("audit", AuditRules),
)


@attrs.frozen
class _Layer:
    """One rules file as read: its values and the line of each knob."""

    display: str
    path: Path
    doc: dict[str, Any]
    locations: Locations


def load_ruleset(spec: str | os.PathLike[str]) -> Ruleset:
    """Load a shipped pack by name (``"helpshift"``) or a rules file by path.

    Raises :class:`RulesError` listing every problem, each with file, line and knob path.
    """
    top = _read_chain(str(spec))
    layers = [_read_layer(DEFAULTS_FILE, "defaults.yaml"), *top]
    doc: dict[str, Any] = {}
    locations: Locations = {}
    for layer in layers:
        merged = _merge(doc, layer.doc)
        locations = _combine(merged, layer.doc, locations, layer.locations)
        doc = merged
    doc.pop("extends", None)
    locations = {k: v for k, v in locations.items() if k[:1] != ("extends",)}
    if isinstance(doc.get("version"), int) and not isinstance(doc.get("version"), bool):
        doc["version"] = str(doc["version"])
    doc = _integral(doc)  # 7.0 and 7 are one rule: one hash
    problems = [_locate(err_path, msg, locations, top[-1]) for err_path, msg in _validate(doc)]
    if problems:
        raise RulesError(sorted(problems, key=lambda p: (p.source, p.line or 0, p.path)))
    canonical = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    try:
        sections = {name: _converter.structure(doc[name], cls) for name, cls in _SECTIONS}
    except cattrs.BaseValidationError as exc:  # pragma: no cover - the schema checked types
        raise RulesError(
            [Problem(top[-1].display, None, "", f"cannot build ruleset: {exc}")]
        ) from None
    return Ruleset(
        name=doc["ruleset"],
        version=doc["version"],
        sha256=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        provenance=Provenance(locations),
        document=doc,
        **sections,
    )


def _integral(value: Any) -> Any:
    """The document with whole floats as ints, so equal rules hash the same."""
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _read_chain(spec: str) -> list[_Layer]:
    """The file named by ``spec`` and its ``extends`` bases, base first."""
    chain: list[_Layer] = []
    seen: set[Path] = set()
    path, display = _resolve(spec, None)
    while True:
        real = path.resolve()
        if real in seen:  # cite the `extends` that closes the cycle, at its line
            last = chain[-1]
            line = last.locations.get(("extends",), (last.display, 1))[1]
            raise RulesError(
                [Problem(last.display, line, "extends", f"extends forms a cycle ({display})")]
            )
        seen.add(real)
        layer = _read_layer(path, display)
        chain.append(layer)
        base = layer.doc.get("extends")
        if base is None:
            break
        if not isinstance(base, str) or not base:
            line = layer.locations.get(("extends",), (display, 0))[1]
            raise RulesError([Problem(display, line, "extends", "must be a pack name or a path")])
        try:
            path, display = _resolve(base, layer)
        except RulesError as exc:
            line = layer.locations.get(("extends",), (display, 0))[1]
            raise RulesError([Problem(display, line, "extends", exc.problems[0].message)]) from None
    chain.reverse()
    return chain


def _resolve(spec: str, parent: _Layer | None) -> tuple[Path, str]:
    """A pack name or a path (relative to the extending file) -> (file, name to cite)."""
    if _PACK_NAME.match(spec) and not spec.endswith((".yaml", ".yml")):
        found = pack_path(spec)
        if found is not None:
            return found, found.name
        known = ", ".join(pack_names()) or "none"
        raise RulesError(
            [
                Problem(
                    spec,
                    None,
                    "",
                    f"no shipped pack named {spec!r} (shipped: {known}); "
                    "give a path to load a file",
                )
            ]
        )
    if parent is None or os.path.isabs(spec):
        path, display = Path(spec), spec
    else:  # relative to the extending file, and cited the same way
        path = parent.path.parent / spec
        display = os.path.normpath(os.path.join(os.path.dirname(parent.display), spec))
    if not path.is_file():
        raise RulesError([Problem(display, None, "", f"rules file not found: {display}")])
    return path, display


def _read_layer(path: Path, display: str) -> _Layer:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise RulesError(
            [Problem(display, None, "", f"cannot read rules file: {reason}")]
        ) from None
    try:
        doc = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = getattr(exc, "problem", None) or "invalid YAML"
        raise RulesError([Problem(display, line, "", f"YAML syntax: {what}")]) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise RulesError([Problem(display, 1, "", "a rules file must be a YAML mapping of knobs")])
    locations: Locations = {}
    if node is not None:
        _record_lines(node, (), display, locations)
    return _Layer(display, path, doc, locations)


def _record_lines(node: yaml.Node, path: KnobPath, display: str, out: Locations) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, str(key.value))
            out[sub] = (display, key.start_mark.line + 1)
            _record_lines(value, sub, display, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            sub = (*path, index)
            out[sub] = (display, item.start_mark.line + 1)
            _record_lines(item, sub, display, out)


def _merge(base: Any, over: Any) -> Any:
    """Mappings merge deeply; lists and scalars replace."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    return over


def _combine(merged: Any, over: Any, base_loc: Locations, over_loc: Locations) -> Locations:
    """Locations of the merged document: a knob cites the layer its value came from."""
    out: Locations = {}

    def walk(value: Any, ov: Any, path: KnobPath) -> None:
        from_over = ov is not _MISSING
        where = (over_loc if from_over else base_loc).get(path) or base_loc.get(path)
        if path and where is not None:
            out[path] = where
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(sub, ov.get(key, _MISSING) if isinstance(ov, dict) else _MISSING, (*path, key))
        elif isinstance(value, list):
            for index, sub in enumerate(value):
                walk(sub, ov[index] if from_over else _MISSING, (*path, index))

    walk(merged, over, ())
    return out


def _validate(doc: dict[str, Any]) -> Iterator[tuple[KnobPath, str]]:
    """Every schema error, then the checks a schema cannot express, as (path, message)."""
    yield from schema_errors(doc)
    verification = doc.get("verification")
    if isinstance(verification, dict):
        hmac_rule = verification.get("hmac")
        if isinstance(hmac_rule, dict) and isinstance(hmac_rule.get("message"), str):
            names = _placeholders(hmac_rule["message"])
            if not names:
                yield (
                    ("verification", "hmac", "message"),
                    "must sign at least one field: {user_id}, {email}, {name} or {avatar}",
                )
            for name in names:
                if name not in ("user_id", "email", "name", "avatar"):
                    yield (
                        ("verification", "hmac", "message"),
                        f"unknown field {{{name}}}: use user_id, email, name or avatar",
                    )
    sources = doc.get("input")
    if isinstance(sources, dict):
        for field, source in sources.items():
            if not isinstance(source, str) or ("{" not in source and "}" not in source):
                continue
            names = _placeholders(source)
            if "<unbalanced braces>" in names or not names:
                yield (
                    ("input", field),
                    "a template needs balanced braces around keys: '{a} {b}'",
                )
    attributes = doc.get("attributes")
    if isinstance(attributes, dict) and isinstance(attributes.get("schema"), dict):
        for name, sub in attributes["schema"].items():
            try:
                validator_for_attribute(sub)
            except jsonschema.SchemaError as exc:
                yield (("attributes", "schema", name), f"not a valid JSON Schema: {exc.message}")


def _placeholders(template: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError:
        return ["<unbalanced braces>"]


def _locate(path: KnobPath, message: str, locations: Locations, top: _Layer) -> Problem:
    """A problem cited at the nearest located knob of ``path``."""
    probe = path
    while probe and probe not in locations:
        probe = probe[:-1]
    source, line = locations[probe] if probe else (top.display, 1)
    knob = ".".join(str(p) for p in path)
    return Problem(source, line, knob, message)
