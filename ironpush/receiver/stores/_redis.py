"""The Redis store: claims and outbox shared by receivers on many hosts (``ironpush[redis]``).

::

    from ironpush.receiver.stores import RedisStore

    router = PushRouter(secret_keys=keys, store=RedisStore("redis://127.0.0.1:6379/0"))
    # or: PushRouter(store="redis://127.0.0.1:6379/0"), or IRONPUSH_STORE=redis://...

Every decision is one Lua script run with ``EVALSHA`` (atomic, one round trip; see
:mod:`._redis_scripts`). The calls every push makes, ``claim`` and ``complete`` (with
``complete_once`` and ``complete_ack``), go in batches (:mod:`._batch`): the concurrent calls
of one process share one script run, each answered as if it ran alone. Round trips per push,
at most (under load, a batch's round trip is shared by the pushes in it):

- quick path (handler answers at once): ``claim`` + ``complete`` = **2**;
- deferred path (``Defer(job)``): ``claim`` before the 202, then the job's end,
  ``complete_ack`` (the ``complete`` script, also queuing the ack in the outbox) = **2**, plus
  the sender's ``take`` and ``finish``, each one round trip for a whole batch of acks (4 when
  acks go out one by one); a hand-off to an external worker (``Defer()``) adds ``hold`` (its
  long lease);
- a redelivery of a handled message: 1 (``claim``); of a message whose owner died on this host:
  2 (``claim``, ``takeover``). The first use of a store adds 2 (the eviction policy and the
  scripts, then the schema version), every ``watch_interval`` one call reads ``INFO`` first, and
  after a Redis restart each script is loaded again once (``NOSCRIPT`` → ``EVAL``).

Keys live under ``prefix`` (default ``"ironpush"``), with a version key ``{prefix}:version``.
Handled messages are forgotten by Redis itself (key expiry after ``ttl``). A Redis that is down
or slow raises :class:`~ironpush._errors.StoreUnavailable` within ``timeout`` seconds: commands
are never retried blindly (a lost answer could hide a recorded claim), the connections are
dropped and reopened, and a short doubling fail-fast delay keeps callers from piling up. A
batch that fails as a whole (Redis refused the script, the connection broke) fails each of its
calls alike, and so does Redis refusing a call's write (``OOM``, ``READONLY``...); a call's own
data failing inside the script (a claim hash edited by hand) fails that call only, without the
fail-fast delay.
Standalone Redis (or a primary with replicas); not Redis Cluster.

**Eviction.** The server's ``maxmemory-policy`` must be ``noeviction``: an evicted claim or
handled-message record lets a redelivery run its handler again. The store reads the policy and
``evicted_keys`` with ``INFO`` at first use and every ``watch_interval`` seconds
(:mod:`._redis_watch`): an evicting policy is refused (every call raises
:class:`~ironpush._errors.StoreUnavailable` naming the fix, and the router refuses to start)
unless ``allow_eviction=True`` (``?allow_eviction=1``) accepts the risk; evictions seen make
health fail and are logged every time.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from ... import _tracing
from ..._errors import StoreUnavailable
from ..._protocol import Delivery
from ..._redact import redact_url
from ._base import ActiveState, Claim, Key, OutboxItem, Outcome, StoreProblem
from ._batch import Batcher
from ._common import (
    Breaker,
    ClaimTokens,
    ack_delivery,
    decode_delivery,
    describe,
    encode_delivery,
    item_payload,
    newest_or,
    takeable_owner,
)
from ._common import item_from_payload as _item
from ._redis_scripts import BATCHED, SCRIPTS
from ._redis_watch import RedisWatch
from ._resp import Busy, ReplyError, RespClient, RespError

SCHEMA_VERSION = "1"
_MAX_TAKEOVERS = 3
_MAX_BATCH = 128  # calls per script run: Redis serves no other client while a script runs
_BATCHES_IN_FLIGHT = 1  # per script: the next batch fills while this one runs
_NO_ACK = ("", "", "", "", "")  # complete's per-call item arguments when it queues no ack
#: Error codes of a command Redis refused for its own state (memory, replicas, role, disk), not
#: for the call's data: a script's call failing so fails as a whole batch would.
_ENGINE_REFUSALS = ("OOM ", "READONLY ", "NOREPLICAS ", "MASTERDOWN ", "MISCONF ", "LOADING ")
#: One batched call: its keys and its arguments (``complete``'s after the outbox key).
Call = tuple[list[str], list[Any]]
# Redis names a script by its SHA-1 (EVALSHA): an identifier, not a security measure.
_SHAS = {n: hashlib.sha1(t.encode(), usedforsecurity=False).hexdigest() for n, t in SCRIPTS.items()}


class RedisStore:
    """Claims, newest deliveries and the outbox in Redis; see the module docs for the costs.

    ``timeout`` bounds every command (connect, send and answer); calls are batched and
    pipelined over ``connections`` sockets, and past ``max_in_flight`` waiting calls a call
    gets :class:`~ironpush._errors.StoreUnavailable` at once (nothing queues in memory).
    ``allow_eviction`` accepts a server whose ``maxmemory-policy`` evicts (refused otherwise);
    the policy and evictions are read every ``watch_interval`` seconds::

        store = RedisStore("redis://redis:6379/0", prefix="orders", timeout=2.0)
    """

    kind = "redis"
    shared = True
    dedupes = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "ironpush",
        timeout: float = 2.0,
        connections: int = 2,
        max_in_flight: int = 1024,
        allow_eviction: bool = False,
        watch_interval: float = 5.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.watch = RedisWatch(allow_eviction=allow_eviction, interval=watch_interval)
        self._max_in_flight = max_in_flight
        # Our own pipelining client (``_resp``): see benchmarks/bench_store_clients.py for why.
        self._client = RespClient(
            url, timeout=timeout, connections=connections, max_in_flight=max_in_flight
        )
        self._versioned = False
        self._outbox = f"{prefix}:ob"
        self._item_prefix = f"{prefix}:ob:"
        self.breaker = Breaker("redis", secrets=_password(url))
        self._tokens = ClaimTokens()
        self._batchers: dict[str, Batcher[Call, Any]] = {
            name: Batcher(
                self._batch_runner(name), max_batch=_MAX_BATCH, max_in_flight=_BATCHES_IN_FLIGHT
            )
            for name in BATCHED
        }

    def __repr__(self) -> str:
        allowed = ", allow_eviction=True" if self.watch.allow_eviction else ""
        return f"RedisStore({redact_url(self.url)!r}, prefix={self.prefix!r}{allowed})"

    # --- plumbing ----------------------------------------------------------------------------

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        self.breaker.guard()
        try:
            if self._watch_pending():  # (else no coroutine for it: most calls)
                await self._watched()
            result = await self._script(name, keys, args)
        except (Busy, RespError, OSError) as exc:
            raise self._fault(exc) from exc
        self.breaker.reset()
        return result

    async def _batched(self, name: str, key: Key, call: Call) -> Any:
        """One call (its own keys and arguments) of the batched script ``name``: its answer.
        Every push makes two of these, so what can be done once per batch is (the breaker's
        reset)."""
        self.breaker.guard()
        try:
            if self._watch_pending():
                await self._watched()
            if self._waiting() >= self._max_in_flight:
                raise Busy(f"{self._max_in_flight} redis calls in flight")
            deadline = time.monotonic() + self.timeout  # the event loop's clock
            answer: Any  # the script's list for this call (a batch answers every call)
            if _tracing.current() is None:
                answer = await self._batchers[name].submit(key, call, deadline=deadline)
            else:  # the caller's span around its wait: the batch runs in no caller's context
                head = ("EVALSHA", _SHAS[name])
                with _tracing.client_span(*self._client.span(head, 1)) as span:
                    answer = await self._batchers[name].submit(key, call, deadline=deadline)
                    if span is not None and answer[0] == "err":
                        _tracing.fail(span, _error_code(answer[1]))
        except (Busy, RespError, OSError) as exc:
            raise self._fault(exc) from exc
        if answer[0] == "err":  # this call failed inside the script, the others went on
            error = RespError(answer[1])
            if answer[1].startswith(_ENGINE_REFUSALS):  # Redis refused a write: as for a batch
                raise self.breaker.trip(error) from None
            # The call's own data (a claim hash edited by hand): the engine is well, no breaker.
            reason = describe(error, self.breaker.secrets)
            raise StoreUnavailable(f"redis store refused the call: {reason}", store="redis")
        return answer

    def _waiting(self) -> int:
        """Calls queued for a batch (those sent are bounded by the batch size, and the client
        bounds its own commands)."""
        return sum(batcher.waiting for batcher in self._batchers.values())

    def _batch_runner(self, name: str) -> Callable[[Sequence[Call], float], Awaitable[Any]]:
        head = [self._outbox] if name == "complete" else []

        async def run(calls: Sequence[Call], deadline: float) -> Any:
            keys, args = list(head), []
            for call_keys, call_args in calls:
                keys += call_keys
                args += call_args
            answers = await self._script(name, keys, args)  # bounded by the client's timeout
            self.breaker.reset()
            return answers

        return run

    def _fault(self, exc: Busy | RespError | OSError) -> StoreUnavailable:
        """What a failed call raises; a broken connection is dropped (the next call reopens)."""
        if isinstance(exc, Busy):  # busy, not broken: no reconnect, no breaker
            return StoreUnavailable(
                f"redis store busy: {self._max_in_flight} calls in flight", store="redis"
            )
        if isinstance(exc, OSError):  # connection refused, reset, timed out (TimeoutError)
            self._client.disconnect()
        return self.breaker.trip(exc)  # a refusal (OOM, read-only replica...) or a break

    async def _script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run script ``name`` once: its answer, or :class:`RespError` for an error answer."""
        result = await self._client.send(("EVALSHA", _SHAS[name], len(keys), *keys, *args))
        if isinstance(result, ReplyError) and str(result).startswith("NOSCRIPT"):
            # Redis lost its script cache (a restart): the command did not run, so sending
            # it again as EVAL (which caches the script again) is safe.
            result = await self._client.send(("EVAL", SCRIPTS[name], len(keys), *keys, *args))
        if isinstance(result, ReplyError):
            raise RespError(str(result))
        return result

    def _watch_pending(self) -> bool:
        """Whether :meth:`_watched` has anything to do now: the version check (first use), the
        eviction policy due again, or a refusal to raise."""
        watch = self.watch
        return not self._versioned or watch.refusal is not None or watch.due()

    async def _watched(self, *, now: bool = False) -> None:
        """First use: the version check (with the eviction policy); then the policy and
        evictions again when due (or ``now``); raises while the policy is refused (reading it
        again only when due, so that a refused server costs no round trip per call)."""
        watch = self.watch
        if watch.refusal is not None and not (now or watch.due()):
            watch.guard()
        if not self._versioned:
            await self._check_version()
        elif now or watch.due():
            watch.read(await self._client.pipeline(RedisWatch.COMMANDS))
        watch.guard()

    async def _check_version(self) -> None:
        # First use, one round trip: the eviction policy (INFO), every script loaded (so no call
        # meets NOSCRIPT), and the key schema version read or set. The policy is checked before
        # the version key is written: a refused server gets nothing of ours.
        watch = len(RedisWatch.COMMANDS)
        commands: list[tuple[Any, ...]] = list(RedisWatch.COMMANDS)
        commands += [("SCRIPT", "LOAD", s) for s in SCRIPTS.values()]
        replies = await self._client.pipeline(commands)
        self.watch.read(replies[:watch])
        self.watch.guard()
        for reply in replies[watch:]:
            if isinstance(reply, ReplyError):
                raise RespError(str(reply))
        version = ("EVAL", SCRIPTS["version"], 1, f"{self.prefix}:version", SCHEMA_VERSION)
        reply = await self._client.send(version)
        if isinstance(reply, ReplyError):
            raise RespError(str(reply))
        text = _text(reply)
        if text != SCHEMA_VERSION:
            raise StoreUnavailable(
                f"redis store {self.prefix!r} has key schema {text}, this ironpush speaks "
                f"{SCHEMA_VERSION}",
                store="redis",
            )
        self._versioned = True

    def _key(self, key: Key) -> str:
        message_id, subscriber = key
        return f"{self.prefix}:c:{len(message_id)}:{message_id}:{subscriber}"

    def _claim_key(self, claim_id: str) -> str | None:
        # A claim id is "<token>.<key suffix>": renew() finds the claim's key from the id alone.
        token, dot, suffix = claim_id.partition(".")
        return f"{self.prefix}:c:{suffix}" if dot and token else None

    @staticmethod
    def _claim_id(token: str, key: Key) -> str:
        message_id, subscriber = key
        return f"{token}.{len(message_id)}:{message_id}:{subscriber}"

    # --- claims ------------------------------------------------------------------------------

    async def claim(self, key: Key, delivery: Delivery, *, lease: float, ttl: float) -> Claim:
        rkey, text, (token, owner) = self._key(key), encode_delivery(delivery), self._tokens.next()
        lease_ms, ttl_ms = _ms(lease), _ms(ttl)
        for tries in range(_MAX_TAKEOVERS):
            if tries:  # a takeover lost to another process: try again with a new claim id
                token = self._tokens.next()[0]
            claim_id = self._claim_id(token, key)
            answer = await self._batched(
                "claim", key, ([rkey], [claim_id, lease_ms, ttl_ms, text, owner])
            )
            status = _text(answer[0])
            if status == "new":
                return Claim("new", claim_id=claim_id, attempt=int(answer[1]))
            if status == "done":
                return Claim("done", outcome=_text(answer[1]) or None)
            state, holder, held_by = _text(answer[1]), answer[2], _text(answer[3])
            if not takeable_owner(state, holder):
                return Claim("busy", state=state)
            attempt = await self._run(
                "takeover",
                [rkey],
                [held_by, claim_id, lease_ms, ttl_ms, text, owner],
            )
            if attempt is not None:
                return Claim("new", claim_id=claim_id, attempt=int(attempt))
        return Claim("busy", state="running")

    async def hold(self, key: Key, claim_id: str, *, state: ActiveState, lease: float) -> bool:
        return bool(await self._run("hold", [self._key(key)], [claim_id, state, _ms(lease)]))

    async def renew(self, claim_ids: Collection[str], *, lease: float) -> None:
        pairs = [(k, c) for c in claim_ids if (k := self._claim_key(c)) is not None]
        if pairs:
            await self._run("renew", [k for k, _ in pairs], [_ms(lease), *(c for _, c in pairs)])

    async def complete(
        self, key: Key, *, outcome: Outcome, ttl: float, delivery: Delivery
    ) -> Delivery:
        call = ([self._key(key), ""], [outcome, _ms(ttl), 0, *_NO_ACK])
        return newest_or(_newest(await self._batched("complete", key, call)), delivery)

    async def complete_ack(self, key: Key, *, ttl: float, item: OutboxItem) -> Delivery:
        """:meth:`complete` (``acked``) and :meth:`add` of ``item`` (an ack) with the newest
        delivery the claim kept, in one script: one round trip for a deferred job's end."""
        delivery = ack_delivery(item)
        keys = [self._key(key), self._item_prefix + item.id]
        encoded = encode_delivery(delivery)  # the item's, and what the claim kept if no newer
        args = [
            "acked",
            _ms(ttl),
            0,
            item.id,
            item.queue,
            encoded,
            repr(item.created_at),
            repr(item.next_at),
        ]
        answer = await self._batched("complete", key, (keys, args))
        return newest_or(_newest(answer), delivery, encoded)

    async def complete_once(
        self, key: Key, *, outcome: Outcome, ttl: float, delivery: Delivery
    ) -> Delivery | None:
        call = ([self._key(key), ""], [outcome, _ms(ttl), 1, *_NO_ACK])
        answer = await self._batched("complete", key, call)
        return newest_or(_newest(answer), delivery) if answer[0] else None

    async def release(self, key: Key, claim_id: str | None) -> bool:
        return bool(await self._run("release", [self._key(key)], [claim_id or ""]))

    async def newest(self, key: Key) -> Delivery | None:
        return decode_delivery(await self._run("newest", [self._key(key)], []))

    # --- the outbox --------------------------------------------------------------------------

    async def add(self, item: OutboxItem) -> None:
        args = [
            item.id,
            item.kind,
            item.queue,
            item_payload(item),
            item.attempts,
            repr(item.created_at),
            repr(item.next_at),
        ]
        await self._run("add", [self._outbox, self._item_prefix + item.id], args)

    async def take(self, *, limit: int, lease: float) -> list[OutboxItem]:
        flat = await self._run("take", [self._outbox], [limit, repr(lease), self._item_prefix])
        items = []
        for i in range(0, len(flat), 7):
            row = flat[i : i + 7]  # text already (the client decodes UTF-8), or None
            if None in row:  # a field gone from the item's hash: read as "", as _text reads it
                row = [_text(v) for v in row]
            id_, kind, queue, payload, attempts, created, next_at = row
            items.append(
                _item(
                    id=id_,
                    kind=kind,
                    queue=queue,
                    payload=payload,
                    attempts=int(attempts),
                    created_at=float(created),
                    next_at=float(next_at),
                )
            )
        return items

    async def finish(self, item_ids: Collection[str]) -> None:
        if item_ids:
            await self._run("finish", [self._outbox], [self._item_prefix, *item_ids])

    async def retry(self, item_id: str, *, attempts: int, next_at: float) -> None:
        keys = [self._outbox, self._item_prefix + item_id]
        await self._run("retry", keys, [item_id, attempts, repr(next_at)])

    async def depth(self) -> int:
        count, _ = await self._run("stats", [self._outbox], [])
        return int(count)

    async def next_due(self) -> float | None:
        _, first = await self._run("stats", [self._outbox], [])
        return None if first is None else float(first)

    # --- life --------------------------------------------------------------------------------

    async def check(self) -> None:
        """The eviction watch read now (``INFO``: the policy, evictions, restarts; on first use
        with the version check), bounded by ``timeout``; raises while the eviction policy is
        refused. Health calls it, so health is never a ``watch_interval`` late."""
        self.breaker.guard()
        try:
            await self._watched(now=True)
        except RespError as exc:
            raise self.breaker.trip(exc) from exc
        except OSError as exc:
            self._client.disconnect()
            raise self.breaker.trip(exc) from exc
        self.breaker.reset()

    def problems(self) -> list[StoreProblem]:
        """The eviction policy refused or allowed, evictions seen (:mod:`._redis_watch`)."""
        return self.watch.problems()

    async def close(self) -> None:
        """Let the batches running end, close the connections."""
        for batcher in self._batchers.values():
            await batcher.wait_idle()
        await self._client.close()


def _newest(answer: list[Any]) -> Any:
    """The newest delivery in the ``complete`` script's answer ``{1, newest or false}``."""
    return answer[1] if len(answer) > 1 else None


def _error_code(message: str) -> str:
    """A Redis error's code (``OOM``, ``WRONGTYPE``), or ``ERR`` for a Lua error in a script
    (``user_script:12: attempt to compare nil with number``), as Redis reports one."""
    code = message.split(" ", 1)[0]
    return code if code.isalpha() and code.isupper() else "ERR"


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


def _password(url: str) -> tuple[str | None, ...]:
    from urllib.parse import urlsplit

    try:
        return (urlsplit(url).password,)
    except ValueError:
        return ()
