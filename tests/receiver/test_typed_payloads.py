"""Typed payloads: ``route(..., model=...)`` and ``msg.parse(...)`` with pydantic v2 models,
msgspec Structs and plain dataclasses; a body that does not fit is dropped (the error in the
dead-letter report), rejected with 400 or retried with 503, as the route says. Through the
in-process simulator (``httpx.ASGITransport``); ``test_typed_payloads_e2e.py`` has the real
pusher."""

from __future__ import annotations

import enum
import json
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import msgspec
import pydantic
import pytest

from ironpush import ConfigError, InvalidPayload, PushMessage, PushRouter
from ironpush.receiver._payloads import decoder_for
from ironpush.testing import PushSimulator, RecordedPost

pytestmark = pytest.mark.anyio

KEYS = ["typed-key-0123456789"]
CARD = "4111111111111111"  # a value no error message may repeat


class PydanticOrder(pydantic.BaseModel):
    id: int
    total: float
    note: str | None = None


class MsgspecOrder(msgspec.Struct):
    id: int
    total: float
    note: str | None = None


class Kind(enum.Enum):
    RETAIL = "retail"
    WHOLESALE = "wholesale"


@dataclass
class Line:
    sku: str
    quantity: int = 1


@dataclass
class DataclassOrder:
    id: int
    total: float
    kind: Kind = Kind.RETAIL
    lines: list[Line] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    channel: Literal["web", "shop"] = "web"
    note: str | None = None

    def __post_init__(self) -> None:
        if self.total < 0:
            raise ValueError("total must not be negative")


MODELS = [PydanticOrder, MsgspecOrder, DataclassOrder]


def typed_router(model: type[Any], **options: Any) -> tuple[PushRouter, list[PushMessage[Any]]]:
    router = PushRouter(secret_keys=KEYS, dead_letter_queue="dead")
    seen: list[PushMessage[Any]] = []

    @router.route("/orders", queue="orders", subscriber="billing", model=model, **options)
    async def billing(msg: PushMessage[Any]) -> None:
        seen.append(msg)

    return router, seen


def report(post: RecordedPost) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(post.body)
    return doc


# --------------------------------------------------------------------------- valid bodies


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
async def test_a_valid_body_reaches_the_handler_as_the_model(model: Any) -> None:
    router, seen = typed_router(model)
    async with PushSimulator(router) as sim:
        result = await sim.push("/orders", {"id": 7, "total": 12, "extra": "ignored"})
    assert result.status_code == 200
    [msg] = seen
    assert isinstance(msg.payload, model)
    assert (msg.payload.id, msg.payload.total, msg.payload.note) == (7, 12.0, None)
    assert msg.json() == {"id": 7, "total": 12, "extra": "ignored"}  # the raw JSON still there


async def test_dataclass_check_converts_nested_types() -> None:
    router, seen = typed_router(DataclassOrder)
    body = {
        "id": 1,
        "total": 2.5,
        "kind": "wholesale",
        "lines": [{"sku": "a"}, {"sku": "b", "quantity": 3}],
        "tags": {"src": "api"},
        "channel": "shop",
        "note": "gift",
    }
    async with PushSimulator(router) as sim:
        assert (await sim.push("/orders", body)).status_code == 200
    assert seen[0].payload == DataclassOrder(
        1, 2.5, Kind.WHOLESALE, [Line("a", 1), Line("b", 3)], {"src": "api"}, "shop", "gift"
    )


# --------------------------------------------------------------------------- invalid bodies


INVALID = [
    (PydanticOrder, {"id": CARD + "x", "total": 1}, "id: Input should be a valid integer"),
    (MsgspecOrder, {"id": CARD + "x", "total": 1}, "Expected `int`, got `str` - at `$.id`"),
    (DataclassOrder, {"id": CARD + "x", "total": 1}, "$.id: expected integer, got string"),
    (PydanticOrder, {"total": 1}, "id: Field required"),
    (MsgspecOrder, {"total": 1}, "missing required field `id`"),
    (DataclassOrder, {"total": 1}, "$.id: field required"),
    (DataclassOrder, {"id": 1, "total": 1, "kind": CARD}, "$.kind: not a valid Kind"),
    (DataclassOrder, {"id": 1, "total": 1, "channel": "tv"}, "$.channel: expected one of"),
    (DataclassOrder, {"id": 1, "total": 1, "lines": [{"sku": 5}]}, "$.lines[0].sku: expected str"),
    (DataclassOrder, {"id": 1, "total": -1}, "$: total must not be negative"),
    (DataclassOrder, {"id": True, "total": 1}, "$.id: expected integer, got boolean"),
    (PydanticOrder, "{" + CARD + " not json", "body: Invalid JSON"),
    (MsgspecOrder, "{" + CARD + " not json", "JSON is malformed"),
    (DataclassOrder, "{" + CARD + " not json", "body is not valid JSON"),
]


