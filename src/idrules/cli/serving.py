"""``idrules serve``: the HTTP service (SPEC §7, docs/serve.md)."""

from __future__ import annotations

import os

import click

from ..serve.config import ServeConfig, build_engine, is_loopback, read_token
from .base import RULES_HELP, STORE_HELP, fail, friendly, main, say

#: the modules of the ``serve`` extra: their absence is one line saying how to install them
_EXTRA = ("starlette", "uvicorn", "prometheus_client", "anyio", "h11")


@main.command()
@click.option("--rules", "rules", required=True, help=RULES_HELP)
@click.option(
    "--store", "store_path", help=STORE_HELP + " (default: a fresh in-memory store, lost at exit)"
)
@click.option("--secrets", "secrets", help="JSON file of key name -> secret")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="the address to listen on; any but loopback needs IDRULES_API_TOKEN",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="the TCP port (0: any free port, shown in the start-up line)",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="server processes sharing the port and the store (not with the in-memory store)",
)
@friendly
def serve(
    rules: str, store_path: str | None, secrets: str | None, host: str, port: int, workers: int
) -> None:
    """Decide over HTTP: POST /v1/decide, GET /v1/profiles/ID, GET /v1/history, /healthz,
    /metrics and /openapi.json (docs/serve.md). Stops on SIGTERM or Ctrl-C, after answering
    the requests in flight."""
    try:
        from ..serve.runner import run
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in _EXTRA:
            raise
        fail("idrules serve needs the serve extra (Starlette, uvicorn, prometheus_client): "
             "pip install 'idrules[serve]'")  # fmt: skip
        return
    token = read_token(os.environ)
    if token is None and not is_loopback(host):
        raise click.UsageError(
            f"--host {host} is not a loopback address: set IDRULES_API_TOKEN (at least 32 "
            "bytes) so that only clients holding it are answered"
        )
    if workers > 1 and store_path is None:
        raise click.UsageError(
            f"--workers {workers} needs --store (a SQLite file or a PostgreSQL URL): worker "
            "processes do not share an in-memory store"
        )
    config = ServeConfig(rules, store_path, secrets, host, port, workers, token)
    run(config, build_engine(config), say)
