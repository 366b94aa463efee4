"""One copy helper: nested values a caller handed in are never shared with what idrules keeps.

A payload, a token's claims or a decision's attributes may be mutated by the caller after the
call; a stored profile or a cached value must not change with them. Only nested containers
need copying (text, numbers and booleans are immutable), and most attributes are flat, so the
common case is one shallow dict copy.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def owned(value: Any) -> Any:
    """``value``, or a deep copy of it when it is a container (dict or list)."""
    return copy.deepcopy(value) if isinstance(value, (dict, list)) else value


def detached(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an attributes mapping sharing no nested object with the original."""
    if not values:
        return {}
    if any(isinstance(v, (dict, list)) for v in values.values()):
        return copy.deepcopy(dict(values))
    return dict(values)


def is_nested(values: Mapping[str, Any]) -> bool:
    """Whether any value of ``values`` is a container (and so needs :func:`detached`)."""
    return any(isinstance(v, (dict, list)) for v in values.values())
