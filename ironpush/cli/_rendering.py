"""Rendering for the CLI: readable tables, ``--json`` documents, and masked secrets.

Everything the CLI prints goes through here, so masking cannot be forgotten in one command;
errors too (:class:`CliError`: ``error: <what> — <hint>``, or a JSON object with ``--json``).
The ``--json`` documents have a fixed shape (documented in the README's CLI reference): every
key is always present, an absent value is ``null``, and a field has one JSON type (durations
such as ``retries_delay`` are always numbers with a fraction, counts always integers)::

    queue_info_doc(info)   # {"name", "type", "size", ..., "push": null | {...}, "alerts": [...]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import click

from .._redact import redact_subscriber, redact_url
from ..client._models import PushConfig, PushStatus, QueueInfo

PUSH_STATUS_FIELDS = (
    "subscriber_name",
    "url",
    "status",
    "status_code",
    "tries",
    "retries_remaining",
    "retries_delay",
    "last_try_at",
    "msg",
)


def _seconds(value: float | None) -> float | None:
    """Durations are floats in every document (the server may say ``3`` or ``3.0``)."""
    return None if value is None else float(value)


def _name(value: str | None) -> str | None:
    """An unset name is ``null``, never ``""`` (the v3 API sends ``"error_queue": ""``)."""
    return value or None


def push_doc(push: PushConfig | None) -> dict[str, Any] | None:
    """A push queue's settings, or ``None`` for a pull queue."""
    if push is None:
        return None
    return {
        "retries": push.retries,
        "retries_delay": _seconds(push.retries_delay),
        "error_queue": _name(push.error_queue),
        "subscribers": [redact_subscriber(s) for s in push.subscribers],
    }


def queue_info_doc(info: QueueInfo) -> dict[str, Any]:
    """A queue as JSON: the same keys for pull and push queues (``push`` is null on pull)."""
    return {
        "name": info.name,
        "type": info.type,
        "size": info.size,
        "total_messages": info.total_messages,
        "message_timeout": info.message_timeout,
        "message_expiration": info.message_expiration,
        "push": push_doc(info.push),
        "alerts": [a.to_json() for a in info.alerts],
    }


def push_status_row(status: PushStatus) -> dict[str, Any]:
    """One subscriber's push status as JSON (:data:`PUSH_STATUS_FIELDS`, URL masked)."""
    row = {name: getattr(status, name) for name in PUSH_STATUS_FIELDS}
    row["url"] = redact_url(status.url) if status.url else None
    row["retries_delay"] = _seconds(status.retries_delay)
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


def emit_error(as_json: bool, message: str, hint: str | None, exit_code: int) -> None:
    """An error on stderr: ``error: message — hint``, or one JSON object with ``--json``.

    A message of several lines (the configuration error lists each place it looked at) puts
    the hint on its own line.
    """
    if as_json:
        doc = {"error": message, "hint": hint, "exit_code": exit_code}
        click.echo(json.dumps(doc), err=True)
        return
    text = f"error: {message}"
    if hint:
        text += f"\n{hint}" if "\n" in message else f" — {hint}"
    click.echo(text, err=True)


class CliError(click.ClickException):
    """An error shown as ``error: <message> — <hint>`` (JSON with ``--json``), exit status 1."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, as_json: bool = False) -> None:
        super().__init__(message)
        self.hint = hint
        self.as_json = as_json

    def show(self, file: Any = None) -> None:
        emit_error(self.as_json, self.format_message(), self.hint, self.exit_code)


class CliUsageError(CliError):
    """A usage mistake (unknown option, missing argument, bad value): exit status 2."""

    exit_code = 2


def as_cli_error(
    exc: click.ClickException, ctx: click.Context | None, *, as_json: bool
) -> CliError:
    """Any click error (bad option, missing argument, busy port...) in the one ``error:`` style."""
    if isinstance(exc, CliError):
        return exc
    if not isinstance(exc, click.UsageError):
        return CliError(exc.format_message(), as_json=as_json)
    if exc.ctx is not None:
        path = exc.ctx.command_path
    elif ctx is not None:  # raised inside a command: name the command
        path = " ".join(filter(None, [ctx.command_path, ctx.invoked_subcommand]))
    else:
        path = "ironpush"
    message = exc.format_message().rstrip(".")  # click ends its sentences; a hint follows
    return CliUsageError(message, hint=f"see `{path} --help`", as_json=as_json)
