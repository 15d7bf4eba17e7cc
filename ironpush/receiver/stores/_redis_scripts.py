"""The Lua scripts of :class:`~ironpush.receiver.stores._redis.RedisStore`: one per decision.

Each runs atomically inside Redis (one ``EVALSHA``, one round trip) and lives in its own file,
``_lua/{name}.lua`` beside this module (shipped in the wheel, read with
:mod:`importlib.resources`). Times come from the Redis server's ``TIME``, so hosts whose
clocks differ still agree on whose lease ran out.

A claim is a hash ``{prefix}:c:{len(message id)}:{message id}:{subscriber}`` with fields
``s`` state, ``c`` claim id, ``l`` lease until (ms), ``d`` newest delivery, ``a`` attempts,
``o`` outcome, ``w`` owner; its key expires after the ``ttl`` (never before the lease). The
outbox is a sorted set ``{prefix}:ob`` of item ids scored by when each can be taken (due
time, or lease end), plus one hash ``{prefix}:ob:{id}`` per item::

    SCRIPTS["claim"]   # the text of _lua/claim.lua
"""

from __future__ import annotations

from importlib.resources import files

NAMES = (
    "claim",
    "takeover",
    "hold",
    "renew",
    "complete",
    "complete_once",
    "complete_ack",
    "release",
    "newest",
    "add",
    "take",
    "finish",
    "retry",
    "stats",
    "version",
)

_FOLDER = files(__name__.rpartition(".")[0]) / "_lua"

SCRIPTS: dict[str, str] = {name: (_FOLDER / f"{name}.lua").read_text("utf-8") for name in NAMES}
