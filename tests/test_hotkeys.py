"""What one event reads never grows with how many profiles share its key (docs/stores.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import Run, hmac_hex

from idrules import Engine, MemoryStore, Profile, SqliteStore, Store, export_rows


class Counting:
    """A store wrapper counting the profiles its key lookups hand to the planner."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.read = 0

    def by_email_key(self, key: str, limit: int) -> list[Profile]:
        found = self._store.by_email_key(key, limit)
        self.read += len(found)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def stores(tmp_path: Path) -> list[Store]:
    return [MemoryStore(), SqliteStore(tmp_path / "s.db", commit_every=500)]


class TestSharedEmail:
    """Many profiles holding one email."""

    @pytest.mark.parametrize("kind", [0, 1])
    def test_lookup_reads_a_few_holders(self, tmp_path: Path, kind: int) -> None:
        """After 600 profiles share an email, an identify reads at most 4 of them."""
        store = stores(tmp_path)[kind]
        engine = Engine("helpshift", store)
        for n in range(600):
            engine.identify({"userId": f"u{n}", "userEmail": "hot@example.com"}, session=f"s{n}")
        counting = Counting(store)
        engine.store = counting  # type: ignore[assignment]
        d = engine.identify({"userEmail": "HOT@example.com"}, session="late")
        assert d.outcome == "identified" and counting.read <= 4
        assert "match.email_ambiguous" in d.codes
        first = next(iter(store.profiles()))
        assert d.profile == first.id  # the earliest created still wins
        store.close()

    def test_expired_holders_are_passed_once(self) -> None:
        """Expired anonymous holders are marked on the way, so the next lookup skips them."""
        run = Run("helpshift")
        anon = [run.track(session=f"a{n}", email="hot@example.com").profile for n in range(40)]
        later = 8 * 86_400
        first = run.identify({"userEmail": "hot@example.com"}, session="x", at=later)
        assert first.created and "anonymous.expired" in first.codes
        rows = run.rows()
        assert all(rows[str(p)]["state"] == "expired" for p in anon)
        assert all(rows[str(p)]["sessions"] == [] for p in anon)
        again = run.identify({"userEmail": "hot@example.com"}, session="y", at=later)
        assert again.profile == first.profile and "anonymous.expired" not in again.codes


class TestMerges:
    """Many anonymous profiles folded into one."""

    @pytest.mark.parametrize("kind", [0, 1])
    def test_activity_kept_in_order(self, tmp_path: Path, kind: int) -> None:
        """After 300 merges the profile's activity is every track, in the order it happened."""
        store = stores(tmp_path)[kind]
        engine = Engine("strict", store, secrets={"current": "k" * 40})
        tracks = []
        target = None
        for n in range(300):
            tracks.append(engine.track("vote", session=f"s{n}", id=f"t{n}").event_id)
            d = engine.identify(
                {"user_id": "u1", "signature": hmac_hex("u1", "k" * 40)}, session=f"s{n}"
            )
            target = d.profile
            if n:
                assert len(d.merged) == 1
        (row,) = [r for r in export_rows(store) if r["profile"] == target]
        assert row["activity"] == tracks
        store.close()
