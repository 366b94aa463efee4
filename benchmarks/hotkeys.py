"""Hot-key logs: many profiles or sessions sharing one match key, deterministic from a seed.

A match key that many profiles share must not make each event that touches it cost more: if
the cost per event grows with the number of profiles holding the key, anyone can slow the
engine down for everyone (a cheap denial of service). Three parts, each in a shipped pack's own
dialect (payloads from :func:`workload.identify_payload`, so signatures are valid):

``shared``  (helpshift: verification disabled, email matching, ``new_profile`` for another
            user id) ``n`` identifies, each with a new user id from a new session, all with
            ONE email: every call matches by email and creates one more profile holding it.
``inline``  (helpshift: anonymous profiles kept per session) ``2 * n`` anonymous ``track``s,
            each from a new session, all carrying the same inline email (``payload.email``),
            then ``n // 10`` identifies (new user ids, new sessions) with that email: the
            identifies are the measured tail.
``merges``  (strict: HMAC required, ``on_identify: merge``) one user identifies once from
            the home session, then from ``2 * n`` new sessions, each of which first sends an
            anonymous ``track``: every identify folds that session's anonymous profile (and
            its activity) into the one profile: ``2 * n`` merges into one profile.

With ``n = 10_000`` (scale 1): 10,000 shared-email identifies, 20,000 inline-email tracks and
1,000 identifies, 20,000 merges (40,001 events). Each part says where its measured *tail*
starts: the last 10% of its events (``shared``, ``merges``), or the identifies after the
tracks (``inline``).

Each part has a *control*: the same events with the key spread (``spread=True``): a distinct
email per identify (``shared``), per track, each later identify reusing one of them
(``inline``), and the merges shared among ``n // 100`` users rather than one (``merges``).
What the hot part costs over its control is what sharing one key costs, and nothing else
(a new profile costs more than a returning user's event whatever its key).

Emails and user ids are outside the workload's universe, so a store pre-filled with the
benchmark's profiles holds none of them. Timestamps start at ``workload.T0`` and advance
~2.5 s per event, like the ordinary log.

    python benchmarks/hotkeys.py --part shared --scale 0.1 --seed 1 > /tmp/shared.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import workload

#: part -> the pack whose dialect and rules it runs with
PACK = {"shared": "helpshift", "inline": "helpshift", "merges": "strict"}
PARTS = tuple(PACK)
#: events per part at scale 1 (``n``; see the module docstring for what each part makes of it)
BASE = 10_000
#: the shared email address (shared mailbox) and the inline one (a visitor prompt's answer)
SHARED_EMAIL = "support-team@hotkey.example.com"
INLINE_EMAIL = "visitor@hotkey.example.com"
#: the universe index of the user of ``merges`` (past the workload's pool and new users)
MERGE_USER = 3 * workload.UNIVERSE
#: fraction of a part's events in its measured tail (``shared`` and ``merges``)
TAIL = 0.1


@dataclass(frozen=True, slots=True)
class HotLog:
    """One part's log: raw lines (no newline), and where the measured tail starts."""

    part: str
    pack: str
    lines: list[str]
    tail_start: int  # index of the tail's first line
    expected: dict[str, int]  # the outcome counts deciding it must give
    describe: str

    @property
    def tail_events(self) -> int:
        return len(self.lines) - self.tail_start


class _Writer:
    def __init__(self, part: str, seed: int) -> None:
        self.part = part
        self.rng = random.Random(f"hotkeys-{part}-{seed}")
        self.t = float(workload.T0)
        self.count = 0
        self.sessions = 0
        self.lines: list[str] = []

    def tick(self) -> int:
        self.t += self.rng.expovariate(1.0 / workload.MEAN_GAP_S)
        return int(self.t)

    def session(self) -> str:
        self.sessions += 1
        return f"hk{self.part[0]}_{self.rng.getrandbits(40):010x}{self.sessions:x}"

    def event(self, kind: str, session: str, payload: dict[str, Any], ts: int) -> None:
        self.count += 1
        event = {
            "id": f"hk-{self.part}-{self.count:07d}",
            "ts": workload.fmt_ts(ts),
            "type": kind,
            "session": session,
            "payload": payload,
        }
        self.lines.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")))

    def identify(self, pack: str, u: workload.User, session: str, **kw: Any) -> None:
        ts = self.tick()
        self.event("identify", session, workload.identify_payload(pack, u, ts, self.rng, **kw), ts)

    def track(self, session: str, email: str | None = None) -> None:
        name = self.rng.choice(workload.TRACK_NAMES[PACK[self.part]])
        payload: dict[str, Any] = {"name": name, "properties": {"post": f"p{self.count}"}}
        if email is not None:
            payload["email"] = email
        self.event("track", session, payload, self.tick())


