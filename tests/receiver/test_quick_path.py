"""The quick path (issue 23): an ``async def`` handler returning ``None`` or ``Ack()`` is
answered inline by the pipeline, with the memory store's synchronous twins; it must leave
exactly what the general path leaves (answer, counters, histograms, store, log record), and a
store subclass that overrides ``claim``/``complete`` must still be called through them."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from typing import Any

import pytest

from ironpush import Ack, PushMessage, PushRouter
from ironpush._errors import ValidationError
from ironpush._protocol import (
    Delivery,
    delivery_from_json,
    delivery_from_raw,
    delivery_from_values,
    delivery_to_dict,
    delivery_to_json,
)
from ironpush.receiver._pipeline import sync_twins
from ironpush.receiver.stores import MemoryStore
from ironpush.receiver.stores._base import sync_twin
from ironpush.testing import PushSimulator, build_push
from receiver.flaky_store import FlakyStore

pytestmark = pytest.mark.anyio
KEYS = ["quick-path-key"]


def routed(store: Any = None) -> PushRouter:
    """One router, the same push handled by the quick path (``/quick``, ``/acked``) and by
    the general path (``/general``: a sync handler runs in the threadpool)."""
    router = PushRouter(secret_keys=KEYS, store=store)

    @router.route("/quick", queue="orders", subscriber="quick", json=True)
    async def quick(msg: PushMessage) -> None:
        assert msg.json() == {"id": 1}

    @router.route("/acked", queue="orders", subscriber="acked", json=True)
    async def acked(msg: PushMessage) -> Ack:
        return Ack()

    @router.route("/general", queue="orders", subscriber="general", json=True)
    def general(msg: PushMessage) -> None:
        assert msg.json() == {"id": 1}

    return router


def series_counts(router: PushRouter, subscriber: str) -> dict[str, int]:
    """How many observations each histogram holds for ``subscriber``'s acked pushes."""
    timings = router.counters.timings
    assert timings is not None
    found = {}
    for name, histogram in (("push", timings.push), ("handler", timings.handler)):
        series = histogram.series.get(("orders", subscriber, "acked"))
        found[name] = sum(series.counts) if series else 0
    return found


async def test_the_quick_path_leaves_what_the_general_path_leaves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = routed()
    caplog.set_level(logging.INFO, logger="ironpush.receiver")
    async with PushSimulator(router) as sim:
        results = {name: await sim.push(f"/{name}", {"id": 1}) for name in ("quick", "acked")}
        results["general"] = await sim.push("/general", {"id": 1})
        again = {name: await sim.redeliver(result) for name, result in results.items()}
    for name, result in results.items():
        answer = result.response
        assert (answer.status_code, answer.content) == (200, b""), name
        assert answer.headers["content-length"] == "0"
        assert "content-type" not in answer.headers
        assert again[name].status_code == 200  # recorded handled: the redelivery is a duplicate
        assert again[name].response.json() == {"status": "duplicate"}
        assert router.counters.by_route[("orders", name, "acked")] == 1
        assert router.counters.by_route[("orders", name, "duplicate")] == 1
        assert series_counts(router, name) == {"push": 1, "handler": 1}
    totals = router.counters.snapshot()
    assert (totals["received"], totals["acked"], totals["duplicates"]) == (6, 3, 3)
    timings = router.counters.timings
    assert timings is not None
    for operation in ("claim", "complete"):  # every claim, and the 3 completions, timed
        series = timings.store.series[("memory", operation)]
        assert sum(series.counts) == (6 if operation == "claim" else 3)
    lines = {
        r.subscriber: r  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "ironpush.receiver" and getattr(r, "outcome", None) == "acked"
    }
    assert set(lines) == {"quick", "acked", "general"}
    for name, record in lines.items():
        result = results[name]
        assert record.levelno == logging.INFO
        assert record.funcName == "log_delivery"  # the record's caller, as logging finds it
        assert record.message_id == result.message_id  # type: ignore[attr-defined]
        assert record.reservation_id == result.reservation_id  # type: ignore[attr-defined]
        assert (record.attempt, record.status) == (1, 200)  # type: ignore[attr-defined]
        assert record.duration_ms >= 0  # type: ignore[attr-defined]
        assert record.getMessage().startswith(f"push {result.message_id} queue=orders ")


