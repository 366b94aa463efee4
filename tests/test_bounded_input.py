"""Input is read in bounded memory, and the command line is in charge from its first instant."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from cli_support import cli, command

from idrules.events import MAX_LINE_BYTES

EVENT = '{"id":"e1","ts":"2026-03-01T12:00:00Z","type":"identify","session":"s","payload":{}}'


class TestOverlongLines:
    """A line longer than MAX_LINE_BYTES is one event.invalid, and the log goes on."""

    def test_replay_skips_an_overlong_line(self) -> None:
        """A 3 MB line without JSON is refused at its line; the next event is decided."""
        log = "x" * (3 * MAX_LINE_BYTES) + "\n" + EVENT + "\n"
        proc = cli("replay", "-", "--rules", "helpshift", "-q", stdin=log)
        assert proc.returncode == 0, proc.stderr
        first, second = proc.stdout.splitlines()
        assert '"line":1' in first and "longer than" in first and '"event.invalid"' in first
        assert '"event_id":"e1","line":2' in second

    def test_resolve_refuses_an_overlong_event(self, tmp_path: Path) -> None:
        """resolve reads at most MAX_LINE_BYTES and says so in one line."""
        proc = cli(
            "resolve",
            "--rules",
            "helpshift",
            "--store",
            tmp_path / "s.db",
            stdin=b"x" * (MAX_LINE_BYTES + 10),
        )
        assert proc.returncode == 1 and "longer than" in proc.stderr
        assert "Traceback" not in proc.stderr


class TestEarlyInterrupt:
    """Ctrl-C while the command line is still loading is one line and exit 130."""

    def test_interrupt_during_start_up(self) -> None:
        """SIGINT soon after start: `idrules: interrupted`, no traceback (after the
        interpreter's own start, which is CPython's to report)."""
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        interpreter = time.perf_counter() - started
        for delay in (interpreter + 0.03, interpreter + 0.08, interpreter + 0.2):
            proc = subprocess.Popen(
                command("replay", "-", "--rules", "helpshift"),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            err = proc.communicate(timeout=60)[1]
            assert proc.returncode == 130, (delay, err)
            assert err.decode().strip() == "idrules: interrupted", (delay, err)
