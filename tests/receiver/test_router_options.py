"""Building a router: keys, verification, route declarations, subscriptions, option groups."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from ironpush import AckTokens, Health, Leases, Limits, OutboxSettings, Shutdown
from ironpush._errors import ConfigError
from ironpush._signing import push_secret
from ironpush.receiver._outcomes import PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.testing import PushSimulator

from .contract import KEYS

pytestmark = pytest.mark.anyio


# --- configuration -----------------------------------------------------------------------------


def test_router_without_keys_refuses_to_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IRONPUSH_SECRET_KEYS", raising=False)
    with pytest.raises(ConfigError, match="secret"):
        PushRouter()


def test_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRONPUSH_SECRET_KEYS", "env-old,env-new")
    assert PushRouter().keys == ("env-old", "env-new")


async def test_verify_false_accepts_unsigned_pushes_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("IRONPUSH_SECRET_KEYS", raising=False)
    with caplog.at_level(logging.WARNING, logger="ironpush.receiver"):
        router = PushRouter(verify=False)
    assert "NOT verified" in caplog.text
    seen: list[PushMessage] = []
    router.add_route("/r", seen.append, queue="q", subscriber="s")
    async with PushSimulator(router) as sim:
        assert (await sim.push("/r", "x")).status_code == 200
    with pytest.raises(ConfigError):
        _ = seen[0].ack_token


def test_route_declaration_errors() -> None:
    router = PushRouter(secret_keys=KEYS)
    router.add_route("/a", print, queue="q", subscriber="s")
    for path in ("no-slash", "/_health", "/_mine"):
        with pytest.raises(ValueError, match="must start"):
            router.add_route(path, print, queue="q2", subscriber="s")
    with pytest.raises(ValueError, match="already"):
        router.add_route("/a/", print, queue="q2", subscriber="s")
    with pytest.raises(ValueError, match="already has a route"):
        router.add_route("/b", print, queue="q", subscriber="s")
    with pytest.raises(ValueError, match="push_type"):
        router.add_route("/c", print, queue="q3", subscriber="s", push_type="pull")


def test_subscriptions_carry_the_secret_and_push_settings() -> None:
    router = PushRouter(secret_keys=KEYS)

    @router.route("/orders", queue="orders", subscriber="billing", retries=5, retries_delay=30)
    async def orders(msg: PushMessage) -> None: ...

    [sub] = router.subscriptions("https://api.example.com/ironmq/")
    assert sub.queue == "orders"
    assert sub.subscriber.name == "billing"
    assert sub.subscriber.url == "https://api.example.com/ironmq/orders"
    secret = sub.subscriber.headers["X-Ironpush-Secret"]
    assert secret == push_secret("orders", "billing", KEYS)
    assert secret not in repr(sub)
    assert sub.push_settings == {"retries": 5, "retries_delay": 30}
    [query] = router.subscriptions("https://h/ironmq", secret_in="query")
    assert query.subscriber.url.startswith("https://h/ironmq/orders?ironpush_secret=")
    assert query.subscriber.headers == {}


# --- option groups (each default written once) ---------------------------------------------


def test_each_group_shows_its_defaults_and_the_router_reads_them() -> None:
    assert repr(Leases()) == "Leases(claim=10.0, external=900.0, dedupe_ttl=86400.0)"
    assert repr(Limits()) == "Limits(body_limit=262144, max_deferred=32, max_unsent_acks=10000)"
    assert repr(Shutdown()) == "Shutdown(grace=10.0, flush_timeout=5.0)"
    assert repr(Health()) == "Health(timeout=None, slow=0.1, unhealthy_refusals=0.9)"
    assert repr(AckTokens()) == "AckTokens(max_age=86400.0, wait=5.0)"
    assert repr(OutboxSettings()).startswith("OutboxSettings(concurrency=128, batch=256, ")
    settings = PushRouter(secret_keys=KEYS).settings
    assert (settings.leases, settings.limits, settings.shutdown) == (Leases(), Limits(), Shutdown())
    assert (settings.health, settings.ack_tokens) == (Health(), AckTokens())
    assert settings.outbox == OutboxSettings()


def test_groups_and_the_flat_shortcuts_set_the_router_options() -> None:
    router = PushRouter(
        secret_keys=KEYS,
        leases=Leases(claim=20, external=60),
        limits=Limits(max_deferred=100),
        health=Health(timeout=2),
        max_unsent_acks=50,
        shutdown_grace=1,
    )
    settings = router.settings
    assert settings.leases == Leases(claim=20, external=60)
    assert router.claim_lease == 20
    assert settings.limits == Limits(max_deferred=100, max_unsent_acks=50)
    assert settings.shutdown == Shutdown(grace=1)
    assert settings.health == Health(timeout=2)
    shortcut = PushRouter(secret_keys=KEYS, leases=Leases(claim=20), claim_lease=5)
    assert shortcut.settings.leases.claim == 5  # the shortcut sets that one field


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Limits(max_deferred=0), "Limits.max_deferred must be >= 1, got 0"),
        (lambda: Leases(claim=0), "Leases.claim must be > 0, got 0"),
        (lambda: Health(unhealthy_refusals=1.5), "Health.unhealthy_refusals must be <= 1"),
        (lambda: PushRouter(secret_keys=KEYS, body_limit=0), "Limits.body_limit must be >= 1"),
    ],
)
def test_out_of_range_options_are_refused_naming_the_field(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build()


def test_an_unknown_option_is_a_type_error_that_names_the_groups() -> None:
    with pytest.raises(TypeError, match=r"'health_timeout'.*health=Health\(\.\.\.\)"):
        PushRouter(secret_keys=KEYS, health_timeout=1)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"outbox": {"concurrency": 8}}, "outbox=OutboxSettings(concurrency=128); got dict"),
        ({"limits": {"max_deferred": 5}}, "limits=Limits(body_limit=262144); got dict"),
        ({"leases": 20}, "PushRouter(leases=...) expects Leases(...)"),
    ],
)
def test_a_group_given_as_anything_else_is_a_type_error_that_names_the_fix(
    options: dict[str, Any], message: str
) -> None:
    """Refused when the router is built, not at its first push (an outbox given as a dict
    failed in the lifespan)."""
    with pytest.raises(TypeError, match=re.escape(message)):
        PushRouter(secret_keys=KEYS, **options)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("concurrency", 0, "OutboxSettings.concurrency must be >= 1, got 0"),  # acked nothing
        ("batch", 0, "OutboxSettings.batch must be >= 1, got 0"),  # took nothing, ever
        ("lease", 0, "OutboxSettings.lease must be > 0, got 0"),
        ("backoff", -1, "OutboxSettings.backoff must be >= 0, got -1"),
        ("poll_interval", 0, "OutboxSettings.poll_interval must be > 0, got 0"),
    ],
)
def test_out_of_range_outbox_settings_are_refused(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        OutboxSettings(**{field: value})
