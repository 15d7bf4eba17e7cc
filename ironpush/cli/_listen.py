"""``ironpush listen``: real IronMQ pushes delivered to a service on this machine, with no
public URL and no tunnel (the engine is :mod:`ironpush._listen`).

Importing this module registers the command on :data:`~ironpush.cli._commands.main`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click
import httpx

from .._errors import NotFound, ValidationError
from .._listen._events import Emit, Event
from .._listen._names import host_slug, new_listener_id
from .._listen._plan import Relay, Target, plan
from .._listen._settings import ListenSettings
from .._listen._setup import clean, find_leftovers
from .._redact import redact_url
from ..client._async_client import AsyncIronMQ
from ..client._models import QueueInfo
from ..client._sync_client import IronMQ
from ..receiver._registration import check_base_url
from ._app_import import load_router_quietly
from ._commands import CLI_RETRY, CliError, Context, json_option, main, parse_pairs, pass_context
from ._options import options_from
from ._rendering import emit

if TYPE_CHECKING:
    from .._listen._session import Outcome


@main.command()
@click.argument("queues", metavar="[QUEUE]...", nargs=-1)
@click.option(
    "--forward-to",
    "forward_to",
    multiple=True,
    metavar="URL",
    help="Local URL to push to: one for every QUEUE, or one per QUEUE in order; with --app, "
    "the URL where the router is mounted.",
)
@click.option(
    "--app", "app_ref", metavar="MODULE:ROUTER", help="Relay every route of a PushRouter."
)
@click.option(
    "--as",
    "as_subscriber",
    metavar="NAME",
    help="Push as this existing subscriber of the queue: its name and custom headers.",
)
@click.option("--header", "headers", multiple=True, metavar="K:V", help="A header to push with.")
@click.option("--dry-run", is_flag=True, help="Print what would be created; create nothing.")
@click.option("--cleanup", is_flag=True, help="Remove what crashed listeners left behind.")
@click.option(
    "--any-host",
    is_flag=True,
    help="With --cleanup: also remove other machines' listeners (they may be running).",
)
@options_from(ListenSettings, "settings", flags={"ack_host": "--ack-host"})
@json_option
@pass_context
def listen(
    state: Context,
    queues: tuple[str, ...],
    forward_to: tuple[str, ...],
    app_ref: str | None,
    as_subscriber: str | None,
    headers: tuple[str, ...],
    dry_run: bool,
    cleanup: bool,
    any_host: bool,
    settings: ListenSettings,
    as_json: bool,
) -> None:
    """Relay a push queue's real pushes to a service on this machine: no public URL.

    For each push queue, a temporary pull queue is created and added to the queue as one more
    ironmq:/// subscriber; it is long-polled from here and each message is pushed to the local
    URL as IronMQ's pusher would (raw body, Iron-* headers, the subscriber's headers and
    secret). 200 deletes it, 202 waits for the service's ack, anything else is retried with the
    queue's retries_delay and reported after its retries. Ctrl-C removes the subscriber and
    the queue; `--cleanup` removes what a crashed listener left. Unicast queues are refused:
    the listener would take real messages away from production.

    \b
    Examples:
      ironpush listen --app myservice.app:router --forward-to http://127.0.0.1:8000/ironmq
      ironpush listen orders --forward-to http://127.0.0.1:8000/hooks/orders --as billing
      ironpush listen --cleanup
    """
    if cleanup:
        if forward_to or app_ref or as_subscriber or headers:
            raise click.UsageError("--cleanup takes only QUEUE names (and --any-host, --dry-run)")
        _cleanup(state, queues, any_host=any_host, dry_run=dry_run, as_json=as_json)
        return
    if any_host:
        raise click.UsageError("--any-host goes with --cleanup")
    targets = _targets(queues, forward_to, app_ref, as_subscriber, headers)
    mq = state.client
    outcome = asyncio.run(_listen(mq, targets, settings, dry_run=dry_run, as_json=as_json))
    if outcome is not None and outcome.problems:
        problems = "could not remove " + "; ".join(outcome.problems)
        hint = "`ironpush listen --cleanup` removes them"
        raise CliError(problems, hint=hint, as_json=as_json)
    if outcome is not None and outcome.fatal:
        raise CliError(outcome.fatal, as_json=as_json)


# --------------------------------------------------------------------------- targets


def _targets(
    queues: Sequence[str],
    forward_to: Sequence[str],
    app_ref: str | None,
    as_subscriber: str | None,
    headers: Sequence[str],
) -> list[Target]:
    if app_ref is not None:
        if queues or as_subscriber or headers:
            raise click.UsageError(
                "--app relays the router's queues: give no QUEUE, --as or --header"
            )
        if len(forward_to) != 1:
            raise click.UsageError("--app needs one --forward-to: the URL the router is mounted at")
        [base] = forward_to
        _usage(lambda: check_base_url(base), "--forward-to")
        router = load_router_quietly(app_ref)
        if not router.routes:
            raise ValidationError(f"{app_ref} declares no routes")
        return [
            Target(s.queue, s.subscriber.url, s.subscriber.name, dict(s.subscriber.headers))
            for s in router.subscriptions(base)
        ]
    if not queues:
        raise click.UsageError("give QUEUE... --forward-to URL, or --app MODULE:ROUTER")
    if len(forward_to) not in (1, len(queues)):
        raise click.UsageError(
            f"give one --forward-to for all queues or one per queue ({len(queues)})"
        )
    urls = list(forward_to) * len(queues) if len(forward_to) == 1 else list(forward_to)
    for url in dict.fromkeys(urls):
        _usage(functools.partial(_check_url, url), "--forward-to")
    extra = parse_pairs(headers, "--header")
    return [
        Target(queue, url, None, extra, copy_from=as_subscriber)
        for queue, url in zip(queues, urls, strict=True)
    ]


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(
            f"{redact_url(url)!r} needs http:// or https:// and a host, e.g. "
            "http://127.0.0.1:8000/hooks/orders"
        )


def _usage(check: Callable[[], object], param: str) -> None:
    try:
        check()
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint=param) from exc


# --------------------------------------------------------------------------- a run


def _client(mq: IronMQ, settings: ListenSettings) -> AsyncIronMQ:
    # A reserve long-polls for `wait` seconds: the read timeout must outlast it.
    timeout = httpx.Timeout(15.0, read=settings.wait + 15.0)
    return AsyncIronMQ(settings=mq.settings, retry=CLI_RETRY, timeout=timeout)


async def _listen(
    mq: IronMQ, targets: list[Target], settings: ListenSettings, *, dry_run: bool, as_json: bool
) -> Outcome | None:
    """Relay until a signal and say how it ended (None: a dry run)."""
    from .._listen._session import Session  # the ack endpoint loads uvicorn: only when run

    host, listener = host_slug(), new_listener_id()
    async with _client(mq, settings) as amq:
        infos = {
            queue: await _info(amq, queue) for queue in dict.fromkeys(t.queue for t in targets)
        }
        relays = plan(
            targets, infos, host=host, listener=listener, allow_unicast=settings.allow_unicast
        )
        if dry_run:
            _dry_run(relays, as_json=as_json)
            return None
        return await Session(
            amq, relays, settings, listener=listener, host=host, emit=_printer(as_json)
        ).run()


async def _info(mq: AsyncIronMQ, queue: str) -> QueueInfo | None:
    try:
        return await mq.queue(queue).info()
    except NotFound:
        return None


def _printer(as_json: bool) -> Emit:
    def show(event: Event) -> None:
        if event.quiet and not as_json:
            return
        click.echo(json.dumps(event.as_json()) if as_json else event.line())
        sys.stdout.flush()  # a line per push, also through a pipe

    return show


def _dry_run(relays: list[Relay], *, as_json: bool) -> None:
    lines = [f"would relay {r.text()}" for r in relays]
    lines.append("nothing was created (--dry-run)")
    emit(as_json, {"dry_run": True, "relays": [r.doc() for r in relays]}, "\n".join(lines))


# --------------------------------------------------------------------------- --cleanup


def _cleanup(
    state: Context, queues: Sequence[str], *, any_host: bool, dry_run: bool, as_json: bool
) -> None:
    async def run() -> None:
        async with _client(state.client, ListenSettings()) as mq:
            host = host_slug()
            found = await find_leftovers(mq, host=host, any_host=any_host, queues=queues)
            if queues:
                found = [x for x in found if x.name.queue in queues]
            report = await clean(mq, found, host=host, dry_run=dry_run)
        emit(as_json, report.as_json(), report.text())
        if report.problems:
            raise CliError("could not remove " + "; ".join(report.problems), as_json=as_json)

    asyncio.run(run())
