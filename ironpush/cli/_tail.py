"""``ironpush tail``: follow a dev server's deliveries live, one line per event.

It reads the Server-Sent Events of ``GET /_dev/events`` (see
:mod:`ironpush.devserver._events`): push attempts and their answers, retries, acks, expired
202s, error-queue reports and replays. Filters run on the server. When the stream breaks (the
server restarted, or this terminal fell behind and was dropped) it reconnects with
``Last-Event-ID`` and catches up from the server's ring of recent events. When stdout's reader
goes away (``ironpush tail | head -1``) it stops at once, not at the next event
(:class:`~ironpush.cli._pipes.ReaderWatch`).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import click
import httpx

from .._event_outcomes import OUTCOMES
from ._choice import Choice
from ._commands import Context, json_option, main, pass_context
from ._devcontrol import DevControl
from ._pipes import ReaderWatch, closed_pipe_exit

OUTCOME_HELP = ", ".join(OUTCOMES)
COLOURS = {
    "delivered": "green",
    "acked": "green",
    "deferred": "cyan",
    "replayed": "cyan",
    "retrying": "yellow",
    "expired": "yellow",
    "failed": "red",
    "refused": "red",
    "error-queue": "magenta",
}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
READ_TIMEOUT = 45.0  # the server sends a keep-alive comment every 15 s


def parse_since(text: str, *, now: float | None = None) -> float:
    """``30s``/``5m``/``2h``/``1d`` ago, or an ISO 8601 time → Unix seconds.

    ::

        parse_since("5m", now=1000.0)  # 700.0
    """
    now = time.time() if now is None else now
    match = _DURATION.match(text.strip())
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: expected a duration (30s, 5m, 2h, 1d) or an ISO time", param_hint="--since"
        ) from None
    return when.timestamp()


def _events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event name, data) for each SSE frame of a response."""
    name, data = "message", list[str]()
    for line in response.iter_lines():
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", list[str]()
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def render(event: dict[str, Any], *, as_json: bool, color: bool | None) -> None:
    if as_json:
        click.echo(json.dumps(event))
        return
    clock = str(event.get("at") or "")[11:23]
    outcome = str(event.get("outcome"))
    line = (
        f"{click.style(clock, dim=True)} {click.style(f'{outcome:<11}', fg=COLOURS.get(outcome))}"
    )
    click.echo(f"{line} {event.get('text')}", color=color)


class _Restarted(Exception):
    """The server restarted since the last connection: reconnect at once from its first id."""


class _Follow:
    """One tail session: the query, the last event seen, reconnections."""

    def __init__(
        self, control: DevControl, params: list[tuple[str, str]], watch: ReaderWatch
    ) -> None:
        self.control = control
        self.params = params
        self.watch = watch
        self.last_id: int | None = None
        self.boot: str | None = None
        self.connected_once = False

    def stream(self, client: httpx.Client) -> Iterator[tuple[str, dict[str, Any]]]:
        params: list[tuple[str, str | int | float | bool | None]] = list(self.params)
        if self.last_id is not None:
            params = [p for p in params if p[0] != "since"] + [("after", str(self.last_id))]
        with client.stream("GET", self.control.url("/_dev/events"), params=params) as response:
            if response.status_code != 200:
                response.read()
                raise click.ClickException(_refusal(response))
            self.connected_once = True
            stream = response.extensions.get("network_stream")
            self.watch.attach(stream.get_extra_info("socket") if stream is not None else None)
            for name, event in _events(response):
                if name == "hello":
                    if self.boot not in (None, event.get("boot")):
                        self.last_id = 0  # a restarted server: ids began again from 1
                        raise _Restarted
                    self.boot = event.get("boot")
                    continue
                if "id" in event:
                    self.last_id = int(event["id"])
                yield name, event


def _refusal(response: httpx.Response) -> str:
    try:
        msg = response.json().get("msg", response.text)
    except ValueError:
        msg = response.text[:200] or f"HTTP {response.status_code}"
    if response.status_code == 404:
        return f"{response.url.host} has no /_dev/events: `ironpush tail` needs the dev server"
    return f"the dev server refused the stream: {response.status_code} {msg}"


@main.command()
@click.argument("queues", metavar="[QUEUE]...", nargs=-1)
@click.option("--queue", "queue_options", multiple=True, help="Only this queue (repeatable).")
@click.option("--subscriber", multiple=True, help="Only this subscriber (repeatable).")
@click.option(
    "--outcome",
    multiple=True,
    type=Choice(OUTCOMES),
    help=f"Only this outcome (repeatable): {OUTCOME_HELP}.",
)
@click.option("--since", help="First show the kept events since then: 30s, 5m, 2h or an ISO time.")
@click.option("--color/--no-color", default=None, help="Colour the lines (default: on a terminal).")
@json_option
@pass_context
def tail(
    state: Context,
    queues: tuple[str, ...],
    queue_options: tuple[str, ...],
    subscriber: tuple[str, ...],
    outcome: tuple[str, ...],
    since: str | None,
    color: bool | None,
    as_json: bool,
) -> None:
    """Follow a dev server's deliveries live: pushes, answers, retries, acks, error queues.

    One line per event (coloured on a terminal), or one JSON object per line with --json.
    Ctrl-C stops.

    \b
    Examples:
      ironpush tail                          # everything, from now on
      ironpush tail orders --outcome failed --outcome error-queue
      ironpush tail --since 10m --json | jq .message_id
    """
    params = [("queue", q) for q in (*queues, *queue_options)]
    params += [("subscriber", s) for s in subscriber] + [("outcome", o) for o in outcome]
    if since is not None:
        params.append(("since", str(parse_since(since))))
    timeout = httpx.Timeout(10.0, read=READ_TIMEOUT)
    try:
        with ReaderWatch.for_stdout() as watch:
            follow = _Follow(DevControl(state.client), params, watch)
            with httpx.Client(headers=follow.control.headers, timeout=timeout) as client:
                _run(follow, client, as_json=as_json, color=color)
    except KeyboardInterrupt:
        return


def _run(follow: _Follow, client: httpx.Client, *, as_json: bool, color: bool | None) -> None:
    while True:
        try:
            for name, event in follow.stream(client):
                if name == "dropped":
                    _notice(f"{event.get('msg')} — reconnecting", as_json)
                    break
                render(event, as_json=as_json, color=color)
            else:
                _stop_if_unread(follow.watch)
                _notice("the dev server closed the stream — reconnecting", as_json)
        except _Restarted:
            _notice("the dev server restarted — catching up", as_json)
            continue
        except httpx.TransportError as exc:
            _stop_if_unread(follow.watch)  # the watch shut the socket: nobody reads us now
            if not follow.connected_once:
                raise click.ClickException(
                    f"cannot reach the dev server at {follow.control.base}: {exc} — is "
                    "`ironpush dev` running? (check --cloud or IRONMQ_EMULATOR_HOST)"
                ) from exc
            _notice(f"connection lost ({type(exc).__name__}) — reconnecting", as_json)
        # A restarting server needs a moment (the ring keeps what we miss); a reader that
        # leaves meanwhile ends the wait.
        follow.watch.wait(1.0)
        _stop_if_unread(follow.watch)


def _stop_if_unread(watch: ReaderWatch) -> None:
    if watch.gone:
        raise closed_pipe_exit()


def _notice(text: str, as_json: bool) -> None:
    # Notices go to stderr, so that --json output stays one event per line.
    click.echo(f"tail: {text}", err=True)
    sys.stderr.flush()
