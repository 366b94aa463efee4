"""The ruleset's JSON Schema (Draft 2020-12, shipped in the package), its validator built once,
and the validators of attribute schemas.

Messages are rewritten for people: an unknown knob is named (with a suggestion), an enum
lists its choices, and a ``oneOf`` says what the knob accepts instead of dumping sub-schemas.
A message quotes the offending value in a short form only (:func:`shorten`): the value may
be long, and a message is one line a user reads, not a copy of the file.

An attribute schema is written by the rules author but applied to every event's attributes,
so it is checked harder than the metaschema does, at load time: every ``$ref`` must be local
and must resolve (nothing is ever fetched); ``pattern`` runs on RE2, in linear time, instead
of Python's backtracking ``re`` (and ``uniqueItems`` hashes instead of comparing pairs); and
a schema that would recurse without end, or deeper than Python's stack allows, is refused
rather than found out by the first event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.protocols import Validator

KnobPath = tuple[str | int, ...]

#: how much of a value a message quotes: enough to recognise it, never a file's content
SHORT = 60
#: how many characters a key may show in a message or a knob path
SHORT_KEY = 60


def shorten(text: str, limit: int = SHORT) -> str:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut), newlines escaped."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(value: Any, limit: int = SHORT) -> str:
    """A value as a message shows it: its JSON text (Python's repr for non-JSON values), cut."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return shorten(text, limit)


@cache
def ruleset_validator() -> Validator:
    """The validator for effective rulesets, built once per process. The schema ships with
    idrules and a test holds it valid under its meta-schema: checking that here cost every
    command's start-up ~40 ms."""
    schema = json.loads(shipped_schema_text())
    cls = jsonschema.validators.validator_for(schema)
    validator: Validator = cls(schema)
    return validator


def error_message(error: jsonschema.exceptions._Error) -> str:
    """jsonschema's message with the offending value quoted short.

    jsonschema starts most messages with ``repr(instance)``, which may be a long string or a
    whole mapping; that prefix is replaced by :func:`quote`. Any other message is cut.
    """
    message = error.message
    try:
        prefix = repr(error.instance)
    except RecursionError:  # pragma: no cover - the loader bounds depth first
        prefix = ""
    if prefix and message.startswith(prefix):
        return quote(error.instance) + shorten(message[len(prefix) :], 2 * SHORT)
    return shorten(message, 3 * SHORT)


def schema_errors(doc: Any) -> Iterator[tuple[KnobPath, str]]:
    """Every schema error of ``doc`` as (knob path, message), in document order, each once."""
    errors = sorted(ruleset_validator().iter_errors(doc), key=lambda e: [str(p) for p in e.path])
    seen: set[tuple[KnobPath, str]] = set()
    for error in errors:
        for found in _explain(error):
            # jsonschema reports `required` once per missing key, and each report is
            # explained as every missing key: say each only once
            if found not in seen:
                seen.add(found)
                yield found


def _explain(error: jsonschema.ValidationError) -> Iterator[tuple[KnobPath, str]]:
    path: KnobPath = tuple(error.absolute_path)
    schema: Any = error.schema
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        import difflib  # only to explain an error: no start-up pays for it

        allowed = list(schema.get("properties", {}))
        for key in error.instance:
            if key not in allowed:
                text = str(key)
                close = difflib.get_close_matches(text, allowed, n=1) if len(text) < 64 else []
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                yield (*path, text), f"unknown knob {shorten(repr(text), SHORT_KEY)}{hint}"
    elif error.validator == "enum":
        enum: Any = error.validator_value
        choices = ", ".join(json.dumps(c) for c in enum)
        yield path, f"{quote(error.instance)} is not one of: {choices}"
    elif error.validator == "oneOf" and isinstance(schema, dict) and "description" in schema:
        yield (path, f"{quote(error.instance)} is not valid: must be {schema['description']}")
    elif error.validator == "required" and isinstance(error.instance, dict):
        needed: Any = error.validator_value
        for key in needed:
            if key not in error.instance:
                yield (*path, key), "this knob is required"
    else:
        yield path, error_message(error)


def shipped_schema_text() -> str:
    """The ruleset JSON Schema as shipped (it checks a ruleset's effective form)."""
    return resources.files("idrules.rules").joinpath("schema.json").read_text(encoding="utf-8")


def authoring_schema() -> dict[str, Any]:
    """The schema of a rules file as written, for an editor's completion and hover help:
    ``extends`` allowed, every knob optional (the defaults and the base fill them in), a file
    without ``extends`` still naming its ruleset and version; written as draft-07
    (``definitions``), the draft YAML language servers support in full (no keyword of the
    shipped schema changes meaning, and nothing but descriptions sits beside a ``$ref``)."""
    schema: dict[str, Any] = json.loads(
        shipped_schema_text().replace('"#/$defs/', '"#/definitions/')
    )
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema["$id"] = schema["$id"] + ":file"
    schema["title"] = "idrules rules file, as written (extends allowed, every knob optional)"
    schema["description"] = (
        "A rules file before it is merged: any knob may be left out (the defaults and the "
        "base named by extends fill it in), and a file without extends names its ruleset "
        "and version. `idrules check FILE` validates the merged result."
    )
    schema.pop("required", None)
    extends = {
        "description": "A shipped pack's name (helpshift, quackback, ...) or a .yaml/.yml "
        "path relative to this file, whose knobs this file overrides: mappings merge "
        "deeply, lists and scalars replace. Default: null (no base).",
        "type": ["string", "null"],
        "minLength": 1,
    }
    schema["properties"] = {"extends": extends, **schema["properties"]}
    schema["if"] = {"properties": {"extends": {"type": "string"}}, "required": ["extends"]}
    schema["else"] = {"required": ["ruleset", "version"]}
    schema["definitions"] = schema.pop("$defs")
    return schema
