"""The queue commands: ``ironpush queues``, ``info``, ``post`` and ``delete-queue``.

Importing this module registers them on :data:`~ironpush.cli._commands.main`.
"""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any

import click

from .._errors import NotFound
from ..client._operations import message_json
from ..client._sync_client import Queue
from ._commands import Context, confirm, json_option, main, parse_pairs, pass_context
from ._rendering import emit, queue_info_doc


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
    shown = {k: v for k, v in doc.items() if k not in ("push", "alerts")}
    lines = [f"{k}: {'-' if v is None else v}" for k, v in shown.items()]
    if doc["alerts"]:
        lines.append(f"alerts: {len(doc['alerts'])}")
    push = doc["push"]
    if push:
        lines += [f"{k}: {'-' if v is None else v}" for k, v in push.items() if k != "subscribers"]
        lines.append("subscribers:")
        lines += [f"  {s['name']}  {s['url']}" for s in push["subscribers"]]
    emit(as_json, doc, "\n".join(lines))


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
@click.option(
    "--strict-json",
    is_flag=True,
    help="Refuse (exit 2, nothing posted) a BODY that starts with { or [ but is not JSON.",
)
@json_option
@pass_context
def post(
    state: Context,
    queue: str,
    bodies: tuple[str, ...],
    delay: float | None,
    push_headers: tuple[str, ...],
    strict_json: bool,
    as_json: bool,
) -> None:
    """Post one message per BODY ("-" reads a body from stdin).

    A BODY that looks like JSON but does not parse is posted as text with a warning
    (--strict-json refuses it). Posting to a queue that does not exist creates a pull queue,
    which v3 cannot turn into a push queue: subscribe first to make a push queue.

    Example: ironpush post orders '{"id": 1}' --push-header X-Trace:abc
    """
    headers = parse_pairs(push_headers, "--push-header")
    texts = [sys.stdin.read() if body == "-" else body for body in bodies]
    _check_json_looking(texts, strict=strict_json)
    messages: list[dict[str, Any]] = []
    for text in texts:
        message: dict[str, Any] = {"body": text}
        if delay is not None:
            message["delay"] = delay
        if headers:
            message["push_headers"] = headers
        messages.append(message)
    for message in messages:
        message_json(message)  # a bad message is refused before the queue is looked at
    target = state.client.queue(queue)
    _warn_if_missing(target)
    ids = target.post(*messages)
    emit(as_json, {"queue": queue, "ids": ids}, "\n".join(ids))


def _check_json_looking(texts: list[str], *, strict: bool) -> None:
    """Warn about (or with ``strict``, refuse) bodies that start like JSON but do not parse:
    almost always shell quoting gone wrong, and a JSON route would answer them 400."""
    for number, text in enumerate(texts, start=1):
        if text.lstrip()[:1] not in ("{", "["):
            continue
        try:
            json.loads(text)
        except ValueError as exc:
            which = f"BODY {number}" if len(texts) > 1 else "BODY"
            why = f"{which} looks like JSON but does not parse ({_json_error(exc)})"
            if strict:
                raise click.BadParameter(why, param_hint="BODY") from exc
            click.echo(f"warning: {why}; posting it as text (--strict-json refuses)", err=True)


def _json_error(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return str(exc)


def _warn_if_missing(queue: Queue) -> None:
    """Posting creates a missing queue as a *pull* queue, for good: say so once, before."""
    try:
        queue.info()
    except NotFound:
        name = shlex.quote(queue.name)
        click.echo(
            f"warning: queue {queue.name!r} does not exist: this post creates it as a pull "
            "queue, and v3 cannot make a pull queue a push queue later. To have its messages "
            f"pushed, subscribe first (`ironpush subscribe {name} URL` or `ironpush subscribe "
            f"--app MODULE:ROUTER --base-url URL`); to undo: `ironpush delete-queue {name} --yes`",
            err=True,
        )


@main.command("delete-queue")
@click.argument("queue")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_context
def delete_queue(state: Context, queue: str, yes: bool, as_json: bool) -> None:
    """Delete a queue with its messages and subscribers.

    Example: ironpush delete-queue old-orders --yes
    """
    q = state.client.queue(queue)
    size = q.size()
    confirm(f"Delete queue {queue} and its {size} message(s)?", yes)
    q.delete_queue()
    emit(as_json, {"queue": queue, "deleted": True}, f"deleted queue {queue}")
