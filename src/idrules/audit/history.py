"""``history``: which profile a question is about, over any durable store."""

from __future__ import annotations

from .._errors import InputError
from ..emails import normalize_email
from ..matchkeys import email_key_of
from ..store.base import DurableStore


def candidates(store: DurableStore, kind: str, value: str) -> list[str]:
    """The profiles a ``history`` question may be about, earliest first: by id, user id
    (exact) or email (its match key). Profiles merged into another count as that one."""
    if kind == "profile":
        found = store.find_profiles("id", value)
    elif kind == "user_id":
        found = store.find_profiles("user_id", value)
    else:
        _, key, _ = normalize_email(value.strip())
        found = store.find_profiles("email_key", key or email_key_of(value.strip()))
    return list(dict.fromkeys(store.root_of(pid) for pid in found))


def find_profile(store: DurableStore, kind: str, value: str) -> str:
    """The one profile a ``history`` question is about (:func:`candidates`); none, or
    several, is an :class:`InputError` saying so."""
    roots = candidates(store, kind, value)
    if not roots:
        raise InputError(f"no profile with {kind.replace('_', ' ')} {value!r} in {store.path}")
    if len(roots) > 1:
        raise InputError(
            f"{len(roots)} profiles hold {kind.replace('_', ' ')} {value!r} "
            f"({', '.join(roots)}): ask for one with --profile"
        )
    return roots[0]
