"""The Lua scripts of :class:`~ironpush.receiver.stores._redis.RedisStore`: one per decision.

Each runs atomically inside Redis (one ``EVALSHA``, one round trip) and lives in its own file,
``_lua/{name}.lua`` beside this module (shipped in the wheel, read with
:mod:`importlib.resources`). Times come from the Redis server's ``TIME``, so hosts whose
clocks differ still agree on whose lease ran out. The scripts of :data:`BATCHED` take the calls
of a batch (:mod:`._batch`) and answer each on its own, through ``_lua/_each.lua``, which is
put in front of them.

A claim is a hash ``{prefix}:c:{len(message id)}:{message id}:{subscriber}`` with fields
``s`` state, ``c`` claim id, ``l`` lease until (ms), ``d`` newest delivery, ``a`` attempts,
``o`` outcome, ``w`` owner; its key expires after the ``ttl`` (never before the lease). The
outbox is a sorted set ``{prefix}:ob`` of item ids scored by when each can be taken (due
time, or lease end), plus one hash ``{prefix}:ob:{id}`` per item::

    SCRIPTS["claim"]   # the text of _lua/_each.lua, then of _lua/claim.lua
"""

from __future__ import annotations

from importlib.resources import files

_FOLDER = files(__name__.rpartition(".")[0]) / "_lua"

#: The scripts that take a batch of calls: ``_each.lua`` (each call answered on its own) is put
#: in front of them.
BATCHED = ("claim", "complete")
_EACH = (_FOLDER / "_each.lua").read_text("utf-8")

#: Script name (its file's stem) → its text: every ``.lua`` file of the folder but the shared
#: ``_each.lua``, so a new decision is one new file.
SCRIPTS: dict[str, str] = {
    name: _EACH + text if name in BATCHED else text
    for path in sorted(_FOLDER.iterdir(), key=lambda p: p.name)
    if path.name.endswith(".lua") and not path.name.startswith("_")
    for name, text in [(path.name.removesuffix(".lua"), path.read_text("utf-8"))]
}
