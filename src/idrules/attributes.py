"""Stage 5: filter the custom attributes a call brings against ``attributes.schema``.

Each configured attribute has a JSON Schema for its value (validators built once, here). An
attribute not configured is ``unknown`` (dropped, kept or the call rejected); one failing its
schema is ``invalid`` (dropped or the call rejected). Each such attribute is a reason naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from jsonschema.protocols import Validator

from ._copy import owned
from .caches import BoundedCache
from .decision import Reason
from .reasons import Code
from .rules.attribute_schema import validator_for_attribute
from .rules.model import Ruleset


@attrs.frozen(slots=True)
class Filtered:
    """The attributes kept, why others were not, and whether the call must be rejected."""

    kept: Mapping[str, Any]
    reasons: tuple[Reason, ...] = ()
    reject: bool = False


_NOTHING = Filtered({})
#: how deep an attribute's value may nest; deeper values are invalid (they would only ever be
#: an attack on the recursion of JSON writers and copies)
MAX_DEPTH = 32


def _deeper_than(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


_KNOWN_NAMES = 1_024


class AttributeFilter:
    """The compiled ``attributes`` section of a ruleset."""

    def __init__(self, ruleset: Ruleset) -> None:
        rules = ruleset.attributes
        self._validators: dict[str, Validator] = {
            name: validator_for_attribute(schema) for name, schema in rules.schema.items()
        }
        self._unknown = rules.unknown
        self._invalid = rules.invalid
        self._cite_unknown = ruleset.cite("attributes.unknown")
        self._cite_schema = {
            name: ruleset.cite("attributes", "schema", name) for name in rules.schema
        }
        self._cite_source = ruleset.cite("input.attributes")
        self._cite_invalid = ruleset.cite("attributes.invalid")
        # one reason per attribute name, bounded: the names come from the client
        self._unknown_reasons: BoundedCache[str, Reason] = BoundedCache(_KNOWN_NAMES)

    def filter(self, raw: Any, given: bool = True) -> Filtered:
        """Filter the attributes of one call (``raw``: the mapped attributes value)."""
        if not given or raw is None:
            return _NOTHING
        if not isinstance(raw, dict):
            reason = Reason(
                Code.ATTRIBUTE_INVALID,
                self._cite_source,
                "attributes",
                "attributes must be an object",
            )
            return Filtered({}, (reason,), self._invalid == "reject")
        kept: dict[str, Any] = {}
        reasons: list[Reason] = []
        reject = False
        for name, value in raw.items():
            validator = self._validators.get(name)
            if isinstance(value, (dict, list)) and _deeper_than(value, MAX_DEPTH):
                reasons.append(
                    Reason(
                        Code.ATTRIBUTE_INVALID,
                        self._cite_invalid,
                        name,
                        f"nested deeper than {MAX_DEPTH} levels: {self._invalid}",
                    )
                )
                reject = reject or self._invalid == "reject"
            elif validator is None:
                reasons.append(self._unknown_reason(name))
                if self._unknown == "keep":
                    kept[name] = owned(value)
                elif self._unknown == "reject":
                    reject = True
            elif validator.is_valid(value):
                kept[name] = owned(value)
            else:
                reasons.append(
                    Reason(
                        Code.ATTRIBUTE_INVALID,
                        self._cite_schema[name],
                        name,
                        f"fails its schema: {self._invalid}",
                    )
                )
                reject = reject or self._invalid == "reject"
        return Filtered(kept, tuple(reasons), reject)

    def _unknown_reason(self, name: str) -> Reason:
        """The reason for an unconfigured attribute: one per name, since a widget sends the
        same few names on every call (bounded: the names come from the client)."""
        reason = self._unknown_reasons.get(name)
        if reason is None:
            reason = Reason(
                Code.ATTRIBUTE_UNKNOWN, self._cite_unknown, name, f"not configured: {self._unknown}"
            )
            self._unknown_reasons.put(name, reason)
        return reason
