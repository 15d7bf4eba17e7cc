"""Acknowledging from a worker with the ack token and the receivers' store, without Celery.

A real PushRouter (uvicorn on a socket) defers pushes from a real dev server with ``Defer()``
and hands out ack tokens; the "worker" here is the test itself, using the public functions
(:func:`acknowledge`, :func:`release`, :class:`PushAcks`) on its own store object over the
same SQLite file. The answer of each case is pinned for every caller in
``tests/receiver/test_acks.py``.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from support import wait_until

from ironpush import AsyncIronMQ, Defer, PushMessage, PushRouter
from ironpush._errors import SignatureError
from ironpush._signing import push_secret
from ironpush.client import IronMQ
from ironpush.client._models import Subscriber
from ironpush.devserver import DevServer
from ironpush.integrations.acks import PushAcks, acknowledge, release, settle
from ironpush.receiver.stores import open_store
from ironpush.server_thread import ServerThread

KEYS = ["acks-test-key-0123456789abcdef0123456789"]


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer() as server:
        yield server


@dataclass
class Deferring:
    """A receiver whose handler answers ``Defer()`` and keeps each push's token and attempt."""

    dev: DevServer
    mq: IronMQ
    queue: str
    store: str
    pushes: list[PushMessage] = field(default_factory=list)

    def post(self) -> str:
        [message_id] = self.mq.queue(self.queue).post("work")
        wait_until(lambda: self.pushes, 30, "the push to reach the handler")
        return message_id

    def redeliver(self, message_id: str) -> None:
        """IronMQ's 202 reservation runs out: it pushes again (202 "in progress")."""
        self.dev.expire(self.queue, message_id, subscriber="worker")
        wait_until(
            lambda: [d["status_code"] for d in self.deliveries(message_id)] == [202, 202],
            30,
            "the redelivery to be answered 202",
        )

    def deliveries(self, message_id: str) -> list[dict[str, object]]:
        return self.dev.deliveries(queue=self.queue, message_id=message_id)

    def acks(self, message_id: str) -> list[object]:
        return [(d.get("ack") or {}).get("result") for d in self.deliveries(message_id)]  # type: ignore[attr-defined]


@pytest.fixture
def deferring(
    dev: DevServer, tmp_path: Path, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deferring]:
    monkeypatch.setenv("IRONMQ_EMULATOR_HOST", dev.url)
    monkeypatch.setenv("IRONPUSH_SECRET_KEYS", ",".join(KEYS))
    spec = f"sqlite:///{tmp_path / 'store.db'}"
    router = PushRouter(secret_keys=KEYS, store=spec)
    with dev.client() as mq:
        setup = Deferring(dev, mq, queue_name, spec)

        @router.route("/jobs", queue=queue_name, subscriber="worker")
        def handle(msg: PushMessage) -> Defer:
            setup.pushes.append(msg)
            return Defer()

        app = Starlette(routes=[Mount("/ironmq", app=router)], lifespan=router.lifespan)
        with ServerThread(app) as server:
            headers = {"X-Ironpush-Secret": push_secret(queue_name, "worker", KEYS)}
            subscriber = Subscriber(name="worker", url=server.url + "/ironmq/jobs", headers=headers)
            mq.create_queue(
                queue_name, type="multicast", subscribers=[subscriber], retries=5, retries_delay=120
            )
            yield setup


@pytest.mark.anyio
async def test_acknowledge_uses_the_newest_reservation_and_a_second_call_sends_nothing(
    deferring: Deferring,
) -> None:
    mid = deferring.post()
    token = deferring.pushes[0].ack_token
    deferring.redeliver(mid)
    store = open_store(deferring.store)
    try:
        async with AsyncIronMQ() as mq:
            assert await acknowledge(token, client=mq, store=store) == "acked"
            assert deferring.acks(mid) == ["expired", "acked"]
            # The job ran twice (a broker redelivered it): the store says it is done.
            assert await acknowledge(token, client=mq, store=store) == "done"
    finally:
        await store.close()
    assert deferring.acks(mid) == ["expired", "acked"]
    assert len(deferring.pushes) == 1


@pytest.mark.anyio
async def test_without_the_store_the_tokens_own_reservation_is_late_after_a_redelivery(
    deferring: Deferring,
) -> None:
    mid = deferring.post()
    deferring.redeliver(mid)
    async with AsyncIronMQ() as mq:
        assert await acknowledge(deferring.pushes[0].ack_token, client=mq) == "late"
    assert deferring.acks(mid) == ["expired", None]


