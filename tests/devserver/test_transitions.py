"""The dev server's two state machines as tables: every legal move, and every other one raises.

Also the state itself, driven without an event loop or a pusher (it owns data, nothing else):
each operation returns what changed, the records' deadlines say what is due when.
"""

from __future__ import annotations

import itertools

import pytest

from ironpush.client._models import Subscriber
from ironpush.devserver import Retention
from ironpush.devserver._ledger import Ledger
from ironpush.devserver._records import Due, Outcome
from ironpush.devserver._state import BrokerState
from ironpush.devserver._transitions import (
    MESSAGE_MOVES,
    PENDING,
    PUSH_MOVES,
    IllegalMove,
    MessageEvent,
    MessageState,
    PushEvent,
    PushState,
    move,
)
from ironpush.devserver._validation import NewMessage, QueuePatch

LEGAL_MESSAGE_MOVES = [(s, e, t) for s, row in MESSAGE_MOVES.items() for e, t in row.items()]
LEGAL_PUSH_MOVES = [(s, e, t) for s, row in PUSH_MOVES.items() for e, t in row.items()]
ILLEGAL_MESSAGE_MOVES = [
    (s, e) for s, e in itertools.product(MessageState, MessageEvent) if e not in MESSAGE_MOVES[s]
]
ILLEGAL_PUSH_MOVES = [
    (s, e) for s, e in itertools.product(PushState, PushEvent) if e not in PUSH_MOVES[s]
]


# --------------------------------------------------------------------------- the tables


@pytest.mark.parametrize(("state", "event", "to"), LEGAL_MESSAGE_MOVES)
def test_every_legal_message_move(
    state: MessageState, event: MessageEvent, to: MessageState
) -> None:
    assert move(MESSAGE_MOVES, state, event) is to


@pytest.mark.parametrize(("state", "event"), ILLEGAL_MESSAGE_MOVES)
def test_every_other_message_move_raises(state: MessageState, event: MessageEvent) -> None:
    with pytest.raises(IllegalMove) as raised:
        move(MESSAGE_MOVES, state, event)
    assert str(raised.value) == f"no move from {state.value!r} on {event.value!r}"


@pytest.mark.parametrize(("state", "event", "to"), LEGAL_PUSH_MOVES)
def test_every_legal_push_move(state: PushState, event: PushEvent, to: PushState) -> None:
    assert move(PUSH_MOVES, state, event) is to


@pytest.mark.parametrize(("state", "event"), ILLEGAL_PUSH_MOVES)
def test_every_other_push_move_raises(state: PushState, event: PushEvent) -> None:
    with pytest.raises(IllegalMove) as raised:
        move(PUSH_MOVES, state, event)
    assert str(raised.value) == f"no move from {state.value!r} on {event.value!r}"


def test_the_tables_cover_every_state_and_only_final_ones_are_dead_ends() -> None:
    assert set(MESSAGE_MOVES) == set(MessageState)
    assert set(PUSH_MOVES) == set(PushState)
    assert [s for s, row in MESSAGE_MOVES.items() if not row] == [MessageState.GONE]
    assert [s for s, row in PUSH_MOVES.items() if not row] == [PushState.ERROR]
    # deleted only absorbs what arrives after an early ack; it never leaves
    assert set(PUSH_MOVES[PushState.DELETED].values()) == {PushState.DELETED}
    assert {PushState.QUEUED, PushState.RETRYING, PushState.RESERVED} == PENDING
    every_target = {t for row in MESSAGE_MOVES.values() for t in row.values()}
    assert every_target == set(MessageState) - {MessageState.NEW}  # all reachable


def test_the_illegal_lists_are_not_empty() -> None:
    # A table that allowed everything would make the two tests above pass vacuously.
    assert len(ILLEGAL_MESSAGE_MOVES) > len(LEGAL_MESSAGE_MOVES)
    assert len(ILLEGAL_PUSH_MOVES) > 10


# --------------------------------------------------------------------------- the state, alone


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def push_state(clock: Clock, queue_type: str = "multicast", **push: object) -> BrokerState:
    state = BrokerState(Ledger(Retention(), clock=clock))
    subs = [Subscriber("a", "http://a.test/"), Subscriber("b", "http://b.test/")]
    patch = QueuePatch(type=queue_type, push_given=True, subscribers=subs, retries=1)
    for name, value in push.items():
        setattr(patch, name, value)
    state.admin.put_queue("p", "q", patch)
    return state


