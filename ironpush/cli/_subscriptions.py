"""The push commands: ``ironpush subscribe``, ``unsubscribe``, ``subscribers``, ``statuses``,
``ack`` and ``keygen`` (the signing key for push secrets and ack tokens).

Importing this module registers them on :data:`~ironpush.cli._commands.main`.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from .._errors import ValidationError
from .._protocol import PUSH_TYPES, Delivery
from .._redact import redact_subscriber, redact_url
from .._signing import generate_key, load_ack_token
from ..client._models import Subscriber
from ..receiver._registration import (
    check_base_url,
    check_subscriber_url,
    subscribe_app,
    sync_subscriptions,
)
from ..receiver._routes import Subscription
from ._app_import import load_router_quietly
from ._choice import Choice
from ._commands import Context, json_option, main, parse_pairs, pass_context
from ._rendering import emit, push_status_row, queue_info_doc, table


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
    type=Choice(PUSH_TYPES),
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
@click.option(
    "--prune",
    is_flag=True,
    help="With --app: remove stale subscribers (under --base-url, no longer declared).",
)
@click.option(
    "--scan-all",
    is_flag=True,
    help="With --app: look for stale subscribers on every queue of the project, not only "
    "the router's (one request per queue).",
)
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
    prune: bool,
    scan_all: bool,
    as_json: bool,
) -> None:
    """Subscribe a URL to a push queue, or register every route of a PushRouter.

    With --app, subscribers under --base-url that the router no longer declares (a renamed or
    removed route) are listed as stale; --prune removes them (never a subscriber elsewhere).
    Only the router's queues are looked at, unless --scan-all (IronMQ's queue list has no
    subscribers: it reads every queue, one request each).

    \b
    Examples:
      ironpush subscribe orders https://api.example.com/hooks/orders --retries 5
      ironpush subscribe --app myservice.app:router --base-url https://api.example.com/ironmq
      ironpush subscribe --app myservice.app:router --base-url URL --prune --dry-run
    """
    if app_ref is not None:
        if queue or url:
            raise click.UsageError("give either QUEUE URL or --app, not both")
        options = {"dry_run": dry_run, "prune": prune, "scan_all": scan_all}
        _subscribe_router(state, app_ref, base_url, as_json=as_json, **options)
        return
    if not queue or not url:
        raise click.UsageError("give QUEUE and URL (or --app MODULE:ROUTER --base-url URL)")
    if dry_run or base_url or prune or scan_all:
        raise click.UsageError("--dry-run, --prune, --scan-all and --base-url go with --app")
    _usage(check_subscriber_url, url, "URL")
    fields = {"url": url, "headers": parse_pairs(headers, "--header")}
    subscriber = Subscriber.coerce({**fields, "name": name} if name else fields)
    wanted = Subscription(queue, subscriber, push_type, retries, retries_delay, error_queue)
    _subscribe_url(state, wanted, as_json=as_json)


def _usage(check: Callable[[str], str], value: str, param: str) -> None:
    """A value the library refuses before any request is a usage mistake (exit 2)."""
    try:
        check(value)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint=param) from exc


def _subscribe_router(
    state: Context,
    app_ref: str,
    base_url: str | None,
    *,
    as_json: bool,
    **flags: bool,
) -> None:
    """``subscribe --app``: register every route of the router ``MODULE:ROUTER`` (``flags``:
    :func:`~ironpush.subscribe_app`'s ``dry_run``, ``prune`` and ``scan_all``)."""
    if not base_url:
        raise click.UsageError("--app needs --base-url (where IronMQ can reach the router)")
    _usage(check_base_url, base_url, "--base-url")
    router = load_router_quietly(app_ref)
    if not router.routes:
        raise ValidationError(f"{app_ref} declares no routes")
    report = subscribe_app(router, base_url, client=state.client, **flags)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    emit(as_json, report.as_json(), report.text())


def _subscribe_url(state: Context, wanted: Subscription, *, as_json: bool) -> None:
    """``subscribe QUEUE URL``: create or update one subscriber."""
    queue, subscriber = wanted.queue, wanted.subscriber
    [change] = sync_subscriptions(state.client, [wanted]).changes
    doc = {
        "action": change.action,
        "detail": change.detail,
        "queue": queue,
        "subscriber": redact_subscriber(subscriber),
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
@click.argument("queue")
@json_option
@pass_context
def subscribers(state: Context, queue: str, as_json: bool) -> None:
    """List a push queue's subscribers (secret headers masked).

    Example: ironpush subscribers orders
    """
    docs = [redact_subscriber(s) for s in state.client.queue(queue).subscribers()]
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
        "msg",  # why the last try failed (the subscriber's answer, a timeout, ...)
    ]
    shown = [
        {**r, "msg": r["msg"] if len(r["msg"] or "") <= 60 else r["msg"][:59] + "…"} for r in rows
    ]
    emit(as_json, rows, table(shown, columns) if rows else "(no push statuses)")


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
        _ack_token(state, ack_token, as_json)
        return
    if queue and message_id and reservation and subscriber:
        delivery = Delivery(
            message_id=message_id, reservation_id=reservation, subscriber_name=subscriber
        )
    else:
        raise click.UsageError(
            "give --token TOKEN, or QUEUE MESSAGE_ID --reservation R --subscriber S"
        )
    state.client.acknowledge(queue, delivery)
    doc = {"acked": True, "queue": queue, "message_id": delivery.message_id}
    emit(as_json, doc, f"acked {delivery.message_id} on {queue}")


def _ack_token(state: Context, token: str, as_json: bool) -> None:
    """``ack --token``: the one ack-token path, with the store ``IRONPUSH_STORE`` names (if
    any), so the newest reservation is acked and a push handled already is not acked again."""
    from ..client._async_client import AsyncIronMQ
    from ..integrations.acks import PushAcks

    mq = state.client
    queue, delivery = load_ack_token(token, mq.settings.secret_keys)  # bad tokens: one line
    acks = PushAcks(client=lambda: AsyncIronMQ(settings=mq.settings, retry=mq.retry))
    result = acks.ack(token)
    if result == "late":
        raise click.ClickException(
            f"late: the reservation of {delivery.message_id} had run out; IronMQ pushes it "
            "again and the receivers answer from their store"
        )
    doc = {"acked": result == "acked", "queue": queue, "message_id": delivery.message_id}
    if result != "acked":
        doc["result"] = str(result)
    emit(as_json, doc, f"{result} {delivery.message_id} on {queue}")


@main.command()
@json_option
def keygen(as_json: bool) -> None:
    """Print a new random signing key (32 random bytes, URL-safe) for IRONPUSH_SECRET_KEYS.

    Keep it (a secret store, your deployment's env): the service (`ironpush serve`) and
    `ironpush subscribe` must use the same keys, or every push is refused with 403. To rotate,
    append a new key: IRONPUSH_SECRET_KEYS=old,new.

    Example: export IRONPUSH_SECRET_KEYS=$(ironpush keygen)
    """
    key = generate_key()
    emit(as_json, {"key": key}, key)
