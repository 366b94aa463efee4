"""``idrules serve`` (SPEC §7) through real HTTP on loopback: a real server process (SQLite
store, API token), plain ``http.client`` requests. Decisions, profiles, history, limits,
authentication, errors, the access log, metrics and the OpenAPI document."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from serve_support import AUTH, TOKEN, Server

from idrules import Engine, Event, SqliteStore, export_rows, parse_line
from idrules.serve.limits import MAX_BODY
from idrules.serve.schemas import COMPONENTS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: helpshift, a SQLite store, a token."""
    tmp = tmp_path_factory.mktemp("serve")
    with Server(tmp, "--rules", "helpshift", "--store", tmp / "store.db") as running:
        running.store = tmp / "store.db"  # type: ignore[attr-defined]
        yield running
        assert running.stop() == 0


def identify(n: str, user: str, email: str | None = None, session: str = "b1") -> dict[str, Any]:
    payload: dict[str, Any] = {"userId": user}
    if email:
        payload["userEmail"] = email
    return {"id": n, "ts": "2026-03-01T12:00:00Z", "type": "identify", "session": session,
            "payload": payload}  # fmt: skip


def track(n: str, session: str) -> dict[str, Any]:
    return {"id": n, "type": "track", "session": session, "payload": {"name": "x"}}


class TestDecide:
    """POST /v1/decide."""

    def test_the_engines_decision(self, server: Server) -> None:
        """The answer is the decision the engine makes of the same event, as JSON."""
        event = identify("d-1", "u_decide", "Ada@Example.com")
        status, got = server.call("POST", "/v1/decide", event)
        assert status == 200
        assert got == Engine("helpshift").decide(event).to_dict()

    def test_id_and_ts_assigned(self, server: Server) -> None:
        """Without id and ts the server assigns a unique id (and its clock): two calls, two
        events."""
        event = {"type": "track", "session": "b-assign", "payload": {"name": "vote"}}
        first = server.call("POST", "/v1/decide", event)[1]
        second = server.call("POST", "/v1/decide", event)[1]
        assert first["outcome"] == second["outcome"] == "recorded"
        assert first["event_id"].startswith("http-") and second["event_id"].startswith("http-")
        assert first["event_id"] != second["event_id"]

    def test_refused_event_is_200_rejected(self, server: Server) -> None:
        """A JSON object that is not a valid event is decided: 200, rejected, event.invalid."""
        status, got = server.call("POST", "/v1/decide", {"id": "d-bad", "type": "jump"})
        assert status == 200
        assert (got["outcome"], got["reasons"][0]["code"]) == ("rejected", "event.invalid")

    def test_second_time_is_a_duplicate(self, server: Server) -> None:
        """The same event id twice: the second is a duplicate."""
        event = identify("d-dup", "u_dup")
        assert server.call("POST", "/v1/decide", event)[1]["outcome"] == "identified"
        assert server.call("POST", "/v1/decide", event)[1]["outcome"] == "duplicate"


class TestLimits:
    """Bodies: 64 KiB at most (413), one strict JSON object (400 with an error)."""

    def test_64_kib_accepted_one_byte_more_refused(self, server: Server) -> None:
        """A body of exactly 64 KiB is decided; one byte more is 413, before it is read."""
        text = json.dumps(identify("lim-1", "u_lim"))
        exact = text + " " * (MAX_BODY - len(text))
        assert server.request("POST", "/v1/decide", exact, AUTH)[0] == 200
        status, _, body = server.request("POST", "/v1/decide", exact + " ", AUTH)
        assert status == 413 and "64 KiB" in json.loads(body)["error"]

    def test_streamed_body_counted(self, server: Server) -> None:
        """A chunked body (no Content-Length) is refused once it passes 64 KiB."""
        conn = server.connection()
        chunks = (b" " * 8192 for _ in range(10))
        conn.request("POST", "/v1/decide", body=chunks, headers=AUTH, encode_chunked=True)
        answer = conn.getresponse()
        assert answer.status == 413
        assert "error" in json.loads(answer.read())
        conn.close()

    @pytest.mark.parametrize(
        "body",
        [b"", b"[1]", b'"text"', b"3", b"null", b"{", b'{"id": NaN}', b'{"n": 1e400}',
         b'{"id": "a", "id": "b"}', b"\xff\xfe{}", b"{} {}"],
    )  # fmt: skip
    def test_not_one_json_object(self, server: Server, body: bytes) -> None:
        """Anything but one strict JSON object is 400 with {"error": "..."}."""
        status, headers, data = server.request("POST", "/v1/decide", body, AUTH)
        assert status == 400
        assert headers["content-type"] == "application/json"
        assert set(json.loads(data)) == {"error"}


