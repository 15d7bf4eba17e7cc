"""``slot_init``: a frozen dataclass's ``__init__`` through its slots, the same in every way a
caller can see as the one dataclasses generates."""

from __future__ import annotations

import dataclasses
import inspect
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from ironpush._frozen import slot_init
from ironpush._protocol import Delivery, Reply, Request
from ironpush.client._transports import Response, WireRequest
from ironpush.receiver.stores._base import Claim, OutboxItem


def made_both_ways() -> tuple[type, type]:
    def define() -> type:
        @dataclass(frozen=True, slots=True)
        class Point:
            x: int
            y: int = 0
            tags: list[str] = field(default_factory=list)
            label: str = field(default="p", kw_only=True)

        return Point

    return define(), slot_init(define())


def test_it_takes_the_same_arguments_and_makes_equal_objects() -> None:
    generated, fast = made_both_ways()
    assert [p.name for p in inspect.signature(fast).parameters.values()] == [
        p.name for p in inspect.signature(generated).parameters.values()
    ]
    for args, kwargs in [((1,), {}), ((1, 2), {}), ((1,), {"tags": ["a"], "label": "q"})]:
        made = fast(*args, **kwargs)
        expected = generated(*args, **kwargs)
        assert dataclasses.asdict(made) == dataclasses.asdict(expected)
    with pytest.raises(TypeError):
        fast()  # x is required
    with pytest.raises(TypeError):
        fast(1, 2, [], "q")  # label is keyword-only


def test_each_default_factory_makes_a_new_value() -> None:
    _, fast = made_both_ways()
    first, second = fast(1), fast(1)
    first.tags.append("a")
    assert second.tags == []


def test_the_class_stays_frozen() -> None:
    _, fast = made_both_ways()
    point = fast(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.x = 2
    assert point == fast(1)


def test_post_init_is_called() -> None:
    seen: list[Any] = []

    @slot_init
    @dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            seen.append(self.x)

    Checked(3)
    assert seen == [3]


def test_a_class_it_cannot_serve_is_refused() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        x: int

    @dataclass(slots=True)
    class NotFrozen:
        x: int

    @dataclass(frozen=True, slots=True)
    class Hidden:
        x: int = field(default=0, init=False)

    for cls in (NoSlots, NotFrozen, Hidden):
        with pytest.raises(TypeError, match="slot_init"):
            slot_init(cls)


@pytest.mark.parametrize(
    ("cls", "args"),
    [
        (Delivery, ("m1", "r1", "billing")),
        (Request, ("DELETE", "/queues/q/messages/1")),
        (Reply, (200, {"msg": "Deleted"})),
        (WireRequest, ("GET", "http://x/", {})),
        (Response, (200, b"{}", {})),
        (Claim, ("new",)),
        (OutboxItem, ("ack", "q")),
    ],
)
def test_ironpushs_own_frozen_classes_use_it(cls: type, args: tuple[Any, ...]) -> None:
    init = cls.__init__
    assert init.__qualname__ == f"{cls.__qualname__}.__init__"
    assert "_NOTHING" in init.__globals__  # made by slot_init, not by dataclasses
    made = cls(*args)
    for name, value in zip([f.name for f in dataclasses.fields(cls)], args, strict=False):
        assert getattr(made, name) == value
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, dataclasses.fields(cls)[0].name, None)


def test_an_outbox_item_gets_its_own_id_and_time() -> None:
    before = time.time()
    first, second = OutboxItem("ack", "q"), OutboxItem("ack", "q")
    assert first.id != second.id
    assert before <= first.created_at <= time.time()