def _new_user(k: int) -> workload.User:
    """The ``k``-th hot-key user: ids and names of the workload's kind, outside its universe."""
    return workload.user(2 * workload.UNIVERSE + k)


def _spread(email: str, k: int) -> str:
    """The control's ``k``-th address in place of the one shared address."""
    local, _, domain = email.partition("@")
    return f"{local}.{k}@{domain}"


def shared_email(n: int, seed: int = 1, spread: bool = False) -> HotLog:
    w = _Writer("shared", seed)
    for k in range(n):
        email = _spread(SHARED_EMAIL, k) if spread else SHARED_EMAIL
        w.identify("helpshift", _new_user(k), w.session(), email=email)
    start = len(w.lines) - max(1, round(n * TAIL))
    return HotLog(
        "shared",
        "helpshift",
        w.lines,
        start,
        {"identified": n},
        f"{n:,} identifies, distinct user ids and new sessions, one email",
    )


def inline_email(n: int, seed: int = 1, spread: bool = False) -> HotLog:
    w = _Writer("inline", seed)
    tracks, identifies = 2 * n, max(1, n // 10)
    for k in range(tracks):
        w.track(w.session(), _spread(INLINE_EMAIL, k) if spread else INLINE_EMAIL)
    start = len(w.lines)
    for k in range(identifies):
        email = _spread(INLINE_EMAIL, k * 2) if spread else INLINE_EMAIL
        w.identify("helpshift", _new_user(k), w.session(), email=email)
    return HotLog(
        "inline",
        "helpshift",
        w.lines,
        start,
        {"recorded": tracks, "identified": identifies},
        f"{tracks:,} anonymous tracks (new sessions) with one inline email, then "
        f"{identifies:,} identifies with it (the tail)",
    )


def merges(n: int, seed: int = 1, spread: bool = False) -> HotLog:
    w = _Writer("merges", seed)
    users = [workload.user(MERGE_USER + k) for k in range(max(1, n // 100) if spread else 1)]
    for u in users:
        w.identify("strict", u, u.home)  # the profile every session is merged into
    sessions = 2 * n
    for k in range(sessions):
        session = w.session()
        w.track(session)
        w.identify("strict", users[k % len(users)], session)
    start = len(w.lines) - max(2, 2 * round(sessions * TAIL))
    return HotLog(
        "merges",
        "strict",
        w.lines,
        start,
        {"identified": sessions + len(users), "recorded": sessions},
        f"{len(users):,} user(s) from {sessions:,} new sessions, each an anonymous track then "
        f"an identify: {sessions:,} merges into {'one profile' if len(users) == 1 else 'them'}",
    )


GENERATORS: dict[str, Callable[[int, int, bool], HotLog]] = {
    "shared": shared_email,
    "inline": inline_email,
    "merges": merges,
}


def size(scale: float) -> int:
    """``n`` for a scale: at least 10, so a tiny scale still has a tail."""
    return max(10, round(BASE * scale))


def generate(part: str, scale: float = 1.0, seed: int = 1, spread: bool = False) -> HotLog:
    """One part's log (``spread``: its control, the key spread over distinct values)."""
    if part not in GENERATORS:
        raise ValueError(f"unknown hot-key part {part!r} (one of {', '.join(PARTS)})")
    return GENERATORS[part](size(scale), seed, spread)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", required=True, choices=PARTS)
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: n = 10,000")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    log = generate(args.part, args.scale, args.seed)
    print(
        f"{log.part} ({log.pack}): {log.describe}; {len(log.lines):,} events, tail from line "
        f"{log.tail_start + 1:,}",
        file=sys.stderr,
    )
    out = sys.stdout
    for line in log.lines:
        out.write(line + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # stdout closed early (| head): stop quietly
        workload.quiet_broken_pipe()
        sys.exit(1)
