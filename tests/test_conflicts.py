"""A store whose writes can lose a race: the engine plans the event again, and nothing of the
lost attempt is written out."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest

from idrules import Engine, MemoryStore, StoreConflict, replay
from idrules.store.base import Changes, DecisionRecord


class Racing(MemoryStore):
    """A memory store that loses the first ``losses`` races, after writing, before sealing."""

    def __init__(self, losses: int) -> None:
        super().__init__()
        self.losses = losses
        self.attempts = 0

    def apply(
        self, changes: Changes, seal: Callable[[], DecisionRecord | None] | None = None
    ) -> None:
        self.attempts += 1
        if self.losses:
            self.losses -= 1
            raise StoreConflict("another writer won")
        super().apply(changes, seal)


class TestRetriedConflicts:
    """Engine.decide and StoreConflict."""

    def test_lost_race_planned_again(self) -> None:
        """Two lost races, then the event is decided once, and its line written once."""
        store = Racing(losses=2)
        out = io.StringIO()
        summary = replay(
            Engine("helpshift", store),
            [b'{"id":"e1","ts":"2026-03-01T12:00:00Z","type":"identify","payload":{"userId":"u"}}'],
            out.write,
        )
        assert summary.outcomes == {"identified": 1}
        assert store.attempts == 3
        assert out.getvalue().count("\n") == 1

    def test_bounded(self) -> None:
        """A store that always loses ends in StoreConflict, after a bounded number of tries."""
        store = Racing(losses=10**6)
        with pytest.raises(StoreConflict):
            Engine("helpshift", store).identify({"userId": "u"})
        assert 1 < store.attempts <= 50

    def test_other_errors_not_retried(self) -> None:
        """Any other failure is the caller's at once."""

        class Broken(MemoryStore):
            calls = 0

            def apply(self, changes: Changes, seal: Any = None) -> None:
                Broken.calls += 1
                raise RuntimeError("disk on fire")

        with pytest.raises(RuntimeError):
            Engine("helpshift", Broken()).identify({"userId": "u"})
        assert Broken.calls == 1
