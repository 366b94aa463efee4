"""Load a ruleset: YAML (safe) -> ``extends`` over the defaults -> JSON Schema -> model.

Each layer (``defaults.yaml``, then each ``extends`` base, then the file itself) is parsed
once: PyYAML composes its node graph, the graph is checked and gives the line of every key,
then the values are built from that same graph (SafeLoader's constructor). So every knob of
the merged result remembers which file and line it came from.

A rules file may come from someone else (a pack, a shared base), so reading one is bounded
before anything is built: MAX_BYTES of text, MAX_NODES values once aliases are expanded,
MAX_DEPTH levels. Numbers are finite, keys are text and unique. ``extends`` names a shipped
pack or a ``.yaml``/``.yml`` file, so it cannot make ``check`` print another kind of file,
and a message quotes a value only in a short form.
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

from .._errors import Problem, RulesError
from .attribute_schema import AttributeSchemaError, validator_for_attribute
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
from .schema import (
    SHORT,
    error_message,
    schema_errors,
    shorten,
)
from .yamlread import MAX_CHAIN, KnobPath, Locations, dotted, parse, read_text

_RULES_SUFFIXES = (".yaml", ".yml")

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
        if len(chain) >= MAX_CHAIN:
            last = chain[-1]
            line = last.locations.get(("extends",), (last.display, 1))[1]
            message = f"more than {MAX_CHAIN} files extend one another"
            raise RulesError([Problem(last.display, line, "extends", message)])
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
    """A pack name or a path (relative to the extending file) -> (file, name to cite).

    A base named by ``extends`` must be a pack or a file named ``.yaml``/``.yml`` (and so
    must the file it resolves to through links): otherwise a rules file could make
    ``idrules check`` quote lines of any readable file (a secrets file, /etc/passwd) in
    its error messages. The file given on the command line is the user's own choice.
    """
    if _PACK_NAME.match(spec) and not spec.endswith(_RULES_SUFFIXES):
        found = pack_path(spec)
        if found is not None:
            return found, found.name
        if parent is None and os.path.lexists(spec):  # `check conf`, and ./conf is there
            return _resolve_path(spec, spec, parent)
        known = ", ".join(pack_names()) or "none"
        path_kind = "a path" if parent is None else "a .yaml/.yml path"
        raise RulesError(
            [
                Problem(
                    shorten(spec),
                    None,
                    "",
                    f"no shipped pack named {shorten(repr(spec))} (shipped: {known}); "
                    f"give {path_kind} to load a file",
                )
            ]
        )
    if parent is None or os.path.isabs(spec):
        return _resolve_path(spec, spec, parent)
    # relative to the extending file, and cited the same way
    display = os.path.normpath(os.path.join(os.path.dirname(parent.display), spec))
    return _resolve_path(spec, display, parent)


def _resolve_path(spec: str, display: str, parent: _Layer | None) -> tuple[Path, str]:
    """The rules file a path names, when it may be read (see :func:`_resolve`)."""
    path = Path(spec) if parent is None or os.path.isabs(spec) else parent.path.parent / spec
    named = shorten(display, 2 * SHORT)
    not_rules = f"extends takes a shipped pack's name or a .yaml/.yml file, not {named}"
    if parent is not None and not spec.endswith(_RULES_SUFFIXES):
        raise RulesError([Problem(named, None, "", not_rules)])
    if path.is_dir():
        raise RulesError([Problem(display, None, "", f"{named} is a directory, not a rules file")])
    if not path.is_file():  # also a link that loops or leads nowhere
        if path.exists():
            message = f"{named} is not a regular file"
        else:
            message = f"rules file not found: {named}"
        raise RulesError([Problem(display, None, "", message)])
    if parent is not None and not os.path.realpath(path).endswith(_RULES_SUFFIXES):
        raise RulesError([Problem(named, None, "", not_rules)])  # a .yaml link to another file
    return path, display


def _read_layer(path: Path, display: str) -> _Layer:
    """One rules file read once: size-checked, parsed to a node graph, that graph checked
    (size once aliases are expanded, depth, keys, numbers), then built into values."""
    text = read_text(path, display)
    doc, locations = parse(text, display)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise RulesError([Problem(display, 1, "", "a rules file must be a YAML mapping of knobs")])
    return _Layer(display, path, doc, locations)


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
            # built here as the engine will build it, so `check` refuses what the engine
            # would fail on at its first event
            try:
                validator_for_attribute(sub)
            except jsonschema.SchemaError as exc:
                yield (
                    ("attributes", "schema", name),
                    f"not a valid JSON Schema: {error_message(exc)}",
                )
            except AttributeSchemaError as exc:
                yield ("attributes", "schema", name, *exc.path), exc.message
            except RecursionError:  # pragma: no cover - depth is bounded when reading
                yield ("attributes", "schema", name), "nested too deep to check"


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
    return Problem(source, line, dotted(path), shorten(message, 4 * SHORT))