class TestAuth:
    """IDRULES_API_TOKEN: every request but /healthz needs the bearer token."""

    @pytest.mark.parametrize(
        "headers",
        [{}, {"Authorization": "Bearer wrong-token-0123456789abcdef-0123456789"},
         {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"},
         {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": f"Bearer {TOKEN[:-1]}"}],
    )  # fmt: skip
    def test_refused_without_the_token(self, server: Server, headers: dict[str, str]) -> None:
        """Missing, wrong, truncated or differently schemed: 401 with an error, and no
        decision made."""
        for method, path in [("POST", "/v1/decide"), ("GET", "/metrics"), ("GET", "/nowhere")]:
            status, answer, data = server.request(method, path, b"{}", headers)
            assert status == 401, (method, path)
            assert answer["www-authenticate"].startswith("Bearer")
            assert "error" in json.loads(data)

    def test_scheme_any_case(self, server: Server) -> None:
        """`bearer` in any case is the same scheme."""
        status, _, _ = server.request("GET", "/metrics", None, {"Authorization": f"bEaReR {TOKEN}"})
        assert status == 200

    def test_two_authorization_headers_refused(self, server: Server) -> None:
        """Two Authorization headers (one right) are refused: which one counts is ambiguous."""
        conn = server.connection()
        conn.putrequest("GET", "/metrics")
        conn.putheader("Authorization", "Bearer nope")
        conn.putheader("Authorization", f"Bearer {TOKEN}")
        conn.endheaders()
        assert conn.getresponse().status == 401
        conn.close()

    def test_healthz_is_open(self, server: Server) -> None:
        """/healthz answers without a token."""
        status, _, data = server.request("GET", "/healthz")
        assert (status, json.loads(data)) == (200, {"status": "ok"})


class TestRoutes:
    """Unknown routes and wrong methods answer JSON."""

    def test_unknown_route_404(self, server: Server) -> None:
        """An unknown path is 404 {"error"}."""
        status, got = server.call("GET", "/v2/decide")
        assert status == 404 and "/v2/decide" in got["error"]

    def test_wrong_method_405(self, server: Server) -> None:
        """A known path with another method is 405 {"error"}, naming the allowed ones."""
        status, headers, data = server.request("GET", "/v1/decide", None, AUTH)
        assert status == 405 and "POST" in headers["allow"]
        assert "error" in json.loads(data)


class TestProfiles:
    """GET /v1/profiles/{profile}."""

    def test_the_export_row(self, server: Server) -> None:
        """The profile as `idrules export` writes it; 404 for an unknown one."""
        decided = server.call("POST", "/v1/decide", identify("p-1", "u_prof", "p@example.com"))
        profile = decided[1]["profile"]
        server.call("POST", "/v1/decide", track("p-2", "b1"))
        status, got = server.call("GET", f"/v1/profiles/{profile}")
        assert status == 200
        reader = SqliteStore(server.store, readonly=True)  # type: ignore[attr-defined]
        try:
            assert got == next(r for r in export_rows(reader) if r["profile"] == profile)
        finally:
            reader.close()
        assert got["activity"] == ["p-2"]
        status, got = server.call("GET", "/v1/profiles/p_0000000000000000")
        assert status == 404 and "error" in got


class TestHistory:
    """GET /v1/history: the decisions that touched a profile, oldest first."""

    def test_by_user_id_email_and_profile(self, server: Server) -> None:
        """One profile's decisions, in order, whichever way it is named."""
        server.call("POST", "/v1/decide", identify("h-1", "u_hist", "Hist@Example.com", "bh"))
        server.call("POST", "/v1/decide", track("h-2", "bh"))
        server.call("POST", "/v1/decide", identify("h-3", "u_hist", None, "bh"))
        status, got = server.call("GET", "/v1/history?user_id=u_hist")
        assert status == 200
        assert [d["event_id"] for d in got["decisions"]] == ["h-1", "h-2", "h-3"]
        assert server.call("GET", "/v1/history?email=hist%40example.COM")[1] == got
        assert server.call("GET", f"/v1/history?profile={got['profile']}")[1] == got

    @pytest.mark.parametrize(
        "query",
        ["", "?user_id=", "?user_id=a&email=b@example.com", "?userId=u", "?user_id=a&user_id=b"],
    )
    def test_exactly_one_key(self, server: Server, query: str) -> None:
        """None, empty, two, or an unknown parameter: 400."""
        status, got = server.call("GET", "/v1/history" + query)
        assert status == 400 and "exactly one" in got["error"]

    def test_unknown_404_ambiguous_409(self, server: Server) -> None:
        """No holder: 404; an email held by two profiles: 409 naming both."""
        assert server.call("GET", "/v1/history?user_id=nobody")[0] == 404
        server.call("POST", "/v1/decide", identify("a-1", "u_a1", "shared@example.com", "s1a"))
        server.call("POST", "/v1/decide", identify("a-2", "u_a2", "shared@example.com", "s2a"))
        status, got = server.call("GET", "/v1/history?email=shared@example.com")
        assert status == 409 and len(got["profiles"]) == 2

    def test_memory_store_has_no_history(self, tmp_path: Path) -> None:
        """A memory store keeps no records: no /v1/history route (404 saying so), and the
        document does not list it."""
        with Server(tmp_path, "--rules", "helpshift", token=None) as running:
            status, _, data = running.request("GET", "/v1/history?user_id=u")
            assert status == 404 and "error" in json.loads(data)
            document = json.loads(running.request("GET", "/openapi.json")[2])
            assert "/v1/history" not in document["paths"] and "/v1/decide" in document["paths"]
            assert "security" not in document
            assert running.stop() == 0


class TestAccessLog:
    """One JSON line per request on stderr; never a token, a query or a body."""

    def test_lines(self, server: Server) -> None:
        """Every request logged with its fields; a decision's line names its event id;
        neither the token, the query string nor the body's values appear anywhere."""
        server.call("POST", "/v1/decide", identify("log-1", "u_log", "sekrit.person@example.com"))
        server.call("GET", "/v1/history?email=sekrit.person@example.com")
        server.request("GET", "/metrics", None, {"Authorization": "Bearer not-the-token-at-all"})
        entries = server.access_log()
        decided = [e for e in entries if e["event_id"] == "log-1"]
        assert len(decided) == 1
        assert decided[0]["method"] == "POST" and decided[0]["status"] == 200
        assert set(decided[0]) == {"ts", "method", "path", "status", "ms", "event_id"}
        assert any(e["path"] == "/v1/history" and e["status"] == 200 for e in entries)
        assert any(e["path"] == "/metrics" and e["status"] == 401 for e in entries)
        text = server.stderr_path.read_text()
        for secret in (TOKEN, "not-the-token-at-all", "sekrit", "Authorization", "email="):
            assert secret not in text


class TestMetrics:
    """GET /metrics: Prometheus text, idrules_* names."""

    def test_decisions_by_outcome_and_latency(self, server: Server) -> None:
        """Two identified and one rejected decision move the counters and the histogram."""
        before = metrics(server)
        server.call("POST", "/v1/decide", identify("m-1", "u_m1"))
        server.call("POST", "/v1/decide", identify("m-2", "u_m2"))
        server.call("POST", "/v1/decide", {"id": "m-3", "type": "?"})
        after = metrics(server)

        def delta(name: str) -> float:
            return after.get(name, 0.0) - before.get(name, 0.0)

        assert delta('idrules_decisions_total{outcome="identified"}') == 2
        assert delta('idrules_decisions_total{outcome="rejected"}') == 1
        assert delta("idrules_decision_seconds_count") == 3
        assert delta('idrules_http_responses_total{status="200"}') >= 3


def metrics(server: Server) -> dict[str, float]:
    """The samples of /metrics, by name and labels."""
    status, headers, data = server.request("GET", "/metrics", None, AUTH)
    assert status == 200 and headers["content-type"].startswith("text/plain")
    samples = {}
    for line in data.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


class TestOpenAPI:
    """GET /openapi.json: generated from the route table, valid OpenAPI 3.1."""

    def test_valid_and_complete(self, server: Server) -> None:
        """Valid against the OpenAPI 3.1 schema (schemathesis' own check), every schema a
        valid JSON Schema, every route of SPEC §7 there, the token scheme declared, and
        /healthz open."""
        status, document = server.call("GET", "/openapi.json")
        assert status == 200
        schemathesis.openapi.from_dict(document).validate()
        for schema in document["components"]["schemas"].values():
            Draft202012Validator.check_schema(schema)
        assert document["components"]["schemas"] == json.loads(json.dumps(COMPONENTS))
        assert {(p, m) for p, ops in document["paths"].items() for m in ops} == {
            ("/v1/decide", "post"),
            ("/v1/profiles/{profile}", "get"),
            ("/v1/history", "get"),
            ("/healthz", "get"),
            ("/metrics", "get"),
            ("/openapi.json", "get"),
        }
        assert document["security"] == [{"bearer": []}]
        assert document["paths"]["/healthz"]["get"]["security"] == []
        assert "413" in document["paths"]["/v1/decide"]["post"]["responses"]


class TestStartup:
    """What `idrules serve` refuses before it listens (one line on stderr)."""

    def test_without_the_extra(self, tmp_path: Path) -> None:
        """Without Starlette installed: one line saying how to install the extra."""
        from cli_support import assert_one_line_error

        proc = _python(
            "import sys; sys.modules['starlette'] = None; sys.argv = ['idrules', 'serve', "
            "'--rules', 'helpshift']; from idrules.__main__ import main; main()"
        )
        assert_one_line_error(proc, "pip install 'idrules[serve]'")

    def test_short_token(self) -> None:
        """A token under 32 bytes: exit 1, one line, the token not shown."""
        from cli_support import assert_one_line_error, clean_env, cli

        proc = cli("serve", "--rules", "helpshift", env=clean_env(IDRULES_API_TOKEN="short-tok"))
        line = assert_one_line_error(proc, "IDRULES_API_TOKEN", "at least 32 bytes")
        assert "short-tok" not in line

    @pytest.mark.parametrize("host", ["0.0.0.0"])
    def test_public_host_needs_a_token(self, host: str) -> None:
        """Another address than loopback without a token: usage error, exit 2."""
        from cli_support import assert_one_line_usage_error, cli

        proc = cli("serve", "--rules", "helpshift", "--host", host)
        assert_one_line_usage_error(proc, "IDRULES_API_TOKEN", "loopback")

    def test_workers_need_a_shared_store(self) -> None:
        """--workers 2 with the in-memory store: usage error, exit 2."""
        from cli_support import assert_one_line_usage_error, cli

        proc = cli("serve", "--rules", "helpshift", "--workers", "2")
        assert_one_line_usage_error(proc, "--workers 2 needs --store")

    def test_port_in_use(self) -> None:
        """A port another socket holds: exit 1, one line."""
        from cli_support import assert_one_line_error, cli

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = str(taken.getsockname()[1])
            proc = cli("serve", "--rules", "helpshift", "--port", port)
        assert_one_line_error(proc, "cannot listen on 127.0.0.1:" + port)


def _python(code: str) -> Any:
    import subprocess
    import sys

    from cli_support import clean_env

    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(), timeout=60
    )
    return proc


class TestSchemas:
    """The JSON Schemas of the document describe what the engine really writes."""

    @pytest.mark.parametrize("pack", ["helpshift", "quackback"])
    def test_real_events_decisions_profiles_records(self, pack: str, tmp_path: Path) -> None:
        """The shipped example log of a pack: every event fits Event, every decision
        Decision, every export row Profile, every stored record DecisionRecord, and a
        history answer History."""
        from idrules.audit.records import record_dict
        from idrules.serve.schemas import DECISION, EVENT, HISTORY, PROFILE, RECORD

        secrets = json.loads((ROOT / "examples" / "demo-secrets.json").read_text())
        store = SqliteStore(tmp_path / "s.db")
        engine = Engine(pack, store, secrets=secrets, environ={})
        lines = [x for x in (ROOT / "examples" / f"{pack}-events.jsonl").read_text().splitlines()
                 if x.strip()]  # fmt: skip
        decisions = [engine.decide_line(line).to_dict() for line in lines]
        # the well-formed events (a log may hold malformed ones, decided event.invalid)
        events = [json.loads(x) for x in lines if isinstance(parse_line(x), Event)]
        assert events
        rows = list(export_rows(store))
        records = [record_dict(r) for r in store.history([r["profile"] for r in rows])]
        for schema, instances in [
            (EVENT, events), (DECISION, decisions), (PROFILE, rows), (RECORD, records),
            (HISTORY, [{"profile": rows[0]["profile"], "merged": [], "decisions": records}]),
        ]:  # fmt: skip
            validator = Draft202012Validator(schema)
            for instance in instances:
                validator.validate(instance)
        touched = [d["event_id"] for d in decisions if d["profile"] is not None]
        assert sorted(r["event_id"] for r in records) == sorted(touched)
        store.close()

    def test_schemas_refuse_what_the_engine_never_writes(self) -> None:
        """Not vacuous: an unknown outcome, a missing key or an extra one is refused."""
        from idrules.serve.schemas import DECISION, PROFILE

        decision = Engine("helpshift").identify({"userId": "u"}, session="s").to_dict()
        row = {**export_rows_of_one()}
        validator, rows = Draft202012Validator(DECISION), Draft202012Validator(PROFILE)
        assert validator.is_valid(decision) and rows.is_valid(row)
        assert not validator.is_valid({**decision, "outcome": "merged"})
        assert not validator.is_valid({k: v for k, v in decision.items() if k != "reasons"})
        assert not rows.is_valid({**row, "secret": "x"})
        assert not rows.is_valid({**row, "state": "deleted"})


def export_rows_of_one() -> dict[str, Any]:
    engine = Engine("helpshift")
    engine.identify({"userId": "u", "userEmail": "u@example.com"}, session="s")
    return next(export_rows(engine.store))


class TestLoopback:
    """Which --host counts as loopback (no token needed)."""

    @given(st.ip_addresses(v=4))
    def test_ipv4_law(self, address: Any) -> None:
        """An IPv4 address is loopback exactly when it is in 127.0.0.0/8."""
        from idrules.serve.config import is_loopback

        assert is_loopback(str(address)) == (str(address).split(".")[0] == "127")

    @pytest.mark.parametrize(
        ("host", "loopback"),
        [("localhost", True), ("LOCALHOST", True), ("::1", True), ("[::1]", True),
         ("::", False), ("0.0.0.0", False), ("", False), ("localhost.example.com", False),
         ("::ffff:10.0.0.1", False)],
    )  # fmt: skip
    def test_names(self, host: str, loopback: bool) -> None:
        """Names and IPv6: only localhost and ::1; any other name may resolve anywhere."""
        from idrules.serve.config import is_loopback

        assert is_loopback(host) is loopback


class TestUnexpectedFailure:
    """A failure no handler expected: a 500 with a JSON body, its type (never its text) in
    the log line."""

    def test_500_and_its_type_only(self) -> None:
        """The access log turns an exception into 500 {"error"}, logging only its type."""
        import asyncio

        from idrules.serve.accesslog import AccessLog

        async def broken(scope: Any, receive: Any, send: Any) -> None:
            raise RuntimeError("the text quotes a secret-value")

        entries: list[dict[str, Any]] = []
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}
        asyncio.run(AccessLog(broken, entries.append)(scope, receive, send))
        assert sent[0]["status"] == 500
        assert json.loads(sent[1]["body"]) == {"error": "internal error: see the server's log"}
        assert entries[0]["status"] == 500 and entries[0]["error"] == "RuntimeError"
        assert "secret-value" not in json.dumps(entries)
