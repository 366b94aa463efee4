"""The SQL a store runs per event (prepared once by sqlite3, by their text) and the conversion
between a profile and its row."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from ..base import Profile

PROFILE_COLUMNS = (
    "id, created_by, user_id, user_key, email, email_key, name, avatar, verified, anonymous, "
    "state, merged_into, attributes, last_seen"
)
SELECT_PROFILE = f"SELECT {PROFILE_COLUMNS} FROM profiles"
PROFILE_BY_ID = f"{SELECT_PROFILE} WHERE id=?"
#: key lookups read the first entries of (key, state) in the key's index: creation order
PROFILE_BY_USER_KEY = f"{SELECT_PROFILE} WHERE user_key=? AND state='active' ORDER BY seq LIMIT 1"
PROFILES_BY_EMAIL_KEY = (
    f"{SELECT_PROFILE} WHERE email_key=? AND state='active' ORDER BY seq LIMIT ?"
)
INSERT_PROFILE = f"INSERT INTO profiles ({PROFILE_COLUMNS}) VALUES ({', '.join('?' * 14)})"
#: what an update may change (``id`` and ``created_by`` never do)
UPDATABLE = (
    "user_id",
    "user_key",
    "email",
    "email_key",
    "name",
    "avatar",
    "verified",
    "anonymous",
    "state",
    "merged_into",
    "attributes",
    "last_seen",
)
SESSION_BY_ID = "SELECT id, current, anon FROM sessions WHERE id=?"
UPSERT_SESSION = (
    "INSERT INTO sessions (id, current, anon) VALUES (?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET current=excluded.current, anon=excluded.anon"
)
IS_DECIDED = "SELECT 1 FROM events WHERE id=?"
INSERT_EVENT = "INSERT INTO events (id) VALUES (?)"
#: an event's id recorded as it is checked (``rowcount`` 0: it was decided already)
CLAIM_EVENT = "INSERT OR IGNORE INTO events (id) VALUES (?)"
INSERT_TIMELINE = "INSERT INTO timeline (profile, seq, n, event_id) VALUES (?, ?, ?, ?)"
MOVE_ACTIVITY = "UPDATE timeline SET profile=? WHERE profile=? AND n > 0"
INSERT_DECISION = (
    "INSERT INTO decisions (run, line, event_id, outcome, profile, merged, reasons, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_BARE_DECISION = "INSERT INTO decisions (event_id) VALUES (?)"
#: a profile's attributes as stored: canonical JSON, one encoder for the process
#: (``json.dumps`` with options builds one per call)
ATTRIBUTES = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@cache
def update_sql(names: tuple[str, ...]) -> str:
    """The UPDATE of exactly these profile columns (a handful of combinations occur)."""
    return f"UPDATE profiles SET {', '.join(f'{n}=?' for n in names)} WHERE id=?"


def changed_columns(p: Profile, before: Profile) -> tuple[tuple[str, ...], list[Any]]:
    """The columns of ``p`` that differ from ``before`` and their values: an unchanged indexed
    column then costs no index page, and unchanged attributes no JSON encoding."""
    names: list[str] = []
    values: list[Any] = []
    for name in UPDATABLE:
        value = getattr(p, name)
        if value != getattr(before, name):
            names.append(name)
            values.append(ATTRIBUTES.encode(value) if name == "attributes" else value)
    return tuple(names), values


def profile_of(row: tuple[Any, ...]) -> Profile:
    return Profile(
        id=row[0],
        created_by=row[1],
        user_id=row[2],
        user_key=row[3],
        email=row[4],
        email_key=row[5],
        name=row[6],
        avatar=row[7],
        verified=bool(row[8]),
        anonymous=bool(row[9]),
        state=row[10],
        merged_into=row[11],
        attributes={} if row[12] == "{}" else json.loads(row[12]),  # most have none
        last_seen=row[13],
    )


def row_of(p: Profile) -> tuple[Any, ...]:
    return (
        p.id,
        p.created_by,
        p.user_id,
        p.user_key,
        p.email,
        p.email_key,
        p.name,
        p.avatar,
        int(p.verified),
        int(p.anonymous),
        p.state,
        p.merged_into,
        ATTRIBUTES.encode(p.attributes) if p.attributes else "{}",
        p.last_seen,
    )
