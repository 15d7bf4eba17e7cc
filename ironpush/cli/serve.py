"""``ironpush serve``: run an ASGI app (one mounting a PushRouter) under uvicorn."""

from __future__ import annotations

import sys

import click

from .commands import main

__all__ = ["serve"]


@main.command()
@click.argument("app_ref", metavar="MODULE:APP")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to bind.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes (use an SQLite dedupe store to share state).",
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
def serve(
    app_ref: str, host: str, port: int, workers: int, log_level: str, proxy_headers: bool
) -> None:
    """Serve an ASGI app (e.g. one mounting a PushRouter) with uvicorn.

    Example: ironpush serve myservice.app:app --host 0.0.0.0 --port 8000 --workers 2
    """
    import uvicorn

    if ":" not in app_ref:
        raise click.BadParameter(
            "expected MODULE:APP, e.g. myservice.app:app", param_hint="MODULE:APP"
        )
    sys.path.insert(0, ".")
    uvicorn.run(
        app_ref,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        proxy_headers=proxy_headers,
        lifespan="on",
    )
