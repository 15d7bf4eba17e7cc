"""The queue commands: ``ironpush queues``, ``info`` and ``post``.

Importing this module registers them on :data:`~ironpush.cli._commands.main`.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ._commands import Context, json_option, main, parse_pairs, pass_context
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
