"""One engine shared by threads: a backend builds it once and calls it from every request."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support import check_invariants

from idrules import Decision, Engine, MemoryStore, SqliteStore, Store, export_rows

USERS = [f"u{n}" for n in range(12)]


def hammer(engine: Engine, worker: int, rounds: int = 60) -> list[Decision]:
    """A worker's calls: identify, track and logout over shared users and sessions."""
    out = []
    for n in range(rounds):
        session = f"s{(worker * 7 + n) % 10}"
        user = USERS[(worker + n) % len(USERS)]
        kind = n % 4
        if kind == 0:
            out.append(
                engine.identify(
                    {"userId": user, "userEmail": f"{user}@example.com"},
                    session=session,
                    id=f"w{worker}-{n}",
                )
            )
        elif kind == 3 and n % 8 == 3:
            out.append(engine.logout(session=session, id=f"w{worker}-{n}"))
        else:
            out.append(engine.track("vote", session=session, id=f"w{worker}-{n}"))
    return out


class TestSharedEngine:
    """Threads calling one Engine decide one event at a time and keep every invariant."""

    @pytest.mark.parametrize("kind", ["memory", "sqlite"])
    def test_many_threads_one_engine(self, tmp_path: Path, kind: str) -> None:
        """Eight threads on one engine: no error, no user id on two profiles, each track once."""
        store: Store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "s.db")
        engine = Engine("helpshift", store)
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda w: hammer(engine, w), range(8)))
        decisions = [d for part in results for d in part]
        assert len(decisions) == 8 * 60
        assert {d.outcome for d in decisions} <= {"identified", "recorded", "logged_out"}
        check_invariants(engine, decisions)
        store.close()

    def test_sqlite_store_made_in_another_thread(self, tmp_path: Path) -> None:
        """A store opened in one thread serves calls from another (as in a web server)."""
        engine = Engine("helpshift", SqliteStore(tmp_path / "s.db"))
        with ThreadPoolExecutor(max_workers=1) as pool:
            d = pool.submit(engine.identify, {"userId": "u1"}, session="s").result()
        assert d.outcome == "identified"
        assert [row["user_id"] for row in export_rows(engine.store)] == ["u1"]
