"""Golden digests: the exact bytes every pack's workload gives, kept to catch any change.

A refactoring must not change a single byte of a decision or of the export. This module
replays each pack's benchmark workload (benchmarks/workload.py, deterministic from a seed)
into a fresh store and hashes the decisions file and the export; ``tests/data/golden.json``
holds the digests the code gave when they were last recorded. A change of behaviour that is
meant (a pack's wording, a new reason) is recorded again, on purpose, with

    python tests/golden.py --update

and the commit says why the bytes changed.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import workload  # noqa: E402

from idrules import (  # noqa: E402
    Engine,
    MemoryStore,
    SqliteStore,
    Store,
    export_rows,
    replay,
)
from idrules.decision import dumps  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "data" / "golden.json"
EVENTS = 3_000
SEED = 11


def digests(pack: str, store: Store) -> dict[str, str]:
    """sha256 of the decisions and of the export of the pack's workload replayed into store."""
    lines = [line.encode() for line in workload.generate(pack, EVENTS, seed=SEED)]
    out = io.StringIO()
    engine = Engine(pack, store, secrets=workload.SECRETS, environ={})
    replay(engine, lines, out.write)
    export = "".join(dumps(row) + "\n" for row in export_rows(store))
    store.close()
    return {
        "decisions": hashlib.sha256(out.getvalue().encode()).hexdigest(),
        "export": hashlib.sha256(export.encode()).hexdigest(),
    }


def record() -> dict[str, dict[str, str]]:
    """The digests of every pack, from the in-memory store."""
    return {pack: digests(pack, MemoryStore()) for pack in workload.PACKS}


def sqlite_digests(pack: str) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as folder:
        return digests(pack, SqliteStore(Path(folder) / "golden.db"))


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/golden.py --update")
    GOLDEN.write_text(json.dumps(record(), indent=1, sort_keys=True) + "\n")
    print(f"recorded {GOLDEN}")