async def test_a_store_that_overrides_claim_or_complete_is_called_through_its_override() -> None:
    memory = MemoryStore()
    assert sync_twins(memory) == (memory.claim_now, memory.complete_now)
    assert sync_twins(FlakyStore()) == (None, None)  # overrides both
    # (The outbox's: a job's end in one synchronous call, and the steps it folds.)
    assert sync_twin(memory, "complete_ack") == memory.complete_ack_now
    assert sync_twin(memory, "add") == memory.add_now
    assert sync_twin(memory, "release") is None  # no twin

    class OwnComplete(MemoryStore):
        async def complete(self, key: Any, **options: Any) -> Delivery:
            return await super().complete(key, **options)

    own = OwnComplete()
    assert sync_twins(own) == (own.claim_now, None)
    calls: list[str] = []
    patched = MemoryStore()  # an override on the instance (a test double's way) counts too

    async def recorded_claim(key: Any, delivery: Delivery, **options: Any) -> Any:
        calls.append("claim")
        return await MemoryStore.claim(patched, key, delivery, **options)

    patched.claim = recorded_claim  # type: ignore[method-assign]
    assert sync_twins(patched) == (None, patched.complete_now)
    async with PushSimulator(routed(patched)) as sim:
        assert (await sim.push("/quick", {"id": 1})).status_code == 200
    assert calls == ["claim"]
    other = MemoryStore()
    other.complete_now = MemoryStore().complete_now  # type: ignore[method-assign]
    assert sync_twins(other) == (other.claim_now, None)  # bound to another store: not its twin
    store = FlakyStore()
    router = routed(store)
    async with PushSimulator(router) as sim:
        store.fail = {"complete"}
        assert (await sim.push("/quick", {"id": 1})).status_code == 503  # nothing recorded
        store.fail = set()
        assert (await sim.push("/quick", {"id": 1})).status_code == 200
    assert [name for name, _ in store.calls] == ["claim", "claim", "complete"]
    assert router.counters.by_route[("orders", "quick", "store_unavailable")] == 1


