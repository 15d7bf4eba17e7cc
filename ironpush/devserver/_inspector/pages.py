"""The inspector's pages: the overview (queues + live feed), one queue, one message.

Each page is rendered on the server from the live state (the handlers run on the dev server's
event loop, like the API, so they read the engine directly). The parts that change while you
look at them (the queue table, a message's attempts) are also served alone as fragments
(``?fragment=queues`` / ``?fragment=attempts``), which the page script swaps in when an event
concerns them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..._redact import redact_headers
from ...client._models import ErrorReport
from .._engine import Engine
from .._events import EventFilter, describe, short_reservation
from .._masking import shown_url
from .._records import MessageRecord, QueueRecord, iso
from .html import (
    UI,
    badge,
    button_form,
    esc,
    message_href,
    pretty_body,
    queue_href,
    table,
)

FEED_ROWS = 100
MESSAGES_SHOWN = 50


# --------------------------------------------------------------------------- overview


def queues_fragment(engine: Engine) -> str:
    rows = []
    for q in engine.queues():
        subs = ", ".join(s.name for s in q.subscribers) or "-"
        push = (
            f"retries {q.retries}, every {q.retries_delay:g}s"
            + (f", errors → {esc(q.error_queue)}" if q.error_queue else "")
            if q.is_push
            else "-"
        )
        rows.append(
            [
                esc(q.project),
                f'<a href="{esc(queue_href(q.project, q.name))}">{esc(q.name)}</a>',
                esc(q.type),
                f'<span class="num">{len(q.messages)}</span>',
                esc(q.total_messages),
                esc(subs),
                push,
            ]
        )
    columns = ["project", "queue", "type", "size", "posted", "subscribers", "push settings"]
    return table(columns, rows, empty="No queues yet: post a message or create a push queue.")


def feed_rows(events: Iterable[Mapping[str, Any]]) -> str:
    """Rows of the live feed, newest first (the page script prepends new ones alike)."""
    out = []
    for e in events:
        mid = e.get("message_id")
        link = (
            f'<a href="{esc(message_href(e["project"], e["queue"], mid))}">{esc(mid)}</a>'
            if mid and e.get("project") and e.get("queue")
            else esc(mid)
        )
        out.append(
            f'<tr data-id="{esc(e.get("id"))}"><td class="t">{esc(_clock(e.get("at")))}</td>'
            f"<td>{badge(e.get('outcome'))}</td><td>{esc(e.get('queue'))}</td><td>{link}</td>"
            f"<td>{esc(_who(e))}</td><td class='detail'>{esc(describe(e))}</td></tr>"
        )
    return "".join(reversed(out))


def _who(event: Mapping[str, Any]) -> str | None:
    names = event.get("subscriber") or ", ".join(event.get("subscribers") or ())
    return names or None


def _clock(at: Any) -> str:
    return str(at)[11:23] if at else "-"


def overview_content(engine: Engine, csrf: str) -> str:
    recent = engine.events.recent(EventFilter(), limit=FEED_ROWS)
    head = "<tr><th>time</th><th>outcome</th><th>queue</th><th>message</th><th>subscriber</th>"
    return f"""
<section><h2>Queues</h2><div id="queues" data-fragment="queues">{queues_fragment(engine)}</div>
</section>
<section><h2>Live deliveries</h2>
<table class="feed"><thead>{head}<th>what happened</th></tr></thead>
<tbody id="feed">{feed_rows(recent)}</tbody></table>
<p class="empty" id="feed-empty"{" hidden" if recent else ""}>Nothing pushed yet.</p>
</section>
<section><details><summary><h2 class="inline">Post a message</h2></summary>
{post_form(csrf, None)}</details></section>"""


def post_form(csrf: str, q: QueueRecord | None) -> str:
    queue_field = (
        f'<input type="hidden" name="project" value="{esc(q.project)}">'
        f'<input type="hidden" name="queue" value="{esc(q.name)}">'
        if q is not None
        else '<label><span>project</span><input name="project" value="dev" required></label>'
        '<label><span>queue</span><input name="queue" required data-testid="post-queue"></label>'
    )
    return f"""<form method="post" action="{UI}/actions/post" class="post">
