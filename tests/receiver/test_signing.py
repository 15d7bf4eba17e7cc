"""Push secrets and ack tokens: binding, rotation, tampering, expiry, purpose."""

from __future__ import annotations

import time

import pytest

from ironpush._errors import ConfigError, SignatureError
from ironpush._protocol import Delivery, delivery_from_dict, delivery_to_dict
from ironpush._signing import (
    dump_ack_token,
    generate_key,
    load_ack_token,
    normalize_keys,
    push_secret,
    push_secrets,
    verify_push_secret,
)

V3 = Delivery("m1", reservation_id="r1", subscriber_name="billing")
LEGACY = Delivery(
    "m2",
    subscriber_name="billing",
    subscriber_message_url="https://mq/1/projects/p/queues/q/messages/m2/subscribers/9",
    subscriber_message_id="m2",
    flavour="legacy",
)


def test_push_secret_is_deterministic_and_bound_to_queue_and_subscriber() -> None:
    secret = push_secret("orders", "billing", ["k"])
    assert secret == push_secret("orders", "billing", ["k"])
    assert secret != push_secret("orders", "shipping", ["k"])
    assert secret != push_secret("invoices", "billing", ["k"])
    assert secret != push_secret("orders", "billing", ["other"])


def test_push_secret_is_signed_with_the_newest_key_and_every_key_verifies() -> None:
    accepted = push_secrets("orders", "billing", ["old", "new"])
    assert push_secret("orders", "billing", ["old", "new"]).encode() == accepted[-1]
    assert verify_push_secret(push_secret("orders", "billing", ["old"]).encode(), accepted)
    assert verify_push_secret(push_secret("orders", "billing", ["new"]).encode(), accepted)
    assert not verify_push_secret(push_secret("orders", "billing", ["gone"]).encode(), accepted)


def test_verify_push_secret_refuses_missing_prefixes_and_extensions() -> None:
    accepted = push_secrets("orders", "billing", ["k"])
    good = accepted[0]
    assert not verify_push_secret(None, accepted)
    assert not verify_push_secret(b"", accepted)
    assert not verify_push_secret(good[:-1], accepted)
    assert not verify_push_secret(good + b"x", accepted)


def test_no_keys_is_a_config_error_with_a_hint() -> None:
    with pytest.raises(ConfigError, match="IRONPUSH_SECRET_KEYS"):
        normalize_keys(None)
    with pytest.raises(ConfigError):
        normalize_keys([])
    with pytest.raises(ConfigError, match="empty"):
        normalize_keys(["ok", ""])
    assert normalize_keys("single") == ("single",)


def test_generate_key_is_random_and_long() -> None:
    a, b = generate_key(), generate_key()
    assert a != b
    assert len(a) >= 40


@pytest.mark.parametrize("delivery", [V3, LEGACY])
def test_ack_token_round_trips_queue_and_delivery(delivery: Delivery) -> None:
    token = dump_ack_token("orders", delivery, ["k"])
    assert load_ack_token(token, ["k"]) == ("orders", delivery)
    assert delivery_from_dict(delivery_to_dict(delivery)) == delivery


def test_ack_token_survives_key_rotation_but_not_removal() -> None:
    token = dump_ack_token("orders", V3, ["k1"])
    assert load_ack_token(token, ["k1", "k2"]) == ("orders", V3)
    with pytest.raises(SignatureError, match="invalid"):
        load_ack_token(token, ["k2"])


def test_tampered_ack_token_is_refused() -> None:
    token = dump_ack_token("orders", V3, ["k"])
    # another payload under this token's signature
    forged = dump_ack_token("other", V3, ["k"]).rsplit(".", 1)[0] + "." + token.rsplit(".", 1)[1]
    with pytest.raises(SignatureError):
        load_ack_token(forged, ["k"])
    with pytest.raises(SignatureError):
        load_ack_token(token[:-2] + ("AA" if not token.endswith("AA") else "BB"), ["k"])
    with pytest.raises(SignatureError):
        load_ack_token("not a token", ["k"])


def test_push_secret_is_not_an_ack_token() -> None:
    with pytest.raises(SignatureError):
        load_ack_token(push_secret("orders", "billing", ["k"]), ["k"])


def test_expired_ack_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    token = dump_ack_token("orders", V3, ["k"])
    assert load_ack_token(token, ["k"], max_age=60) == ("orders", V3)
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(SignatureError, match="expired"):
        load_ack_token(token, ["k"], max_age=60)
    with pytest.raises(SignatureError, match="expired"):
        load_ack_token(token, ["k"], max_age=0.5)


def test_signature_error_messages_do_not_contain_the_token() -> None:
    token = dump_ack_token("orders", V3, ["k"])
    with pytest.raises(SignatureError) as info:
        load_ack_token(token + "x", ["k"])
    assert token not in str(info.value)
    assert info.value.__cause__ is None
