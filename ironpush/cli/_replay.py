"""``ironpush replay ERROR_QUEUE``: send the messages an error queue reports back to their queue.

For each report (the v3 body IronMQ posts to a push queue's ``error_queue``: ``source_msg_id``,
``body``, ``headers``, ``subscribers``), oldest first:

1. the report is **reserved** (so a concurrent run cannot take it too);
2. the source message is sent again: on **hosted IronMQ** it is posted to the source queue as a
   new message (its body and push headers; every subscriber of the queue receives it, with a
   new message id — the v3 API cannot push to one subscriber, nor push a message again); on
   the **ironpush dev server** it is pushed again with its own message id to the subscribers
   that failed (or ``--to`` one), through ``POST /_dev/replay``;
3. only once that succeeded, the report is **deleted** (with its reservation).

Interrupted anywhere, nothing is lost: a report whose re-post failed is released at once, and
one whose run stopped before its delete becomes available again when its reservation expires
(it is then replayed a second time; on the dev server that is the same message id, which the
receiver's dedupe answers without running the handler again).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import click

from .._errors import IronPushError, ReservationExpired
from ..client._models import ErrorReport, Message, QueueInfo
from ..client._sync_client import IronMQ, Queue
from ._commands import Context, json_option, main, pass_context
from ._devcontrol import DevControl

RESERVE_TIMEOUT = 60.0  # seconds a report stays ours while its message is re-posted


@dataclass
class Replayed:
    report_id: str
    source_msg_id: str
    message_id: str | None  # None on a dry run
    how: str  # "same message", "new message", or "dry run"
    subscribers: list[str]


@dataclass
class ReplayReport:
    """What a replay did (or, with ``dry_run``, would do)."""

    error_queue: str
    source: str
    server: str  # "dev" or "hosted"
    dry_run: bool
    replayed: list[Replayed] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        lines = []
        for r in self.replayed:
            to = ", ".join(r.subscribers) or "every subscriber"
            if r.how == "dry run":
                lines.append(f"would replay report {r.report_id}: {r.source_msg_id} → {to}")
            elif r.how == "same message":
                lines.append(f"report {r.report_id}: pushed {r.source_msg_id} again to {to}")
            else:
                lines.append(
                    f"report {r.report_id}: {r.source_msg_id} posted again to {self.source} "
                    f"as {r.message_id} ({to})"
                )
        lines += [f"skipped {s['report_id']}: {s['reason']}" for s in self.skipped]
        lines += [f"warning: {w}" for w in self.warnings]
        verb = "would replay" if self.dry_run else "replayed"
        lines.append(
            f"{verb} {len(self.replayed)} report(s) from {self.error_queue} into {self.source}"
        )
        return "\n".join(lines)


def find_source(client: IronMQ, error_queue: str) -> str:
    """The one push queue whose ``error_queue`` is ``error_queue``."""
    found = []
    for name in client.iter_queues():
        info = client.queue(name).info()
        if info.push is not None and info.push.error_queue == error_queue:
            found.append(name)
    if len(found) == 1:
        return found[0]
    if not found:
        raise click.ClickException(
            f"no push queue names {error_queue!r} as its error queue: give --source QUEUE"
        )
    raise click.ClickException(
        f"several push queues report to {error_queue!r} ({', '.join(found)}): give --source QUEUE"
    )


def replay_error_queue(
    client: IronMQ,
    error_queue: str,
    *,
    source: str | None = None,
    to: str | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    server: str | None = None,
) -> ReplayReport:
    """Replay the reports of ``error_queue`` into their source queue (see the module docstring).

    ``server``: ``"dev"`` or ``"hosted"`` (what the v3 API allows) instead of asking the server
    (``GET /_dev/health``)::

        report = replay_error_queue(IronMQ(), "orders-errors", limit=10)
    """
    source = source or find_source(client, error_queue)
    info = client.queue(source).info()
    if info.push is None:
        raise click.ClickException(f"{source!r} is not a push queue")
    control = DevControl(client)
    dev = control.is_dev_server() if server is None else server == "dev"
    names = [s.name for s in info.push.subscribers]
    if to is not None and to not in names:
        raise click.ClickException(f"{source!r} has no subscriber {to!r} (it has {names})")
    if to is not None and not dev:
        raise click.ClickException(
            "hosted IronMQ cannot push to one subscriber: without --to the message is posted "
            f"again to {source!r}, for every subscriber"
        )
    report = ReplayReport(error_queue, source, "dev" if dev else "hosted", dry_run)
    run = _Run(client, control, info, report, to=to, dev=dev)
    if dry_run:
        run.preview(limit)
    else:
        run.replay(limit)
    return report


class _Run:
    def __init__(
        self,
        client: IronMQ,
        control: DevControl,
        info: QueueInfo,
        report: ReplayReport,
        *,
        to: str | None,
        dev: bool,
    ) -> None:
        self.errors = client.queue(report.error_queue)
        self.source: Queue = client.queue(report.source)
        self.control = control
        self.info = info
        self.report = report
        self.to = to
        self.dev = dev

    def preview(self, limit: int | None) -> None:
        for message in self.errors.peek(max=min(limit or 100, 100)):
            parsed = self._parse(message)
            if parsed is not None:
                subs = self._targets(parsed)
                self.report.replayed.append(
                    Replayed(message.id, parsed.source_msg_id, None, "dry run", subs)
                )

    def replay(self, limit: int | None) -> None:
        held: list[Message] = []  # not reports: kept reserved until the end, then released
        # Only the messages there now: a replayed message that fails again adds a new report
        # at the back, which must wait for the next run (or this would never end).
        budget = self.errors.size()
        try:
            while budget > 0 and (limit is None or len(self.report.replayed) < limit):
                budget -= 1
                batch = self.errors.reserve(max=1, timeout=RESERVE_TIMEOUT)
                if not batch:
                    break
                message = batch[0]
                parsed = self._parse(message)
                if parsed is None:
                    held.append(message)
                    continue
                self._one(message, parsed)
        finally:
            for message in held:
                if message.reservation_id:
                    self.errors.release(message.id, message.reservation_id)

    def _parse(self, message: Message) -> ErrorReport | None:
        try:
            return ErrorReport.parse(message.body)
        except ValueError as exc:
            self.report.skipped.append({"report_id": message.id, "reason": str(exc)})
            return None

    def _targets(self, parsed: ErrorReport) -> list[str]:
        """Who gets it: ``--to``, else (dev server) the failed subscribers still subscribed."""
        if self.to is not None:
            return [self.to]
        if not self.dev:
            return []  # hosted: a new message goes to every subscriber
        current = {s.name for s in self.info.subscribers}
        return [f.name for f in parsed.subscribers if f.name in current]

    def _one(self, message: Message, parsed: ErrorReport) -> None:
        from ..devserver._replay import push_headers_from_report

        sub_headers = [h for s in self.info.subscribers for h in s.headers]
        headers = push_headers_from_report(parsed.headers, subscriber_headers=sub_headers)
        targets = self._targets(parsed)
        try:
            if self.dev:
                done = self.control.post(
                    "/_dev/replay",
                    {
                        "project": self.control.project_id,
                        "queue": self.report.source,
                        "message_id": parsed.source_msg_id,
                        "subscribers": targets,
                        "body": parsed.body,
                        "push_headers": headers,
                    },
                )
                mid, how = str(done["message_id"]), str(done["how"])
            else:
                doc: dict[str, Any] = {"body": parsed.body}
                if headers:
                    doc["push_headers"] = headers
                [mid] = self.source.post(doc)
                how = "new message"
        except IronPushError:
            assert message.reservation_id is not None
            self.errors.release(message.id, message.reservation_id)  # available again at once
            raise
        self.report.replayed.append(Replayed(message.id, parsed.source_msg_id, mid, how, targets))
        try:
            self.errors.delete(message.id, message.reservation_id)
        except ReservationExpired:
            self.report.warnings.append(
                f"report {message.id} was replayed but its reservation ran out before the "
                "delete: it will be replayed again"
            )


@main.command()
@click.argument("error_queue")
@click.option("--to", "to", metavar="SUBSCRIBER", help="Push to this subscriber only (dev server).")
@click.option("--source", help="The source queue (default: the queue reporting to ERROR_QUEUE).")
@click.option("--limit", type=click.IntRange(min=1), help="Replay at most N reports.")
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; change nothing.")
@json_option
@pass_context
def replay(
    state: Context,
    error_queue: str,
    to: str | None,
    source: str | None,
    limit: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Replay an error queue: send each reported message again, then delete its report.

    On hosted IronMQ each message is posted again to its source queue (every subscriber gets
    it, with a new id). On the ironpush dev server it is pushed again, with its own id, to the
    subscribers that failed (or --to one). A report is deleted only after its message was sent.

    \b
    Examples:
      ironpush replay orders-errors --dry-run
      ironpush replay orders-errors --limit 10
      ironpush replay orders-errors --to billing      (dev server)
    """
    from ._rendering import emit

    done = replay_error_queue(
        state.client, error_queue, source=source, to=to, limit=limit, dry_run=dry_run
    )
    emit(as_json, done.as_json(), done.text())
