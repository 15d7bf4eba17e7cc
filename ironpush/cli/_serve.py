"""``ironpush serve``: run an ASGI app (one mounting a PushRouter) under uvicorn, bounded.

What it adds to plain uvicorn (each piece in its own module):

- the app is looked at before anything starts (:mod:`._serve_apps`): a WSGI app (Flask,
  Django's WSGI handler) is served through a2wsgi with its module's router mounted in front
  (``ironpush[wsgi]``) or refused with one line naming the recipes; ``--lifespan auto|on|off``
  is uvicorn's, and with ``on`` an app refusing the lifespan stops the start with one line;

- ``--workers N`` refuses routers whose store is not shared between processes (the memory
  store) unless ``--allow-unshared-store``: a redelivery landing on another worker would run
  the handler again, and an ack would miss the newest reservation;
- ``--store SPEC`` sets ``IRONPUSH_STORE`` for the app (routers built without ``store=`` use it);
- workers die with their master (:mod:`._serve_worker`), so a restart can bind the port;
- request head size and header count limits, a request (slowloris) timeout, the keep-alive
  timeout and a concurrency limit (:class:`._serve_settings.HttpLimits`, enforced by
  :mod:`._serve_http` and uvicorn's own settings; every option's default and help is a field
  of :class:`._serve_settings.ServeSettings` or ``HttpLimits``);
- one log format in the master and every worker (``--log-format text|json``), each start-up
  warning once whatever the number of workers, push secrets masked in the access log's query
  strings, and repeated identical errors logged once with their traceback, then counted
  (:mod:`._serve_logging`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging.config
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from .._errors import ConfigError
from ._app_refs import load_ref
from ._bind import check_bindable
from ._commands import CliError, main
from ._options import options_from
from ._serve_logging import ONCE_ENV, log_config
from ._serve_settings import (
    LIMITS_ENV,
    AppSettings,
    HttpLimits,
    ServeSettings,
    raise_open_files_limit,
)

if TYPE_CHECKING:
    from ..receiver._router import PushRouter

_WORKER_FACTORY = "ironpush.cli._serve_worker:build_app"


@main.command()
@click.argument("app_ref", metavar="MODULE:APP")
@options_from(ServeSettings, "settings")
@options_from(AppSettings, "app_settings")
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
@options_from(HttpLimits, "limits")
def serve(
    app_ref: str,
    settings: ServeSettings,
    app_settings: AppSettings,
    store_spec: str | None,
    allow_unshared_store: bool,
    reload: bool,
    limits: HttpLimits,
) -> None:
    """Serve an ASGI app (e.g. one mounting a PushRouter) with uvicorn.

    A WSGI app (Flask, Django's WSGI handler) is served through a2wsgi with its module's
    PushRouter mounted in front (pip install 'ironpush[wsgi]').

    Example: ironpush serve myservice.app:app --host 0.0.0.0 --workers 4 --store redis://redis:6379/0
    """
    from ..receiver.stores import STORE_ENV

    workers = settings.workers
    if reload and workers > 1:
        raise click.UsageError("--reload runs one process: drop --workers")
    if store_spec is not None:
        os.environ[STORE_ENV] = store_spec
    logs = log_config(
        level=settings.log_level,
        repeat_interval=settings.log_repeat_interval,
        fmt=settings.log_format,
    )
    once = None
    if workers > 1 or reload:  # every process imports the app: its warnings once (filter)
        once = os.environ[ONCE_ENV] = tempfile.mkdtemp(prefix="ironpush-serve-")
    # Now, not in uvicorn.run: the app's import below logs in the workers' format too.
    logging.config.dictConfig(copy.deepcopy(logs))  # dictConfig consumes what it is given
    try:
        _serve(app_ref, settings, app_settings, allow_unshared_store, reload, limits, logs)
    finally:
        if once is not None:
            shutil.rmtree(once, ignore_errors=True)


def _serve(
    app_ref: str,
    settings: ServeSettings,
    app_settings: AppSettings,
    allow_unshared_store: bool,
    reload: bool,
    limits: HttpLimits,
    logs: dict[str, object],
) -> None:
    import uvicorn

    from ._serve_apps import servable
    from ._serve_protocol import protocol_for_uvicorn
    from ._serve_worker import APP_ENV, APP_SETTINGS_ENV, MASTER_ENV, find_routers

    workers = settings.workers
    app, module = load_ref(app_ref)  # not found, no such attribute: a hint naming the fix
    try:
        servable(app, module, ref=app_ref, settings=app_settings)  # refused here, in one line
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    if workers > 1 and not allow_unshared_store:
        check_shared_stores(find_routers(app, module), app_ref=app_ref, workers=workers)
    # Now, not in uvicorn, which binds after the app's start-up: one line, not its start-up
    # lines then "[Errno 98]" and exit 3 (``ironpush dev`` reports a busy port the same way).
    check_bindable(settings.host, settings.port, holder="another server")
    # The spawned workers inherit these (uvicorn's config has no room for our settings).
    os.environ[APP_ENV] = app_ref
    os.environ[APP_SETTINGS_ENV] = json.dumps(dataclasses.asdict(app_settings))
    os.environ[LIMITS_ENV] = limits.to_env()
    raise_open_files_limit(limits)  # the workers inherit it
    if workers > 1 or reload:  # a supervisor (or the reloader) is the workers' parent
        os.environ[MASTER_ENV] = f"{os.getpid()}:{limits.timeout_graceful_shutdown + 5}"
    uvicorn.run(
        _WORKER_FACTORY,
        factory=True,
        http=protocol_for_uvicorn(),
        host=settings.host,
        port=settings.port,
        workers=workers,
        reload=reload,
        log_level=settings.log_level,
        log_config=logs,
        proxy_headers=settings.proxy_headers,
        lifespan=app_settings.lifespan,
        limit_concurrency=limits.limit_concurrency,
        timeout_keep_alive=limits.timeout_keep_alive,
        timeout_graceful_shutdown=limits.timeout_graceful_shutdown,
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
