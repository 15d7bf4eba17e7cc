"""Rendering for the CLI: readable tables, ``--json`` documents, and masked secrets.

Everything the CLI prints goes through here, so masking cannot be forgotten in one command.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import click

from ..client.models import PushStatus, QueueInfo, Subscriber
from ..redact import redact_headers, redact_url

__all__ = ["emit", "push_status_row", "queue_info_doc", "subscriber_doc", "table"]


def subscriber_doc(sub: Subscriber) -> dict[str, Any]:
    """A subscriber as JSON, with secret header values and query parameters masked."""
    return {"name": sub.name, "url": redact_url(sub.url), "headers": redact_headers(sub.headers)}


def queue_info_doc(info: QueueInfo) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": info.name,
        "type": info.type,
        "size": info.size,
        "total_messages": info.total_messages,
        "message_timeout": info.message_timeout,
        "message_expiration": info.message_expiration,
    }
    if info.push is not None:
        doc["push"] = {
            "retries": info.push.retries,
            "retries_delay": info.push.retries_delay,
            "error_queue": info.push.error_queue,
            "subscribers": [subscriber_doc(s) for s in info.push.subscribers],
        }
    if info.alerts:
        doc["alerts"] = [a.to_json() for a in info.alerts]
    return doc


def push_status_row(status: PushStatus) -> dict[str, Any]:
    row = {f.name: getattr(status, f.name) for f in dataclasses.fields(status) if f.name != "raw"}
    if row.get("url"):
        row["url"] = redact_url(row["url"])
    return row


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain text table; ``None`` renders as ``-``."""
    cells = [[("-" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def emit(as_json: bool, doc: Any, text: str | None = None) -> None:
    """Print ``doc`` as JSON when ``--json`` was given, else ``text`` (or ``doc`` itself)."""
    if as_json:
        click.echo(json.dumps(doc, indent=2, sort_keys=False, default=str))
    else:
        click.echo(text if text is not None else str(doc))
