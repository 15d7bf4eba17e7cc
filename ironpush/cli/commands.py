"""The ``ironpush`` command line.

Every command is a thin layer over the public API (the client, ``PushRouter.subscriptions``, the
dev server). Errors are one line on stderr and a non-zero exit (1 for API/config/network
problems, 2 for usage mistakes); ``--debug`` shows tracebacks. Tokens and push secrets are never
printed: every output goes through :mod:`ironpush.cli.rendering`, which masks them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from .. import __version__
from ..client.models import Subscriber
from ..client.retry import RetryPolicy
from ..client.sync_client import IronMQ
from ..config import ENV_VARS
from ..errors import (
    ConfigError,
    IronPushError,
    NotFound,
    TransportError,
    Unauthorized,
)
from ..protocol import PUSH_TYPES, Delivery
from ..receiver.registration import subscribe_app, sync_subscriptions
from ..receiver.router import Subscription
from ..redact import redact_text, redact_url
from .dev import dev_command
from .rendering import emit, push_status_row, queue_info_doc, subscriber_doc, table

F = TypeVar("F", bound=Callable[..., Any])

# A CLI call should fail fast on an unreachable host rather than back off for 15 s.
CLI_RETRY = RetryPolicy(attempts=3, backoff=0.2, max_backoff=1.0)


class CliError(click.ClickException):
    """An error reported as ``error: <message>`` and exit status 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _explain(exc: IronPushError) -> str:
    """One line: what went wrong and what to do about it."""
    if isinstance(exc, Unauthorized):
        return f"{exc} — check the token (IRON_TOKEN / --token); v2 tokens do not work on v3"
    if isinstance(exc, NotFound):
        return f"{exc} — check the queue name and the project id"
    if isinstance(exc, TransportError):
        return f"{exc} — is the server running? check --host/--cloud or IRONMQ_EMULATOR_HOST"
    if isinstance(exc, ConfigError):
        return str(exc).replace("\n", " ")
    return str(exc)


