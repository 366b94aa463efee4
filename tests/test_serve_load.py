"""``idrules serve`` under concurrent clients, at shut-down, and against its own OpenAPI
document: real server processes on loopback.

- many clients at once (threads, keep-alive connections) on shared users and sessions, some
  sending the same event: afterwards the store keeps every invariant of SPEC §3, each event
  was decided once, and the metrics (summed over the workers) count every decision;
- SIGTERM with a request in flight: the request is answered, the store closed, exit 0;
- schemathesis generates requests from /openapi.json: no answer is a 5xx.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from serve_support import AUTH, TOKEN, Server
from support import check_json_decisions

from idrules import SqliteStore
from idrules.store.base import Store

pytest_plugins = ["pg_support"]

#: helpshift, with anonymous sessions folded into the profile that identifies in them
MERGING = "extends: helpshift\nruleset: helpshift-merging\nanonymous: {on_identify: merge}\n"
USERS = [f"u{n}" for n in range(8)]
CLIENTS = 8
ROUNDS = 30


def _event(client: int, n: int) -> dict[str, Any]:
    """A client's n-th request: identifies, anonymous tracks (some with an inline email),
    logouts over shared users and sessions; every 6th is the same event in every client (a
    retried request), every 9th leaves id and ts to the server."""
    shared = n % 6 == 5
    c = 0 if shared else client
    user = USERS[(c + n) % len(USERS)]
    event: dict[str, Any] = {
        "id": f"shared-{n}" if shared else f"c{client}-{n}",
        "ts": f"2026-03-01T12:{n // 60:02d}:{n % 60:02d}Z",
        "session": f"s{(c * 3 + n) % 7}",
    }
    kind = n % 5
    if kind in (0, 3):
        event["type"] = "identify"
        event["payload"] = {"userId": user, "userEmail": f"{user}@example.com"}
    elif kind == 4 and n % 10 == 4:
        event["type"] = "logout"
    else:
        event["type"] = "track"
        event["payload"] = {"name": "vote"}
        if n % 4 == 1:
            event["payload"]["email"] = f"{user}@example.com"
    if n % 9 == 7 and not shared:
        del event["id"], event["ts"]
    return event


def _client(server: Server, client: int) -> list[dict[str, Any]]:
    """One client: its requests in order on one keep-alive connection."""
    conn = server.connection()
    try:
        out = []
        for n in range(ROUNDS):
            status, decision = server.call("POST", "/v1/decide", _event(client, n), conn)
            assert status == 200, decision
            out.append(decision)
        return out
    finally:
        conn.close()


def _hammer(server: Server) -> list[dict[str, Any]]:
    server.wait_ready()
    with ThreadPoolExecutor(CLIENTS) as pool:
        parts = list(pool.map(lambda c: _client(server, c), range(CLIENTS)))
    return [d for part in parts for d in part]


def _check(store: Store, decisions: list[dict[str, Any]], samples: dict[str, float]) -> None:
    """SPEC §3's invariants on the store, each event decided once, the metrics complete."""
    assert len(decisions) == CLIENTS * ROUNDS
    assert {"identified", "recorded", "duplicate"} <= {d["outcome"] for d in decisions}
    assert any(d["merged"] for d in decisions), "the workload merges no session"
    check_json_decisions(store, decisions)
    counted = sum(v for k, v in samples.items() if k.startswith("idrules_decisions_total{"))
    assert counted == len(decisions)


def _samples(server: Server) -> dict[str, float]:
    data = server.request("GET", "/metrics", None, AUTH)[2].decode()
    return {
        line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
        for line in data.splitlines()
        if line and not line.startswith("#")
    }


class TestConcurrentClients:
    """Many clients at once over real HTTP; the store checked afterwards."""

    def test_sqlite_two_workers(self, tmp_path: Path) -> None:
        """SQLite, two worker processes: every invariant holds, each event decided once."""
        rules = tmp_path / "merging.yaml"
        rules.write_text(MERGING)
        db = tmp_path / "store.db"
        with Server(tmp_path, "--rules", rules, "--store", db, "--workers", "2") as server:
            decisions = _hammer(server)
            samples = _samples(server)
            assert server.stop() == 0
        reader = SqliteStore(db, readonly=True)
        try:
            _check(reader, decisions, samples)
        finally:
            reader.close()

    def test_postgres_two_workers(self, pg_url: str, tmp_path: Path) -> None:
        """PostgreSQL, two worker processes (each a pool of connections): the same."""
        from idrules.store.postgres import PostgresStore

        rules = tmp_path / "merging.yaml"
        rules.write_text(MERGING)
        with Server(tmp_path, "--rules", rules, "--store", pg_url, "--workers", "2") as server:
            decisions = _hammer(server)
            samples = _samples(server)
            assert server.stop() == 0
        reader = PostgresStore(pg_url, readonly=True)
        try:
            _check(reader, decisions, samples)
        finally:
            reader.close()


