"""Ack tokens: tampered, forged payload, expired, signed with an unknown key, validly signed but
malformed, or used as a push secret (the wrong purpose) are refused (``SignatureError``; 403
through ``/_ack`` and ``/_release``, and nothing is acked or released); any string at all gives
``SignatureError`` and nothing else (hypothesis).
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from security_kit import DELIVERY, KEY_A, KEY_B, bad_tokens, external_worker, noop

from ironpush import AckTokens
from ironpush._errors import SignatureError
from ironpush._signing import dump_ack_token, load_ack_token
from ironpush.receiver._router import PushRouter
from ironpush.testing import PushSimulator

# --------------------------------------------------------------------------- ack tokens


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
    router = PushRouter(secret_keys=[KEY_A, KEY_B], ack_tokens=AckTokens(max_age=3600))
    router.add_route("/jobs", external_worker, queue="jobs", subscriber="worker")
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


@pytest.mark.anyio
async def test_an_ack_token_is_not_a_push_secret() -> None:
    router = PushRouter(secret_keys=[KEY_A])
    router.add_route("/jobs", noop, queue="jobs", subscriber="worker")
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
