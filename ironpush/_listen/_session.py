"""One run of ``ironpush listen``, from the first signal handler to the last removal.

::

    lock → relay queues, then subscribers → ack endpoint → relay until Ctrl-C/SIGTERM
         → drain (pushes in flight, 202s awaiting their ack) → ack endpoint stops
         → subscribers, then relay queues removed → lock released

Ctrl-C or SIGTERM stops the relay and starts the drain; a second one cuts the drain short. The
removal always runs (a signal during it is ignored); only ``kill -9`` skips it, and then the
lock file is no longer held, so ``ironpush listen --cleanup`` knows the relays are stale::

    outcome = await Session(mq, relays, ListenSettings(), listener="1a2b3c4d",
                            host="laptop", emit=print_event).run()
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..client._async_client import AsyncIronMQ
from ._acks import AckServer
from ._events import Emit, Event
from ._locks import ListenerLock
from ._plan import Relay
from ._relay import Relayer
from ._settings import ListenSettings
from ._setup import close_relays, open_relays


@dataclass(slots=True)
class Outcome:
    """How a run ended: ``fatal`` (why the relay stopped by itself), ``problems`` (what could
    not be removed), and the counts of pushes, acks and failures."""

    fatal: str | None = None
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Session:
    """Relay ``relays`` until a signal; see the module docs."""

    mq: AsyncIronMQ
    relays: Sequence[Relay]
    settings: ListenSettings
    listener: str
    host: str
    emit: Emit
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    hurry: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> Outcome:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._signalled)
        info = {"host": self.host, "relays": [r.relay_queue for r in self.relays]}
        lock = ListenerLock(self.listener, info).acquire()
        try:
            return await self._run(loop)
        finally:
            lock.release()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _signalled(self) -> None:
        if self.stop.is_set():
            self.hurry.set()
        self.stop.set()

    async def _run(self, loop: asyncio.AbstractEventLoop) -> Outcome:
        relayer = Relayer(self.mq, self.relays, self.settings, ack_base="", emit=self.emit)
        outcome = Outcome()
        server: AckServer | None = None
        await open_relays(self.mq, self.relays)
        try:
            settings = self.settings
            server = AckServer(relayer.ack, loop, host=settings.ack_host, port=settings.port)
            server.start()
            relayer.ack_base = server.url
            self._ready(server.url)
            await relayer.run(self.stop, self.hurry)
        finally:
            if server is not None:
                await asyncio.to_thread(server.stop)
            outcome.problems = await close_relays(self.mq, self.relays)
            outcome.fatal, outcome.counts = relayer.fatal, dict(relayer.counts)
            self._stopped(outcome, relayer.dropped)
        return outcome

    def _ready(self, ack_url: str) -> None:
        lines = [f"listening: {r.text()}" for r in self.relays]
        lines.append(
            f"acks at {ack_url}; Ctrl-C stops and removes the relay queues and subscribers"
        )
        fields = {"relays": [r.doc() for r in self.relays], "ack_url": ack_url}
        self.emit(Event("ready", "\n".join(lines), fields))

    def _stopped(self, outcome: Outcome, held: int) -> None:
        queues = ", ".join(dict.fromkeys(r.queue for r in self.relays))
        if outcome.problems:
            text = (
                "stopped: could not remove " + "; ".join(outcome.problems) + " — `ironpush "
                "listen --cleanup` removes them"
            )
        else:
            text = f"stopped: removed the listener's subscriber and relay queue of {queues}"
        counts = outcome.counts
        text += (
            f" ({counts.get('pushes', 0)} push(es), {counts.get('acked', 0)} ack(s), "
            f"{counts.get('failed', 0)} failed for good"
        )
        text += f", {held} still held dropped)" if held else ")"
        fields = {
            "removed": [] if outcome.problems else [r.relay_queue for r in self.relays],
            "problems": outcome.problems,
            "dropped": held,
            "counts": {k: counts.get(k, 0) for k in ("pushes", "acked", "failed", "lost")},
        }
        self.emit(Event("stopped", text, fields))