class IronPushGroup(click.Group):
    """Turns every ironpush error into one clear line (no traceback unless ``--debug``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except IronPushError as exc:
            if _debug(ctx):
                raise
            raise CliError(_scrub(ctx, _explain(exc))) from exc
        except TimeoutError as exc:
            if _debug(ctx):
                raise
            raise CliError(_scrub(ctx, str(exc)) or "timed out") from exc
        except Exception as exc:
            if _debug(ctx):
                raise
            raise CliError(
                _scrub(ctx, f"unexpected {type(exc).__name__}: {exc}")
                + " (run with --debug for the traceback)"
            ) from exc


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
            self._client = IronMQ(retry=CLI_RETRY, timeout=15.0, **self.options)
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
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING)
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


# --------------------------------------------------------------------------- reading


@main.command()
@click.option("--prefix", help="Only queues whose name starts with this.")
@json_option
@pass_context
def queues(state: Context, prefix: str | None, as_json: bool) -> None:
    """List queue names (every page).

    Example: ironpush queues --prefix orders
    """
    names = list(state.client.iter_queues(prefix=prefix))
    emit(as_json, names, "\n".join(names) if names else "(no queues)")


@main.command()
@click.argument("queue")
@json_option
@pass_context
def info(state: Context, queue: str, as_json: bool) -> None:
    """Show a queue's settings, size and subscribers.

    Example: ironpush info orders --json
    """
    doc = queue_info_doc(state.client.queue(queue).info())
    lines = [f"{k}: {'-' if v is None else v}" for k, v in doc.items() if k not in ("push",)]
    push = doc.get("push")
    if push:
        lines += [f"{k}: {'-' if v is None else v}" for k, v in push.items() if k != "subscribers"]
        lines.append("subscribers:")
        lines += [f"  {s['name']}  {s['url']}" for s in push["subscribers"]]
    emit(as_json, doc, "\n".join(lines))


@main.command()
@click.argument("queue")
@json_option
@pass_context
def subscribers(state: Context, queue: str, as_json: bool) -> None:
    """List a push queue's subscribers (secret headers masked).

    Example: ironpush subscribers orders
    """
    docs = [subscriber_doc(s) for s in state.client.queue(queue).subscribers()]
    rows = [{**d, "headers": ", ".join(f"{k}: {v}" for k, v in d["headers"].items())} for d in docs]
    emit(as_json, docs, table(rows, ["name", "url", "headers"]) if rows else "(no subscribers)")


@main.command()
@click.argument("queue")
@click.argument("message_id")
@json_option
@pass_context
def statuses(state: Context, queue: str, message_id: str, as_json: bool) -> None:
    """Show each subscriber's push status for one message.

    Example: ironpush statuses orders 6295218129411523597
    """
    rows = [
        push_status_row(s) for s in state.client.queue(queue).get_message_push_statuses(message_id)
    ]
    columns = [
        "subscriber_name",
        "status",
        "status_code",
        "tries",
        "retries_remaining",
        "last_try_at",
    ]
    emit(as_json, rows, table(rows, columns) if rows else "(no push statuses)")


# --------------------------------------------------------------------------- writing


@main.command()
@click.argument("queue")
@click.argument("bodies", metavar="BODY...", nargs=-1, required=True)
@click.option("--delay", type=click.FloatRange(min=0), help="Seconds before the messages appear.")
@click.option(
    "--push-header",
    "push_headers",
    multiple=True,
    metavar="K:V",
    help="A header the pusher adds to this message's pushes (repeatable).",
)
@json_option
@pass_context
def post(
    state: Context,
    queue: str,
    bodies: tuple[str, ...],
    delay: float | None,
    push_headers: tuple[str, ...],
    as_json: bool,
) -> None:
    """Post one message per BODY ("-" reads a body from stdin).

    Example: ironpush post orders '{"id": 1}' --push-header X-Trace:abc
    """
    headers = parse_pairs(push_headers, "--push-header")
    messages: list[dict[str, Any]] = []
    for body in bodies:
        message: dict[str, Any] = {"body": sys.stdin.read() if body == "-" else body}
        if delay is not None:
            message["delay"] = delay
        if headers:
            message["push_headers"] = headers
        messages.append(message)
    ids = state.client.queue(queue).post(*messages)
    emit(as_json, {"queue": queue, "ids": ids}, "\n".join(ids))


@main.command()
@click.argument("queue", required=False)
@click.argument("url", required=False)
@click.option("--name", help="Subscriber name (default: derived from the URL).")
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="K:V",
    help="A header IronMQ sends with every push (repeatable).",
)
@click.option(
    "--type",
    "push_type",
    type=click.Choice(PUSH_TYPES),
    help="Push type when the queue is created (default multicast).",
)
@click.option("--retries", type=click.IntRange(0, 100), help="Retries after the first try.")
@click.option("--retries-delay", type=click.FloatRange(min=0), help="Seconds between tries.")
@click.option("--error-queue", help="Queue that receives messages whose pushes failed.")
@click.option(
    "--app",
    "app_ref",
    metavar="MODULE:ROUTER",
    help="Register every route of a PushRouter instead of one URL.",
)
@click.option("--base-url", help="With --app: the public URL where the router is mounted.")
@click.option("--dry-run", is_flag=True, help="With --app: show what would change, change nothing.")
@json_option
@pass_context
def subscribe(
    state: Context,
    queue: str | None,
    url: str | None,
    name: str | None,
    headers: tuple[str, ...],
    push_type: str | None,
    retries: int | None,
    retries_delay: float | None,
    error_queue: str | None,
    app_ref: str | None,
    base_url: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Subscribe a URL to a push queue, or register every route of a PushRouter.

    \b
    Examples:
      ironpush subscribe orders https://api.example.com/hooks/orders --retries 5
      ironpush subscribe --app myservice.app:router --base-url https://api.example.com/ironmq
    """
    if app_ref is not None:
        if queue or url:
            raise click.UsageError("give either QUEUE URL or --app, not both")
        if not base_url:
            raise click.UsageError("--app needs --base-url (where IronMQ can reach the router)")
        report = subscribe_app(state.client, app_ref, base_url, dry_run=dry_run)
        emit(as_json, report.as_json(), report.text())
        return
    if not queue or not url:
        raise click.UsageError("give QUEUE and URL (or --app MODULE:ROUTER --base-url URL)")
    if dry_run or base_url:
        raise click.UsageError("--dry-run and --base-url go with --app")
    fields = {"url": url, "headers": parse_pairs(headers, "--header")}
    subscriber = Subscriber.coerce({**fields, "name": name} if name else fields)
    wanted = Subscription(queue, subscriber, push_type, retries, retries_delay, error_queue)
    [change] = sync_subscriptions(state.client, [wanted]).changes
    doc = {
        "action": change.action,
        "detail": change.detail,
        "queue": queue,
        "subscriber": subscriber_doc(subscriber),
        "queue_info": queue_info_doc(state.client.queue(queue).info()),
    }
    emit(
        as_json,
        doc,
        f"{change.action}: {subscriber.name} -> {redact_url(subscriber.url)} on {queue}",
    )


