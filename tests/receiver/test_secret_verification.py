"""Push secrets: verified in constant time, once per key; key rotation end to end (issue 6,
point 3).

- ``verify_push_secret`` decides with ``hmac.compare_digest``, once per key, with no early
  exit, for right and wrong secrets alike; the router uses it for every push.
- Key rotation, end to end with the dev server's real pusher: a secret registered under key A
  keeps working once B is added; re-registering gives a B-signed secret; after A is removed
  its pushes get 403 and never reach the handler. The same in-process for secrets in the query
  string and for ack tokens (``POST /_ack``).

Also covered elsewhere: the signing tests (secret binding, prefixes and extensions refused,
rotation and removal, tamper, expiry); ``test_refusals.py`` (401/403 before the body is read,
older key and query secret accepted).
"""

from __future__ import annotations

import hmac
from typing import Any

import pytest
from security_kit import KEY_A, KEY_B, KEY_C, CountingDigest, noop

from ironpush._signing import push_secret, push_secrets, verify_push_secret
from ironpush.devserver import DevServer
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.server_thread import ServerThread
from ironpush.testing import PushSimulator, build_push

# --------------------------------------------------------------------------- constant time


def test_verify_push_secret_compares_every_key_without_early_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = ["k1", "k2", "k3", "k4"]
    accepted = push_secrets("orders", "billing", keys)
    first, last = accepted[0], accepted[-1]
    wrong_same_length = bytes(reversed(first))
    cases = [(first, True), (last, True), (wrong_same_length, False), (b"short", False)]
    for presented, verdict in cases:
        digest = CountingDigest()
        monkeypatch.setattr(hmac, "compare_digest", digest)
        assert verify_push_secret(presented, accepted) is verdict
        # one comparison per key, whether it matched the first key, the last or none
        assert [b for _, b in digest.calls] == list(accepted)
    # compare_digest decides, not ==: told to refuse, even the right secret is refused
    monkeypatch.setattr(hmac, "compare_digest", CountingDigest(answer=False))
    assert verify_push_secret(first, accepted) is False


@pytest.mark.anyio
async def test_every_push_is_verified_with_compare_digest_once_per_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    router = PushRouter(secret_keys=[KEY_A, KEY_B, KEY_C])
    router.add_route("/orders", noop, queue="orders", subscriber="billing")
    async with PushSimulator(router) as sim:
        for secret, status in [(None, 200), (push_secret("orders", "billing", ["x"]), 403)]:
            digest = CountingDigest()
            monkeypatch.setattr(hmac, "compare_digest", digest)
            options = {} if secret is None else {"secret": secret}
            assert (await sim.push("/orders", "x", **options)).status_code == status
            assert len(digest.calls) == 3


# --------------------------------------------------------------------------- key rotation


class Switch:
    """An ASGI app passing requests to ``router``, which a test swaps (same URL throughout)."""

    def __init__(self, router: PushRouter) -> None:
        self.router = router
        self.used = [router]

    def swap(self, router: PushRouter) -> None:
        self.router = router
        self.used.append(router)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.router(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                for router in self.used:
                    await router.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def rotation_router(keys: list[str], handled: list[tuple[str, str]]) -> PushRouter:
    router = PushRouter(secret_keys=keys)

    @router.route("/orders", queue="rot-orders", subscriber="billing")
    async def billing(msg: PushMessage) -> None:
        handled.append(("+".join(keys), msg.text))

    return router


def test_key_rotation_end_to_end_with_the_real_pusher() -> None:
    handled: list[tuple[str, str]] = []
    switch = Switch(rotation_router([KEY_A], handled))
    with DevServer() as dev, ServerThread(switch) as service, dev.client() as mq:
        queue = mq.queue("rot-orders")

        def deliver(body: str) -> tuple[str | None, int | None]:
            [message_id] = queue.post(body)
            [status] = queue.wait_for_push(message_id, timeout=15)
            return status.status, status.status_code

        [registered] = switch.router.subscriptions(service.url)  # what `subscribe --app` sends
        secret_a = registered.subscriber.headers["X-Ironpush-Secret"]
        assert secret_a == push_secret("rot-orders", "billing", [KEY_A])
        mq.create_queue(
            "rot-orders",
            type="multicast",
            retries=1,
            retries_delay=0.05,
            subscribers=[registered.subscriber],
        )
        assert deliver("A only") == ("deleted", 200)

        switch.swap(rotation_router([KEY_A, KEY_B], handled))  # B added: A still accepted
        assert deliver("A while rotating") == ("deleted", 200)
        [rotated] = switch.router.subscriptions(service.url)  # the newest key signs
        secret_b = rotated.subscriber.headers["X-Ironpush-Secret"]
        assert secret_b == push_secret("rot-orders", "billing", [KEY_B]) != secret_a
        queue.replace_subscribers(rotated.subscriber)
        assert deliver("B while rotating") == ("deleted", 200)

        switch.swap(rotation_router([KEY_B], handled))  # A removed
        assert deliver("B only") == ("deleted", 200)
        queue.replace_subscribers(registered.subscriber)  # a stale registration, signed by A
        assert deliver("A after removal") == ("error", 403)
    assert handled == [
        (KEY_A, "A only"),
        (f"{KEY_A}+{KEY_B}", "A while rotating"),
        (f"{KEY_A}+{KEY_B}", "B while rotating"),
        (KEY_B, "B only"),
    ]


@pytest.mark.anyio
async def test_query_secrets_and_ack_tokens_follow_rotation_through_the_router() -> None:
    tokens: list[str] = []

    def make(keys: list[str]) -> PushRouter:
        router = PushRouter(secret_keys=keys)

        @router.route("/jobs", queue="jobs", subscriber="worker")
        async def worker(msg: PushMessage) -> Defer:
            tokens.append(msg.ack_token)
            return Defer()  # an external worker acks with the token

        return router

    old, rotating, new = make([KEY_A]), make([KEY_A, KEY_B]), make([KEY_B])
    [sub] = old.subscriptions("http://svc", secret_in="query")
    query = sub.subscriber.url.split("?", 1)[1]
    async with PushSimulator(old) as sim:
        assert (await sim.push("/jobs", "1")).status_code == 202
    [token_a] = tokens
    async with PushSimulator(rotating) as sim:
        headers, body, _ = sim_push_parts(rotating)
        pushed = await sim.http.post(f"/jobs?{query}", content=body, headers=headers)
        assert pushed.status_code == 202  # the A-signed query secret
        acked = await sim.http.post("/_ack", content=token_a)
        assert (acked.status_code, acked.json()) == (200, {"status": "acked"})
        assert len(sim.acks) == 1
    async with PushSimulator(new) as sim:
        headers, body, _ = sim_push_parts(new)
        pushed = await sim.http.post(f"/jobs?{query}", content=body, headers=headers)
        assert pushed.status_code == 403
        refused = await sim.http.post("/_ack", content=token_a)
        assert refused.status_code == 403
        assert sim.acks == []


def sim_push_parts(router: PushRouter) -> tuple[dict[str, str], bytes, str]:
    return build_push(router, "/jobs", "q", secret=None)
