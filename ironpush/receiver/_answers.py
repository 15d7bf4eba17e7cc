"""THE answer table: every situation the router meets, and what it answers.

DESIGN.md's receiver contract as data. Each row says the status code, what the store does
before the answer (record the message handled, give the claim up, hand it to an external
worker), which counter moves, the outcome the delivery's log line and per-route counter show,
and the body. Every status code the receiver sends is chosen here and nowhere else::

    ANSWERS["handed_off"]  # Answer(202, b'{"status":"deferred"}', store="hand_off", ...)
    await reply(send, "not_found")
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Final, Literal

from .._protocol import Delivery
from ._asgi import JSON_HEADERS, Send, respond
from ._outcomes import Ack, Defer, Drop, Retry

#: What the store does before the answer: record the message handled as ``"acked"`` or
#: ``"dropped"``, ``"release"`` the claim (the next push runs the handler again), or
#: ``"hand_off"`` (hold it for an external worker, with its long lease). A deferred job needs
#: nothing more: the claim the push made is this process's already, its lease renewed by the
#: heartbeat while the job runs (the stores treat a running and a deferred claim alike, so
#: marking it "deferred" cost every deferred push a store round trip for a label).
StoreAction = Literal["acked", "dropped", "release", "hand_off"]

Situation = Literal[
    # what the handler returned
    "acked",
    "dropped",
    "deferred",
    "handed_off",
    "retry",
    "error",
    "unackable",
    # what the store knew
    "duplicate",
    "in_progress",
    # refusals
    "busy",
    "store_unavailable",
    "secret_missing",
    "secret_wrong",
    "bad_request",
    "invalid",
    "too_large",
    "not_found",
    "method_not_allowed",
    # the internal endpoints
    "healthy",
    "unhealthy",
    "metrics",
    "metrics_missing",
    "ack_done",
    "ack_queued",
    "ack_failed",
    "token_refused",
    "token_too_large",
    "undeclared",
    "released",
]


def json_body(**fields: Any) -> bytes:
    """A compact JSON body: ``json_body(error="not found")`` → ``b'{"error":"not found"}'``."""
    return json.dumps(fields, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Answer:
    """One row: ``status`` and ``body``, then by keyword what else happens: ``status`` after
    ``store``; ``counter`` and ``outcome`` (the log line's and the per-route counter's) move;
    ``body`` unless the caller has a more precise one. ``refusal`` feeds ``/_health``: True for
    a push the router refused (503), False for any other verified push, None when the row is
    not a push's answer (or the push was not verified). ``headers`` go with ``body``, made
    once: a JSON content type unless it is empty."""

    status: int
    body: bytes
    _: KW_ONLY
    store: StoreAction | None = None
    counter: str | None = None
    outcome: str | None = None
    refusal: bool | None = False
    headers: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        length = (b"content-length", str(len(self.body)).encode())
        headers = (*JSON_HEADERS, length) if self.body else (length,)
        object.__setattr__(self, "headers", headers)


def _status(name: str) -> bytes:
    return json_body(status=name)


def _error(why: str) -> bytes:
    return json_body(error=why)


ANSWERS: Final[Mapping[Situation, Answer]] = {
    # handler returned None or Ack(): IronMQ deletes the message for this subscriber. The
    # status says it all, so no body (the hot path: like a bare endpoint's empty 200)
    "acked": Answer(200, b"", store="acked", counter="acked", outcome="acked"),
    # Drop(reason): a poison message must stop retrying; logged, counted, dead-lettered
    "dropped": Answer(
        200, _status("dropped"), store="dropped", counter="dropped", outcome="dropped"
    ),
    # Defer(job): the message stays reserved (and claimed), the job's success is acked
    # through the outbox
    "deferred": Answer(202, _status("deferred"), counter="deferred", outcome="deferred"),
    # Defer(): an external worker acks with the token (see _acks)
    "handed_off": Answer(
        202, _status("deferred"), store="hand_off", counter="deferred", outcome="deferred"
    ),
    # Retry() or an exception: IronMQ pushes again after retries_delay (no traceback sent)
    "retry": Answer(503, _status("retry"), store="release", counter="retried", outcome="retry"),
    "error": Answer(500, _status("error"), store="release", counter="retried", outcome="error"),
    # Defer on a push without a reservation (or legacy URL): it could never be acked later
    "unackable": Answer(500, _status("error"), store="release", counter="retried", outcome="error"),
    # a redelivery of a handled message: answered without the handler
    "duplicate": Answer(200, _status("duplicate"), counter="duplicates", outcome="duplicate"),
    # a redelivery while the handler or job runs: its reservation is the one acked at the end
    "in_progress": Answer(202, _status("in_progress"), counter="duplicates", outcome="in_progress"),
    # deferred capacity full, or draining: back-pressure, IronMQ retries later
    "busy": Answer(
        503, _status("busy"), store="release", counter="busy", outcome="busy", refusal=True
    ),
    # the store failed: nothing recorded, so nothing is acked; IronMQ retries later
    "store_unavailable": Answer(
        503, _status("unavailable"), counter="busy", outcome="store_unavailable", refusal=True
    ),
    # a push that is not verified: counted, never a refusal health should see
    "secret_missing": Answer(
        401,
        _error("push secret missing"),
        counter="verification_failures",
        outcome="unverified",
        refusal=None,
    ),
    "secret_wrong": Answer(
        403,
        _error("push secret wrong"),
        counter="verification_failures",
        outcome="unverified",
        refusal=None,
    ),
    # no Iron-Message-Id, undecodable JSON on a JSON route (the body names which)
    "bad_request": Answer(400, _error("bad request"), counter="rejected", outcome="rejected"),
    # a body that does not fit the route's model, on_invalid="reject": the claim is given up
    # (IronMQ retries, then the error queue); the body names the error
    "invalid": Answer(
        400, _error("invalid payload"), store="release", counter="rejected", outcome="rejected"
    ),
    "too_large": Answer(413, _error("body too large"), counter="rejected", outcome="rejected"),
    # not a push: the router's own answers (refusal=None: health does not count them)
    "not_found": Answer(404, _error("not found"), refusal=None),
    "method_not_allowed": Answer(405, _error("method not allowed"), refusal=None),
    # GET /_health and /_metrics
    "healthy": Answer(200, b"", refusal=None),
    "unhealthy": Answer(503, b"", refusal=None),
    "metrics": Answer(200, b"", refusal=None),
    "metrics_missing": Answer(501, b"", refusal=None),
    # POST /_ack and /_release with an ack token: the body's status is the ack-token path's
    # result (_acks.AckResult)
    "ack_done": Answer(200, _status("acked"), refusal=None),  # done, acked or late
    "ack_queued": Answer(202, _status("queued"), refusal=None),  # not confirmed yet
    "ack_failed": Answer(502, _status("failed"), refusal=None),
    "token_refused": Answer(403, _error("invalid ack token"), refusal=None),
    "token_too_large": Answer(413, _error("body too large"), refusal=None),
    "undeclared": Answer(404, _error("no route for this queue and subscriber"), refusal=None),
    "released": Answer(200, _status("released"), refusal=None),  # or not_held
}


def situation_of(result: object) -> Situation:
    """The row for what a handler returned (``None``, an outcome, or the exception it raised);
    a ``Defer`` is ``"deferred"`` or ``"handed_off"`` (the router may still answer ``"busy"``)."""
    if result is None or isinstance(result, Ack):
        return "acked"
    if isinstance(result, Drop):
        return "dropped"
    if isinstance(result, Defer):
        return "handed_off" if result.job is None else "deferred"
    return "retry" if isinstance(result, Retry) else "error"


def ackable(delivery: Delivery) -> bool:
    """Whether a push can be acknowledged later (a reservation, or a legacy message URL)."""
    if delivery.flavour == "legacy":
        return bool(delivery.subscriber_message_url)
    return bool(delivery.reservation_id)


async def reply(
    send: Send,
    situation: Situation,
    body: bytes | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send the answer of ``situation`` (with a more precise ``body`` when given)."""
    answer = ANSWERS[situation]
    if body is None and headers is None:
        # A new list each time: middleware may add headers to the message in place.
        headers = list(answer.headers)
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
    else:
        await respond(send, answer.status, answer.body if body is None else body, headers)