@main.command()
@click.argument("queue")
@click.argument("subscribers_", metavar="NAME|URL...", nargs=-1, required=True)
@json_option
@pass_context
def unsubscribe(state: Context, queue: str, subscribers_: tuple[str, ...], as_json: bool) -> None:
    """Remove subscribers from a push queue, by name or URL.

    Example: ironpush unsubscribe orders billing https://old.example.com/hook
    """
    state.client.queue(queue).remove_subscribers(*subscribers_)
    removed = [redact_url(s) for s in subscribers_]
    emit(
        as_json, {"queue": queue, "removed": removed}, f"removed from {queue}: {', '.join(removed)}"
    )


@main.command()
@click.argument("queue", required=False)
@click.argument("message_id", required=False)
@click.option("--token", "ack_token", help="An ack token from PushMessage.ack_token.")
@click.option("--reservation", help="The push's Iron-Reservation-Id.")
@click.option("--subscriber", help="The push's Iron-Subscriber-Name.")
@json_option
@pass_context
def ack(
    state: Context,
    queue: str | None,
    message_id: str | None,
    ack_token: str | None,
    reservation: str | None,
    subscriber: str | None,
    as_json: bool,
) -> None:
    """Acknowledge a push that was answered with 202.

    \b
    Examples:
      ironpush ack --token "$ACK_TOKEN"            (needs IRONPUSH_SECRET_KEYS)
      ironpush ack orders 6295218129411523597 --reservation abc --subscriber billing
    """
    if ack_token:
        if queue or message_id or reservation or subscriber:
            raise click.UsageError("--token carries everything: give no other arguments")
        state.client.ack(ack_token)
        emit(as_json, {"acked": True}, "acked")
        return
    if not (queue and message_id and reservation and subscriber):
        raise click.UsageError(
            "give --token TOKEN, or QUEUE MESSAGE_ID --reservation R --subscriber S"
        )
    delivery = Delivery(
        message_id=message_id, reservation_id=reservation, subscriber_name=subscriber
    )
    state.client.acknowledge(queue, delivery)
    emit(as_json, {"acked": True, "queue": queue, "message_id": message_id}, "acked")


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
    from .demo import run_demo, summary_rows

    # The demo narrates every outcome itself; the receiver's own log lines would repeat them.
    logging.getLogger("ironpush.receiver").setLevel(logging.ERROR)
    result = run_demo(messages=messages, timeout=timeout, echo=_silent if as_json else click.echo)
    rows = summary_rows(result.counters)
    doc = {
        "ok": result.ok,
        "elapsed": round(result.elapsed, 3),
        "counters": result.counters,
        "messages": {m: [push_status_row(s) for s in st] for m, st in result.statuses.items()},
    }
    emit(as_json, doc, "\n" + table(rows, ["counter", "value"]))
    if not result.ok:
        raise CliError("some pushes did not finish as expected (see the table above)")


def _silent(_: str) -> None:
    pass
