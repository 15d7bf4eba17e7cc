"""``ironpush dev``: run the dev server in the foreground until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..server_thread import ServerThread

__all__ = ["client_config_text", "dev_command"]

TOKEN_PLACEHOLDER = "<the value given with --token>"


def client_config_text(
    url_host: str, port: int, *, project_id: str | None, token: str | None, show_token: bool
) -> str:
    """What a client needs to talk to the server: env exports and an equivalent iron.json."""
    address = f"{url_host}:{port}"
    shown = token if show_token else TOKEN_PLACEHOLDER
    lines = ["Point clients at it with:", f"  export IRONMQ_EMULATOR_HOST={address}"]
    if project_id or token:
        lines.append(f"  export IRON_PROJECT_ID={project_id or 'dev'}")
    if token:
        lines.append(f"  export IRON_TOKEN='{shown}'")
    iron = {
        "protocol": "http",
        "host": url_host,
        "port": port,
        "api_version": 3,
        "project_id": project_id or "dev",
        "token": shown if token else "dev",
    }
    lines.append("or an iron.json with:")
    lines.extend("  " + line for line in json.dumps(iron, indent=2).splitlines())
    return "\n".join(lines)


@click.command("dev", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port (0 = a free one).")
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    default=None,
    help="SQLite file for durable state (default: in memory, lost on exit).",
)
@click.option(
    "--token",
    envvar="IRONPUSH_DEV_TOKEN",
    default=None,
    help="Require this token (Authorization: OAuth <token>). Default: accept any. "
    "Env: IRONPUSH_DEV_TOKEN.",
)
@click.option("--project-id", default=None, help="Serve only this project id (others get 404).")
@click.option(
    "--push-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Seconds a subscriber has to answer a push (hosted v3: 10).",
)
@click.option(
    "--max-concurrent-pushes",
    default=256,
    show_default=True,
    type=click.IntRange(min=1),
    help="Pushes in flight at once.",
)
@click.option(
    "--public-url",
    default=None,
    help="Base URL for ack URLs (Iron-Subscriber-Message-Url) if subscribers reach the "
    "server under another address.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="info logs one line per push.",
)
@click.option("--show-token", is_flag=True, help="Print the token in the client config.")
def dev_command(
    host: str,
    port: int,
    db: str | None,
    token: str | None,
    project_id: str | None,
    push_timeout: float,
    max_concurrent_pushes: int,
    public_url: str | None,
    log_level: str,
    show_token: bool,
) -> None:
    """Run a local IronMQ v3-compatible server with a real pusher.

    It speaks the v3 API under /3/projects/{project_id}/ and POSTs push-queue messages to
    their subscribers with IronMQ's headers, retries, 202 reservations, error queues and push
    statuses. Timings accept fractions of a second (retries_delay=0.05, delay, --push-timeout)
    so tests run fast; note that hosted IronMQ's minimum retries_delay is 3 s.

    \b
    Examples:
      ironpush dev                           # 127.0.0.1:8080, memory, any token
      ironpush dev --db dev.sqlite --token s3cret --port 9000
    """
    # The dev server and uvicorn load only when this command runs (``import ironpush.cli`` stays
    # light for every other command).
    from ..devserver.app import create_app
    from ..devserver.options import DevConfig
    from ..devserver.server import WILDCARD_HOSTS, local_url, warn_if_public
    from ..server_thread import ServerThread

    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = DevConfig(
        token=token,
        project_id=project_id,
        db=db,
        push_timeout=push_timeout,
        max_concurrent_pushes=max_concurrent_pushes,
        public_url=public_url,
    )
    warn_if_public(host)
    server = ServerThread(create_app(config), host=host, port=port, log_level="warning")
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from exc
    url_host = "127.0.0.1" if host in WILDCARD_HOSTS else host
    base = public_url or local_url(host, server.port)
    server.app.state.engine.loop.call_soon_threadsafe(server.app.state.engine.pusher.activate, base)
    click.echo(f"ironpush dev server listening on {server.url}")
    click.echo(f"  state: {'SQLite file ' + db if db else 'in memory (lost on exit)'}")
    click.echo(f"  project: {project_id or 'any project id'}")
    click.echo(f"  token: {'required' if token else 'not required (any token accepted)'}")
    click.echo(
        f"  push timeout: {push_timeout:g} s; fractional retries_delay/delay accepted "
        "(hosted IronMQ's minimum retries_delay is 3 s)"
    )
    click.echo(
        client_config_text(
            url_host, server.port, project_id=project_id, token=token, show_token=show_token
        )
    )
    click.echo("Press Ctrl-C to stop.")
    sys.stdout.flush()
    _serve_until_signal(server)


def _serve_until_signal(server: ServerThread) -> None:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            if server._thread is not None and not server._thread.is_alive():
                raise click.ClickException("the server stopped unexpectedly")
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        click.echo("stopping…")
        server.stop()
