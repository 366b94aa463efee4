"""Instructions per event, counted by valgrind's callgrind: the lean resolver against
``idrules replay`` in memory, as whole processes, by a count this host's noise cannot move.

On a shared virtual machine the CPU time of one process moves by up to a third between two
identical runs (other tenants, CPU steal); callgrind counts the instructions a process executes,
the same on every run of the same program and input, whatever else the machine does. Each
variant runs over the first ``--small`` and the first ``--large`` events of one log; the
difference divided by the events between them is the cost per event (start-up and the ruleset's
compilation cancel out), and what is left of the small run is the start-up.

What it does not see: the kernel (a SQLite commit's writes and locks are system calls, so it
is for the in-memory comparison), and the cost of an instruction (cache misses, branch
mispredictions: idrules' object-heavy Python retires fewer instructions per cycle than the
lean resolver's regex-heavy email checks). Valgrind also hides some CPU features (the SHA
extensions), so hashing (HMACs, JWTs, the decision chain) counts more instructions than it
costs on the CPU. Read it beside ``harness.py``'s CPU time, not instead of it.

    python benchmarks/instructions.py                  # every pack, 10,000 and 20,000 events
    python benchmarks/instructions.py --packs helpshift,lumio --small 5000 --large 10000

Needs ``valgrind`` on the PATH (about 40 s a pack at the default sizes).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import processes
import workload

HERE = Path(__file__).resolve().parent
#: the two variants counted: the lean resolver, idrules in memory
VARIANTS = ("lean", "memory")
_COLLECTED = re.compile(rb"Collected : (\d+)")

Count = Callable[[list[str]], int]


def callgrind(cmd: list[str]) -> int:
    """The instructions ``cmd`` executes (all of its user-space code), counted by callgrind."""
    env = {**os.environ, "IDRULES_SECRET_CURRENT": workload.SECRET}
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise SystemExit(f"{' '.join(cmd)} failed under valgrind: {' '.join(tail)}")
    return int(found.group(1))


def per_event(small: int, large: int, at_small: int, at_large: int) -> tuple[float, float]:
    """(instructions per event, start-up instructions) from the counts at two log sizes."""
    if large <= small:
        raise ValueError("--large must be more events than --small")
    each = (at_large - at_small) / (large - small)
    return each, at_small - small * each


def measure(
    packs: list[str],
    small: int,
    large: int,
    seed: int,
    workdir: Path,
    count: Count = callgrind,
    log: Callable[[str], object] = print,
) -> dict[str, Any]:
    """Every pack's per-event and start-up instructions, lean resolver and idrules."""
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"small": small, "large": large, "seed": seed, "packs": {}}
    out, db = workdir / "instructions-decisions.jsonl", workdir / "instructions.db"
    for pack in packs:
        lines = list(workload.LogGenerator(pack, seed).lines(large))
        logs = {}
        for n in (small, large):
            logs[n] = workdir / f"{pack}-{n}-{seed}-head.jsonl"
            logs[n].write_text("".join(line + "\n" for line in lines[:n]))
        figures: dict[str, dict[str, float]] = {}
        for variant in VARIANTS:
            at = {n: count(processes.command(variant, pack, logs[n], out, db, 1)) for n in logs}
            each, start = per_event(small, large, at[small], at[large])
            figures[variant] = {"per_event": each, "startup": start}
        ratio = figures["memory"]["per_event"] / figures["lean"]["per_event"]
        result["packs"][pack] = {"variants": figures, "ratio": ratio}
        out.unlink(missing_ok=True)
        log(f"{pack}: memory/lean {ratio:.2f} per event")
    return result


def table(result: dict[str, Any]) -> str:
    """One line per pack: instructions per event and at start-up, and the per-event ratio."""
    rows = [
        f"instructions (callgrind), per event from {result['small']:,} to {result['large']:,} "
        f"events (seed {result['seed']}); start-up in millions",
        f"{'pack':<10} {'lean/event':>11} {'idrules/event':>14} {'ratio':>6} "
        f"{'lean start':>11} {'idrules start':>14}",
    ]
    for pack, r in result["packs"].items():
        lean, mem = r["variants"]["lean"], r["variants"]["memory"]
        rows.append(
            f"{pack:<10} {lean['per_event']:>11,.0f} {mem['per_event']:>14,.0f} "
            f"{r['ratio']:>6.2f} {lean['startup'] / 1e6:>10,.0f}M {mem['startup'] / 1e6:>13,.0f}M"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packs", default=",".join(workload.PACKS), help="comma list of packs")
    parser.add_argument("--small", type=int, default=10_000, help="events in the short run")
    parser.add_argument("--large", type=int, default=20_000, help="events in the long run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=str(HERE / "out"), help="the logs' folder")
    args = parser.parse_args(argv)
    packs = [p for p in args.packs.split(",") if p]
    unknown = [p for p in packs if p not in workload.PACKS]
    if unknown:
        parser.error(f"unknown pack(s): {', '.join(unknown)}")
    if not 0 < args.small < args.large:
        parser.error("need 0 < --small < --large")
    if shutil.which("valgrind") is None:
        print("instructions.py: valgrind is not on the PATH", file=sys.stderr)
        return 1
    result = measure(packs, args.small, args.large, args.seed, Path(args.workdir))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
