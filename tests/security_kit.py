"""Shared by the security tests (``test_secret_*.py``, ``test_cli_secrets.py``,
``test_devserver_secrets.py``): keys, a token, a counting ``compare_digest``, bad ack tokens."""

from __future__ import annotations

import hmac
import time
from typing import Any

import pytest
from itsdangerous import URLSafeTimedSerializer

from ironpush._protocol import Delivery
from ironpush._signing import dump_ack_token
from ironpush.receiver._outcomes import Defer, PushMessage

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


async def noop(msg: PushMessage) -> None:
    return None


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


async def external_worker(msg: PushMessage) -> Defer:
    return Defer()


def assert_hidden(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, f"secret {secret[:6]}... leaked in: {text[:300]}"
