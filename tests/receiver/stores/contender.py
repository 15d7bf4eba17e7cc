"""What the contract suite's other processes do with a store (run as a script, or in-process).

``python contender.py SPEC race MESSAGE START_AT`` claims once at ``START_AT`` (epoch) and
prints the status; ``ack SPEC MESSAGE START_AT`` completes the message once (as a worker acking
its token) and prints the reservation to ack or ``done``; ``send SPEC START_AT`` takes outbox
items until the outbox is empty and prints their ids; ``hold SPEC MESSAGE LEASE [remote]``
claims, prints the claim, then renews it every ``LEASE/4`` seconds (printing ``renewed N``)
until it is killed. ``remote`` makes the claim's owner look like another host, so only the
lease can free it; ``external`` hands the claim to an external worker (state "external") right
after claiming.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from ironpush._protocol import Delivery
from ironpush.receiver.stores import Owner, Store, open_store
from ironpush.receiver.stores import _base as base


def delivery(message_id: str, reservation: str = "r0") -> Delivery:
    return Delivery(message_id, reservation, "billing")


async def wait_for(start_at: float) -> None:
    # Line the contenders up so that their calls collide.
    await asyncio.sleep(max(0.0, start_at - time.time()))


async def race(store: Store, message_id: str, start_at: float) -> str:
    await wait_for(start_at)
    claim = await store.claim((message_id, "billing"), delivery(message_id), lease=60, ttl=600)
    return claim.status


async def ack(store: Store, message_id: str, start_at: float) -> str:
    """Complete the message as a worker acking its token does: the reservation to ack, or
    "done" when another worker completed it first."""
    await wait_for(start_at)
    key, own = (message_id, "billing"), delivery(message_id, "token")
    newest = await store.complete_once(key, outcome="acked", ttl=600, delivery=own)
    return "done" if newest is None else str(newest.reservation_id)


async def send(store: Store, start_at: float) -> list[str]:
    await wait_for(start_at)
    taken: list[str] = []
    while True:
        items = await store.take(limit=3, lease=60)
        if not items:
            if await store.depth() == 0:
                return taken
            await asyncio.sleep(0.01)  # others hold the rest; they finish them soon
            continue
        taken.extend(item.id for item in items)
        await asyncio.sleep(0)  # let the other senders in between take and finish
        await store.finish([item.id for item in items])


async def hold(store: Store, message_id: str, lease: float, *, external: bool = False) -> None:
    key = (message_id, "billing")
    claim = await store.claim(key, delivery(message_id, "r1"), lease=lease, ttl=600)
    if external and claim.claim_id:
        await store.hold(key, claim.claim_id, state="external", lease=lease)
    print(json.dumps({"status": claim.status, "claim_id": claim.claim_id}), flush=True)
    renewed = 0
    while True:
        await asyncio.sleep(lease / 4)
        if claim.claim_id:
            await store.renew([claim.claim_id], lease=lease)
        renewed += 1
        print(f"renewed {renewed}", flush=True)


async def main(argv: list[str]) -> None:
    spec, command, *args = argv
    if command == "hold" and args[2:] == ["remote"]:
        base._THIS_OWNER = Owner("another-host", os.getpid(), "remote")
    store = open_store(spec)
    try:
        if command == "race":
            print(await race(store, args[0], float(args[1])), flush=True)
        elif command == "ack":
            print(await ack(store, args[0], float(args[1])), flush=True)
        elif command == "send":
            print(json.dumps(await send(store, float(args[0]))), flush=True)
        elif command == "hold":
            await hold(store, args[0], float(args[1]), external=args[2:] == ["external"])
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