<input type="hidden" name="csrf" value="{esc(csrf)}">{queue_field}
<label class="wide"><span>body</span>
<textarea name="body" rows="4" required data-testid="post-body">{{"hello": "world"}}</textarea>
</label>
<label class="wide"><span>push headers (one "Name: value" per line)</span>
<textarea name="push_headers" rows="2"></textarea></label>
<label><span>delay (s)</span><input name="delay" value="0" size="5"></label>
<button type="submit" data-testid="post-submit">Post</button></form>"""


# --------------------------------------------------------------------------- one queue


def queue_content(engine: Engine, q: QueueRecord, csrf: str) -> str:
    fields = {"csrf": csrf, "project": q.project, "queue": q.name}
    settings = [
        ("type", esc(q.type)),
        ("size", esc(len(q.messages))),
        ("messages posted", esc(q.total_messages)),
        ("message timeout", esc(f"{q.message_timeout:g}s")),
    ]
    if q.is_push:
        settings += [
            ("retries", esc(q.retries)),
            ("retries delay", esc(f"{q.retries_delay:g}s")),
            ("error queue", _queue_link(q.project, q.error_queue)),
        ]
    subs = [
        [esc(s.name), esc(shown_url(s.url)), esc(_pairs(redact_headers(s.headers)))]
        for s in q.subscribers
    ]
    clear = button_form(
        f"{UI}/actions/clear",
        "Clear queue",
        fields,
        confirm=f"Delete every message of {q.name}?",
        css="danger",
        test_id="clear",
    )
    return f"""
<h1>Queue {esc(q.name)} <small>project {esc(q.project)}</small></h1>
<section><h2>Settings</h2>{_definitions(settings)}</section>
<section><h2>Subscribers</h2>{table(["name", "url", "headers"], subs, empty="none (a pull queue)")}
</section>
{_reports(engine, q, csrf)}
<section><h2>Messages</h2>{_messages(engine, q)}</section>
<section><h2>Post a message</h2>{post_form(csrf, q)}</section>
<section><h2>Admin</h2>{clear}</section>"""


def _queue_link(project: str, name: str | None) -> str:
    return f'<a href="{esc(queue_href(project, name))}">{esc(name)}</a>' if name else "-"


def _pairs(headers: Mapping[str, str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in headers.items()) or "-"


def _definitions(items: Iterable[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _messages(engine: Engine, q: QueueRecord) -> str:
    finished = engine.finished_of(q, MESSAGES_SHOWN)
    live = list(q.messages.values())[:MESSAGES_SHOWN]
    rows = [
        [
            f'<a href="{esc(message_href(q.project, q.name, m.id))}">{esc(m.id)}</a>',
            badge(m.state),
            esc(iso(m.posted_at)),
            esc(_push_summary(m)),
            f"<code>{esc(_excerpt(m.body, 80))}</code>",
        ]
        for m in live + finished
    ]
    columns = ["message", "state", "posted", "pushes", "body"]
    return table(columns, rows, empty="No messages (pushed messages stay here for a while).")


def _push_summary(m: MessageRecord) -> str:
    if m.push is None:
        return "-"
    return ", ".join(f"{ps.name}: {ps.status}" for ps in m.push) or "-"


def _excerpt(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _reports(engine: Engine, q: QueueRecord, csrf: str) -> str:
    """The error-queue reports among this queue's messages, each with a replay button."""
    sources = [s for s in engine.queues(q.project) if s.is_push and s.error_queue == q.name]
    rows = []
    for m in list(q.messages.values())[:MESSAGES_SHOWN]:
        try:
            report = ErrorReport.parse(m.body)
        except ValueError:
            continue
        failures = "; ".join(
            f"{f.name}: {f.code or 'no answer'} {f.msg or ''}".strip() for f in report.subscribers
        )
        actions = ""
        if len(sources) == 1:
            fields = {"csrf": csrf, "project": q.project, "queue": q.name, "report_id": m.id}
            actions = button_form(
                f"{UI}/actions/replay-report", "Replay", fields, test_id=f"replay-report-{m.id}"
            )
        src = sources[0].name if len(sources) == 1 else None
        source_link = (
            f'<a href="{esc(message_href(q.project, src, report.source_msg_id))}">'
            f"{esc(report.source_msg_id)}</a>"
            if src
            else esc(report.source_msg_id)
        )
        rows.append([esc(m.id), source_link, esc(failures), actions])
    if not rows:
        return ""
    columns = ["report", "source message", "failures", ""]
    intro = (
        f"Reports posted by {', '.join(esc(s.name) for s in sources)}. Replay pushes the source "
        "message again to the subscribers that failed, then deletes the report."
        if sources
        else "Error reports (no push queue names this one as its error queue now)."
    )
    return (
        f"<section><h2>Error reports</h2><p>{intro}</p>{table(columns, rows, empty='')}</section>"
    )