def test_a_post_returns_the_pushes_to_schedule_and_an_ack_finishes_the_message() -> None:
    clock = Clock()
    state = push_state(clock, retries_delay=30.0)
    q = state.ledger.queue("p", "q")

    [mid], changes = state.post("p", "q", [NewMessage("hi", delay=5.0)])

    m = changes.messages[mid]
    a, b = m.push or []
    assert list(m.deadlines(unicast=False)) == [(a, 1005.0, Due.TRY, a), (b, 1005.0, Due.TRY, b)]
    clock.now = 1005.0
    began, _ = state.push.begin_try(m, a)
    assert began is not None
    assert began[1].url == "http://a.test/"
    changes = state.push.answered(m, a, Outcome(202, None))
    assert (a.status, a.due_at) == (PushState.RESERVED, 1035.0)  # until retries_delay ends
    assert list(m.deadlines(unicast=False)) == [
        (a, 1035.0, Due.PUSH_EXPIRY, a),
        (b, 1005.0, Due.TRY, b),
    ]
    state.push.begin_try(m, b)
    state.push.answered(m, b, Outcome(200, None))
    assert a.reservation_id is not None
    changes = state.push.ack(m, q, a.reservation_id, "a")
    assert (a.status, b.status, m.state) == (PushState.DELETED, PushState.DELETED, "finished")
    assert changes.pushing_ended
    assert list(m.deadlines(unicast=False)) == []
    with pytest.raises(IllegalMove):  # a finished message is not deleted like a live one
        state.ledger.move(q, m, MessageEvent.DELETED)


def test_the_last_failure_is_an_error_and_a_report_on_the_error_queue() -> None:
    clock = Clock()
    state = push_state(clock, error_queue="errors", retries_delay=2.0)
    [mid], changes = state.post("p", "q", [NewMessage("hi")])
    m = changes.messages[mid]
    a, _ = m.push or []
    for expected in (PushState.RETRYING, PushState.ERROR):  # retries=1: two tries
        state.push.begin_try(m, a)
        changes = state.push.answered(m, a, Outcome(503, "busy"))
        assert a.status is expected
    assert (a.retries_remaining, a.due_at, a.msg) == (0, None, "busy")
    [report] = changes.reports
    assert (report.failed, report.queue.error_queue) == ([a], "errors")
    assert state.ledger.queue("p", "errors").total_messages == 1


def test_unicast_takes_the_first_subscriber_that_answers_200() -> None:
    clock = Clock()
    state = push_state(clock, "unicast")
    [mid], changes = state.post("p", "q", [NewMessage("hi")])
    m = changes.messages[mid]
    assert list(m.deadlines(unicast=True)) == [("main", 1000.0, Due.ROUND, None)]
    a, b = state.push.start_round(m) or []
    state.push.begin_try(m, a)
    state.push.answered(m, a, Outcome(500, "no"))
    state.push.begin_try(m, b)
    state.push.answered(m, b, Outcome(200, None))
    assert (a.status, b.status, m.state) == (PushState.ERROR, PushState.DELETED, "finished")


def test_an_expired_202_is_due_again_at_once() -> None:
    clock = Clock()
    state = push_state(clock, retries_delay=10.0)
    [mid], changes = state.post("p", "q", [NewMessage("hi")])
    m = changes.messages[mid]
    a, _ = m.push or []
    state.push.begin_try(m, a)
    state.push.answered(m, a, Outcome(202, None))
    assert a.reservation_id is not None
    clock.now = 1010.0
    state.push.expired(m, a, a.reservation_id)
    assert (a.status, a.due_at, a.status_code) == (PushState.RETRYING, 1010.0, 202)


def test_pull_deadlines_follow_the_message_state() -> None:
    clock = Clock()
    state = BrokerState(Ledger(Retention(), clock=clock))
    [mid], changes = state.post("p", "pull", [NewMessage("x", delay=3.0)])
    m = changes.messages[mid]
    expiry = ("expiry", m.expires_at, Due.EXPIRY, None)
    assert list(m.deadlines(unicast=False)) == [("main", 1003.0, Due.DELAY_OVER, None), expiry]
    changes = state.pull.due(m, Due.DELAY_OVER, 1003.0)
    assert m.state == "ready"
    assert changes.ready == {("p", "pull")}
    [reserved], _ = state.pull.reserve(
        state.ledger.queue("p", "pull"), n=1, timeout=30.0, delete=False
    )
    assert reserved is m
    assert list(m.deadlines(unicast=False)) == [
        ("main", 1030.0, Due.RESERVATION_OVER, None),
        expiry,
    ]
