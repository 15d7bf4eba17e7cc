"""The dev server's token: checked with ``hmac.compare_digest``, never logged or echoed, hidden
in the ``ironpush dev`` banner unless asked (issue 6, point 3); subscribers' push secrets shown
only in the owner's read of the queue, masked in every other answer, page, event and log line
(issue 19, N3).
"""

from __future__ import annotations

import hmac
import logging

import httpx
import pytest
from dev_process import DevProcess
from security_kit import TOKEN, CountingDigest, assert_hidden
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from support import wait_until

from ironpush._errors import Unauthorized
from ironpush.client import IronMQ
from ironpush.devserver import DevServer
from ironpush.server_thread import ServerThread


def test_dev_server_checks_the_token_with_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    digest = CountingDigest()
    monkeypatch.setattr(hmac, "compare_digest", digest)  # the module the dev server calls
    with DevServer(token=TOKEN) as dev:
        url = f"{dev.url}/3/projects/dev/queues"
        right = httpx.get(url, headers={"Authorization": f"OAuth {TOKEN}"})
        wrong = httpx.get(url, headers={"Authorization": f"OAuth {TOKEN[:-1]}x"})
        short = httpx.get(url, params={"oauth": "x"})
    assert (right.status_code, wrong.status_code, short.status_code) == (200, 401, 401)
    assert [(a, b) for a, b in digest.calls] == [
        (TOKEN.encode(), TOKEN.encode()),
        (f"{TOKEN[:-1]}x".encode(), TOKEN.encode()),
        (b"x", TOKEN.encode()),
    ]


def test_dev_server_never_logs_or_echoes_its_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with DevServer(token=TOKEN) as dev:
        with dev.client() as mq:
            mq.queue("leak-q").post("x")
        wrong = IronMQ(cloud=dev.url, project_id="dev", token=TOKEN[::-1])
        with wrong, pytest.raises(Unauthorized) as info:
            wrong.queues()
        state = httpx.get(f"{dev.url}/_dev/state", headers={"Authorization": f"OAuth {TOKEN}"})
        deliveries = dev.deliveries()
        text = f"{info.value!s} {info.value!r} {state.text} {deliveries} {dev!r} {dev.config!r}"
    assert state.status_code == 200
    assert_hidden(text + caplog.text, [TOKEN, TOKEN[::-1]])


def test_dev_command_banner_hides_the_token_unless_asked() -> None:
    env = {"IRONPUSH_DEV_TOKEN": TOKEN}
    hidden = DevProcess("--log-level", "debug", env=env)
    try:
        assert httpx.get(f"{hidden.url}/_dev/health").status_code == 401
    finally:
        assert hidden.stop() == 0
    shown = DevProcess("--show-token", env=env)
    assert shown.stop() == 0
    assert "token: required" in hidden.text()
    assert_hidden(hidden.text(), [TOKEN])
    assert f"export IRON_TOKEN='{TOKEN}'" in shown.text()  # the check above can fail


# --------------------------------------------------------------------------- push secrets (N3)

HDR_SECRET = "hdr-SECRET-0123456789abcdef"
URL_SECRET = "url-SECRET-0123456789abcdef"
PASSWORD = "pw-SECRET-0123456789abcdef"


def _echoing_subscriber() -> ServerThread:
    """Answers 403 quoting the secret it got: a subscriber's answer that repeats a secret."""

    async def refuse(request: Request) -> Response:
        got = request.headers.get("x-push-secret", "")
        return Response(f"bad secret {got} for token {URL_SECRET}", status_code=403)

    return ServerThread(Starlette(routes=[Route("/{p:path}", refuse, methods=["POST"])]))


def _read_events(dev: DevServer) -> str:
    """The event stream from its first event up to the error-queue report, as sent."""
    frames = []
    with httpx.stream("GET", f"{dev.url}/_dev/events", params={"after": 0}, timeout=30) as r:
        lines = r.iter_lines()
        for line in lines:
            frames.append(line)
            if line.startswith("event: error_queue"):
                frames.append(next(lines))  # its data line
                break
    return "\n".join(frames)


def test_push_secrets_show_only_in_the_owners_read_of_the_queue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [HDR_SECRET, URL_SECRET, PASSWORD]
    with _echoing_subscriber() as hook, DevServer() as dev, dev.client() as mq:
        bound = hook.url.removeprefix("http://")
        url = f"http://user:{PASSWORD}@{bound}/hook?token={URL_SECRET}"
        sub = {"name": "billing", "url": url, "headers": {"X-Push-Secret": HDR_SECRET}}
        mq.create_queue("orders", subscribers=[sub], retries=0, error_queue="orders-errors")
        [mid] = mq.queue("orders").post('{"order": 1}')
        [status] = mq.queue("orders").wait_for_push(mid, timeout=30)
        [report] = wait_until(lambda: mq.queue("orders-errors").peek(), what="the report")
        api = f"{dev.url}/3/projects/dev/queues"
        seen = {
            "push statuses": httpx.get(f"{api}/orders/messages/{mid}/subscribers").text,
            "error-queue report": report.body,
            "deliveries": httpx.get(f"{dev.url}/_dev/deliveries").text,
            "state": httpx.get(f"{dev.url}/_dev/state").text,
            "event stream": _read_events(dev),
            "queue listing": httpx.get(api).text,
            "bad url answer": httpx.put(
                f"{api}/other",
                json={
                    "queue": {
                        "type": "multicast",
                        "push": {
                            "subscribers": [{"url": f"ironmq://p:{PASSWORD}@host:notaport/q"}]
                        },
                    }
                },
            ).text,
            **{
                f"inspector {page}": httpx.get(f"{dev.url}/_dev/ui{page}").text
                for page in (
                    "",
                    "/q/dev/orders",
                    f"/q/dev/orders/m/{mid}",
                    "/q/dev/orders-errors",
                    f"/q/dev/orders-errors/m/{report.id}",
                )
            },
        }
        owners_read = httpx.get(f"{api}/orders").json()["queue"]["push"]["subscribers"]
    seen["logs"] = caplog.text

    assert status.status_code == 403  # the push happened, answered with the secrets quoted
    assert owners_read == [sub]  # the owner's explicit read: in clear, as hosted IronMQ shows
    leaks = {where: [s for s in secrets if s in text] for where, text in seen.items()}
    assert leaks == {where: [] for where in seen}
    assert "bad secret hdr-***" in seen["push statuses"]  # masked, not dropped
    assert "token=url-***" in seen["push statuses"]
    assert "//***@" in seen["error-queue report"]
    assert "bad secret hdr-***" in seen["event stream"]
    assert "X-Push-Secret: hdr-***" in seen[f"inspector /q/dev/orders/m/{mid}"]
