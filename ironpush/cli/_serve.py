"""``ironpush serve``: run an ASGI app (one mounting a PushRouter) under uvicorn, bounded.

What it adds to plain uvicorn (each piece in its own module):

- ``--workers N`` refuses routers whose store is not shared between processes (the memory
  store) unless ``--allow-unshared-store``: a redelivery landing on another worker would run
  the handler again, and an ack would miss the newest reservation;
- ``--store SPEC`` sets ``IRONPUSH_STORE`` for the app (routers built without ``store=`` use it);
- workers die with their master (:mod:`.serve_worker`), so a restart can bind the port;
- request head size and header count limits, a request (slowloris) timeout, the keep-alive
  timeout and a concurrency limit (:mod:`.serve_http` plus uvicorn's own settings);
- the access log masks push secrets in query strings, and repeated identical errors are
  logged once with their traceback, then counted (:mod:`.serve_logging`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from .._errors import ConfigError
from ._commands import CliError, main
from ._serve_limits import LIMITS_ENV, HttpLimits
from ._serve_logging import log_config

if TYPE_CHECKING:
    from ..receiver._router import PushRouter

__all__ = ["check_shared_stores", "serve"]

_WORKER_FACTORY = "ironpush.cli._serve_worker:build_app"
_PROTOCOL = "ironpush.cli._serve_http:BoundedHttpToolsProtocol"
_DEFAULTS = HttpLimits()


@main.command()
@click.argument("app_ref", metavar="MODULE:APP")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to bind.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes; more than one needs a shared store (see --store).",
)
@click.option(
    "--store",
    "store_spec",
    metavar="SPEC",
    default=None,
    help="Set IRONPUSH_STORE: sqlite:////data/ironpush.db (one host), redis://… or "
    "postgresql://… (many hosts). Used by routers built without store=.",
)
@click.option(
    "--allow-unshared-store",
    is_flag=True,
    help="Run --workers N even with a per-process (memory) store.",
)
@click.option(
    "--reload",
    is_flag=True,
    help="Restart when a .py file under the current directory changes (development).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.option(
    "--proxy-headers/--no-proxy-headers",
    default=True,
    show_default=True,
    help="Trust X-Forwarded-* from a proxy in front.",
)
@click.option(
    "--limit-concurrency",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Connections + requests per worker beyond which requests get 503.",
)
@click.option(
    "--max-head-bytes",
    default=_DEFAULTS.max_head_bytes,
    show_default=True,
    type=click.IntRange(min=1024),
    help="Largest request line + headers; larger gets 431.",
)
@click.option(
    "--max-headers",
    default=_DEFAULTS.max_headers,
    show_default=True,
    type=click.IntRange(min=8),
    help="Most header fields per request; more gets 431.",
)
@click.option(
    "--timeout-request",
    default=_DEFAULTS.request_timeout,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds to receive a whole request once connected (slowloris): 408 and close.",
)
@click.option(
    "--timeout-keep-alive",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Seconds an idle keep-alive connection stays open.",
)
@click.option(
    "--timeout-graceful-shutdown",
    default=30,
    show_default=True,
    type=click.IntRange(min=1),
    help="Seconds a stop waits for requests in flight.",
)
@click.option(
    "--log-repeat-interval",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Identical warnings/errors: the first is logged, then one count per interval.",
)
def serve(
    app_ref: str,
    host: str,
    port: int,
    workers: int,
    store_spec: str | None,
    allow_unshared_store: bool,
    reload: bool,
    log_level: str,
    proxy_headers: bool,
    limit_concurrency: int,
    max_head_bytes: int,
    max_headers: int,
    timeout_request: float,
    timeout_keep_alive: int,
    timeout_graceful_shutdown: int,
    log_repeat_interval: float,
) -> None:
    """Serve an ASGI app (e.g. one mounting a PushRouter) with uvicorn.

    Example: ironpush serve myservice.app:app --host 0.0.0.0 --workers 4 --store redis://redis:6379/0
    """
    import uvicorn

    from ..receiver.stores import STORE_ENV
    from ._serve_worker import APP_ENV, MASTER_ENV, find_routers, load_app

    if ":" not in app_ref:
        raise click.BadParameter(
            "expected MODULE:APP, e.g. myservice.app:app", param_hint="MODULE:APP"
        )
    if reload and workers > 1:
        raise click.UsageError("--reload runs one process: drop --workers")
    if store_spec is not None:
        os.environ[STORE_ENV] = store_spec
    try:
        app, module = load_app(app_ref)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    if workers > 1 and not allow_unshared_store:
        check_shared_stores(find_routers(app, module), app_ref=app_ref, workers=workers)
    # The spawned workers inherit these (uvicorn's config has no room for our settings).
    os.environ[APP_ENV] = app_ref
    os.environ[LIMITS_ENV] = HttpLimits(max_head_bytes, max_headers, timeout_request).to_env()
    if workers > 1 or reload:  # a supervisor (or the reloader) is the workers' parent
        os.environ[MASTER_ENV] = f"{os.getpid()}:{timeout_graceful_shutdown + 5}"
    uvicorn.run(
        _WORKER_FACTORY,
        factory=True,
        http=_PROTOCOL,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level=log_level,
        log_config=log_config(level=log_level, repeat_interval=log_repeat_interval),
        proxy_headers=proxy_headers,
        lifespan="on",
        limit_concurrency=limit_concurrency,
        timeout_keep_alive=timeout_keep_alive,
        timeout_graceful_shutdown=timeout_graceful_shutdown,
    )


def check_shared_stores(routers: Sequence[PushRouter], *, app_ref: str, workers: int) -> None:
    """Refuse (one-line :class:`CliError`) a deduplicating router whose store is per process."""
    for router in routers:
        store = router.store
        if not store.dedupes or store.shared:
            continue
        kind = store.kind
        raise CliError(
            f"--workers {workers}: a PushRouter of {app_ref} keeps its claims in the {kind} "
            "store, which each worker process would keep to itself (a redelivery reaching "
            "another worker runs the handler again; acks miss the newest reservation). Use a "
            "shared store: --store sqlite:////path/ironpush.db (one host), --store "
            "redis://host:6379/0 or --store postgresql://… (several hosts), or "
            "PushRouter(store=...); or pass --allow-unshared-store"
        )
