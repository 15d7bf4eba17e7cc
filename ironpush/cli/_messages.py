"""The message commands: ``ironpush peek``, ``reserve`` and ``clear``.

Importing this module registers them on :data:`~ironpush.cli._commands.main`.
"""

from __future__ import annotations

from typing import Any

import click

from ..client._models import Message
from ._commands import Context, confirm, json_option, main, pass_context
from ._rendering import emit, table

BODY_SHOWN = 60


def message_doc(message: Message) -> dict[str, Any]:
    """A message as JSON: id, body, reserved_count, reservation_id, push_headers."""
    headers = message.raw.get("push_headers")
    return {
        "id": message.id,
        "body": message.body,
        "reserved_count": message.reserved_count,
        "reservation_id": message.reservation_id,
        "push_headers": dict(headers) if isinstance(headers, dict) else {},
    }


def _messages_text(docs: list[dict[str, Any]], columns: list[str]) -> str:
    if not docs:
        return "(no messages)"
    rows = [
        {**d, "body": d["body"] if len(d["body"]) <= BODY_SHOWN else d["body"][:59] + "…"}
        for d in docs
    ]
    return table(rows, columns)


@main.command()
@click.argument("queue")
@click.option("--max", "max_", default=1, show_default=True, type=click.IntRange(1, 100))
@json_option
@pass_context
def peek(state: Context, queue: str, max_: int, as_json: bool) -> None:
    """Show the next messages of a queue without reserving them.

    Example: ironpush peek orders --max 10
    """
    docs = [message_doc(m) for m in state.client.queue(queue).peek(max=max_)]
    emit(as_json, docs, _messages_text(docs, ["id", "reserved_count", "body"]))


@main.command()
@click.argument("queue")
@click.option("--max", "max_", default=1, show_default=True, type=click.IntRange(1, 100))
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds the messages stay reserved (default: the queue's message_timeout).",
)
@click.option("--wait", type=click.FloatRange(0, 30), help="Long-poll up to this many seconds.")
@click.option("--delete", is_flag=True, help="Delete the messages as they are reserved.")
@json_option
@pass_context
def reserve(
    state: Context,
    queue: str,
    max_: int,
    timeout: float | None,
    wait: float | None,
    delete: bool,
    as_json: bool,
) -> None:
    """Reserve messages of a pull queue (print their reservation ids to delete or release them).

    \b
    Example: ironpush reserve jobs --max 5 --timeout 120
    then:    ironpush ... delete/release with the reservation id shown
    """
    found = state.client.queue(queue).reserve(max=max_, timeout=timeout, wait=wait, delete=delete)
    docs = [message_doc(m) for m in found]
    emit(as_json, docs, _messages_text(docs, ["id", "reservation_id", "reserved_count", "body"]))


@main.command()
@click.argument("queue")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_context
def clear(state: Context, queue: str, yes: bool, as_json: bool) -> None:
    """Delete every message of a queue (reserved ones too); the queue stays.

    Example: ironpush clear orders-errors --yes
    """
    q = state.client.queue(queue)
    size = q.size()  # also a clear 404 for a missing queue, before asking anything
    confirm(f"Delete all {size} message(s) of {queue}?", yes)
    q.clear()
    emit(as_json, {"queue": queue, "cleared": True, "size_before": size}, f"cleared {queue}")
