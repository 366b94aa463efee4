"""Every pack's workload gives the recorded bytes, whichever store holds the state."""

from __future__ import annotations

import json

import golden
import pytest
import workload


@pytest.fixture(scope="module")
def recorded() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads(golden.GOLDEN.read_text())
    return data


class TestGolden:
    """Decisions and export, byte for byte, against tests/data/golden.json."""

    @pytest.mark.parametrize("pack", workload.PACKS)
    def test_memory(self, pack: str, recorded: dict[str, dict[str, str]]) -> None:
        """The in-memory replay gives the recorded decisions and export."""
        assert golden.digests(pack, golden.MemoryStore()) == recorded[pack]

    @pytest.mark.parametrize("pack", workload.PACKS)
    def test_sqlite(self, pack: str, recorded: dict[str, dict[str, str]]) -> None:
        """The SQLite replay gives the same bytes as the in-memory one."""
        assert golden.sqlite_digests(pack) == recorded[pack]