@pytest.mark.anyio
async def test_release_lets_the_next_push_run_the_handler_again(deferring: Deferring) -> None:
    mid = deferring.post()
    store = open_store(deferring.store)
    try:
        assert await release(deferring.pushes[0].ack_token, store=store) is True
        assert await release(deferring.pushes[0].ack_token, store=store) is False
    finally:
        await store.close()
    deferring.dev.expire(deferring.queue, mid, subscriber="worker")
    wait_until(lambda: len(deferring.pushes) == 2, 30, "the next push to run the handler")
    assert deferring.pushes[1].attempt == 2


@pytest.fixture
def acks(deferring: Deferring) -> Iterator[PushAcks]:
    """A worker's blocking acks on the receivers' store, closed after the test."""
    made = PushAcks(store=deferring.store)
    yield made
    made.close()


def test_push_acks_with_the_store_acks_the_newest_reservation(
    deferring: Deferring, acks: PushAcks
) -> None:
    mid = deferring.post()
    deferring.redeliver(mid)
    assert acks.ack(deferring.pushes[0].ack_token) == "acked"
    assert deferring.acks(mid) == ["expired", "acked"]


def _ack_in_child(acks: PushAcks, token: str) -> None:
    os._exit(0 if acks.ack(token) == "acked" else 1)


def test_push_acks_used_before_a_fork_works_in_the_forked_child(
    deferring: Deferring, acks: PushAcks
) -> None:
    """A prefork worker (Celery, RQ) forks after the app made its PushAcks: the child must
    not inherit a dead loop thread or a store bound to the parent's loop."""
    first = deferring.post()
    assert acks.release(deferring.pushes[0].ack_token) is True  # used in the parent
    deferring.dev.expire(deferring.queue, first, subscriber="worker")
    wait_until(lambda: len(deferring.pushes) == 2, 30, "the push to run again")
    child = multiprocessing.get_context("fork").Process(
        target=_ack_in_child, args=(acks, deferring.pushes[1].ack_token)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert deferring.acks(first)[-1] == "acked"


def test_push_acks_refuses_a_forged_token_and_hides_store_credentials(acks: PushAcks) -> None:
    with pytest.raises(SignatureError):
        acks.ack("not-a-token")
    assert "hunter2" not in repr(PushAcks(store="redis://:hunter2@127.0.0.1:6379/0"))


def sqlite_writers() -> int:
    return sum(t.name == "ironpush-sqlite" for t in threading.enumerate())


def test_push_acks_close_stops_the_store_it_opened_and_use_reopens_it(
    deferring: Deferring,
) -> None:
    deferring.post()
    token = deferring.pushes[0].ack_token
    before = sqlite_writers()  # the receiver's own store
    acks = PushAcks(store=deferring.store)
    assert acks.ack(token) == "acked"
    assert sqlite_writers() == before + 1
    acks.close()
    assert sqlite_writers() == before
    assert acks.ack(token) == "done"  # reopened on use; the store says it was handled
    acks.close()


def test_push_acks_settle_acks_a_block_that_succeeds_and_releases_one_that_raises(
    deferring: Deferring, acks: PushAcks
) -> None:
    first = deferring.post()
    with pytest.raises(RuntimeError), acks.settle(deferring.pushes[0].ack_token):
        raise RuntimeError("the job failed")
    deferring.dev.expire(deferring.queue, first, subscriber="worker")  # IronMQ's next push
    wait_until(lambda: len(deferring.pushes) == 2, 30, "the released push to run again")
    with acks.settle(deferring.pushes[1].ack_token):
        pass
    assert deferring.acks(first) == ["expired", "acked"]


@pytest.mark.anyio
async def test_async_settle_releases_on_error_and_acks_on_success(deferring: Deferring) -> None:
    mid = deferring.post()
    store = open_store(deferring.store)
    try:
        async with AsyncIronMQ() as mq:
            with pytest.raises(RuntimeError):
                async with settle(deferring.pushes[0].ack_token, client=mq, store=store):
                    raise RuntimeError("the job failed")
            assert await store.newest((mid, "worker")) is None  # released
            deferring.dev.expire(deferring.queue, mid, subscriber="worker")
            wait_until(lambda: len(deferring.pushes) == 2, 30, "the released push to run again")
            async with settle(deferring.pushes[1].ack_token, client=mq, store=store):
                pass
    finally:
        await store.close()
    assert deferring.acks(mid) == ["expired", "acked"]
