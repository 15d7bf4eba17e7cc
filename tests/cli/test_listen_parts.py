"""The parts of ``ironpush listen`` that need no process: names, refusals, option bounds,
and the client's ack of a relayed push (the API refuses its id; the push's own message URL,
on another origin, takes the same DELETE without the token)."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner

from ironpush._errors import NotFound, ReservationExpired, ValidationError
from ironpush._listen._names import RelayName, host_slug, listener_of
from ironpush._listen._plan import Target, plan
from ironpush._protocol import Delivery
from ironpush.cli import main
from ironpush.client import AsyncIronMQ, IronMQ
from ironpush.client._models import PushConfig, QueueInfo, Subscriber
from ironpush.client._retry import RetryPolicy

API = "http://mq.test:8080"
RELAY_URL = "http://127.0.0.1:41234/3/projects/p/queues/r--listen-h-1a2b3c4d/messages/m1/subscribers/s?reservation_id=r1"


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name",
    [
        RelayName("orders", "laptop", "1a2b3c4d"),
        RelayName("orders", "my-box-7", "00ff00ff", index=2),
        RelayName("a--listen-b-0123abcd", "x", "deadbeef"),  # a queue named like a relay
        RelayName("odd name/with?chars", "h", "12345678", index=12),
    ],
)
def test_relay_names_parse_back_and_the_subscriber_url_points_at_the_relay_queue(
    name: RelayName,
) -> None:
    assert RelayName.parse(name.relay_queue) == name
    assert listener_of(name.subscriber_url) == name
    assert name.subscriber_name.startswith("listen-")


@pytest.mark.parametrize(
    "queue",
    ["orders", "orders--listen-", "orders--listen-laptop-xyz", "orders--listen-h-1a2b3c4d-1"],
)
def test_other_queue_names_are_not_relays(queue: str) -> None:
    assert RelayName.parse(queue) is None
    assert listener_of("https://example.com/" + queue) is None


def test_host_slug_keeps_letters_digits_and_dashes() -> None:
    assert host_slug("My_Laptop.local") == "my-laptop"
    assert host_slug("---") == "host"
    assert len(host_slug("x" * 100)) <= 24


# --------------------------------------------------------------------------- plan

NAMES = {"host": "h", "listener": "1a2b3c4d"}


def _push(queue: str, kind: str = "multicast") -> QueueInfo:
    sub = Subscriber("billing", "https://api.example.com/hook", {"X-Secret": "s"})
    push = PushConfig(subscribers=(sub,), retries=5, retries_delay=7.0, error_queue="")
    return QueueInfo(name=queue, type=kind, push=push)


def test_plan_uses_the_queues_retry_settings_and_numbers_a_second_target() -> None:
    targets = [Target("q", "http://127.0.0.1/a"), Target("q", "http://127.0.0.1/b", "other")]
    first, second = plan(targets, {"q": _push("q")}, **NAMES, allow_unicast=False)
    assert (first.retries, first.retries_delay, first.error_queue) == (5, 7.0, None)
    assert first.relay_queue == "q--listen-h-1a2b3c4d"
    assert second.relay_queue == "q--listen-h-1a2b3c4d-2"
    assert (first.subscriber, second.subscriber) == ("listen-h-1a2b3c4d", "other")


def test_plan_copies_a_subscribers_name_and_headers_with_as() -> None:
    target = Target("q", "http://127.0.0.1/a", headers={"X-Extra": "1"}, copy_from="billing")
    [relay] = plan([target], {"q": _push("q")}, **NAMES, allow_unicast=False)
    assert relay.subscriber == "billing"
    assert dict(relay.target.headers) == {"X-Secret": "s", "X-Extra": "1"}
    assert "'s'" not in repr(relay)  # the secret header is masked
    with pytest.raises(ValidationError, match="has no subscriber 'nobody'"):
        plan(
            [Target("q", "http://x/", copy_from="nobody")],
            {"q": _push("q")},
            **NAMES,
            allow_unicast=False,
        )


def test_plan_refuses_unicast_unless_allowed() -> None:
    infos = {"u": _push("u", "unicast")}
    with pytest.raises(ValidationError, match="--allow-unicast"):
        plan([Target("u", "http://x/")], infos, **NAMES, allow_unicast=False)
    [relay] = plan([Target("u", "http://x/")], infos, **NAMES, allow_unicast=True)
    assert relay.queue == "u"


@pytest.mark.parametrize("option", [["--wait", "31"], ["--reservation", "0"], ["--port", "70000"]])
def test_out_of_range_options_are_usage_errors(option: list[str]) -> None:
    result = CliRunner().invoke(main, ["listen", "q", "--forward-to", "http://x/", *option])
    assert result.exit_code == 2, result.output


# --------------------------------------------------------------------------- the relayed ack


def _api(refusal: int, seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "mq.test":
            msg = "Message not found" if refusal == 404 else "Reservation timed out"
            return httpx.Response(refusal, json={"msg": msg})
        return httpx.Response(200, json={"msg": "Deleted"})

    return httpx.MockTransport(handle)


@pytest.mark.parametrize("refusal", [404, 403])
def test_a_refused_ack_goes_to_the_relays_message_url_without_the_token(refusal: int) -> None:
    seen: list[httpx.Request] = []
    delivery = Delivery("m1", "r1", "s", RELAY_URL)
    with IronMQ(project_id="p", token="tok-123", cloud=API, transport=_api(refusal, seen)) as mq:
        mq.acknowledge("orders", delivery)
    api, relay = seen
    assert (api.method, api.url.path) == ("DELETE", "/3/projects/p/queues/orders/messages/m1")
    assert api.headers["Authorization"] == "OAuth tok-123"
    assert (relay.method, str(relay.url)) == ("DELETE", RELAY_URL)
    assert "Authorization" not in relay.headers
    assert json.loads(relay.content) == {"reservation_id": "r1", "subscriber_name": "s"}


@pytest.mark.anyio
async def test_the_async_client_acks_a_relayed_push_the_same_way() -> None:
    seen: list[httpx.Request] = []
    delivery = Delivery("m1", "r1", "s", RELAY_URL)
    async with AsyncIronMQ(project_id="p", token="t", cloud=API, transport=_api(404, seen)) as mq:
        await mq.acknowledge("orders", delivery)
    assert [str(r.url) for r in seen][1] == RELAY_URL


@pytest.mark.parametrize("error", [NotFound, ReservationExpired])
def test_an_ack_url_on_the_apis_own_origin_is_not_tried_again(error: type[Exception]) -> None:
    seen: list[httpx.Request] = []
    own = API + "/3/projects/p/queues/orders/messages/m1/subscribers/s?reservation_id=r1"
    status = 404 if error is NotFound else 403
    client = IronMQ(project_id="p", token="t", cloud=API, transport=_api(status, seen))
    with client as mq, pytest.raises(error):
        mq.acknowledge("orders", Delivery("m1", "r1", "s", own))
    assert len(seen) == 1


def test_a_relay_that_stopped_leaves_the_apis_refusal() -> None:
    """The relay's URL does not answer (listen stopped): the ack is late, as IronMQ said."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "mq.test":
            return httpx.Response(404, json={"msg": "Message not found"})
        raise httpx.ConnectError("connection refused", request=request)

    fast = RetryPolicy(attempts=1)
    transport = httpx.MockTransport(handle)
    client = IronMQ(project_id="p", token="t", cloud=API, transport=transport, retry=fast)
    with client as mq, pytest.raises(NotFound):
        mq.acknowledge("orders", Delivery("m1", "r1", "s", RELAY_URL))
    assert [r.url.host for r in seen] == ["mq.test", "127.0.0.1"]
