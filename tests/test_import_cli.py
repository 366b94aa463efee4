"""``idrules import`` through the real command line (docs/import.md, docs/cli.md): decisions
to --out or stdout, the summary and progress on stderr, stdin, refusals and bad files as one
line. The rules themselves are tested in process, in test_import.py."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from cli_support import assert_one_line_error, assert_one_line_usage_error, clean_env, cli

pytest_plugins = ["pg_support"]

USERS_CSV = (
    "User ID,Email,Name,verified,plan\n"
    "u_1,ada@example.com,Ada,true,pro\n"
    "u_2,not-an-email,Bob,,\n"
    "u_1,other@example.com,,,\n"
    "u_3,carol@example.com,Carol,maybe,\n"
    ",dan@example.com,Dan,false,free\n"
)


def users_file(tmp_path: Path, text: str = USERS_CSV, name: str = "users.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


class TestImportCommand:
    """idrules import USERS --rules RULES --store FILE [--out FILE]."""

    def test_import_then_again(self, tmp_path: Path) -> None:
        """Decisions to --out (row:N, N the line where the row starts), one summary line on
        stderr; the second import creates nothing and the export stays byte-identical."""
        users = users_file(tmp_path)
        first = cli(
            "import", users, "--rules", "helpshift", "--store", "s.db", "--out", "d1.jsonl",
            cwd=tmp_path,
        )  # fmt: skip
        assert first.returncode == 0 and first.stdout == "", first.stderr
        assert first.stderr.splitlines() == [
            "idrules: " + first.stderr.split("idrules: ", 1)[1].strip()
        ]
        assert "5 rows" in first.stderr and "2 created, 0 matched (0 updated), 3 rejected" in (
            first.stderr
        )
        decisions = [json.loads(line) for line in (tmp_path / "d1.jsonl").read_text().splitlines()]
        assert [d["event_id"] for d in decisions] == [f"row:{n}" for n in range(2, 7)]
        assert [d["outcome"] for d in decisions] == [
            "identified",
            "rejected",
            "rejected",
            "rejected",
            "identified",
        ]
        export = cli("export", "--store", "s.db", cwd=tmp_path)
        again = cli("import", users, "--rules", "helpshift", "--store", "s.db", cwd=tmp_path)
        assert again.returncode == 0
        assert "0 created, 2 matched (0 updated), 3 rejected" in again.stderr
        assert [json.loads(line)["created"] for line in again.stdout.splitlines()] == [False] * 5
        assert cli("export", "--store", "s.db", cwd=tmp_path).stdout == export.stdout
        exported = [json.loads(line) for line in export.stdout.splitlines()]
        assert [(p["user_id"], p["email"], p["verified"]) for p in exported] == [
            ("u_1", "ada@example.com", True),
            (None, "dan@example.com", False),
        ]

    def test_stdin_jsonl_and_quiet(self, tmp_path: Path) -> None:
        """- reads stdin (JSON lines told by the first character); -q leaves stderr empty."""
        rows = [{"user_id": "u_1", "email": "ada@example.com", "attributes": {"plan": "pro"}}]
        proc = cli(
            "import", "-", "--rules", "lumio", "--store", "s.db", "-q",
            stdin="\n".join(json.dumps(r) for r in rows) + "\n",
            cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0 and proc.stderr == ""
        (decision,) = [json.loads(line) for line in proc.stdout.splitlines()]
        assert decision["event_id"] == "row:1" and decision["attributes"] == {"plan": "pro"}

    def test_format_option(self, tmp_path: Path) -> None:
        """--format csv reads a file whatever its name."""
        users = users_file(tmp_path, "email\nada@example.com\n", "users.data")
        proc = cli(
            "import", users, "--rules", "helpshift", "--store", "s.db", "--format", "csv",
            cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0 and json.loads(proc.stdout)["created"] is True

    def test_out_refused_before_anything_is_written(self, tmp_path: Path) -> None:
        """--out naming the users file or the store is refused, and the store is not made."""
        users = users_file(tmp_path)
        for out in ("users.csv", "s.db", "s.db-wal"):
            proc = cli(
                "import", users, "--rules", "helpshift", "--store", "s.db", "--out", out,
                cwd=tmp_path,
            )  # fmt: skip
            assert_one_line_error(proc, f"--out {out} is", "refusing to overwrite an input")
            assert not (tmp_path / "s.db").exists()
        assert users.read_text() == USERS_CSV

    def test_bad_files_are_one_line(self, tmp_path: Path) -> None:
        """A missing file, a directory, a header naming no identifier: exit 1, one line,
        nothing written."""
        users_file(tmp_path, "name,plan\nAda,pro\n", "noid.csv")
        for users, fragment in (
            ("nope.csv", "users file not found: nope.csv"),
            (".", "is a directory"),
            ("noid.csv", "neither user_id nor email"),
        ):
            proc = cli(
                "import", users, "--rules", "helpshift", "--store", "s.db", "--out", "d.jsonl",
                cwd=tmp_path,
            )  # fmt: skip
            assert_one_line_error(proc, fragment)
            assert not (tmp_path / "s.db").exists() and not (tmp_path / "d.jsonl").exists()

    def test_store_is_required(self, tmp_path: Path) -> None:
        """Without --store: a usage error (an import is only worth it into a durable store)."""
        proc = cli("import", users_file(tmp_path), "--rules", "helpshift", cwd=tmp_path)
        assert_one_line_usage_error(proc, "--store")

    def test_progress_on_a_terminal(self, tmp_path: Path) -> None:
        """With stderr on a terminal a progress line counts rows there, never on stdout."""
        users = users_file(tmp_path)
        main_fd, child_fd = pty.openpty()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "idrules", "import", str(users), "--rules", "helpshift",
                 "--store", str(tmp_path / "s.db")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=child_fd,
                env=clean_env(),
                timeout=60,
            )  # fmt: skip
            os.close(child_fd)
            seen = b""
            while True:
                try:
                    chunk = os.read(main_fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
        finally:
            os.close(main_fd)
        assert proc.returncode == 0
        assert b"\r5 rows" in seen and b"idrules: 5 rows" in seen
        assert b"\r" not in proc.stdout and len(proc.stdout.splitlines()) == 5


class TestImportPostgres:
    """idrules import --store postgresql://... (IDRULES_TEST_POSTGRES)."""

    def test_import_twice(self, tmp_path: Path, pg_url: str) -> None:
        """The second import of the file creates nothing; the export stays the same."""
        users = users_file(tmp_path)
        first = cli("import", users, "--rules", "helpshift", "--store", pg_url, cwd=tmp_path)
        assert first.returncode == 0 and "2 created" in first.stderr, first.stderr
        export = cli("export", "--store", pg_url)
        again = cli("import", users, "--rules", "helpshift", "--store", pg_url, cwd=tmp_path)
        assert again.returncode == 0 and "0 created, 2 matched" in again.stderr
        assert cli("export", "--store", pg_url).stdout == export.stdout
        assert len(export.stdout.splitlines()) == 2
