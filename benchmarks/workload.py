"""Synthetic identity logs for the benchmarks, deterministic from a seed.

One log per shipped pack, in that pack's own dialect (payload keys), with valid HMACs and JWTs
made with a fixed benchmark secret at each event's own ``ts``. The mix is what a widget's
backend sees: mostly returning users identifying again and their activity, some new users,
anonymous visitors (``track``) who then log in, logouts, a user switching on a shared session,
retried (duplicate) events and a few percent of bad input (bad emails, over-long, padded and
placeholder ids, bad signatures and tokens, malformed lines).

Users are numbered in a fixed universe of ``UNIVERSE`` indices; a user's id, email, name and
flags are pure functions of the index (no randomness), so a store can be pre-filled with any
number of them without generating anything. The log's returning users come from a pool of
``POOL`` users spread evenly over the universe (every ``STRIDE``-th index): a store pre-filled
with 10k profiles holds exactly the pool, one with 1M holds the pool and 990k others between
them, so the same log runs against both. New users in the log take indices past the universe.

Determinism: ``random.Random(seed)`` only, no wall clock; the same pack, size and seed give the
same bytes.

    python benchmarks/workload.py --pack strict --events 100000 --seed 1 > /tmp/strict.jsonl
    python benchmarks/workload.py --pack strict --prefill 10000 > /tmp/strict-prefill.jsonl
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

#: the benchmark secret (key ``current``); >= 32 bytes, public on purpose: benchmark data only
SECRET = "idrules-benchmark-secret-not-for-production-0123456789"
SECRET_BYTES = SECRET.encode()
SECRETS = {"current": SECRET}
#: a different secret: what a forged or stale signature was made with
WRONG_SECRET = b"some-other-widget-secret-that-does-not-verify-0000"

PACKS = ("helpshift", "strict", "quackback", "replyful", "userjot", "lumio")
UNIVERSE = 1_000_000
POOL = 10_000
STRIDE = UNIVERSE // POOL

T0 = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())  # the log starts here
PREFILL_TS = T0 - 86_400  # pre-filled profiles were all made a day before
MEAN_GAP_S = 2.5  # mean seconds between events: 100k events ~ 3 days, 1M ~ 29 days

FIRST = [
    "ada",
    "alan",
    "grace",
    "linus",
    "ken",
    "barbara",
    "edsger",
    "donald",
    "margaret",
    "dennis",
    "frances",
    "john",
    "radia",
    "tim",
    "vint",
    "anita",
    "shafi",
    "leslie",
    "judea",
    "sophie",
]
LAST = [
    "lovelace",
    "turing",
    "hopper",
    "torvalds",
    "thompson",
    "liskov",
    "dijkstra",
    "knuth",
    "hamilton",
    "ritchie",
    "allen",
    "backus",
    "perlman",
    "lee",
    "cerf",
    "borg",
    "goldwasser",
    "lamport",
    "pearl",
    "wilson",
]
INTL_FIRST = ("josé", "zoë", "søren", "françois", "łukasz")  # internationalised local parts
DOMAINS = ("example.com", "example.org", "mail.example.net", "corp.example.io")
PLANS = ("free", "pro", "team", "enterprise")

_MASK = 0xFFFFFFFF


def _mix(i: int) -> int:
    """A fixed bijection of the index onto 32 bits (ids look random, never collide)."""
    return (i * 0x9E3779B1) & _MASK


def _mix2(i: int) -> int:
    x = (i + 0x7F4A7C15) * 0x85EBCA6B & _MASK
    return (x ^ (x >> 13)) * 0xC2B2AE35 & _MASK


@dataclass(frozen=True, slots=True)
class User:
    """One user of the universe: every value derived from the index."""

    index: int
    uid: str
    email: str  # already in email-validator's normalised form
    first: str
    last: str
    avatar: str | None
    plan: str
    company: str
    signs: bool  # userjot: signs its calls; quackback: logs in with an SSO token

    @property
    def name(self) -> str:
        return f"{self.first.title()} {self.last.title()}"

    @property
    def home(self) -> str:
        """The user's own browser session (the one a pre-filled profile acts in)."""
        return f"h_{_mix2(self.index):08x}{self.index:x}"


