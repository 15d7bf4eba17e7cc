"""The client's credentials stay home: the token goes only to the configured origin (a
legacy ack URL from a push header may name any host), never appears in a repr or an error,
and a Keystone login supplies it."""

from __future__ import annotations

import dataclasses

import pytest
from client_kit import KINDS, TOKEN, Recorder, build, call, close
from pytest_httpserver import HTTPServer

from ironpush._errors import ConfigError, TransportError
from ironpush._protocol import Delivery
from ironpush.client import AsyncIronMQ, IronMQ
from ironpush.client._models import ErrorReport, PushStatus
from ironpush.client._retry import RetryPolicy

pytestmark = pytest.mark.anyio

# --------------------------------------------------------------------------- acks and secrets


async def test_legacy_ack_deletes_the_url_and_keeps_the_token_at_home(
    mq: IronMQ | AsyncIronMQ, rec: Recorder, httpserver: HTTPServer
) -> None:
    # Same origin: the token is sent.
    own = f"{rec.url}/1/projects/p1/queues/q/messages/m/subscribers/s"
    await call(
        mq,
        "acknowledge",
        "q",
        Delivery(message_id="m", subscriber_message_url=own, flavour="legacy"),
    )
    assert rec.last.method == "DELETE"
    assert rec.last.uri == "/1/projects/p1/queues/q/messages/m/subscribers/s"
    assert rec.last.headers["Authorization"] == f"OAuth {TOKEN}"
    # Another origin (a push header could name any host): no token.
    foreign = own.replace("localhost", "127.0.0.1")
    assert foreign != own
    await call(
        mq,
        "acknowledge",
        "q",
        Delivery(message_id="m", subscriber_message_url=foreign, flavour="legacy"),
    )
    assert "Authorization" not in rec.last.headers


def test_reprs_never_show_the_token(rec: Recorder) -> None:
    with IronMQ(project_id="p1", token=TOKEN, cloud=rec.url) as mq:
        texts = [repr(mq), repr(mq.settings), str(mq.settings), repr(mq.queue("q"))]
    assert all(TOKEN not in t for t in texts)


async def test_keystone_login_supplies_the_token(rec: Recorder) -> None:
    rec.reply(200, {"access": {"token": {"id": "ks-token", "expires": "2999-01-01T00:00:00Z"}}})
    rec.reply(200, {"queues": []})
    rec.reply(200, {"queues": []})
    keystone = {"server": rec.url + "/v2.0", "tenant": "t", "username": "u", "password": "pw"}
    async with AsyncIronMQ(project_id="p1", keystone=keystone, cloud=rec.url) as mq:
        await mq.queues()
        await mq.queues()
    login, first, second = rec.calls
    assert (login.method, login.uri) == ("POST", "/v2.0/tokens")
    assert login.body == {
        "auth": {"tenantName": "t", "passwordCredentials": {"username": "u", "password": "pw"}}
    }
    assert "Authorization" not in login.headers
    assert first.headers["Authorization"] == second.headers["Authorization"] == "OAuth ks-token"


async def test_a_renewed_keystone_token_goes_out_on_the_next_call(rec: Recorder) -> None:
    # The first token is due for renewal at once (inside the refresh margin): the headers the
    # client keeps for its origin must follow the token, not the first one they were made for.
    rec.reply(200, {"access": {"token": {"id": "ks-old", "expires": "2000-01-01T00:00:00Z"}}})
    rec.reply(200, {"queues": []})
    rec.reply(200, {"access": {"token": {"id": "ks-new", "expires": "2999-01-01T00:00:00Z"}}})
    rec.reply(200, {"queues": []})
    keystone = {"server": rec.url + "/v2.0", "tenant": "t", "username": "u", "password": "pw"}
    async with AsyncIronMQ(project_id="p1", keystone=keystone, cloud=rec.url) as mq:
        await mq.queues()
        await mq.queues()
    first, second = (c for c in rec.calls if c.uri != "/v2.0/tokens")
    assert first.headers["Authorization"] == "OAuth ks-old"
    assert second.headers["Authorization"] == "OAuth ks-new"


@pytest.mark.parametrize("kind", KINDS)
async def test_a_call_with_a_body_leaves_the_next_calls_headers_alone(
    kind: str, rec: Recorder
) -> None:
    rec.reply(200, {"msg": "Deleted"})
    rec.reply(200, {"queues": []})
    mq = build(kind, project_id="p1", token=TOKEN, cloud=rec.url)
    try:
        await call(mq, "acknowledge", "orders", Delivery("m1", "r1", subscriber_name="billing"))
        await call(mq, "queues")
    finally:
        await close(mq)
    ack, listing = rec.calls
    assert ack.headers["Content-Type"] == "application/json"
    assert "Content-Type" not in listing.headers
    assert listing.headers["Authorization"] == f"OAuth {TOKEN}"


# --------------------------------------------------------------------------- regressions


def test_a_token_that_cannot_travel_in_a_header_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match="cannot be sent in an HTTP header") as info:
        IronMQ(project_id="p", token="tok-SECRET\nvalue", cloud="http://127.0.0.1:9")
    assert "tok-SECRET" not in str(info.value)


@pytest.mark.parametrize("kind", KINDS)
async def test_transport_errors_never_quote_the_token(kind: str, rec: Recorder) -> None:
    # Bypass the configuration check to reach the HTTP library with an illegal header value.
    good = IronMQ(project_id="p1", token=TOKEN, cloud=rec.url).settings
    bad = dataclasses.replace(good, token=TOKEN + "\x00")
    client = build(kind, settings=bad, retry=RetryPolicy(attempts=1))
    with pytest.raises(TransportError) as info:
        await call(client, "queues")
    assert TOKEN not in str(info.value)
    await close(client)


def test_push_status_and_error_report_reprs_mask_secret_urls() -> None:
    url = "https://svc.example.com/ironmq/orders?ironpush_secret=s3cr3t-value-0123456789"
    status = PushStatus.from_json({"name": "a", "url": url, "status": "deleted"})
    report = ErrorReport.from_json(
        {"source_msg_id": "1", "subscribers": [{"name": "a", "url": url, "code": 500}]}
    )
    for text in (repr(status), repr(report)):
        assert "s3cr3t-value" not in text
        assert "svc.example.com" in text
