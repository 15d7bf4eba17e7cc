"""Typed payloads as mypy --strict sees them: checked by ``test_typing_payloads.py`` (this file
is not a test module; it is never imported)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_type

import msgspec
import pydantic

from ironpush import Defer, PushMessage, PushRouter

router = PushRouter(verify=False)


class Order(pydantic.BaseModel):
    id: int
    total: float


class Refund(msgspec.Struct):
    order_id: int


@dataclass
class Note:
    text: str


@router.route("/orders", queue="orders", subscriber="billing", model=Order)
async def billing(msg: PushMessage[Order]) -> None:
    assert_type(msg.payload, Order)
    assert_type(msg.payload.total, float)


@router.route("/refunds", queue="refunds", subscriber="billing", model=Refund, on_invalid="reject")
def refund(msg: PushMessage[Refund]) -> Defer:
    assert_type(msg.payload.order_id, int)
    return Defer(print, msg.payload.order_id)


@router.route("/plain", queue="plain", subscriber="reader", json=True)
async def plain(msg: PushMessage) -> None:  # a bare PushMessage is PushMessage[Any]
    assert_type(msg.parse(Note), Note)
    assert_type(msg.parse(Order).id, int)


def note(msg: PushMessage[Note]) -> None:
    assert_type(msg.payload.text, str)


router.add_route("/notes", note, queue="notes", subscriber="reader", model=Note)
assert_type(billing.__name__, str)  # the decorator returns the handler, still callable