def user(i: int) -> User:
    h, g = _mix(i), _mix2(i)
    intl = g % 100 == 7  # ~1% internationalised addresses (email-validator's slow path)
    first = INTL_FIRST[h % len(INTL_FIRST)] if intl else FIRST[h % len(FIRST)]
    last = LAST[(h >> 8) % len(LAST)]
    email = f"{first}.{last}.{i}@{DOMAINS[(h >> 16) % len(DOMAINS)]}"
    avatar = f"https://cdn.example.com/avatars/{h:08x}.png" if g % 3 == 0 else None
    return User(
        index=i,
        uid=f"u_{h:08x}",
        email=email,
        first=first,
        last=last,
        avatar=avatar,
        plan=PLANS[(g >> 4) % len(PLANS)],
        company=f"company-{(g >> 8) % 5000}",
        signs=(g >> 20) % 10 < 6,
    )


def prefill_indices(n: int) -> list[int]:
    """The universe indices a store pre-filled with ``n`` profiles holds (in creation order).

    Evenly spread over the universe, so n = 10k is exactly the log's pool and n = 1M holds it.
    """
    if n <= 0:
        return []
    if n > UNIVERSE:
        raise ValueError(f"at most {UNIVERSE} pre-filled profiles")
    stride = UNIVERSE // n
    return list(range(0, stride * n, stride))


def pool_indices() -> list[int]:
    return list(range(0, UNIVERSE, STRIDE))


# --------------------------------------------------------------------------------------------
# time and proofs


