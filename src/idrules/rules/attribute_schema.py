"""Attribute schemas: the JSON Schema each configured attribute's value must pass, compiled once
and made safe to run on any value a caller sends.

A schema is checked against its metaschema and then refused when it could not be run safely:
a ``$ref`` that is not local or does not resolve (nothing is ever fetched), reference loops, a
chain of sub-schemas deeper than MAX_SCHEMA_STEPS, ``patternProperties``. ``pattern`` runs on
RE2 (linear time: ``^(a+)+$`` cannot take seconds), and ``uniqueItems`` in linear time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any, NoReturn

import jsonschema
import re2  # type: ignore[import-untyped]
import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema.protocols import Validator

from .schema import KnobPath, error_message, quote, shorten


class AttributeSchemaError(ValueError):
    """An attribute schema that passes the metaschema but that idrules refuses to run.

    ``path`` is where, inside the attribute's schema; ``message`` one line saying why.
    """

    def __init__(self, path: KnobPath, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


#: the attribute values an engine accepts nest at most this deep (attributes.MAX_DEPTH)
VALUE_DEPTH = 32
#: the longest chain of sub-schemas one value may walk through (each ``$ref``, ``allOf`` and
#: the like is a step, in place or into the value). jsonschema spends about two Python frames
#: a step and fails near 450 steps from a shallow stack: 128 leaves room for the caller's own.
MAX_SCHEMA_STEPS = 128

# sub-schema keywords, by what they apply to: the same value (in place), or a part of it
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_LIST = ("allOf", "anyOf", "oneOf")
_IN_PLACE_MAP = ("dependentSchemas", "dependencies")
_DESCEND_ONE = (
    "items",
    "additionalItems",
    "contains",
    "additionalProperties",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_DESCEND_LIST = ("prefixItems", "items")
_DESCEND_MAP = ("properties",)
_DEFINITIONS = ("$defs", "definitions")  # applied only through a $ref, but checked all the same
_REFUSED = {
    "patternProperties": "patternProperties is not supported: list the properties, or use "
    "propertyNames with a pattern",
    "$dynamicRef": "$dynamicRef is not supported: use $ref",
    "$recursiveRef": "$recursiveRef is not supported: use $ref",
}
_DRAFT3 = "http://json-schema.org/draft-03/schema"


def _refuse_retrieval(uri: str) -> NoReturn:
    """Registry hook: a reference outside the attribute's own schema is never fetched."""
    raise LookupError(f"not fetched: {uri}")


#: jsonschema's default registry downloads unknown remote references; this one never does
_LOCAL_ONLY: referencing.Registry[Any] = referencing.Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is our message, not a line on stderr
_RE2_OPTIONS.never_capture = True  # only "does it match?": lets RE2 use its fastest engine


def compile_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (raising ``ValueError`` with RE2's reason)."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(shorten(str(reason))) from None


@lru_cache(maxsize=256)
def _late_pattern(pattern: str) -> Any:
    """A pattern that was not compiled at load time (not expected): compiled now, or None."""
    try:
        return compile_pattern(pattern)
    except ValueError:
        return None


def _pattern_keyword(compiled: Mapping[str, Any]) -> Callable[..., Iterator[Any]]:
    """The ``pattern`` keyword on RE2: ECMA-style unanchored search, in linear time."""

    def pattern(validator: Validator, patrn: str, instance: Any, schema: Any) -> Iterator[Any]:
        if not validator.is_type(instance, "string"):
            return
        regex = compiled.get(patrn) or _late_pattern(patrn)
        try:
            found = regex is not None and regex.search(instance) is not None
        except UnicodeEncodeError:  # a lone surrogate from JSON: not text RE2 can read
            found = False
        if not found:
            yield jsonschema.ValidationError(f"{quote(instance)} does not match {quote(patrn)}")

    return pattern


def _identity(value: Any) -> Any:
    """A hashable stand-in for a JSON value, equal exactly when jsonschema's ``equal`` says
    the values are equal: ``1 == 1.0``, but ``true`` is not ``1``; objects ignore key order."""
    if value is True or value is False:
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, (list, tuple)):
        return ("l", tuple(_identity(item) for item in value))
    if isinstance(value, dict):
        return ("d", frozenset((key, _identity(item)) for key, item in value.items()))
    if value is None:
        return ("z",)
    return ("o", id(value))  # pragma: no cover - attribute values are decoded JSON


