"""The inspector's buttons: post a message, clear a queue, replay a message or an error report.

Every action is a POST of a small form (``application/x-www-form-urlencoded``) that passed the
:class:`~ironpush.devserver._inspector.guard.Guard`'s cross-site checks; it answers with a 303
back to the page it came from, which shows what happened in one line.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from ..._errors import APIError, ValidationError
from ..._protocol import MAX_DELAY, validate_push_headers
from ...client._models import ErrorReport
from .._engine import Engine
from .._replay import Replay, push_headers_from_report
from .._validation import NewMessage
from .html import message_href, queue_href

Form = dict[str, str]
#: (where to go back to, the line to show there)
Done = tuple[str, str]
Action = Callable[[Engine, Form], Awaitable[Done]]


def _required(form: Form, *names: str) -> list[str]:
    values = [form.get(n, "").strip() for n in names]
    missing = [n for n, v in zip(names, values, strict=True) if not v]
    if missing:
        raise APIError(400, f"{', '.join(missing)} required")
    return values


def _headers(text: str) -> dict[str, str]:
    pairs = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise APIError(400, f"push header line {line!r}: expected Name: value")
        pairs[name.strip()] = value.strip()
    try:
        return validate_push_headers(pairs)
    except ValidationError as exc:
        raise APIError(400, str(exc)) from None


def _delay(text: str) -> float:
    try:
        value = float(text or 0)
    except ValueError:
        raise APIError(400, "delay must be a number of seconds") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_DELAY:
        raise APIError(400, f"delay must be between 0 and {MAX_DELAY} seconds")
    return value


async def post(engine: Engine, form: Form) -> Done:
    project, queue = _required(form, "project", "queue")
    body = form.get("body", "")
    if not body:
        raise APIError(400, "body required")
    if len(body.encode()) > engine.limits.max_message_size:
        raise APIError(400, f"message body is larger than {engine.limits.max_message_size} bytes")
    item = NewMessage(body, _delay(form.get("delay", "")), _headers(form.get("push_headers", "")))
    [mid] = await engine.post(project, queue, [item])
    return message_href(project, queue, mid), f"posted message {mid} to {queue}"


async def clear(engine: Engine, form: Form) -> Done:
    project, queue = _required(form, "project", "queue")
    q = engine.queue(project, queue)
    count = len(q.messages)
    await engine.clear(q)
    return queue_href(project, queue), f"cleared {queue}: {count} message(s) deleted"


async def replay_message(engine: Engine, form: Form) -> Done:
    project, queue, mid = _required(form, "project", "queue", "message_id")
    names = [form["subscriber"]] if form.get("subscriber") else []
    done = await engine.replay(Replay(project, queue, mid, subscribers=names))
    who = ", ".join(done["subscribers"])
    line = f"{done['how']}: {who}" if done["how"] != "same message" else f"replayed to {who}"
    return message_href(project, queue, done["message_id"]), line


async def replay_report(engine: Engine, form: Form) -> Done:
    """Push an error report's source message again, then delete the report."""
    project, queue, report_id = _required(form, "project", "queue", "report_id")
    q = engine.queue(project, queue)
    m = engine.message(q, report_id)
    try:
        report = ErrorReport.parse(m.body)
    except ValueError:
        raise APIError(400, f"message {report_id} is not an error report") from None
    sources = [s for s in engine.queues(project) if s.error_queue == queue]
    if len(sources) != 1:
        raise APIError(409, f"{len(sources)} push queues use {queue} as error queue: use the CLI")
    source = sources[0]
    failed = [f.name for f in report.subscribers if f.name and source.subscriber(f.name)]
    sub_headers = [h for s in source.subscribers for h in s.headers]
    headers = push_headers_from_report(report.headers, subscriber_headers=sub_headers)
    ask = Replay(project, source.name, report.source_msg_id, failed, report.body, headers)
    done = await engine.replay(ask)
    await engine.delete(q, report_id, None)  # only once the replay is under way
    line = f"replayed {done['message_id']} ({done['how']}) and deleted report {report_id}"
    return queue_href(project, queue), line


ACTIONS: dict[str, Action] = {
    "post": post,
    "clear": clear,
    "replay": replay_message,
    "replay-report": replay_report,
}
