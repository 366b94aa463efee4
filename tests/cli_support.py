"""Helpers for tests that run the real command line (``python -m idrules``)."""

from __future__ import annotations

import os
import subprocess
import sys
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
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m idrules ARGS`` to completion and capture its text output."""
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
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


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
