"""``ironpush dev``: run the dev server in the foreground until Ctrl-C (or SIGTERM).

It logs one line per push attempt and per acknowledgement (``--log-level``, ``--quiet``),
serves the inspector at ``/_dev/ui`` and the event stream ``ironpush tail`` follows, and prints
what a client needs: ``eval "$(ironpush dev --env)"`` sets the environment in a shell.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from .._devserver_settings import (
    ALLOW_HOST_HELP,
    DEFAULT_HOST,
    STRICT_HELP,
    PushSettings,
    Retention,
    host_pattern,
)
from . import _logs as logs
from ._bind import bind_error
from ._choice import Choice
from ._options import options_from
from ._rendering import CliError

if TYPE_CHECKING:
    from ..devserver._server import DevServer

TOKEN_PLACEHOLDER = "<the value given with --token>"
TOKEN_ENV = "IRONPUSH_DEV_TOKEN"
ALLOW_HOSTS_ENV = "IRONPUSH_DEV_ALLOW_HOSTS"
DEFAULT_PORT = 8080
# The option of each field of the dev server's groups (their defaults and help: the groups').
PUSH_FLAGS = {
    "timeout": "--push-timeout",
    "max_concurrent": "--max-concurrent-pushes",
    "max_backlog": "--max-push-backlog",
    "backlog_wait": "--backlog-wait",
}
RETENTION_FLAGS = {
    "finished": "--finished-retention",
    "max_finished": "--max-finished",
    "attempts": "--attempts-kept",
}


def env_exports(
    url_host: str,
    port: int,
    *,
    project_id: str | None,
    token: str | None,
    show_token: bool,
    token_from_env: bool = False,
) -> str:
    """Shell lines for ``eval "$(ironpush dev --env)"`` (the token only with ``show_token``).

    A token taken from ``IRONPUSH_DEV_TOKEN`` is exported by reference, so it works in that
    shell without being printed::

        export IRONMQ_EMULATOR_HOST=127.0.0.1:8080
        export IRON_TOKEN="${IRONPUSH_DEV_TOKEN}"
    """
    lines = [f"export IRONMQ_EMULATOR_HOST={shlex.quote(f'{url_host}:{port}')}"]
    if project_id or token:
        lines.append(f"export IRON_PROJECT_ID={shlex.quote(project_id or 'dev')}")
    if token and show_token:
        lines.append(f"export IRON_TOKEN={shlex.quote(token)}")
    elif token and token_from_env:
        lines.append(f'export IRON_TOKEN="${{{TOKEN_ENV}}}"')
    elif token:
        lines.append(f"# export IRON_TOKEN='{TOKEN_PLACEHOLDER}'  (add --show-token to print it)")
    return "\n".join(lines)


def env_command_line(host: str, port: int, project_id: str | None) -> str:
    """The ``ironpush dev --env …`` invocation matching this server."""
    args = ["ironpush", "dev", "--env"]
    if host != DEFAULT_HOST:
        args += ["--host", host]
    if port != DEFAULT_PORT:
        args += ["--port", str(port)]
    if project_id:
        args += ["--project-id", project_id]
    return " ".join(shlex.quote(a) for a in args)


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
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to bind.")
@click.option(
    "--port", default=DEFAULT_PORT, show_default=True, type=int, help="Port (0 = a free one)."
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    help="SQLite file for durable state (default: in memory, lost on exit).",
)
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    help="Require this token (Authorization: OAuth <token>). Default: accept any. "
    f"Env: {TOKEN_ENV}.",
)
@click.option("--project-id", help="Serve only this project id (others get 404).")
@options_from(PushSettings, "pushes", flags=PUSH_FLAGS)
@options_from(Retention, "retention", flags=RETENTION_FLAGS)
@click.option(
    "--public-url",
    help="Base URL for ack URLs (Iron-Subscriber-Message-Url) if subscribers reach the "
    "server under another address.",
)
@click.option(
    "--allow-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    envvar=ALLOW_HOSTS_ENV,
    callback=lambda _ctx, _param, value: _host_patterns(value),
    help=f"{ALLOW_HOST_HELP} Repeatable; env: {ALLOW_HOSTS_ENV} (space- or comma-separated).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=Choice(["debug", "info", "warning", "error"]),
    help="info: one line per push attempt and per acknowledgement.",
)
@click.option(
    "--log-format",
    default="text",
    show_default=True,
    type=Choice(list(logs.FORMATS)),
    help="text, or json: one JSON object per line, the push's fields as keys (README "
    "'Observability').",
)
@click.option("--quiet", "-q", is_flag=True, help="No line per push (warnings and errors only).")
@click.option(
    "--env",
    "print_env",
    is_flag=True,
    help='Print the client environment and exit: eval "$(ironpush dev --env)".',
)
@click.option("--show-token", is_flag=True, help="Print the token in the client config.")
@click.option("--strict", is_flag=True, help=STRICT_HELP)
def dev_command(
    host: str,
    port: int,
    token: str | None,
    project_id: str | None,
    log_level: str,
    log_format: str,
    quiet: bool,
    print_env: bool,
    show_token: bool,
    **options: Any,
) -> None:
    """Run a local IronMQ v3-compatible server with a real pusher.

    It speaks the v3 API under /3/projects/{project_id}/ and POSTs push-queue messages to
    their subscribers with IronMQ's headers, retries, 202 reservations, error queues and push
    statuses. Timings accept fractions of a second (retries_delay=0.05, delay, --push-timeout)
    so tests run fast; note that hosted IronMQ's minimum retries_delay is 3 s.

    It logs one line per push attempt and per acknowledgement, and serves a web inspector at
    /_dev/ui (queues, live deliveries, messages, replay) and the event stream that
    `ironpush tail` follows.

    \b
    Examples:
      ironpush dev                           # 127.0.0.1:8080, memory, any token
      ironpush dev --db dev.sqlite --token s3cret --port 9000
      eval "$(ironpush dev --env)"           # in another shell: point clients at it
    """
    from ..devserver._server import WILDCARD_HOSTS

    url_host = "127.0.0.1" if host in WILDCARD_HOSTS else host
    if print_env:
        _print_env(url_host, port, project_id=project_id, token=token, show_token=show_token)
        return
    debug = bool(click.get_current_context().find_root().params.get("debug"))  # ironpush --debug
    logs.configure("warning" if quiet else "debug" if debug else log_level, log_format)
    # The dev server and uvicorn load only when this command runs (``import ironpush.cli`` stays
    # light for every other command).
    from ..devserver._access import Access
    from ..devserver._server import DevServer, local_url

    server = DevServer(host=host, port=port, token=token, project_id=project_id, **options)
    try:
        server.start()
    except OSError as exc:  # a busy port: say which, and what to pass instead
        raise bind_error(host, port, exc, holder="another `ironpush dev`") from exc
    except RuntimeError as exc:
        raise CliError(f"cannot serve on {host}:{port}: {exc}") from exc
    config = server.config
    click.echo(f"ironpush dev server listening on {server.url}")
    sign_in = " (sign in once: add ?token=<the token>)" if token else ""
    click.echo(f"  inspector: {local_url(host, server.port)}/_dev/ui{sign_in}")
    click.echo("  live log: below, one line per push and ack; `ironpush tail` in another shell")
    click.echo(
        f"  state: {'SQLite file ' + config.db if config.db else 'in memory (lost on exit)'}"
    )
    click.echo(f"  project: {project_id or 'any project id'}")
    click.echo(f"  token: {'required' if token else 'not required (any token accepted)'}")
    click.echo(f"  Host names answered: {Access.of(config).describe()} (--allow-host adds one)")
    limits = (
        "hosted IronMQ's limits enforced (--strict)"
        if config.strict
        else "fractional retries_delay/delay accepted (hosted IronMQ's minimum retries_delay "
        "is 3 s; --strict enforces it)"
    )
    click.echo(f"  push timeout: {config.pushes.timeout:g} s; {limits}")
    click.echo(f'In another shell: eval "$({env_command_line(host, server.port, project_id)})"')
    click.echo(
        client_config_text(
            url_host, server.port, project_id=project_id, token=token, show_token=show_token
        )
    )
    click.echo("Press Ctrl-C to stop.")
    sys.stdout.flush()
    _serve_until_signal(server)


def _host_patterns(values: tuple[str, ...]) -> tuple[str, ...]:
    """``--allow-host`` values (a comma-separated list counts as several), checked."""
    names = [name for value in values for name in value.split(",") if name.strip()]
    try:
        return tuple(host_pattern(name) for name in names)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--allow-host'") from None


def _print_env(
    url_host: str, port: int, *, project_id: str | None, token: str | None, show_token: bool
) -> None:
    if port == 0:
        raise click.UsageError("--env needs the server's fixed --port (not 0)")
    source = click.get_current_context().get_parameter_source("token")
    exports = env_exports(
        url_host,
        port,
        project_id=project_id,
        token=token,
        show_token=show_token,
        token_from_env=source == click.core.ParameterSource.ENVIRONMENT,
    )
    click.echo(exports)


def _serve_until_signal(server: DevServer) -> None:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            if not server.is_alive():
                raise CliError("the server stopped unexpectedly")
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        click.echo("stopping…")
        server.stop()  # open event streams (tail, inspector tabs) end at once
