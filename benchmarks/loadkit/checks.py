"""What both load scenarios share: the push template, the receiver's environment, and the
check of every ack against the answers the pusher saw."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from ironpush.testing import build_push

from .ack_sink import PushTemplate
from .app import MOUNT, PATH, SUBSCRIBER, make_router

BUSY_BODY = b'{"status":"busy"}'
instances = itertools.count(1)  # a seed per pusher, so two pushers never share message ids


def push_template(port: int, *, body_size: int) -> PushTemplate:
    """A push for the load app's route (the test kit's headers, push secret included), with
    the message and reservation ids left as holes."""
    headers, _, _ = build_push(
        make_router(), PATH, message_id="\x01", reservation_id="\x02", ironmq_url="http://127.0.0.1"
    )
    body = (b'{"payload":"' + b"x" * max(0, body_size - 14) + b'"}')[: max(body_size, 2)]
    return PushTemplate.build(MOUNT + PATH, port, headers, body)


def receiver_env(sink_url: str, **options: Any) -> dict[str, str]:
    """The load app's environment: acks to ``sink_url``, each option as ``LOAD_<NAME>``."""
    env = {"IRONMQ_EMULATOR_HOST": sink_url}
    for name, value in options.items():
        if value is not None:
            env[f"LOAD_{name.upper()}"] = str(value)
    return env


@dataclass
class AckCheck:
    """Acks compared with the answers: every 202'd message acked once, with its newest 202."""

    expected: int = 0
    received: int = 0
    acked_messages: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    wrong_reservation: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    acked_while_awaiting_retry: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        out = []
        for name in (
            "lost",
            "duplicated",
            "wrong_reservation",
            "unexpected",
            "acked_while_awaiting_retry",
        ):
            ids = getattr(self, name)
            if ids:
                out.append(f"acks {name}: {len(ids)} (e.g. {ids[:3]})")
        return out

    def summary(self) -> dict[str, int]:
        return {
            "expected": self.expected,
            "received": self.received,
            "duplicates": len(self.duplicated),
            "lost": len(self.lost),
            "wrong_reservation": len(self.wrong_reservation),
            "unexpected": len(self.unexpected),
        }


def check_acks(answers: dict[str, list[tuple[str, int]]], sink: Any) -> AckCheck:
    check = AckCheck(received=len(sink.acks), acked_messages=len(sink.by_message))
    for message_id, pushes in answers.items():
        accepted = [rid for rid, status in pushes if status == 202]
        acks = sink.by_message.get(message_id, [])
        if not accepted:
            if acks:
                check.unexpected.append(message_id)
            continue
        check.expected += 1
        if not acks:
            check.lost.append(message_id)
            continue
        if len(acks) > 1:
            check.duplicated.append(message_id)
        # The job acks the newest reservation that got 202 (a redelivery answered 202 while the
        # job ran replaced the one before; one answered 200 came after the ack).
        if acks[0].reservation_id != accepted[-1] or acks[0].subscriber_name != SUBSCRIBER:
            check.wrong_reservation.append(message_id)
        if pushes[-1][1] in (0, 503):
            check.acked_while_awaiting_retry.append(message_id)
    check.unexpected += [m for m in sink.by_message if m not in answers]
    return check