def fmt_ts(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hmac_hex(message: str, key: bytes = SECRET_BYTES) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def hmac_b64(message: str, key: bytes = SECRET_BYTES) -> str:
    return base64.b64encode(hmac.new(key, message.encode(), hashlib.sha256).digest()).decode()


def make_jwt(claims: dict[str, Any], key: bytes | str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


# --------------------------------------------------------------------------------------------
# dialects: one identify payload per pack

#: flaws an identify call may carry (the bad-input share of the log)
FLAWS = (
    "bad_email",
    "long_id",
    "padded_id",
    "placeholder_id",
    "bad_proof",
    "no_proof",
    "expired_token",
    "garbage_token",
    "no_id",
)
BAD_EMAILS = ("not-an-email", "ada@", "two@@example.com", "x@localhost", "a b@example.com")


def identify_payload(
    pack: str,
    u: User,
    ts: int,
    rng: random.Random,
    *,
    flaw: str | None = None,
    email: str | None = None,
    with_name: bool = True,
) -> dict[str, Any]:
    """The identify payload ``u``'s browser sends at ``ts`` in ``pack``'s dialect.

    ``email`` overrides the user's email (a shared mailbox, a mixed-case retype).
    """
    uid = u.uid
    mail = email if email is not None else u.email
    if flaw == "long_id":
        uid = uid + "x" * (800 if pack == "helpshift" else 300)
    elif flaw == "padded_id":
        uid = " " + uid
    elif flaw == "placeholder_id":
        uid = rng.choice(("undefined", "null", "[object Object]", "0"))
    if flaw == "bad_email":
        mail = rng.choice(BAD_EMAILS)
    if pack == "helpshift":
        p: dict[str, Any] = {"userId": uid, "userEmail": mail}
        if with_name:
            p["userName"] = u.name
        if flaw == "no_id":
            del p["userId"]  # an email-only lead
        return p
    if pack == "strict":
        p = {"user_id": uid, "email": mail}
        if with_name:
            p["name"] = u.name
        if u.avatar:
            p["avatar"] = u.avatar
        if rng.random() < 0.3:
            p["attributes"] = {"plan": u.plan}
        return _hmac_flaw(p, "signature", uid, flaw)
    if pack == "lumio":
        p = {"userId": uid, "email": mail}
        if with_name:
            p["name"] = u.name
        p["properties"] = {"plan": u.plan, "company": u.company}
        if flaw == "no_id":
            del p["userId"]
        return _hmac_flaw(p, "signature", uid, flaw)
    if pack == "userjot":
        first, _, last = u.name.partition(" ")
        p = {"id": uid, "email": mail, "firstName": first, "lastName": last}
        if u.avatar:
            p["avatar"] = u.avatar
        if u.signs or flaw in ("bad_proof", "no_proof"):
            p = _hmac_flaw(p, "signature", uid, flaw)
        return p
    if pack == "quackback":
        if u.signs or flaw in ("expired_token", "garbage_token", "bad_proof"):
            claims: dict[str, Any] = {"sub": uid, "email": mail}
            if with_name:
                claims["name"] = u.name
            if u.avatar:
                claims["avatarUrl"] = u.avatar
            claims["plan"] = u.plan
            return {"ssoToken": _token(claims, ts, rng, flaw)}
        p = {"id": uid, "email": mail, "plan": u.plan, "company": u.company}
        if with_name:
            p["name"] = u.name
        if flaw == "no_id":
            del p["id"]
        return p
    if pack == "replyful":
        claims = {"userId": uid, "email": mail, "plan": u.plan}
        if with_name:
            claims["name"] = u.name
        if flaw == "no_proof":
            return {}
        return {"token": _token(claims, ts, rng, flaw)}
    raise ValueError(f"unknown pack {pack!r}")


def _hmac_flaw(p: dict[str, Any], key: str, uid: str, flaw: str | None) -> dict[str, Any]:
    if flaw == "no_proof":
        return p
    if flaw == "bad_proof":
        p[key] = hmac_hex(uid, WRONG_SECRET)  # a stale secret, or a forged id
    else:
        p[key] = hmac_hex(uid)
    return p


def _token(claims: dict[str, Any], ts: int, rng: random.Random, flaw: str | None) -> str:
    iat = ts - rng.randint(0, 120)
    claims["iat"] = iat
    claims["exp"] = iat + 3600
    if flaw == "expired_token":
        claims["iat"] = iat - 7200
        claims["exp"] = iat - 3600
    if flaw == "bad_proof":
        return make_jwt(claims, WRONG_SECRET)
    if flaw == "garbage_token":
        return rng.choice(("not.a.jwt", "eyJhbGciOiJub25lIn0.e30.", "x" * 40))
    return make_jwt(claims)


def prefill_event(pack: str, i: int, seq: int) -> dict[str, Any]:
    """The identify event that made pre-filled profile ``i`` (the ``seq``-th), in ``pack``."""
    u = user(i)
    rng = random.Random(i)  # only for the (dropped) optional attributes of strict
    payload = identify_payload(pack, u, PREFILL_TS, rng)
    if pack == "quackback" and "ssoToken" in payload:
        # a fixed iat (no jitter) so the direct pre-fill below knows it without decoding
        claims = {"sub": u.uid, "email": u.email, "name": u.name, "plan": u.plan}
        if u.avatar:
            claims["avatarUrl"] = u.avatar
        claims.update(iat=PREFILL_TS, exp=PREFILL_TS + 3600)
        payload = {"ssoToken": make_jwt(claims)}
    if pack == "replyful":
        claims = {"userId": u.uid, "email": u.email, "plan": u.plan, "name": u.name}
        claims.update(iat=PREFILL_TS, exp=PREFILL_TS + 3600)
        payload = {"token": make_jwt(claims)}
    return {
        "id": f"pre-{seq}",
        "ts": fmt_ts(PREFILL_TS),
        "type": "identify",
        "session": u.home,
        "payload": payload,
    }


def prefill_events(pack: str, n: int) -> Iterator[dict[str, Any]]:
    for seq, i in enumerate(prefill_indices(n)):
        yield prefill_event(pack, i, seq)


def prefilled_profile(pack: str, i: int) -> dict[str, Any]:
    """What the engine stores for pre-fill user ``i``: the canonical values of its identify.

    The direct pre-fill (benchmarks/harness.py) writes these without deciding 1M events; the
    smoke test checks that they equal what deciding :func:`prefill_events` stores.
    """
    u = user(i)
    avatar = (
        u.avatar if pack in ("strict", "userjot") or (pack == "quackback" and u.signs) else None
    )
    attributes: dict[str, Any] = {}
    if pack == "lumio":
        attributes = {"company": u.company, "plan": u.plan}
    elif pack == "replyful":
        attributes = {"plan": u.plan}
    verified = {
        "helpshift": False,
        "strict": True,
        "lumio": True,
        "replyful": True,
        "userjot": u.signs,
        "quackback": u.signs,
    }[pack]
    return {
        "user_id": u.uid,
        "email": u.email,
        "name": u.name,
        "avatar": avatar,
        "verified": verified,
        "attributes": attributes,
        "session": u.home,
    }


# --------------------------------------------------------------------------------------------
# the log


TRACK_NAMES = {
    "helpshift": ("message", "open_chat", "message", "csat"),
    "strict": ("page_view", "vote", "comment", "message"),
    "quackback": ("vote", "post", "comment", "vote"),
    "replyful": ("message", "message", "open_chat", "rating"),
    "userjot": ("vote", "feedback", "vote", "comment"),
    "lumio": ("page_view", "click", "vote", "survey"),
}
#: packs whose widget prompts anonymous visitors for an email inline (others refuse it)
INLINE_EMAIL = {"helpshift": 0.15, "quackback": 0.9, "userjot": 0.6}

# scenario weights (per step; a step emits one or a few events)
SCENARIOS = (
    ("returning", 40.0),
    ("track_identified", 20.0),
    ("new_user", 4.0),
    ("anon_then_login", 5.0),
    ("anon_only", 4.0),
    ("logout", 4.0),
    ("switch", 2.0),
    ("shared_email", 0.5),
    ("lead", 0.5),
    ("anon_identify", 1.0),
    ("flawed", 3.0),
    ("malformed", 0.6),
    ("duplicate", 1.5),
)


class LogGenerator:
    """Generates one pack's log; state is what a real site would have (who is logged in where)."""

    def __init__(self, pack: str, seed: int, *, pool: list[int] | None = None) -> None:
        if pack not in PACKS:
            raise ValueError(f"unknown pack {pack!r} (one of {', '.join(PACKS)})")
        self.pack = pack
        self.rng = random.Random(seed)
        self.pool = pool if pool is not None else pool_indices()
        self.created: list[int] = []  # users the log itself created
        self.next_user = UNIVERSE
        self.t = float(T0)
        self.count = 0
        # sessions acting as an identified user: list + position, for O(1) pick and removal
        self.acting: list[str] = []
        self.acting_pos: dict[str, int] = {}
        self.acting_user: dict[str, int] = {}
        for i in self.pool:  # pre-filled profiles act in their home sessions
            self._set_acting(user(i).home, i)
        self.anon_sessions: deque[str] = deque(maxlen=5000)
        self.recent: deque[str] = deque(maxlen=200)
        self.next_session = 0
        self.names, self.weights = zip(*SCENARIOS, strict=True)

    # ---- helpers --------------------------------------------------------------------------
    def _set_acting(self, session: str, i: int | None) -> None:
        if i is None:
            pos = self.acting_pos.pop(session, None)
            if pos is not None:
                last = self.acting.pop()
                if last != session:
                    self.acting[pos] = last
                    self.acting_pos[last] = pos
                del self.acting_user[session]
            return
        if session not in self.acting_pos:
            self.acting_pos[session] = len(self.acting)
            self.acting.append(session)
        self.acting_user[session] = i

    def _tick(self) -> int:
        self.t += self.rng.expovariate(1.0 / MEAN_GAP_S)
        return int(self.t)

    def _event(self, kind: str, session: str | None, payload: Any, ts: int | None = None) -> str:
        ts = self._tick() if ts is None else ts
        self.count += 1
        event: dict[str, Any] = {"id": f"evt-{self.count:07d}", "ts": fmt_ts(ts), "type": kind}
        if session is not None:
            event["session"] = session
        if kind != "logout":
            event["payload"] = payload
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        self.recent.append(line)
        return line

    def _known(self) -> int:
        """A returning user: mostly the pre-filled pool (popular ones more), else a new one."""
        rng = self.rng
        if self.created and rng.random() < 0.25:
            return self.created[int(len(self.created) * rng.random() ** 1.5)]
        return self.pool[int(len(self.pool) * rng.random() ** 2)]

    def _new_user(self) -> int:
        i = self.next_user
        self.next_user += 1
        self.created.append(i)
        return i

    def _new_session(self, prefix: str) -> str:
        self.next_session += 1
        return f"{prefix}_{self.rng.getrandbits(40):010x}{self.next_session:x}"

    def _identify(self, i: int, session: str | None, *, flaw: str | None = None, **kw: Any) -> str:
        ts = self._tick()
        payload = identify_payload(self.pack, user(i), ts, self.rng, flaw=flaw, **kw)
        return self._event("identify", session, payload, ts)

    def _track(self, session: str, *, email: str | None = None) -> str:
        """Activity; ``email``: an anonymous visitor's address, given inline when prompted."""
        rng = self.rng
        name = rng.choice(TRACK_NAMES[self.pack])
        payload: dict[str, Any] = {"name": name}
        if rng.random() < 0.6:
            payload["properties"] = {"post": f"p{rng.randint(1, 5000)}"}
        share = INLINE_EMAIL.get(self.pack, 0.0)
        if email is not None and share and rng.random() < share:
            payload["email"] = email
        return self._event("track", session, payload)

    # ---- scenarios ------------------------------------------------------------------------
    def returning(self) -> Iterator[str]:
        rng = self.rng
        i = self._known()
        u = user(i)
        r = rng.random()
        session = u.home if r < 0.85 else self._new_session("d")
        kw: dict[str, Any] = {}
        r = rng.random()
        if r < 0.03:
            local, _, domain = u.email.partition("@")
            kw["email"] = f"{local.title()}@{domain.upper()}"  # retyped: same match key
        elif r < 0.10:
            kw["with_name"] = False
        yield self._identify(i, session, **kw)
        self._set_acting(session, i)
        for _ in range(rng.choice((0, 0, 1, 2))):
            yield self._track(session)

    def track_identified(self) -> Iterator[str]:
        if not self.acting:
            return
        yield self._track(self.rng.choice(self.acting))

    def new_user(self) -> Iterator[str]:
        i = self._new_user()
        session = user(i).home
        yield self._identify(i, session)
        self._set_acting(session, i)

    def anon_then_login(self) -> Iterator[str]:
        rng = self.rng
        session = self._new_session("a")
        i = self._new_user() if rng.random() < 0.6 else self._known()
        for _ in range(rng.randint(1, 3)):
            yield self._track(session, email=user(i).email)
        yield self._identify(i, session)
        self._set_acting(session, i)

    def anon_only(self) -> Iterator[str]:
        rng = self.rng
        if self.anon_sessions and rng.random() < 0.3:
            session = rng.choice(self.anon_sessions)  # a visitor coming back (maybe days later)
        else:
            session = self._new_session("a")
            self.anon_sessions.append(session)
        email = f"visitor.{session[2:]}@example.com"  # a visitor who never signs up
        for _ in range(rng.randint(1, 2)):
            yield self._track(session, email=email)

    def anon_identify(self) -> Iterator[str]:
        """identify() without identifiers: a widget booted for a visitor."""
        session = self._new_session("a")
        self.anon_sessions.append(session)
        payload: dict[str, Any] = {}
        if self.pack == "replyful":
            payload = {"token": None}
        elif self.pack == "userjot":
            payload = {"firstName": "Guest"}
        yield self._event("identify", session, payload)

    def logout(self) -> Iterator[str]:
        if not self.acting:
            return
        session = self.rng.choice(self.acting)
        self._set_acting(session, None)
        if self.pack == "userjot" or self.rng.random() < 0.1:
            yield self._event("identify", session, None)  # identify(null)
        else:
            yield self._event("logout", session, None)

    def switch(self) -> Iterator[str]:
        """Another user logs in on a shared computer still acting as someone else."""
        if not self.acting:
            return
        session = self.rng.choice(self.acting)
        i = self._known()
        yield self._identify(i, session)
        self._set_acting(session, i)

    def shared_email(self) -> Iterator[str]:
        """A new user id with an existing user's email (a shared mailbox)."""
        i = self._new_user()
        other = user(self._known())
        session = user(i).home
        yield self._identify(i, session, email=other.email)
        self._set_acting(session, i)

    def lead(self) -> Iterator[str]:
        """Helpshift: an email-only identify (a lead), who later signs up with an id."""
        if self.pack != "helpshift":
            yield from self.new_user()
            return
        i = self._new_user()
        session = user(i).home
        yield self._identify(i, session, flaw="no_id")
        self._set_acting(session, i)
        yield self._identify(i, session)

    def flawed(self) -> Iterator[str]:
        rng = self.rng
        pack = self.pack
        if pack in ("quackback", "replyful"):
            options = ["bad_email", "long_id", "padded_id", "expired_token", "garbage_token"]
            options.append("bad_proof")
            if pack == "replyful":
                options.append("no_proof")
            else:
                options.append("no_id")
        elif pack == "helpshift":
            options = ["bad_email", "long_id", "padded_id", "bad_email"]
        else:
            options = ["bad_email", "long_id", "padded_id", "bad_proof", "no_proof"]
            if pack == "strict":
                options.append("placeholder_id")
            if pack == "lumio":
                options.append("no_id")
        flaw = rng.choice(options)
        i = self._known()
        session = user(i).home if rng.random() < 0.7 else self._new_session("d")
        yield self._identify(i, session, flaw=flaw)

    def malformed(self) -> Iterator[str]:
        rng = self.rng
        ts = fmt_ts(self._tick())
        self.count += 1
        eid = f"evt-{self.count:07d}"
        choice = rng.randrange(7)
        if choice == 0:
            yield '{"id": "' + eid + '", "ts": "' + ts + '", "type": "identify", "payl'
        elif choice == 1:
            yield json.dumps({"id": eid, "type": "identify", "payload": {}})  # no ts
        elif choice == 2:
            yield json.dumps({"id": eid, "ts": "yesterday", "type": "track", "session": "x"})
        elif choice == 3:
            yield json.dumps({"id": eid, "ts": ts, "type": "page", "session": "x"})
        elif choice == 4:
            yield json.dumps({"id": eid, "ts": ts, "type": "track", "payload": {"name": "v"}})
        elif choice == 5:
            yield json.dumps({"ts": ts, "type": "logout", "session": "x"})  # no id
        else:
            yield "[1, 2, 3]"

    def duplicate(self) -> Iterator[str]:
        if self.recent:
            yield self.rng.choice(self.recent)  # a retried request, byte for byte

    # ---- driver ---------------------------------------------------------------------------
    def lines(self, events: int) -> Iterator[str]:
        """Exactly ``events`` log lines."""
        rng = self.rng
        emitted = 0
        while emitted < events:
            scenario = rng.choices(self.names, self.weights)[0]
            for line in getattr(self, scenario)():
                yield line
                emitted += 1
                if emitted >= events:
                    return


def generate(pack: str, events: int, seed: int = 1) -> list[str]:
    """The log as a list of lines (no newlines)."""
    return list(LogGenerator(pack, seed).lines(events))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", required=True, choices=PACKS)
    parser.add_argument("--events", type=int, default=10_000, help="events in the log")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--prefill",
        type=int,
        metavar="N",
        help="instead of a log: the identify events that pre-fill a store with N profiles",
    )
    args = parser.parse_args(argv)
    out = sys.stdout
    if args.prefill is not None:
        for event in prefill_events(args.pack, args.prefill):
            out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
        out.flush()
        return 0
    for line in LogGenerator(args.pack, args.seed).lines(args.events):
        out.write(line + "\n")
    out.flush()  # here, where a closed pipe is caught, not at interpreter exit
    return 0


def quiet_broken_pipe() -> None:
    """After stdout's reader went away (``| head``): point stdout at /dev/null, so the
    interpreter's last flush of what is still buffered does not print a second error."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # stdout closed early (| head): stop quietly
        quiet_broken_pipe()
        sys.exit(1)
