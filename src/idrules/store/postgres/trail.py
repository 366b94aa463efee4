"""The audit trail's queries on a PostgreSQL store: replay runs and their claims, and history.

A replay claims its run with a session-level advisory lock (``pg_try_advisory_lock``) on the
pair (this store's schema, the run's id): another replay of the same run, on this machine or
any other, is refused at once; the server releases the lock when the claim ends or when the
connection dies, however the process ends. The refusal names the holder by its connection's
``application_name``, which idrules sets to ``idrules pid N on HOST``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from ...audit.runlock import RunBusyError
from ..base import DecisionRecord, Run
from .codec import Param
from .schema import lock_key, quoted

Fetch = Callable[[str, list[Param]], list[tuple[Any, ...]]]
#: a connection kept for a run's claim (its session-level lock lives as long as it does): the
#: fetch that uses it, and how to give it back
Hold = Callable[[], tuple[Fetch, Callable[[], None]]]


class Trail:
    """Runs and history of one store (its fetch, lock and commit)."""

    def __init__(
        self,
        fetch: Fetch,
        hold: Hold,
        commit: Callable[[], None],
        *,
        schema: str,
        shown: str,
    ) -> None:
        self._fetch = fetch
        self._hold = hold
        self._lock = threading.Lock()
        self._commit = commit
        self._shown = shown
        self._s = quoted(schema)
        # the advisory lock space of this store's runs: (this, run id), two int4 keys
        self._space = lock_key("runs", schema) & 0x7FFFFFFF
        self.claimed: set[int] = set()

    # runs --------------------------------------------------------------------------------
    def claim_run(self, log_key: str, ruleset: str) -> tuple[Run, AbstractContextManager[object]]:
        """The run of this log under this ruleset (made on first use), claimed for this
        connection until the returned context manager exits; where it stopped is read after
        the claim, so no other replay can move it meanwhile."""
        s = self._s
        self._commit()  # its own statements, not an event's
        fetch, give_back = self._hold()
        try:
            made = fetch(
                f"INSERT INTO {s}.runs (log_key, ruleset) VALUES ($1, $2) "
                "ON CONFLICT (log_key, ruleset) DO NOTHING RETURNING id",
                [log_key, ruleset],
            )
            if not made:
                made = fetch(
                    f"SELECT id FROM {s}.runs WHERE log_key = $1 AND ruleset = $2",
                    [log_key, ruleset],
                )
            run_id = int(made[0][0])
            with self._lock:
                if run_id in self.claimed:
                    raise self._busy("this process")
                got = fetch("SELECT pg_try_advisory_lock($1, $2)", [self._space, run_id])
                if not got[0][0]:
                    raise self._busy(self._holder(fetch, run_id))
                self.claimed.add(run_id)
        except BaseException:
            give_back()
            raise
        claim = _Claim(self, run_id, fetch, give_back)
        try:
            count = fetch(f"SELECT count(*) FROM {s}.decisions WHERE run = $1", [run_id])
            last = fetch(
                f"SELECT line, event_id, hash FROM {s}.decisions WHERE run = $1 "
                "ORDER BY seq DESC LIMIT 1",
                [run_id],
            )
        except BaseException:
            claim.release()
            raise
        if not last:
            return Run(run_id, 0, 0, None, None), claim
        return Run(run_id, int(count[0][0]), last[0][0], last[0][1], last[0][2]), claim

    def _holder(self, fetch: Fetch, run_id: int) -> str | None:
        """Who holds a run's claim, as far as the server says (None: it will not say)."""
        try:
            rows = fetch(
                "SELECT a.application_name, a.client_addr::text, a.pid FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                "AND l.granted AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid "
                "AND l.objsubid = 2 AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())",
                [self._space, run_id],
            )
        except Exception:  # the refusal matters, not its detail
            return None
        if not rows:
            return None
        name, address, pid = rows[0]
        if name and str(name).startswith("idrules pid "):
            return str(name)[len("idrules ") :]
        return f"server process {pid}" + (f" from {address}" if address else "")

    def _busy(self, holder: str | None) -> RunBusyError:
        who = f" ({holder})" if holder else ""
        return RunBusyError(
            f"another replay of this log is running into {self._shown}{who}; "
            "let it finish (run this again after it to resume, if it stops early)"
        )

    def _release(self, run_id: int, fetch: Fetch) -> None:
        with self._lock:
            if run_id not in self.claimed:
                return
            self.claimed.discard(run_id)
        fetch("SELECT pg_advisory_unlock($1, $2)", [self._space, run_id])

    # history -----------------------------------------------------------------------------
    def history(self, profile_ids: Iterable[str]) -> Iterator[DecisionRecord]:
        """Every decision whose profile is one of ``profile_ids``, in the order applied."""
        rows = self._fetch(
            "SELECT d.event_id, d.outcome, d.profile, d.merged, d.reasons, d.run, d.line, "
            f"d.hash FROM {self._s}.timeline t JOIN {self._s}.decisions d ON d.seq = t.seq "
            "WHERE t.profile = ANY($1::text[]) AND t.n = 0 ORDER BY t.seq",
            [list(profile_ids)],
        )
        for row in rows:
            yield DecisionRecord(
                row[0], row[1], row[2], tuple(json.loads(row[3])), row[4], row[5], row[6], row[7]
            )

    def merged_into(self, profile_id: str) -> list[str]:
        """Ids of the profiles folded into ``profile_id``, directly or through others (in the
        SQLite store's order)."""
        found: list[str] = []
        todo = [profile_id]
        while todo:
            rows = self._fetch(
                f"SELECT id FROM {self._s}.profiles WHERE merged_into = $1 ORDER BY seq",
                [todo.pop()],
            )
            for (pid,) in rows:
                if pid not in found and pid != profile_id:
                    found.append(pid)
                    todo.append(pid)
        return found

    def root_of(self, profile_id: str) -> str:
        """The profile ``profile_id`` was merged into, followed to the end (itself if none)."""
        seen = {profile_id}
        while True:
            rows = self._fetch(
                f"SELECT merged_into FROM {self._s}.profiles WHERE id = $1", [profile_id]
            )
            if not rows or rows[0][0] is None or rows[0][0] in seen:
                return profile_id
            profile_id = rows[0][0]
            seen.add(profile_id)

    def find_profiles(self, column: str, value: str) -> list[str]:
        """Ids of profiles (any state) whose ``id``, ``user_id``, ``user_key`` or
        ``email_key`` equals ``value``, earliest first."""
        if column not in ("id", "user_id", "user_key", "email_key"):
            raise ValueError(column)
        rows = self._fetch(
            f"SELECT id FROM {self._s}.profiles WHERE {column} = $1 ORDER BY seq", [value]
        )
        return [row[0] for row in rows]


class _Claim:
    """A run's claim: released on exit (a no-op once the store is closed: the server released
    it with the connection)."""

    def __init__(
        self, trail: Trail, run_id: int, fetch: Fetch, give_back: Callable[[], None]
    ) -> None:
        self._trail = trail
        self._run_id = run_id
        self._fetch = fetch
        self._give_back: Callable[[], None] | None = give_back

    def __enter__(self) -> _Claim:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        failure: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()

    def release(self) -> None:
        """Give the run up (again: a no-op)."""
        give_back, self._give_back = self._give_back, None
        if give_back is None:
            return
        try:
            self._trail._release(self._run_id, self._fetch)
        except Exception:  # the connection is gone, and the claim with it
            self._trail.claimed.discard(self._run_id)
        finally:
            give_back()
