"""Security guarantees (issue 6, point 3), in one place.

- **Constant time**: ``verify_push_secret`` decides with ``hmac.compare_digest``, once per key,
  with no early exit, for right and wrong secrets alike; the router uses it for every push and
  the dev server checks its token with it.
- **Key rotation**, end to end with the dev server's real pusher: a secret registered under key
  A keeps working once B is added; re-registering gives a B-signed secret; after A is removed
  its pushes get 403 and never reach the handler. The same in-process for secrets in the query
  string and for ack tokens (``POST /_ack``).
- **Ack tokens**: tampered, forged payload, expired, signed with an unknown key, validly signed
  but malformed, or used as a push secret (the wrong purpose) are refused (``SignatureError``;
  403 through ``/_ack`` and ``/_release``, and nothing is acked or released); any string at all
  gives ``SignatureError`` and nothing else (hypothesis).
- **No leaks**: tokens, signing keys, push secrets (also a wrong one an attacker presents) and
  ack tokens never appear in reprs, log records (DEBUG, every logger), exception messages,
  ``/_health``, ``/_metrics``, the dev server's answers and logs, or CLI output (``--json``,
  ``--debug`` tracebacks, the ``dev`` banner, a token httpx refuses to send).
- **Loopback by default**: ``DevServer``, ``ironpush dev`` and ``ironpush serve`` bind
  127.0.0.1; ``ironpush dev --host 0.0.0.0`` warns.

Also covered elsewhere (not repeated here): tests/test_signing.py (secret binding, prefixes and
extensions refused, rotation and removal, tamper, expiry, push secret is not an ack token),
tests/test_receiver.py (401/403 before the body is read, older key and query secret accepted,
a push secret refused by ``/_ack``, one log line per delivery without secrets),
tests/test_cli.py (masked subscriber headers, token never printed by the ``cli`` fixture),
tests/test_devserver_command.py (banner masks the token, ``DevServer(host="0.0.0.0")`` warns),
tests/test_devserver_api.py (token required, never logged). Bad input: tests/test_fuzz_*.py.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from dev_process import DevProcess
from hypothesis import example, given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer

from ironpush._config import Keystone, load_settings
from ironpush._errors import SignatureError, Unauthorized
from ironpush._protocol import Delivery
from ironpush._redact import redact_text
from ironpush._signing import (
    dump_ack_token,
    load_ack_token,
    push_secret,
    push_secrets,
    verify_push_secret,
)
from ironpush.cli import main
from ironpush.cli._dev import dev_command
from ironpush.cli._serve import serve
from ironpush.client import IronMQ
from ironpush.client._async_client import AsyncIronMQ
from ironpush.client._models import Subscriber
from ironpush.devserver import DevConfig, DevServer
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.server_thread import ServerThread
from ironpush.testing import PushSimulator, build_push

_compare_digest = hmac.compare_digest  # the real one, kept before tests replace it
KEY_A = "rotation-key-A-0123456789abcdef-32"
KEY_B = "rotation-key-B-0123456789abcdef-32"
KEY_C = "unknown-key-C-0123456789abcdef-32"
TOKEN = "security-TOKEN-0123456789abcdef"


class CountingDigest:
    """A stand-in for hmac.compare_digest that counts calls (and can be told to refuse)."""

    def __init__(self, *, answer: bool | None = None) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self.answer = answer

    def __call__(self, a: Any, b: Any) -> bool:
        self.calls.append((a, b))
        return _compare_digest(a, b) if self.answer is None else self.answer


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
    router.add_route("/orders", _noop, queue="orders", subscriber="billing")
    async with PushSimulator(router) as sim:
        for secret, status in [(None, 200), (push_secret("orders", "billing", ["x"]), 403)]:
            digest = CountingDigest()
            monkeypatch.setattr(hmac, "compare_digest", digest)
            options = {} if secret is None else {"secret": secret}
            assert (await sim.push("/orders", "x", **options)).status_code == status
            assert len(digest.calls) == 3


async def _noop(msg: PushMessage) -> None:
    return None


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


# --------------------------------------------------------------------------- ack tokens

DELIVERY = Delivery("m-ack", reservation_id="r-ack", subscriber_name="worker")


def _parts(token: str) -> tuple[str, str, str]:
    # payload.timestamp.signature, where a compressed payload itself starts with "."
    payload, stamp, signature = token.rsplit(".", 2)
    return payload, stamp, signature


def bad_tokens(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    keys = [KEY_A, KEY_B]
    good = dump_ack_token("jobs", DELIVERY, keys)
    other = dump_ack_token("other-queue", DELIVERY, keys)
    # Not the last base64 character of a part: it can carry unused bits.
    i = len(_parts(good)[0]) - 2
    with monkeypatch.context() as m:

        class LongAgo:
            @staticmethod
            def time() -> float:
                return time.time() - 3 * 86_400  # past the default max age (one day) too

        m.setattr("itsdangerous.timed.time", LongAgo)
        expired = dump_ack_token("jobs", DELIVERY, keys)
    # Signed exactly as ack tokens are (the documented format: the keys, this salt), but the
    # payload has the wrong shape.
    signer = URLSafeTimedSerializer([k.encode() for k in keys], salt="ironpush.ack-token.v1")
    shaped = signer.dumps({"q": "jobs", "d": {"m": 5}})
    return {
        "tampered payload": good[:i] + ("A" if good[i] != "A" else "B") + good[i + 1 :],
        "forged payload": ".".join([_parts(other)[0], *_parts(good)[1:]]),
        "signature of another token": ".".join([*_parts(good)[:2], _parts(other)[2]]),
        "expired": expired,
        "unknown key": dump_ack_token("jobs", DELIVERY, [KEY_C]),
        "validly signed, not a delivery": shaped,
    }


@pytest.mark.parametrize(
    "kind",
    [
        "tampered payload",
        "forged payload",
        "signature of another token",
        "expired",
        "unknown key",
        "validly signed, not a delivery",
    ],
)
@pytest.mark.anyio
async def test_bad_ack_tokens_are_refused_and_nothing_is_acked_or_released(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = bad_tokens(monkeypatch)[kind]
    with pytest.raises(SignatureError) as info:
        load_ack_token(token, [KEY_A, KEY_B], max_age=3600)
    assert token not in str(info.value)
    router = PushRouter(secret_keys=[KEY_A, KEY_B], ack_token_max_age=3600)
    router.add_route("/jobs", _external, queue="jobs", subscriber="worker")
    async with PushSimulator(router) as sim:
        held = await sim.push("/jobs", "x", message_id="m-ack", reservation_id="r-ack")
        assert held.status_code == 202
        for endpoint in ("/_ack", "/_release"):
            answer = await sim.http.post(endpoint, content=token)
            assert answer.status_code == 403, (endpoint, answer.text)
            assert token not in answer.text
        again = await sim.redeliver(held)
        assert again.json() == {"status": "in_progress"}  # still held: not released
        assert sim.acks == []


async def _external(msg: PushMessage) -> Defer:
    return Defer()


@pytest.mark.anyio
async def test_an_ack_token_is_not_a_push_secret() -> None:
    router = PushRouter(secret_keys=[KEY_A])
    router.add_route("/jobs", _noop, queue="jobs", subscriber="worker")
    token = dump_ack_token("jobs", DELIVERY, [KEY_A])
    async with PushSimulator(router) as sim:
        assert (await sim.push("/jobs", "x", secret=token)).status_code == 403
        assert (await sim.push("/jobs", "x", secret=token, secret_in="query")).status_code == 403


def _token_variants() -> st.SearchStrategy[str | bytes]:
    good = dump_ack_token("jobs", DELIVERY, [KEY_A])
    positions = [i for i in range(len(good) - 1) if good[i + 1] != "."]
    mutated = st.builds(
        lambda i, c: good[:i] + c + good[i + 1 :], st.sampled_from(positions), st.characters()
    ).filter(lambda t: t != good)
    return st.one_of(st.text(), st.binary(), mutated, st.just(good[:-3]))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(token=_token_variants())
@example(token="\udcff")  # found by hypothesis: a lone surrogate raised UnicodeEncodeError
@example(token=b"\xff\xfe.\x00.")
def test_any_string_that_is_not_a_valid_token_raises_signature_error_only(
    token: str | bytes,
) -> None:
    with pytest.raises(SignatureError):
        load_ack_token(token, [KEY_A])


# --------------------------------------------------------------------------- no leaks


def assert_hidden(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, f"secret {secret[:6]}... leaked in: {text[:300]}"


def test_reprs_never_show_a_secret() -> None:
    router = PushRouter(secret_keys=[KEY_A, KEY_B])
    router.add_route("/orders", _noop, queue="orders", subscriber="billing")
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
    router = PushRouter(secret_keys=keys, ack_token_max_age=60)
    tokens: list[str] = []

    @router.route("/orders", queue="orders", subscriber="billing")
    async def billing(msg: PushMessage) -> Any:
        tokens.append(msg.ack_token)
        if msg.text == "boom":
            raise RuntimeError("handler failed")
        return Defer() if msg.text == "later" else None

    router.add_route("/other", _noop, queue="orders", subscriber="shipping")
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


# --------------------------------------------------------------------------- CLI output


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def run(dev: DevServer, tmp_path: Path) -> Callable[..., Result]:
    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        base = {
            "HOME": str(tmp_path),
            "IRONMQ_EMULATOR_HOST": dev.url,
            "IRON_PROJECT_ID": "cli",
            "IRON_TOKEN": TOKEN,
            "IRONPUSH_SECRET_KEYS": f"{KEY_A},{KEY_B}",
        }
        return CliRunner().invoke(main, list(args), env={**base, **(env or {})})

    return invoke


def everything(result: Result) -> str:
    """Everything a user could see: stdout, stderr and, with --debug, the traceback."""
    shown = result.output + (result.stderr or "")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        shown += "".join(traceback.format_exception(result.exception))
    return shown


def test_cli_json_output_masks_secret_headers_and_query_secrets(
    run: Callable[..., Result], dev: DevServer
) -> None:
    router = PushRouter(secret_keys=[KEY_A, KEY_B])
    router.add_route("/orders", _noop, queue="cli-secrets", subscriber="header")
    router.add_route("/legacy", _noop, queue="cli-secrets", subscriber="query")
    [by_header, _] = router.subscriptions("http://127.0.0.1:9/ironmq")
    [_, by_query] = router.subscriptions("http://127.0.0.1:9/ironmq", secret_in="query")
    secrets = [push_secret("cli-secrets", n, [KEY_B]) for n in ("header", "query")]
    with dev.client(project_id="cli") as mq:
        mq.create_queue(
            "cli-secrets",
            type="multicast",
            retries=0,
            retries_delay=0.05,
            subscribers=[by_header.subscriber, by_query.subscriber],
        )
        [message_id] = mq.queue("cli-secrets").post("x")
        mq.queue("cli-secrets").wait_for_push(message_id, timeout=15)
    outputs = [
        run("subscribers", "cli-secrets", "--json"),
        run("subscribers", "cli-secrets"),
        run("info", "cli-secrets", "--json"),
        run("statuses", "cli-secrets", message_id, "--json"),
        run("--debug", "statuses", "cli-secrets", message_id),
    ]
    assert all(r.exit_code == 0 for r in outputs), [everything(r) for r in outputs]
    docs = json.loads(outputs[0].output)
    assert docs[0]["headers"]["X-Ironpush-Secret"].endswith("***")
    assert "ironpush_secret=" in docs[1]["url"]
    assert_hidden("".join(everything(r) for r in outputs), [*secrets, TOKEN, KEY_A, KEY_B])


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--debug", "queues"], {"IRON_TOKEN": f"wrong-{TOKEN}"}),
        (["--debug", "--token", f"wrong-{TOKEN}", "queues"], {}),
        (["--debug", "ack", "--token", "TAMPERED"], {}),
        (["ack", "--token", "TAMPERED"], {}),
        (["--debug", "ack", "--token", "EXPIRED"], {}),
        (["--debug", "ack", "--token", "FOREIGN"], {}),
        (["--debug", "--cloud", "http://127.0.0.1:1", "queues"], {}),
    ],
)
def test_cli_error_paths_never_show_a_secret(
    run: Callable[..., Result],
    args: list[str],
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = bad_tokens(monkeypatch)
    stand_ins = {
        "TAMPERED": tokens["tampered payload"],
        "EXPIRED": tokens["expired"],
        "FOREIGN": tokens["unknown key"],
    }
    args = [stand_ins.get(a, a) for a in args]
    result = run(*args, env=env)
    assert result.exit_code == 1
    assert_hidden(
        everything(result) + caplog.text,
        [TOKEN, KEY_A, KEY_B, *stand_ins.values()],
    )


@pytest.mark.parametrize(
    "token",
    [
        f"{TOKEN[:8]}\n{TOKEN[8:]}",
        f"{TOKEN[:8]}\x00{TOKEN[8:]}",
        f"{TOKEN[:8]}\\x{TOKEN[8:]}",
        f"é{TOKEN}",  # its escaped form starts "\\xc3": redact_text crashed on the backslash
    ],
)
def test_regression_a_token_httpx_refuses_is_masked_in_the_error_line(
    run: Callable[..., Result], token: str
) -> None:
    # Found while testing: httpx's "Illegal header value b'OAuth <token>'" reached the one-line
    # error (as text or as an escaped bytes repr), and redact_text crashed on a backslash.
    result = run("--token", token, "queues")
    assert result.exit_code == 1
    shown = everything(result)
    assert shown.startswith("error: ")
    escaped = repr(token.encode("utf-8", "replace"))[2:-1]
    assert_hidden(shown, [token, repr(token)[1:-1], escaped, TOKEN[8:]])


def test_regression_redact_text_handles_backslashes_and_regex_characters() -> None:
    secret = "\\x1.*+?$^(secret-value)"
    assert redact_text(f"a {secret} b {secret}", [secret]) == "a \\x1.*** b \\x1.***"


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


# --------------------------------------------------------------------------- loopback


def test_servers_bind_loopback_by_default() -> None:
    with DevServer() as dev:
        assert dev.url.startswith("http://127.0.0.1:")
        assert dev.bound_address[0] == "127.0.0.1"
    defaults = {c.name: {p.name: p.default for p in c.params} for c in (dev_command, serve)}
    assert defaults["dev"]["host"] == defaults["serve"]["host"] == "127.0.0.1"
    assert inspect.signature(DevServer).parameters["host"].default == "127.0.0.1"

    public = DevProcess("--host", "0.0.0.0")
    assert public.stop() == 0
    assert "reachable from other machines" in public.text()
    local = DevProcess()
    assert local.stop() == 0
    assert "reachable" not in local.text()