def test_a_delivery_stays_frozen_and_parses_from_raw_headers() -> None:
    delivery = delivery_from_raw(
        {b"iron-message-id": b" m1 ", b"iron-reservation-id": b"r1"}, "billing"
    )
    assert delivery == Delivery("m1", "r1", "billing")
    assert hash(delivery) == hash(Delivery("m1", "r1", "billing"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        delivery.message_id = "m2"  # type: ignore[misc]
    assert dataclasses.replace(delivery, reservation_id="r2").reservation_id == "r2"
    legacy = delivery_from_raw(
        {b"iron-subscriber-message-id": b"s1", b"iron-subscriber-message-url": b"http://u/1"}
    )
    assert (legacy.message_id, legacy.flavour, legacy.subscriber_name) == ("s1", "legacy", None)


async def test_a_claim_the_store_refuses_is_answered_503_and_runs_nothing() -> None:
    store = FlakyStore()
    router = routed(store)
    async with PushSimulator(router) as sim:
        store.fail = {"claim"}
        result = await sim.push("/quick", {"id": 1})
    assert result.status_code == 503
    assert not store.calls
    assert router.counters.by_route[("orders", "quick", "store_unavailable")] == 1
    assert router.counters.snapshot()["acked"] == 0


NAMES = (
    b"iron-message-id",
    b"iron-reservation-id",
    b"iron-subscriber-name",
    b"iron-subscriber-message-url",
    b"iron-subscriber-message-id",
)


@pytest.mark.parametrize("subscriber", [None, "route-sub"])
def test_raw_headers_parse_by_the_rules_of_delivery_from_values(subscriber: str | None) -> None:
    """Every combination of absent, empty, blank and set values (v3, legacy, no id at all)."""
    choices = (None, b"", b"  ", b" v1 ")
    for values in itertools.product(choices, repeat=len(NAMES)):
        raw = {name: value for name, value in zip(NAMES, values, strict=True) if value is not None}
        text = [(value or b"").decode("latin-1") for value in values]
        try:
            expected: Delivery | str = delivery_from_values(*text, subscriber)
        except ValidationError as exc:
            expected = str(exc)
        try:
            got: Delivery | str = delivery_from_raw(raw, subscriber)
        except ValidationError as exc:
            got = str(exc)
        assert got == expected, values


async def asgi_push(
    router: PushRouter, headers: list[tuple[bytes, bytes]], *, root_path: str = ""
) -> int:
    """One push straight through the router's ASGI callable (header names as given: httpx's
    ASGITransport would lower-case them); its status."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b'{"id": 1}', "more_body": False}

    async def send(event: dict[str, Any]) -> None:
        if event["type"] == "http.response.start":
            statuses.append(event["status"])

    path = root_path + "/quick"
    scope = {"type": "http", "method": "POST", "path": path, "root_path": root_path,
             "query_string": b"", "headers": headers}  # fmt: skip
    await router(scope, receive, send)
    return statuses[0]


def raw_push(
    router: PushRouter, message_id: str, *, upper: bool = False
) -> list[tuple[bytes, bytes]]:
    headers, _, _ = build_push(router, "/quick", message_id=message_id)
    case = str.upper if upper else str.lower
    return [(case(name).encode(), value.encode()) for name, value in headers.items()]


async def test_header_names_in_any_case_match_whatever_case_the_last_push_had() -> None:
    """The pipeline remembers the last all-lower-case names it saw: a push with the same names
    in upper case (a server that does not lower them, a middleware's header) still matches
    case-insensitively, before and after."""
    router = routed()
    async with PushSimulator(router):
        seen = [
            await asgi_push(router, raw_push(router, "m-lower-1")),
            await asgi_push(router, raw_push(router, "m-upper", upper=True)),
            await asgi_push(router, raw_push(router, "m-lower-2")),
            await asgi_push(router, raw_push(router, "m-upper", upper=True)),  # a duplicate
        ]
        no_secret = [(n, v) for n, v in raw_push(router, "m-3", upper=True) if b"SECRET" not in n]
        refused = await asgi_push(router, no_secret)
    assert seen == [200, 200, 200, 200]
    assert refused == 401  # no secret: the upper-case names were read, not skipped
    assert router.counters.by_route[("orders", "quick", "acked")] == 3
    assert router.counters.by_route[("orders", "quick", "duplicate")] == 1


@pytest.mark.parametrize(
    ("declared", "status"),
    [(b"9", 200), (b"0000000000009", 200), (b"1000", 200), (b"1001", 413), (b"99999999999", 413)],
)
async def test_a_declared_length_over_the_limit_is_413_whatever_its_digits(
    declared: bytes, status: int
) -> None:
    router = PushRouter(secret_keys=KEYS, body_limit=1000)
    router.add_route("/quick", lambda msg: None, queue="orders", subscriber="quick")
    async with PushSimulator(router):
        headers = [(n, v) for n, v in raw_push(router, "m1") if n != b"content-length"]
        answered = await asgi_push(router, [*headers, (b"content-length", declared)])
    assert answered == status


async def test_a_root_path_is_taken_off_before_the_route_is_found() -> None:
    router = routed()
    async with PushSimulator(router):
        assert await asgi_push(router, raw_push(router, "m1"), root_path="/hooks") == 200
        assert await asgi_push(router, raw_push(router, "m1"), root_path="/hooks") == 200
    assert router.counters.by_route[("orders", "quick", "acked")] == 1


@pytest.mark.parametrize("flavour", ["v3", "legacy"])
def test_a_deliverys_json_is_json_dumps_of_its_compact_dict(flavour: Any) -> None:
    """Every combination of set and unset fields, with quotes, escapes and non-ASCII text:
    the stores compare a row's text with it, so it must be json.dumps' text byte for byte."""
    choices = (None, "r1", 'a "quoted"\\ value', "é€\u2028\x00", "")
    for r, s, u, i in itertools.product(choices, repeat=4):
        delivery = Delivery('m-é"1', r, s, u, i, flavour)
        text = delivery_to_json(delivery)
        assert text == json.dumps(delivery_to_dict(delivery), separators=(",", ":"))
        assert delivery_from_json(text) == delivery
