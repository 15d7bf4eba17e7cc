"""The ``ironpush`` command line.

Every command is a thin layer over the public API (the client, ``PushRouter.subscriptions``, the
dev server). Errors are ``error: <what> — <hint>`` on stderr (a JSON object
``{"error", "hint", "exit_code"}`` with ``--json``) and a non-zero exit: 1 for API, network and
configuration problems, 2 for usage mistakes (a bad option value included, e.g.
``--cloud notaurl``); ``--debug`` shows tracebacks. Tokens and push secrets are never printed:
every output goes through :mod:`ironpush.cli._rendering`, which masks them.

This module holds the group ``main``, its global options and the helpers every command module
shares (:class:`Context`, :func:`json_option`, :func:`parse_pairs`, :func:`confirm`), plus
``dev`` and ``demo``. The other commands live in modules named after what they manage
(:mod:`._queues`, :mod:`._messages`, :mod:`._subscriptions`, :mod:`._serve`...), imported by
``ironpush/cli/__init__.py`` so that they register on ``main``; options built from value objects
come from :mod:`._options`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from .. import __version__
from .._config import ENV_VARS, load_settings
from .._errors import (
    ConfigError,
    IronPushError,
    NotFound,
    ReservationExpired,
    SignatureError,
    TransportError,
    Unauthorized,
)
from .._redact import redact_text
from ..client._retry import RetryPolicy
from ..client._sync_client import IronMQ
from . import _logs as logs
from ._dev import dev_command
from ._pipes import closed_pipe_exit, output_closed
from ._rendering import CliError as CliError  # re-exported for the command modules
from ._rendering import as_cli_error

F = TypeVar("F", bound=Callable[..., Any])

# A CLI call should fail fast on an unreachable host rather than back off for 15 s.
CLI_RETRY = RetryPolicy(attempts=3, backoff=0.2, max_backoff=1.0)


# The global options as the configuration layer names them in its messages.
FLAG_LABELS = {
    "config_file": "--config-file",
    "project_id": "--project-id",
    "token": "--token",
    "host": "--host",
    "cloud": "--cloud",
}
JSON_FLAG = "--json"
_JSON_META = "ironpush.json"


def wants_json(args: Sequence[str]) -> bool:
    """Whether ``--json`` is among the options (before a ``--``), even if parsing fails."""
    head = list(args)
    return JSON_FLAG in (head[: head.index("--")] if "--" in head else head)


def _explain(exc: IronPushError) -> tuple[str, str | None]:
    """What went wrong, and what to do about it (``None``: the message says it all)."""
    message = str(exc)
    if isinstance(exc, Unauthorized):
        return message, "check the token (IRON_TOKEN / --token); v2 tokens do not work on v3"
    if isinstance(exc, ReservationExpired):
        return message, "the reservation expired; IronMQ pushes the message again"
    if isinstance(exc, NotFound):
        return message, _not_found_hint(exc.msg)
    if isinstance(exc, TransportError):
        return message, "is the server running? check --host/--cloud or IRONMQ_EMULATOR_HOST"
    if isinstance(exc, SignatureError):
        return message, "the token must be signed with a key in IRONPUSH_SECRET_KEYS"
    if isinstance(exc, ConfigError) and "\nFix: " in message:
        what, _, fix = message.partition("\nFix: ")
        return what, f"Fix: {fix}"
    return message, None


def _not_found_hint(msg: str) -> str:
    """A 404's hint names what was not found: the queue, a message, or a subscriber."""
    lowered = msg.lower()
    if "message" in lowered:
        return "check the message id (it may be deleted, acknowledged or expired)"
    if "subscriber" in lowered:
        return "check the subscriber name (`ironpush subscribers QUEUE` lists them)"
    return "check the queue name and the project id"


class IronPushGroup(click.Group):
    """Turns every error into ``error: ... — hint`` (no traceback unless ``--debug``), ends
    quietly when stdout's reader went away (:mod:`._pipes`), and lists whole summaries."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command with the whole first sentence of its help, wrapped to the terminal.

        click cuts summaries to fit one line ("Delete every message of a queue (reserved
        ones too); the..."); a summary is a sentence, so it wraps instead.
        """
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command_summary(command)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        as_json = wants_json(args)
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.ClickException as exc:
            raise as_cli_error(exc, None, as_json=as_json) from exc
        except BrokenPipeError:  # `ironpush --help | head -3`
            if output_closed():
                raise closed_pipe_exit() from None
            raise
        ctx.meta[_JSON_META] = as_json
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        as_json = bool(ctx.meta.get(_JSON_META))
        try:
            return super().invoke(ctx)
        except CliError as exc:
            # Raised by a helper that does not know the output format (the app loader).
            exc.as_json = exc.as_json or as_json
            raise
        except (click.exceptions.NoArgsIsHelpError, click.exceptions.Exit, click.Abort):
            raise
        except click.ClickException as exc:
            raise as_cli_error(exc, ctx, as_json=as_json) from exc
        except IronPushError as exc:
            if _debug(ctx):
                raise
            message, hint = _explain(exc)
            raise CliError(_scrub(ctx, message), hint=hint, as_json=as_json) from exc
        except TimeoutError as exc:
            if _debug(ctx):
                raise
            raise CliError(_scrub(ctx, str(exc)) or "timed out", as_json=as_json) from exc
        except Exception as exc:
            if isinstance(exc, BrokenPipeError) and output_closed():  # `ironpush queues | true`
                raise closed_pipe_exit() from None
            if _debug(ctx):
                raise
            raise CliError(
                _scrub(ctx, f"unexpected {type(exc).__name__}: {exc}"),
                hint="run with --debug for the traceback",
                as_json=as_json,
            ) from exc


