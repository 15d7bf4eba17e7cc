"""No leaks: tokens, signing keys, push secrets (also a wrong one an attacker presents) and ack
tokens never appear in reprs, log records (DEBUG, every logger), exception messages,
``/_health`` or ``/_metrics``. (CLI output: ``tests/cli/test_cli_secrets.py``; the dev
server: ``tests/devserver/test_devserver_secrets.py``.)
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from security_kit import DELIVERY, KEY_A, KEY_B, TOKEN, assert_hidden, noop

from ironpush import AckTokens
from ironpush._config import Keystone, load_settings
from ironpush._errors import SignatureError
from ironpush._signing import dump_ack_token, load_ack_token, push_secret
from ironpush.client import IronMQ
from ironpush.client._async_client import AsyncIronMQ
from ironpush.client._models import Subscriber
from ironpush.devserver import DevConfig, DevServer
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.testing import PushSimulator

# --------------------------------------------------------------------------- no leaks


def test_reprs_never_show_a_secret() -> None:
    router = PushRouter(secret_keys=[KEY_A, KEY_B])
    router.add_route("/orders", noop, queue="orders", subscriber="billing")
    secret = push_secret("orders", "billing", [KEY_A, KEY_B])
    ack_token = dump_ack_token("orders", DELIVERY, [KEY_A, KEY_B])
    settings_ = load_settings(
        project_id="p",
        token=TOKEN,
        secret_keys=[KEY_A, KEY_B],
        env={},
        home="/nonexistent",
        cwd="/",
    )
    message = PushMessage(b"body", {}, "orders", DELIVERY, _token_factory=lambda: ack_token)
    assert message.ack_token == ack_token  # made (and cached) before the repr
    async_client = AsyncIronMQ(project_id="p", token=TOKEN)
    with IronMQ(project_id="p", token=TOKEN, secret_keys=[KEY_A]) as mq:
        objects = [
            router,
            *router.routes,
            *router.subscriptions("https://h/ironmq"),
            *router.subscriptions("https://h/ironmq", secret_in="query"),
            Subscriber("s", f"https://h/x?ironpush_secret={secret}", {"X-Ironpush-Secret": secret}),
            settings_,
            Keystone(server="https://ks", tenant="t", username="u", password=TOKEN),
            mq,
            mq.settings,
            async_client,
            message,
            DevServer(token=TOKEN),
            DevConfig(token=TOKEN),  # was a leak: a plain dataclass repr showed the token
        ]
        text = "\n".join(repr(o) for o in objects) + "\n".join(str(o) for o in objects)
    asyncio.run(async_client.aclose())
    assert_hidden(text, [TOKEN, KEY_A, KEY_B, secret, ack_token])


@pytest.mark.anyio
async def test_logs_errors_health_and_metrics_never_show_a_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    keys = [KEY_A, KEY_B]
    router = PushRouter(secret_keys=keys, ack_tokens=AckTokens(max_age=60))
    tokens: list[str] = []

    @router.route("/orders", queue="orders", subscriber="billing")
    async def billing(msg: PushMessage) -> Any:
        tokens.append(msg.ack_token)
        if msg.text == "boom":
            raise RuntimeError("handler failed")
        return Defer() if msg.text == "later" else None

    router.add_route("/other", noop, queue="orders", subscriber="shipping")
    secret = push_secret("orders", "billing", keys)
    other_secret = push_secret("orders", "shipping", keys)
    bodies: list[str] = []
    async with PushSimulator(router) as sim:
        pushes: list[tuple[str, dict[str, Any]]] = [
            ("ok", {}),
            ("ok", {"secret_in": "query"}),
            ("later", {}),
            ("boom", {}),
            ("ok", {"secret": other_secret}),  # a real secret, presented to the wrong route
            ("ok", {"secret": secret[:-4]}),
            ("ok", {"secret": None}),
        ]
        for body, options in pushes:
            bodies.append((await sim.push("/orders", body, **options)).response.text)
        ack_token = tokens[2]
        for content in (ack_token, ack_token[:-2] + "xx", secret, json.dumps({"token": ack_token})):
            bodies.append((await sim.http.post("/_ack", content=content)).text)
        bodies.append((await sim.http.get("/_health")).text)
        bodies.append((await sim.http.get("/_metrics")).text)
    errors = []
    for bad in (ack_token[:-2] + "xx", secret):
        with pytest.raises(SignatureError) as info:
            load_ack_token(bad, keys)
        errors.append(f"{info.value!s} {info.value!r}")
    # ironpush's own records: the test client's httpx logs its request URLs, and a secret sent
    # in the query string is in them (as in any access log: the README prefers the header).
    records = "\n".join(
        f"{r.getMessage()} {r.args!r} {r.exc_text or ''} {r.__dict__!r}"
        for r in caplog.records
        if r.name.startswith("ironpush")
    )
    assert any(r.name == "ironpush.receiver" for r in caplog.records)
    assert "acked" in "".join(bodies)  # the scenario ran: pushes, an ack, health, metrics
    assert_hidden(records + "".join(bodies) + "".join(errors), [*keys, secret, other_secret])
    assert_hidden(records + "".join(bodies) + "".join(errors), tokens)
