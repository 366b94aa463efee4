"""The ruleset's JSON Schema (Draft 2020-12, shipped in the package), its validator built once.

Messages are rewritten for people: an unknown knob is named (with a suggestion), an enum
lists its choices, and a ``oneOf`` says what the knob accepts instead of dumping sub-schemas.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.protocols import Validator

KnobPath = tuple[str | int, ...]


@cache
def ruleset_validator() -> Validator:
    """The validator for effective rulesets, built and checked once per process."""
    text = resources.files("idrules.rules").joinpath("schema.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: Validator = cls(schema)
    return validator


def validator_for_attribute(schema: Any) -> Validator:
    """A validator for one attribute's value schema (checked, raising ``SchemaError``)."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    validator: Validator = cls(schema)
    return validator


def schema_errors(doc: Any) -> Iterator[tuple[KnobPath, str]]:
    """Every schema error of ``doc`` as (knob path, message), in document order."""
    errors = sorted(ruleset_validator().iter_errors(doc), key=lambda e: [str(p) for p in e.path])
    for error in errors:
        path: KnobPath = tuple(error.absolute_path)
        schema: Any = error.schema
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = list(schema.get("properties", {}))
            for key in error.instance:
                if key not in allowed:
                    close = difflib.get_close_matches(str(key), allowed, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    yield (*path, str(key)), f"unknown knob {key!r}{hint}"
        elif error.validator == "enum":
            enum: Any = error.validator_value
            choices = ", ".join(json.dumps(c) for c in enum)
            yield path, f"{json.dumps(error.instance)} is not one of: {choices}"
        elif error.validator == "oneOf" and isinstance(schema, dict) and "description" in schema:
            yield (
                path,
                f"{json.dumps(error.instance)} is not valid: must be {schema['description']}",
            )
        elif error.validator == "required" and isinstance(error.instance, dict):
            needed: Any = error.validator_value
            for key in needed:
                if key not in error.instance:
                    yield (*path, key), "this knob is required"
        else:
            yield path, error.message
