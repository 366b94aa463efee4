"""Start-up and shut-down of ``idrules serve`` under uvicorn.

The command line has built the engine once already (so a bad rules file, secret or store is
one line, before anything listens). Then this module binds the socket itself, and serves:

- one process (``--workers 1``): uvicorn in this process, over that engine;
- ``--workers N``: N processes (spawned, so each imports and connects afresh) accepting on
  the one socket, each with an engine and a store connection of its own, and this process
  supervising them. A worker that dies stops the others, and the command fails with one
  line: a process manager (systemd, Kubernetes) restarts the whole service, rather than a
  half-dead one serving on.

SIGTERM (and Ctrl-C) stops gracefully: no new connection is taken, the requests in flight
are answered, the store is closed (the ASGI lifespan's end), and the command exits 0.
uvicorn raises the signal again once it has shut down, to die of it; a handler of ours
catches that, so the exit status is 0 rather than death by signal.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn

from .._errors import IdrulesError
from ..engine import Engine
from .app import create_app
from .config import ServeConfig, build_engine
from .metrics import Metrics

#: seconds the requests in flight get to finish at shut-down, before they are cut
GRACE_S = 30
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ServeError(IdrulesError):
    """The server cannot listen, or a worker process stopped."""


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free one)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(2048)
        except BaseException:
            sock.close()
            raise
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def address_of(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a listening socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(config: ServeConfig, engine: Engine, announce: Callable[[str], None]) -> None:
    """Serve until SIGTERM or Ctrl-C. ``engine`` (built from ``config``) serves in this
    process with one worker; with several it has only checked the configuration, and is
    closed."""
    try:
        sock = listen(config.host, config.port)
    except BaseException:
        engine.store.close()
        raise
    with sock:
        workers = f"{config.workers} worker{'s' if config.workers > 1 else ''}"
        announce(
            f"idrules: serving {engine.ruleset.name} on {address_of(sock)} "
            f"({_store_name(engine)}, {workers}, "
            f"{'token required' if config.token else 'no token'}); SIGTERM or Ctrl-C stops it"
        )
        if config.workers == 1:
            _serve(engine, config, sock, _Stop(), aggregate=False)
        else:
            engine.store.close()
            _supervise(config, sock)
    announce("idrules: stopped")


def _store_name(engine: Engine) -> str:
    path = getattr(engine.store, "path", None)
    return f"store {path}" if path else "in-memory store"


class _Stop:
    """The SIGTERM/SIGINT handler of a serving process: asks uvicorn to shut down
    gracefully (also before it has started), and takes the signal uvicorn raises again
    after its shut-down, so the process exits 0."""

    def __init__(self) -> None:
        self.server: uvicorn.Server | None = None
        self.requested = False
        self.previous = {sig: signal.signal(sig, self) for sig in _SIGNALS}

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self.server is not None:
            self.server.should_exit = True

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _serve(
    engine: Engine, config: ServeConfig, sock: socket.socket, stop: _Stop, *, aggregate: bool
) -> None:
    """uvicorn in this process over ``engine``, until told to stop; the store is closed."""
    try:
        app = create_app(engine, token=config.token, metrics=Metrics(aggregate=aggregate))
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                lifespan="on",
                access_log=False,  # ours is JSON (accesslog.py)
                log_level="warning",
                timeout_graceful_shutdown=GRACE_S,
                server_header=False,
            )
        )
        stop.server = server
        server.should_exit = stop.requested
        server.run(sockets=[sock])
        if not server.started and not stop.requested:
            raise ServeError("the server did not start (see the lines above)")
    finally:
        stop.restore()
        engine.store.close()  # closed at the lifespan's end already; again is a no-op


def _worker(config: ServeConfig, sock: socket.socket) -> None:
    """One worker process of ``--workers N``: its own engine and store connection."""
    stop = _Stop()
    try:
        engine = build_engine(config)
    except IdrulesError as exc:
        sys.stderr.write(f"idrules: error: {exc}\n")
        sys.exit(1)
    _serve(engine, config, sock, stop, aggregate=True)


def _supervise(config: ServeConfig, sock: socket.socket) -> None:
    """Run ``config.workers`` worker processes on ``sock`` until a signal or a death."""
    folder = tempfile.mkdtemp(prefix="idrules-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder  # read by the workers' prometheus_client
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in _SIGNALS}
    spawn = multiprocessing.get_context("spawn")
    workers: list[multiprocessing.process.BaseProcess] = []
    died: multiprocessing.process.BaseProcess | None = None
    try:
        for n in range(config.workers):
            started = spawn.Process(
                target=_worker, args=(config, sock), name=f"idrules serve worker {n + 1}"
            )
            started.start()
            workers.append(started)
        while not stopping.wait(0.25):
            died = next((w for w in workers if w.exitcode is not None), None)
            if died is not None:
                break
    finally:
        for worker in workers:
            if worker.exitcode is None:
                worker.terminate()  # SIGTERM: a graceful stop
        for worker in workers:
            worker.join(GRACE_S + 10)
            if worker.exitcode is None:
                worker.kill()
                worker.join()
        shutil.rmtree(folder, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if died is not None:
        raise ServeError(
            f"{died.name} (pid {died.pid}) stopped with exit status {died.exitcode}; "
            "the other workers were stopped"
        )