#: A length no summary reaches, so that click never shortens one.
SUMMARY_NEVER_CUT = 10_000


def command_summary(command: click.Command) -> str:
    """The first sentence of a command's help (its ``short_help`` if set), never shortened."""
    return command.get_short_help_str(limit=SUMMARY_NEVER_CUT)


def _scrub(ctx: click.Context, message: str) -> str:
    """Mask the token wherever an error quotes it: httpx quotes a header value it refuses
    (e.g. a token with a line break or NUL inside), as text or as an escaped bytes repr."""
    state = ctx.find_root().obj
    return redact_text(message, state.secrets() if isinstance(state, Context) else [])


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool(root.params.get("debug"))


class Context:
    """What the global options resolve to; the client is built on first use."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = {k: v for k, v in options.items() if v is not None}
        self._client: IronMQ | None = None

    @property
    def client(self) -> IronMQ:
        if self._client is None:
            try:
                settings = load_settings(labels=FLAG_LABELS, **self.options)
            except ConfigError as exc:
                if str(exc).startswith(tuple(FLAG_LABELS.values())):  # a bad option value
                    root = click.get_current_context().find_root()
                    raise click.UsageError(str(exc), ctx=root) from exc
                raise
            self._client = IronMQ(settings=settings, retry=CLI_RETRY, timeout=15.0)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def secrets(self) -> list[str]:
        """The token and signing keys in use (to mask them in error lines)."""
        found = [self.options.get("token")]
        if self._client is not None:
            found += [self._client.settings.token, *self._client.settings.secret_keys]
        return [s for s in found if isinstance(s, str) and s]


pass_context = click.make_pass_decorator(Context)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(func)


def parse_pairs(values: Sequence[str], option: str) -> dict[str, str]:
    """``("K:V", ...)`` → dict; a malformed pair is a usage error (exit 2)."""
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition(":")
        if not sep or not name.strip() or not value.strip():
            raise click.BadParameter(f"expected NAME:VALUE, got {item!r}", param_hint=option)
        out[name.strip()] = value.strip()
    return out


def confirm(question: str, yes: bool) -> None:
    """Ask on stderr (stdout stays clean for --json); refusing changes nothing (exit 1)."""
    if yes:
        return
    try:
        agreed = click.confirm(question, default=False, err=True)
    except click.Abort:  # end of input
        click.echo("", err=True)
        agreed = False
    if not agreed:
        raise click.ClickException("not confirmed: nothing changed (--yes skips the question)")


ENV_HELP = ", ".join(ENV_VARS)


@click.group(
    cls=IronPushGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=f"Settings also come from ~/.iron.json, ./iron.json and the environment: {ENV_HELP}.",
)
@click.version_option(__version__, prog_name="ironpush")
@click.option("--config-file", type=click.Path(dir_okay=False), help="An iron.json to read.")
@click.option("--project-id", help="IronMQ project id (default: from iron.json / IRON_PROJECT_ID).")
@click.option("--token", help="IronMQ token (prefer IRON_TOKEN: options show in `ps`).")
@click.option("--host", help="IronMQ host, e.g. mq-aws-eu-west-1-1.iron.io.")
@click.option("--cloud", help="IronMQ base URL, e.g. http://127.0.0.1:8080 (scheme+host+port).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def main(
    ctx: click.Context,
    config_file: str | None,
    project_id: str | None,
    token: str | None,
    host: str | None,
    cloud: str | None,
    debug: bool,
) -> None:
    """ironpush: IronMQ push queues for Python.

    \b
    ironpush demo                      watch pushes flow through a local dev server
    ironpush dev                       run the local IronMQ-compatible dev server
    ironpush subscribe --app app:router --base-url https://api.example.com/ironmq
    """
    logs.configure("debug" if debug else "warning")  # once per run; `dev` may raise it
    options = {
        "config_file": config_file,
        "project_id": project_id,
        "token": token,
        "host": host,
        "cloud": cloud,
    }
    state = Context(options)
    ctx.obj = state
    ctx.call_on_close(state.close)


# --------------------------------------------------------------------------- servers


main.add_command(dev_command, "dev")


@main.command()
@click.option(
    "--messages",
    type=click.IntRange(min=1),
    help="Post N messages of the four kinds and show throughput instead of events.",
)
@click.option(
    "--timeout",
    default=120.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Give up (exit 1) if the pushes have not finished by then.",
)
@json_option
def demo(messages: int | None, timeout: float, as_json: bool) -> None:
    """Watch pushes flow: a local dev server, a service, and four kinds of messages.

    \b
    Nothing needs to be configured: the dev server and the demo service run in this process
    on 127.0.0.1. Every message shows its path: received → 200 done, 202 deferred → job →
    acked, 503 → retried → done, or dropped.

    \b
    Examples:
      ironpush demo
      ironpush demo --messages 1000
    """
    from ._demo import run_cli

    run_cli(messages=messages, timeout=timeout, as_json=as_json)