# --------------------------------------------------------------------------- one message


def message_content(
    engine: Engine, q: QueueRecord, m: MessageRecord | None, message_id: str, csrf: str
) -> str:
    attempts = engine.attempts(message_id)
    if m is None:
        state = "no longer kept by the dev server (finished_retention)"
        body_html, headers = "<p class='empty'>not kept</p>", {}
    else:
        state = m.state
        body, is_json = pretty_body(m.body)
        body_html = (
            f'<pre class="body{" json" if is_json else ""}" data-testid="body">{esc(body)}</pre>'
        )
        headers = redact_headers(m.push_headers)
    fields = {"csrf": csrf, "project": q.project, "queue": q.name, "message_id": message_id}
    replay_all = (
        button_form(
            f"{UI}/actions/replay", "Replay to every subscriber", fields, test_id="replay-all"
        )
        if q.is_push and q.subscribers
        else ""
    )
    summary = [
        ("queue", _queue_link(q.project, q.name)),
        ("state", badge(state)),
        ("posted", esc(iso(m.posted_at) if m else None)),
        ("push headers", esc(_pairs(headers))),
    ]
    return f"""
<h1>Message <span data-testid="message-id">{esc(message_id)}</span></h1>
<section>{_definitions(summary)}{replay_all}</section>
<section><h2>Body</h2>{body_html}</section>
<section><h2>Pushes</h2><div id="attempts" data-fragment="attempts">
{attempts_fragment(q, m, attempts, csrf)}</div></section>"""


def attempts_fragment(
    q: QueueRecord, m: MessageRecord | None, attempts: list[dict[str, Any]], csrf: str
) -> str:
    """Per subscriber: the final push status, its replay button and every attempt."""
    statuses = {ps.name: ps for ps in ((m.push or []) if m is not None else [])}
    names = list(dict.fromkeys([*statuses, *(a["subscriber"] for a in attempts)]))
    if not names:
        return "<p class='empty'>Not pushed (a pull queue, or posted before any subscriber).</p>"
    parts = []
    for name in names:
        ps = statuses.get(name)
        status = (
            f"{badge(ps.status)} code {esc(ps.status_code)} · tries {esc(ps.tries)} · "
            f"retries left {esc(ps.retries_remaining)}" + (f" · {esc(ps.msg)}" if ps.msg else "")
            if ps is not None
            else "no push status kept"
        )
        replay = ""
        if m is not None and q.subscriber(name) is not None:
            fields = {
                "csrf": csrf,
                "project": q.project,
                "queue": q.name,
                "message_id": m.id,
                "subscriber": name,
            }
            replay = button_form(
                f"{UI}/actions/replay", f"Replay to {name}", fields, test_id=f"replay-{name}"
            )
        mine = [a for a in attempts if a["subscriber"] == name]
        parts.append(
            f'<div class="subscriber" data-subscriber="{esc(name)}"><h3>{esc(name)}</h3>'
            f'<p class="status" data-testid="status-{esc(name)}">{status}</p>{replay}'
            f"{_attempt_table(mine)}</div>"
        )
    return "".join(parts)


def _attempt_table(attempts: list[dict[str, Any]]) -> str:
    rows = []
    for a in attempts:
        ack = a.get("ack") or {}
        ack_text = ack.get("result", "-") + (f" via {ack['via']}" if ack.get("via") else "")
        sent = "\n".join(f"{k}: {v}" for k, v in (a.get("headers") or {}).items())
        rows.append(
            [
                esc(a["try"]) + f"/{esc(a.get('tries'))}",
                esc(_clock(a.get("at"))),
                badge(a.get("outcome")),
                esc(a["status_code"] if a["status_code"] is not None else "no answer"),
                f"<code>{esc(_excerpt(a.get('answer') or a.get('msg') or '', 200))}</code>",
                esc(f"{a['duration_ms']:.1f} ms"),
                f'<span title="{esc(a.get("reservation_id"))}">'
                f"{esc(short_reservation(a.get('reservation_id')))}</span>",
                esc(ack_text if a["status_code"] == 202 else "-"),
                f"<details><summary>headers</summary><pre>{esc(sent)}</pre></details>",
            ]
        )
    columns = ["try", "at", "outcome", "answer", "answer body", "latency", "reservation", "ack", ""]
    return table(columns, rows, empty="no attempt kept", attrs='class="attempts"')
