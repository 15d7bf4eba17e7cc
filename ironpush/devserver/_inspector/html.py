"""HTML building blocks of the inspector: escaping, the page layout, tables, forms.

Plain string templates: every value goes through :func:`esc` (HTML-escaped), so a message body
or a queue name can never become markup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

UI = "/_dev/ui"


def esc(value: Any) -> str:
    """``value`` as HTML text (``None`` shows as ``-``)."""
    return "-" if value is None else escape(str(value), quote=True)


def queue_href(project: str, queue: str) -> str:
    return f"{UI}/q/{quote(project, safe='')}/{quote(queue, safe='')}"


def message_href(project: str, queue: str, message_id: str) -> str:
    return f"{queue_href(project, queue)}/m/{quote(message_id, safe='')}"


def badge(outcome: Any) -> str:
    """A coloured label for an outcome or push status (the CSS class is the value)."""
    text = esc(outcome)
    return f'<span class="badge b-{text}">{text}</span>'


def pretty_body(body: str) -> tuple[str, bool]:
    """The body indented when it is JSON (and whether it was)."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False), True
    except ValueError:
        return body, False


def table(
    columns: Sequence[str], rows: Iterable[Sequence[str]], *, empty: str, attrs: str = ""
) -> str:
    """A table of already-escaped cells."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty">{esc(empty)}</p>'
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    return f"<table {attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def hidden(fields: Mapping[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in fields.items()
    )


def button_form(
    action: str,
    label: str,
    fields: Mapping[str, str],
    *,
    confirm: str | None = None,
    css: str = "",
    test_id: str = "",
) -> str:
    """A one-button POST form (``fields`` must include the page token ``csrf``)."""
    ask = f' data-confirm="{esc(confirm)}"' if confirm else ""
    tid = f' data-testid="{esc(test_id)}"' if test_id else ""
    return (
        f'<form method="post" action="{esc(action)}" class="inline"{ask}>{hidden(fields)}'
        f'<button type="submit" class="{esc(css)}"{tid}>{esc(label)}</button></form>'
    )


def page(
    title: str,
    content: str,
    *,
    csrf: str,
    last_event_id: int,
    stream_query: str = "",
    notice: str | None = None,
) -> str:
    """The whole document: header, optional notice, content, and the live-update script."""
    flash = f'<p class="notice" role="status">{esc(notice)}</p>' if notice else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf" content="{esc(csrf)}">
<meta name="last-event-id" content="{last_event_id}">
<meta name="stream-query" content="{esc(stream_query)}">
<title>{esc(title)} · ironpush inspector</title>
<link rel="stylesheet" href="{UI}/static/inspector.css">
</head>
<body>
<header>
  <a class="brand" href="{UI}">ironpush inspector</a>
  <span class="sub">local IronMQ dev server</span>
  <span id="live" class="live off" title="live updates">connecting…</span>
</header>
<main>
{flash}
{content}
</main>
<script src="{UI}/static/inspector.js"></script>
</body>
</html>
"""


def error_page(status: int, reason: str) -> str:
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{status}</title>"
        f"</head><body><h1>{status}</h1><p>{esc(reason)}</p></body></html>"
    )