def _unique_items(validator: Validator, unique: Any, instance: Any, schema: Any) -> Iterator[Any]:
    """``uniqueItems`` in linear time: jsonschema compares objects pairwise (3,000 small
    objects take 13 s), and an attribute's value comes from any caller."""
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for item in instance:
        key = _identity(item)
        if key in seen:
            yield jsonschema.ValidationError(f"{quote(instance)} has non-unique elements")
            return
        seen.add(key)


def validator_for_attribute(schema: Any) -> Validator:
    """A validator for one attribute's value schema, checked and compiled once.

    Raises ``SchemaError`` when the metaschema refuses ``schema``, and
    :class:`AttributeSchemaError` for what idrules refuses beyond it: an unknown ``$schema``,
    a ``$ref`` that is not local or does not resolve, a pattern RE2 cannot compile, a
    keyword that would bring Python's ``re`` back (``patternProperties``), and a schema
    that loops or nests too deep to validate.
    """
    dialect = schema.get("$schema") if isinstance(schema, dict) else None
    if dialect is not None:
        if not isinstance(dialect, str):
            raise AttributeSchemaError(("$schema",), "$schema must be a dialect's URI")
        try:
            specification = referencing.jsonschema.specification_with(dialect)
        except referencing.jsonschema.UnknownDialect:
            raise AttributeSchemaError(
                ("$schema",), f"unknown $schema {quote(dialect)}: omit it for Draft 2020-12"
            ) from None
        if dialect.rstrip("#") == _DRAFT3:
            raise AttributeSchemaError(("$schema",), "draft-03 is not supported")
        cls = jsonschema.validators.validator_for(schema)
    else:
        specification = referencing.jsonschema.DRAFT202012
        cls = jsonschema.Draft202012Validator
    cls.check_schema(schema)
    compiled = _inspect_attribute(schema, specification, cls)
    extended: type[Validator] = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        cls, {"pattern": _pattern_keyword(compiled), "uniqueItems": _unique_items}
    )
    validator = extended(schema, registry=_LOCAL_ONLY)
    return validator


def _inspect_attribute(schema: Any, specification: Any, cls: type[Validator]) -> dict[str, Any]:
    """Walk every sub-schema of an attribute schema (and every ``$ref`` target, resolved as
    jsonschema will resolve it); return its patterns compiled by RE2.

    Builds the graph of sub-schemas, each edge marked "in place" (the same value: ``allOf``,
    ``$ref``, ...) or "descending" (a part of the value: ``items``, ``properties``, ...), to
    refuse a loop of in-place steps (it never ends) and a walk longer than Python's stack.
    """
    root = specification.create_resource(schema)
    start = _LOCAL_ONLY.resolver_with_root(root)
    compiled: dict[str, Any] = {}
    where: dict[int, KnobPath] = {}
    edges: dict[int, list[tuple[int, bool]]] = {}  # node -> [(target, descends)]
    stack: list[tuple[Any, KnobPath, Any]] = [(schema, (), start)]
    while stack:
        node, path, resolver = stack.pop()
        if not isinstance(node, dict) or id(node) in where:
            continue
        where[id(node)] = path
        out = edges.setdefault(id(node), [])
        for keyword, message in _REFUSED.items():
            if keyword in node:
                raise AttributeSchemaError((*path, keyword), message)
        patrn = node.get("pattern")
        if isinstance(patrn, str) and patrn not in compiled:
            try:
                compiled[patrn] = compile_pattern(patrn)
            except ValueError as exc:
                raise AttributeSchemaError(
                    (*path, "pattern"), f"RE2 cannot compile {quote(patrn)}: {exc}"
                ) from None
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#"):
                raise AttributeSchemaError(
                    (*path, "$ref"),
                    f"$ref {quote(ref)} is not in this attribute's schema: "
                    "only local references ('#/$defs/...') are allowed, nothing is fetched",
                )
            try:
                resolved = resolver.lookup(ref)
            except referencing.exceptions.Unresolvable:
                raise AttributeSchemaError(
                    (*path, "$ref"), f"$ref {quote(ref)} does not resolve in this schema"
                ) from None
            target = resolved.contents
            if not isinstance(target, (dict, bool)):
                raise AttributeSchemaError(
                    (*path, "$ref"), f"$ref {quote(ref)} points at {quote(target)}, not a schema"
                )
            if isinstance(target, dict) and id(target) not in where:  # maybe in an enum:
                try:  # unchecked by the metaschema so far
                    cls.check_schema(target)
                except jsonschema.SchemaError as exc:
                    raise AttributeSchemaError(
                        (*path, "$ref"),
                        f"$ref {quote(ref)} points at an invalid schema: {error_message(exc)}",
                    ) from None
            if isinstance(target, dict):
                out.append((id(target), False))
                stack.append((target, (*path, "$ref"), resolved.resolver))
        for keyword, sub, descends in _children(node):
            if isinstance(sub[1], dict):
                if descends is not None:
                    out.append((id(sub[1]), descends))
                inner = resolver.in_subresource(specification.create_resource(sub[1]))
                stack.append((sub[1], (*path, keyword, *sub[0]), inner))
    _check_steps(edges, where)
    return compiled


