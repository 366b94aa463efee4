"""Helpers for tests that run the real command line (``python -m idrules``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any idrules secret, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDRULES_SECRET_")}
    env.update(extra)
    return env


def command(*args: str | Path) -> list[str]:
    """The argv of ``python -m idrules ARGS``."""
    return [sys.executable, "-m", "idrules", *map(str, args)]


def cli(
    *args: str | Path,
    stdin: str | bytes | None = None,
    env: Mapping[str, str] | Mapping[bytes, bytes] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m idrules ARGS`` to completion and capture its text output (``env`` may
    be bytes, for values that are not UTF-8)."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run(
        command(*args),
        input=data if data is not None else b"",
        capture_output=True,
        env=env if env is not None else clean_env(),
        cwd=cwd,
        timeout=timeout,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


def assert_one_line_usage_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit 2, nothing on stdout, one `idrules: error:` line with the --help hint."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("idrules: error: ") and "--help'" in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def write_events(path: Path, count: int, prefix: str = "e") -> Path:
    """A log of ``count`` ordinary helpshift events (identifies of 50 users over 40 sessions,
    tracks and logouts), one per line: long enough to be caught in the middle of a replay."""
    lines = []
    for n in range(count):
        session = f"b{n % 40}"
        ts = f"2026-03-01T{(n // 3600) % 24:02d}:{(n // 60) % 60:02d}:{n % 60:02d}Z"
        event: dict[str, object] = {"id": f"{prefix}{n}", "ts": ts, "session": session}
        if n % 3 == 0:
            event["type"] = "identify"
            event["payload"] = {"userId": f"u_{n % 50}", "userEmail": f"user{n % 50}@example.com"}
        elif n % 7 == 1:
            event["type"] = "logout"
        else:
            event["type"] = "track"
            event["payload"] = {"name": "vote", "properties": {"n": n}}
        lines.append(json.dumps(event))
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit 1, nothing on stdout, one `idrules: error:` line on stderr, no traceback."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("idrules: error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
