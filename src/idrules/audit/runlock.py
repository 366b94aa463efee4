"""One replay at a time per store and run: an operating-system lock the kernel drops when its
process dies, however it dies.

Two replays of the same log into one store at once (an overrunning cron job) would both cut
back and append to one decisions file and decide the same events twice. So a replay claims its
run first: an exclusive POSIX byte-range lock (``fcntl.lockf``) on a sidecar file next to the
store (``STORE.lock``), at an offset derived from the run's id. Replays of *other* runs lock
other bytes and go on side by side; a second replay of the same run finds the bytes locked and
is refused at once. The holder writes its pid into the bytes it locks, so the refusal can name
the process.

POSIX locks belong to a process, not to a file descriptor: closing *any* descriptor of the
file releases every lock the process holds on it, and two locks of one process never conflict.
Both would defeat the lock inside one process (a library caller, a test), so this module keeps
one descriptor per lock file for the whole process, closes it only when the process holds no
lock on that file any more, and refuses a second claim of a run the process already holds.
"""

from __future__ import annotations

import fcntl
import os
import threading
from types import TracebackType

from .._errors import StoreError

#: bytes locked per run: room for the holder's pid as text
_SLOT = 32


class RunBusyError(StoreError):
    """Another replay of the same run is writing into the store."""


class _LockFile:
    """The process's one open descriptor of a lock file, and the runs it holds there."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.held: set[int] = set()


_FILES: dict[tuple[int, int], _LockFile] = {}
_MUTEX = threading.Lock()


def lock_path(store_path: str) -> str:
    """The sidecar lock file of the store at ``store_path``."""
    return f"{store_path}.lock"


class RunLock:
    """The claim on one run of one store; a context manager, released on exit (or by the
    kernel when the process ends). Raises :class:`RunBusyError` when another replay holds it.
    """

    def __init__(self, store_path: str, run_id: int) -> None:
        self.path = lock_path(store_path)
        self.store_path = store_path
        self.run_id = run_id
        self._key: tuple[int, int] | None = None
        with _MUTEX:
            self._acquire()

    def _acquire(self) -> None:
        key, entry = self._open()
        start = self.run_id * _SLOT
        if self.run_id in entry.held:
            self._busy(os.getpid())
        try:
            fcntl.lockf(entry.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, _SLOT, start, os.SEEK_SET)
        except OSError as exc:
            holder = _read_pid(entry.fd, start)
            self._close_if_unused(key, entry)
            if isinstance(exc, (BlockingIOError, PermissionError)):
                self._busy(holder)
            raise StoreError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
        entry.held.add(self.run_id)
        self._key = key
        os.pwrite(entry.fd, f"{os.getpid()}\n".encode().ljust(_SLOT, b" "), start)

    def _open(self) -> tuple[tuple[int, int], _LockFile]:
        """The process's descriptor of the lock file (opened once: see the module's doc)."""
        try:
            known = os.stat(self.path)
        except FileNotFoundError:
            known = None
        if known is not None:
            entry = _FILES.get((known.st_dev, known.st_ino))
            if entry is not None:
                return (known.st_dev, known.st_ino), entry
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open the lock file {self.path}: {exc.strerror}") from None
        opened = os.fstat(fd)
        key = (opened.st_dev, opened.st_ino)
        entry = _FILES.get(key)
        if entry is not None:  # the same file under another name: this descriptor must not
            # be closed while the process holds locks there; a spare one open is harmless
            return key, entry
        entry = _FILES[key] = _LockFile(fd)
        return key, entry

    def _busy(self, pid: int | None) -> None:
        who = f" (pid {pid})" if pid is not None else ""
        raise RunBusyError(
            f"another replay of this log is running into {self.store_path}{who}; "
            "let it finish (run this again after it to resume, if it stops early)"
        )

    @staticmethod
    def _close_if_unused(key: tuple[int, int], entry: _LockFile) -> None:
        if not entry.held:
            del _FILES[key]
            os.close(entry.fd)

    def release(self) -> None:
        """Give the run up (again: a no-op)."""
        with _MUTEX:
            key, self._key = self._key, None
            if key is None:
                return
            entry = _FILES[key]
            fcntl.lockf(entry.fd, fcntl.LOCK_UN, _SLOT, self.run_id * _SLOT, os.SEEK_SET)
            entry.held.discard(self.run_id)
            self._close_if_unused(key, entry)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        failure: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int, start: int) -> int | None:
    """The pid the holder of a slot wrote there (None when unreadable)."""
    try:
        text = os.pread(fd, _SLOT, start).decode("ascii").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