def _children(node: dict[str, Any]) -> Iterator[tuple[str, tuple[KnobPath, Any], bool | None]]:
    """(keyword, (path under it, sub-schema), descends) for each sub-schema of ``node``;
    ``descends`` is None for definitions (reached only through a $ref)."""
    for keyword in _IN_PLACE_ONE + _DESCEND_ONE:
        if keyword in node and not isinstance(node[keyword], list):
            yield keyword, ((), node[keyword]), keyword in _DESCEND_ONE
    for keyword in _IN_PLACE_LIST + _DESCEND_LIST:
        value = node.get(keyword)
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield keyword, ((index,), item), keyword in _DESCEND_LIST
    for keyword in _IN_PLACE_MAP + _DESCEND_MAP + _DEFINITIONS:
        value = node.get(keyword)
        if isinstance(value, dict):
            descends = None if keyword in _DEFINITIONS else keyword in _DESCEND_MAP
            for name, item in value.items():
                yield keyword, ((str(name),), item), descends


def _check_steps(edges: dict[int, list[tuple[int, bool]]], where: dict[int, KnobPath]) -> None:
    """Refuse an in-place loop, and a walk of more than MAX_SCHEMA_STEPS sub-schemas for a
    value nested VALUE_DEPTH deep (the deepest the engine accepts)."""
    order: list[int] = []  # in-place edges' post-order: every in-place target comes first
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    for first in edges:
        if first in state:
            continue
        state[first] = 1
        path: list[tuple[int, Iterator[tuple[int, bool]]]] = [(first, iter(edges[first]))]
        while path:
            node, pending = path[-1]
            for target, descends in pending:
                if descends:
                    continue
                if state.get(target) == 1:
                    raise AttributeSchemaError(
                        where[target],
                        "this schema applies itself to the same value without end "
                        "(a $ref loop that never steps into the value)",
                    )
                if target not in state:
                    state[target] = 1
                    path.append((target, iter(edges.get(target, ()))))
                    break
            else:
                state[node] = 2
                order.append(node)
                path.pop()
    longest: dict[int, int] = {}
    for _ in range(VALUE_DEPTH + 1):  # longest walk with one more level of the value to go
        below, longest = longest, {}
        for node in order:
            best = 0
            for target, descends in edges[node]:
                if descends:
                    best = max(best, 1 + below[target]) if target in below else best
                else:
                    best = max(best, 1 + longest[target])
            longest[node] = best
            if best > MAX_SCHEMA_STEPS:
                raise AttributeSchemaError(
                    where[node],
                    f"nests too deep: a value may walk through more than {MAX_SCHEMA_STEPS} "
                    "sub-schemas ($ref, allOf, items, ...)",
                )