@pytest.mark.parametrize(("model", "body", "why"), INVALID, ids=lambda v: str(v)[:30])
async def test_an_invalid_body_is_dropped_with_the_error_in_the_dead_letter_report(
    model: Any, body: Any, why: str
) -> None:
    router, seen = typed_router(model)
    async with PushSimulator(router) as sim:
        result = await sim.push("/orders", body)
        again = await sim.redeliver(result)
    assert (result.status_code, result.json()) == (200, {"status": "dropped"})
    assert again.json() == {"status": "duplicate"}  # recorded: a redelivery stops there
    assert seen == []  # the handler never saw it
    [post] = sim.posts
    doc = report(post)
    assert post.queue == "dead"
    assert doc["reason"].startswith("invalid payload: ")
    assert why in doc["reason"]
    assert CARD not in doc["reason"]  # the error says where and why, never the value
    assert doc["source_msg_id"] == result.message_id
    assert router.counters.totals["dropped"] == 1


async def test_on_invalid_reject_answers_400_with_the_error_and_keeps_nothing() -> None:
    router, seen = typed_router(PydanticOrder, on_invalid="reject")
    async with PushSimulator(router) as sim:
        result = await sim.push("/orders", {"id": "x", "total": 1})
        again = await sim.redeliver(result)  # IronMQ retries a 400: rejected again, not 202
    assert result.status_code == 400
    assert result.json()["error"].startswith("invalid payload: id: Input should be a valid int")
    assert again.status_code == 400
    assert seen == []
    assert sim.posts == []
    assert router.counters.totals["rejected"] == 2


async def test_on_invalid_retry_answers_503_and_a_fixed_body_then_succeeds() -> None:
    router, seen = typed_router(MsgspecOrder, on_invalid="retry")
    async with PushSimulator(router) as sim:
        result = await sim.push("/orders", {"id": "x", "total": 1})
        fixed = await sim.redeliver(result, {"id": 1, "total": 1})
    assert result.status_code == 503
    assert "Expected `int`, got `str`" in result.json()["error"]
    assert fixed.status_code == 200  # the claim was given up: the next push runs
    assert [m.payload.id for m in seen] == [1]
    assert seen[0].attempt == 2


# --------------------------------------------------------------------------- msg.parse


async def test_msg_parse_decodes_on_demand_and_an_invalid_body_follows_on_invalid() -> None:
    router = PushRouter(secret_keys=KEYS, dead_letter_queue="dead")
    parsed: list[Any] = []

    @router.route("/any", queue="any", subscriber="reader")
    def reader(msg: PushMessage) -> None:
        parsed.append(msg.parse(DataclassOrder))

    @router.route("/strict", queue="any", subscriber="strict", on_invalid="reject")
    def strict(msg: PushMessage) -> None:
        parsed.append(msg.parse(PydanticOrder))

    async with PushSimulator(router) as sim:
        assert (await sim.push("/any", {"id": 3, "total": 1})).status_code == 200
        dropped = await sim.push("/any", {"id": "3", "total": 1})
        rejected = await sim.push("/strict", {"total": 1})
    assert parsed == [DataclassOrder(3, 1.0)]
    assert dropped.json() == {"status": "dropped"}
    assert "$.id: expected integer" in report(sim.posts[0])["reason"]
    assert (rejected.status_code, rejected.json()["error"]) == (
        400,
        "invalid payload: id: Field required",
    )


async def test_payload_on_a_route_without_a_model_says_how_to_get_one() -> None:
    router = PushRouter(secret_keys=KEYS)
    errors: list[str] = []

    @router.route("/plain", queue="plain", subscriber="p")
    def plain(msg: PushMessage) -> None:
        try:
            msg.payload  # noqa: B018 - the access is the test
        except ConfigError as exc:
            errors.append(str(exc))

    async with PushSimulator(router) as sim:
        await sim.push("/plain", "{}")
    assert errors == [
        "msg.payload needs a route declared with model=...; use msg.parse(Model) or msg.json() "
        "on this one"
    ]


# --------------------------------------------------------------------------- declaring


@dataclass
class WithDatetime:
    when: datetime


def test_unsupported_models_are_refused_when_the_route_is_declared() -> None:
    router = PushRouter(secret_keys=KEYS)
    with pytest.raises(TypeError, match=r"model=WithDatetime: the dataclass check supports .*"):
        router.add_route("/a", print, queue="a", subscriber="a", model=WithDatetime)
    with pytest.raises(ValueError, match="on_invalid must be one of"):
        router.add_route("/b", print, queue="b", subscriber="b", on_invalid="ignore")  # type: ignore[arg-type]
    assert router.routes == ()


def test_other_types_go_to_pydantic() -> None:
    decode = decoder_for(list[Line])
    assert decode(b'[{"sku": "a"}]') == [Line("a", 1)]
    with pytest.raises(InvalidPayload, match=r"0.sku: Field required"):
        decode(b"[{}]")


def test_neither_pydantic_nor_msgspec_is_imported_unless_a_model_needs_it() -> None:
    code = (
        "import sys, dataclasses\n"
        "import ironpush, ironpush.cli, ironpush.testing\n"
        "from ironpush import PushRouter, PushMessage\n"
        "@dataclasses.dataclass\n"
        "class Order:\n"
        "    id: int\n"
        "router = PushRouter(verify=False)\n"
        "router.add_route('/o', print, queue='o', subscriber='o', model=Order)\n"
        "assert router.routes[0].decode(b'{\"id\": 1}') == Order(1)\n"
        "loaded = [m for m in ('pydantic', 'msgspec') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
