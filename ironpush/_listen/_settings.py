"""The options of ``ironpush listen``, each default, help and range written once.

``ironpush listen`` builds its options from these fields (``ironpush.cli._options``)::

    ListenSettings(push_timeout=5, max_in_flight=1)
"""

from __future__ import annotations

from dataclasses import dataclass

from .._defaults import Checked, setting

#: Hosted IronMQ's v3 pusher waits 10 s for an answer (protocol §3.4).
HOSTED_PUSH_TIMEOUT = 10.0
#: Relayed copies left behind by a crashed listener expire after a day.
RELAY_EXPIRATION = 86_400


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenSettings(Checked):
    """How ``ironpush listen`` relays: long polling, reservations, forwarding, shutdown."""

    wait: float = setting(
        20.0,
        "Seconds one reserve call long-polls the relay queue (IronMQ: at most 30).",
        gt=0,
        le=30,
    )
    reservation: float = setting(
        60.0,
        "Seconds a relayed message is reserved; it is touched while the service works on it.",
        gt=0,
        le=86_400,
    )
    push_timeout: float = setting(
        HOSTED_PUSH_TIMEOUT,
        "Seconds the local service has to answer a push (hosted IronMQ's v3 pusher: 10).",
        gt=0,
    )
    max_in_flight: int = setting(
        10, "Messages per queue forwarded or awaiting their ack at once.", ge=1, le=100
    )
    drain: float = setting(
        10.0,
        "On Ctrl-C, seconds to wait for pushes in flight and 202s awaiting their ack.",
        ge=0,
    )
    ack_host: str = setting(
        "127.0.0.1", "Address of the ack endpoint the forwarded Iron-Subscriber-Message-Url names."
    )
    port: int = setting(0, "Port of that ack endpoint (0: a free one).", ge=0, le=65_535)
    allow_unicast: bool = setting(
        False,
        "Relay unicast queues too (the listener then takes real messages from production).",
    )
    error_queue: bool = setting(
        False, "Post reports of pushes that failed for good to the queue's error_queue."
    )