class TestShutdown:
    """SIGTERM: the requests in flight are answered, the store closed, exit 0."""

    @pytest.mark.parametrize("workers", ["1", "2"])
    def test_request_in_flight_is_answered(self, tmp_path: Path, workers: str) -> None:
        """A request whose body is not sent yet when SIGTERM comes is still decided and
        answered; then the server exits 0 and the SQLite store was closed (no -wal file
        left, which a connection still open would keep)."""
        db = tmp_path / "store.db"
        args = ("--rules", "helpshift", "--store", db, "--workers", workers)
        with Server(tmp_path, *args) as server:
            server.wait_ready()
            body = json.dumps(
                {"id": "inflight", "type": "identify", "session": "b", "payload": {"userId": "u"}}
            ).encode()
            head = (
                f"POST /v1/decide HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Expect: 100-continue\r\n\r\n"
            ).encode()
            with socket.create_connection((server.host, server.port), timeout=60) as sock:
                sock.sendall(head)
                # "100 Continue" comes when the handler starts reading the body: the request
                # is in flight, inside the application
                assert _read_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 100 ")
                server.proc.send_signal(15)
                time.sleep(0.5)
                assert server.proc.poll() is None, "exited with a request in flight"
                sock.sendall(body)
                answer = _read_all(sock)
            assert answer.startswith(b"HTTP/1.1 200 "), answer
            assert json.loads(answer.partition(b"\r\n\r\n")[2])["event_id"] == "inflight"
            assert server.stop() == 0
            assert server.log_lines()[-1] == "idrules: stopped"
        assert not Path(f"{db}-wal").exists()
        reader = SqliteStore(db, readonly=True)
        try:
            assert reader.is_decided("inflight")
        finally:
            reader.close()

    def test_a_dead_worker_stops_the_service(self, tmp_path: Path) -> None:
        """A worker killed outright: the others are stopped, and the command exits 1 with
        one line naming the worker (no half-dead service serving on)."""
        args = ("--rules", "helpshift", "--store", tmp_path / "s.db", "--workers", "2")
        with Server(tmp_path, *args) as server:
            server.wait_ready()
            workers = _workers(server.proc.pid)
            assert len(workers) == 2
            os.kill(workers[0], 9)
            assert server.proc.wait(60) == 1
            last = server.log_lines()[-1]
            assert last.startswith("idrules: error: idrules serve worker ")
            assert f"(pid {workers[0]}) stopped with exit status -9" in last
            time.sleep(0.2)
            assert not Path(f"/proc/{workers[1]}").exists(), "the other worker still runs"


def _workers(pid: int) -> list[int]:
    """The worker processes of a server (its children running multiprocessing's spawn)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(c) for c in children
        if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()
    ]  # fmt: skip


def _read_until(sock: socket.socket, end: bytes) -> bytes:
    """Bytes up to and including ``end`` (one at a time: nothing after it is consumed)."""
    data = b""
    while not data.endswith(end):
        byte = sock.recv(1)
        if not byte:
            break
        data += byte
    return data


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection (it does: it is shutting down)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


class TestProperties:
    """schemathesis against the live server's own /openapi.json."""

    def test_no_server_error(self, tmp_path: Path) -> None:
        """Generated requests (valid and invalid) for every operation: never a 5xx."""
        db = tmp_path / "store.db"
        with Server(tmp_path, "--rules", "helpshift", "--store", db) as server:
            server.wait_ready()
            # fetched here, with the token (schemathesis 4.0 sends no header for the schema)
            document = tmp_path / "openapi.json"
            document.write_bytes(server.request("GET", "/openapi.json", None, AUTH)[2])
            proc = subprocess.run(
                [sys.executable, "-m", "schemathesis.cli", "run", str(document),
                 "--url", server.url, "--checks", "not_a_server_error", "--max-examples", "20",
                 "--seed", "1", "--header", f"Authorization: Bearer {TOKEN}", "--no-color"],
                capture_output=True, text=True, timeout=300, cwd=tmp_path,
                env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
            )  # fmt: skip
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
            answered = [e for e in server.access_log() if e["path"] == "/v1/decide"]
            assert len(answered) > 20, "schemathesis sent too few requests to mean anything"
            assert all(e["status"] < 500 for e in server.access_log())
            assert server.stop() == 0
