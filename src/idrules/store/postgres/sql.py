"""The SQL of a PostgreSQL store (its schema's name filled in once) and the conversion between
a profile and its row.

Reads made inside an event's transaction lock what they read (``FOR UPDATE``): the profile and
session rows the planner bases its decision on stay as read until the commit. Reads made
outside one (an export, ``history``, :meth:`Engine.plan`) lock nothing.
"""

from __future__ import annotations

import json
from typing import Any

from ..base import Profile
from ..sqlite.sql import ATTRIBUTES, UPDATABLE
from .codec import Param
from .schema import quoted

PROFILE_COLUMNS = (
    "id, created_by, user_id, user_key, email, email_key, name, avatar, verified, anonymous, "
    "state, merged_into, attributes, last_seen"
)
_P_COLUMNS = ", ".join(f"p.{c.strip()}" for c in PROFILE_COLUMNS.split(","))
_LOCK = " FOR UPDATE"


class Sql:
    """Every statement, for one schema. ``*_lock`` variants lock the rows they return."""

    def __init__(self, schema: str) -> None:
        s = self.schema = quoted(schema)
        select = f"SELECT {PROFILE_COLUMNS} FROM {s}.profiles"
        self.profile = f"{select} WHERE id = $1"
        self.profile_lock = self.profile + _LOCK
        # the partial unique index on active user keys answers this one
        self.by_user_key = f"{select} WHERE user_key = $1 AND state = 'active' ORDER BY seq LIMIT 1"
        self.by_user_key_lock = self.by_user_key + _LOCK
        # the first entries of (email_key, state, seq): the earliest active holders
        self.by_email_key = (
            f"{select} WHERE email_key = $1 AND state = 'active' ORDER BY seq LIMIT $2"
        )
        self.by_email_key_lock = self.by_email_key + _LOCK
        self.session = f"SELECT id, current, anon FROM {s}.sessions WHERE id = $1"
        self.session_lock = self.session + _LOCK
        # the session's current and anonymous profiles (after the session's row is locked):
        # the anonymous ones locked, as an event of the session may write them; identified
        # ones not, as it never writes them and what it reads of them never changes (an
        # identified profile stays active and identified); so two sessions switching between
        # two users never wait for each other's profile
        sessions_profiles = (
            f"SELECT {_P_COLUMNS} FROM {s}.sessions e JOIN {s}.profiles p "
            "ON p.id IN (e.current, e.anon) WHERE e.id = $1 AND"
        )
        self.session_anonymous_lock = f"{sessions_profiles} p.anonymous FOR UPDATE OF p"
        self.session_identified = f"{sessions_profiles} NOT p.anonymous"
        self.sessions_of = (
            f"SELECT id, current, anon FROM {s}.sessions WHERE current = $1 OR anon = $1 "
            "ORDER BY id"
        )
        self.sessions_of_lock = self.sessions_of + _LOCK
        self.is_decided = f"SELECT 1 FROM {s}.events WHERE id = $1"
        #: inside an event's transaction: record the id, unless it is there (decided)
        self.claim = f"INSERT INTO {s}.events (id) VALUES ($1) ON CONFLICT DO NOTHING"
        self.insert_event = f"INSERT INTO {s}.events (id) VALUES ($1)"
        self.advisory_lock = "SELECT pg_advisory_xact_lock($1)"
        #: in a commit group, which never waits holding its earlier events' locks
        self.advisory_try_lock = "SELECT pg_try_advisory_xact_lock($1)"
        self.insert_profile = (
            f"INSERT INTO {s}.profiles ({PROFILE_COLUMNS}) VALUES "
            f"({', '.join(f'${n}' for n in range(1, 15))})"
        )
        self.insert_session = f"INSERT INTO {s}.sessions (id, current, anon) VALUES ($1, $2, $3)"
        self.update_session = f"UPDATE {s}.sessions SET current = $2, anon = $3 WHERE id = $1"
        self.upsert_session = (
            self.insert_session
            + " ON CONFLICT (id) DO UPDATE SET current = excluded.current, anon = excluded.anon"
        )
        self.move_activity = f"UPDATE {s}.timeline SET profile = $1 WHERE profile = $2 AND n > 0"
        #: an event's decision record and its timeline entries, in one statement
        self.record = (
            f"WITH d AS (INSERT INTO {s}.decisions (run, line, event_id, outcome, profile, "
            "merged, reasons, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq) "
            f"INSERT INTO {s}.timeline (profile, seq, n, event_id) "
            "SELECT t.profile, d.seq, t.n, t.event_id FROM d, "
            "unnest($9::text[], $10::int[], $11::text[]) AS t(profile, n, event_id)"
        )
        # reading the store whole ------------------------------------------------------
        self.profiles_after = (
            f"SELECT seq, {PROFILE_COLUMNS} FROM {s}.profiles WHERE seq > $1 ORDER BY seq LIMIT $2"
        )
        self.acting_sessions = f"SELECT id FROM {s}.sessions WHERE current = $1 ORDER BY id"
        self.activity_of = (
            f"SELECT event_id FROM {s}.timeline WHERE profile = $1 AND n > 0 ORDER BY seq, n"
        )
        # an export batch's acting sessions and activity: the profiles after seq $1, $2 of them
        batch = f"SELECT id FROM {s}.profiles WHERE seq > $1 ORDER BY seq LIMIT $2"
        self.acting_sessions_after = (
            f"SELECT current, id FROM {s}.sessions WHERE current IN ({batch}) ORDER BY current, id"
        )
        self.activity_after = (
            f"SELECT profile, event_id FROM {s}.timeline WHERE profile IN ({batch}) AND n > 0 "
            "ORDER BY profile, seq, n"
        )
        self._updates: dict[tuple[str, ...], str] = {}
        self._nowait: dict[str, str] = {}

    def nowait(self, statement: str) -> str:
        """A locking read that fails at once (SQLSTATE 55P03) rather than wait for a lock."""
        found = self._nowait.get(statement)
        if found is None:
            found = self._nowait[statement] = statement + " NOWAIT"
        return found

    def update_profile(self, names: tuple[str, ...]) -> str:
        """The UPDATE of exactly these profile columns (a handful of combinations occur)."""
        found = self._updates.get(names)
        if found is None:
            sets = ", ".join(f"{name} = ${n}" for n, name in enumerate(names, 2))
            found = self._updates[names] = f"UPDATE {self.schema}.profiles SET {sets} WHERE id = $1"
        return found


def changed_columns(p: Profile, before: Profile) -> tuple[tuple[str, ...], list[Param]]:
    """The columns of ``p`` that differ from ``before`` and their values: an unchanged indexed
    column then costs no index entry, and unchanged attributes no JSON encoding."""
    names: list[str] = []
    values: list[Param] = []
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
        verified=row[8],
        anonymous=row[9],
        state=row[10],
        merged_into=row[11],
        attributes=json.loads(row[12]),
        last_seen=row[13],
    )


def row_of(p: Profile) -> list[Param]:
    return [
        p.id,
        p.created_by,
        p.user_id,
        p.user_key,
        p.email,
        p.email_key,
        p.name,
        p.avatar,
        p.verified,
        p.anonymous,
        p.state,
        p.merged_into,
        ATTRIBUTES.encode(p.attributes),
        p.last_seen,
    ]
