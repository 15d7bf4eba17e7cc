"""Hand pushes to Celery tasks; the worker acknowledges each push when its task succeeds.

In the push handler, one line: :func:`enqueue` sends the task with the push's ack token in the
task message's **headers** (never in its arguments, so it stays out of Celery's logs and result
backend) and returns ``Defer()``: the router answers 202 and holds the message as *external*.
A redelivery while the task is queued or running gets 202 again without the handler (the
store's claim), so the task is never enqueued twice; its reservation becomes the newest.

In the Celery app, one call: :func:`acknowledge_pushes` connects Celery's signals, so that in
the worker

- ``task_success`` acknowledges the push on IronMQ with the **newest** reservation, read from
  the shared store (:func:`ironpush.integrations.acks.acknowledge`: the one ack-token path, the
  same answers as the router's ``POST /_ack``);
- ``task_failure`` (the final failure: retries exhausted, or no retry) and ``task_revoked``
  release the claim, so IronMQ's next push runs the handler again;
- ``task_retry`` does nothing: the push stays deferred, so Celery's own retries never ack twice
  (nor release);
- ``worker_process_shutdown`` / ``worker_shutdown`` retry the completions still pending (see
  below) before the process exits.

A task that succeeds while the store does not answer is not forgotten: its push's completion
is retried in the worker (``PushAcks``, on its own loop thread) until the store records it,
then acked; the signal returns after ``PushAcks.wait`` seconds (``"queued"``) so the worker
goes on. Only a worker that exits while the store is still down loses them (logged): IronMQ's
next push after the router's ``Leases.external`` then runs the handler again.

It also turns on ``task_acks_late`` and ``task_reject_on_worker_lost``: a worker killed
mid-task leaves the task message unacknowledged on the broker, which gives it to another
worker (RabbitMQ at once, Redis after ``visibility_timeout``); meanwhile IronMQ's pushes get
202 and renew the reservation, and the rerun acks the newest one. ::

    # tasks.py: imported by the web service and by the worker
    from celery import Celery
    from ironpush.celery import acknowledge_pushes

    app = Celery("tasks", broker="redis://localhost:6379/0")
    acknowledge_pushes(app)      # the worker needs IRONPUSH_STORE, IRONPUSH_SECRET_KEYS, IRON_*

    @app.task(autoretry_for=(TimeoutError,), max_retries=3)
    def render(order_id: int) -> None: ...

    # web.py
    from ironpush.celery import enqueue

    @router.route("/orders", queue="orders", subscriber="renderer", json=True)
    def on_order(msg):
        return enqueue(render, msg, msg.json()["id"])    # 202 now, ack when render succeeds

A task must finish (retries and countdowns included) within IronMQ's retry budget,
``(retries + 1) * retries_delay`` of the subscription: each time a 202 reservation runs out
IronMQ pushes again and uses up one retry. Choose them from the task's worst case.
"""

from __future__ import annotations

import logging
from typing import Any

try:
    from celery import Celery, Task, signals
    from celery.canvas import Signature
except ImportError:  # pragma: no cover - exercised by a subprocess without celery
    raise ImportError("ironpush.celery needs Celery: pip install 'ironpush[celery]'") from None

from .._errors import ConfigError, SignatureError
from ..receiver._acks import AckResult
from ..receiver._observe import failed as observe_failure
from ..receiver._outcomes import Defer, PushMessage
from ._celery_tracing import TaskSpans, settling, task_headers
from .acks import DEFAULT_DEDUPE_TTL, PushAcks

logger = logging.getLogger("ironpush.celery")

#: The task-message header that carries the push's ack token.
ACK_TOKEN_HEADER = "ironpush_ack_token"

_warned_not_late: set[str] = set()


def enqueue(task: Task | Signature, msg: PushMessage, /, *args: Any, **kwargs: Any) -> Defer:
    """Send ``task(*args, **kwargs)`` with ``msg``'s ack token; return ``Defer()`` (202).

    ``task`` may be a signature carrying options and leading arguments
    (``render.s("thumbs").set(queue="slow")``); ``args`` come after its own. A broker error
    raises, so the router answers 500 and IronMQ pushes again later: nothing is lost (the
    publish's retries count against IronMQ's push timeout: keep them short). ::

        return enqueue(render, msg, msg.json()["id"])
    """
    signature = task.clone() if isinstance(task, Signature) else task.s()
    # After the signature's own arguments (its apply_async(args) would put new ones first).
    signature.args = (*signature.args, *args)
    signature.kwargs = {**signature.kwargs, **kwargs}
    headers = {
        **task_headers(msg),  # a traced push: its context (_celery_tracing.py); yours win
        **(signature.options.get("headers") or {}),
        ACK_TOKEN_HEADER: msg.ack_token,
    }
    _warn_if_early_ack(signature)
    signature.apply_async(headers=headers)
    return Defer()


def push_token(task: Task) -> str | None:
    """The ack token of the push that ``task`` (its current request) came from, if any.

    For a task that acknowledges by itself, or that hands the token on.
    """
    return _token_of(task.request)


def _token_of(request: Any) -> str | None:
    token = request.get(ACK_TOKEN_HEADER) if hasattr(request, "get") else None
    if token is None:
        token = (getattr(request, "headers", None) or {}).get(ACK_TOKEN_HEADER)
    return token if isinstance(token, str) and token else None


def acknowledge_pushes(
    app: Celery,
    *,
    acks: PushAcks | None = None,
    store: str | None = None,
    ttl: float = DEFAULT_DEDUPE_TTL,
) -> PushAcks:
    """Make ``app``'s workers acknowledge (and release) the pushes their tasks came from.

    Call it where the app is created, before tasks are declared (it sets ``task_acks_late``
    and ``task_reject_on_worker_lost``). ``store`` is the receivers' store spec (default:
    ``IRONPUSH_STORE``), ``ttl`` their ``Leases.dedupe_ttl``; or pass ``acks``, a
    :class:`~ironpush.integrations.acks.PushAcks`. Tasks of other apps, and tasks not sent by
    :func:`enqueue`, are left alone. Returns the ``PushAcks`` used. ::

        app = Celery("tasks", broker=BROKER_URL)
        acknowledge_pushes(app)
    """
    acks = acks or PushAcks(store=store, ttl=ttl)
    app.conf.task_acks_late = True
    app.conf.task_reject_on_worker_lost = True
    receivers = _Receivers(app, acks)
    uid = f"ironpush-{id(app)}"
    signals.task_success.connect(receivers.success, weak=False, dispatch_uid=uid + "-success")
    signals.task_failure.connect(receivers.failure, weak=False, dispatch_uid=uid + "-failure")
    signals.task_revoked.connect(receivers.revoked, weak=False, dispatch_uid=uid + "-revoked")
    signals.task_retry.connect(receivers.retry, weak=False, dispatch_uid=uid + "-retry")
    signals.task_prerun.connect(receivers.prerun, weak=False, dispatch_uid=uid + "-prerun")
    signals.task_postrun.connect(receivers.postrun, weak=False, dispatch_uid=uid + "-postrun")
    for ending in (signals.worker_process_shutdown, signals.worker_shutdown):
        ending.connect(receivers.shutdown, weak=False, dispatch_uid=f"{uid}-{ending.name}")
    return acks


class _Receivers:
    """The signal receivers of one app (they run in the worker: pool child or main process)."""

    def __init__(self, app: Celery, acks: PushAcks) -> None:
        self.app = app
        self.acks = acks
        self.spans = TaskSpans()  # a traced push's task runs in a "job" span

    def _token(self, sender: Any, request: Any) -> str | None:
        if not isinstance(sender, Task) or sender.app is not self.app or request is None:
            return None
        return _token_of(request)

    # Each receiver returns what the ack-token path answered (Celery's ``send`` collects the
    # receivers' answers), or None for a task that is not ours or an ack that failed.

    def success(self, sender: Any = None, **_: Any) -> AckResult | None:
        token = self._token(sender, getattr(sender, "request", None))
        if token is None:
            return None
        try:
            with settling(self.spans, sender.request.id, "ack"):
                result = self.acks.ack(token)
        except (SignatureError, ConfigError) as exc:  # nothing was recorded
            logger.error(
                "task %s[%s] succeeded but its push could not be acknowledged (%s: %s): nothing "
                "was recorded, so IronMQ's next push after the router's Leases.external runs "
                "the handler again",
                sender.name,
                sender.request.id,
                type(exc).__name__,
                exc,
            )
            return None
        except Exception as exc:  # recorded handled; sending the ack failed
            logger.error(
                "task %s[%s] succeeded and its push is recorded handled, but the ack failed "
                "(%s: %s): IronMQ pushes it again and the receivers answer 200 from the store",
                sender.name,
                sender.request.id,
                type(exc).__name__,
                exc,
            )
            return None
        if result is AckResult.QUEUED:
            logger.warning(
                "task %s[%s] succeeded; the store did not record its push yet: retried in this "
                "worker until it does, then acked (%d pending)",
                sender.name,
                sender.request.id,
                self.acks.pending,
            )
        else:
            logger.info("task %s[%s] succeeded: push %s", sender.name, sender.request.id, result)
        return result

    def failure(
        self,
        sender: Any = None,
        task_id: str | None = None,
        exception: BaseException | None = None,
        **_: Any,
    ) -> bool | None:
        if exception is not None and self.spans.attributes(task_id) is not None:
            observe_failure(exception)
        return self._release(sender, getattr(sender, "request", None), task_id, "failed")

    def revoked(self, sender: Any = None, request: Any = None, **_: Any) -> bool | None:
        return self._release(sender, request, getattr(request, "id", None), "was revoked")

    def _release(self, sender: Any, request: Any, task_id: str | None, what: str) -> bool | None:
        token = self._token(sender, request)
        if token is None:
            return None
        try:
            with settling(self.spans, task_id, "release"):
                released = self.acks.release(token)
        except Exception as exc:
            logger.error(
                "task %s[%s] %s and its push could not be released (%s: %s); the handler "
                "runs again once the router's Leases.external ends",
                sender.name,
                task_id,
                what,
                type(exc).__name__,
                exc,
            )
            return None
        logger.info(
            "task %s[%s] %s: push released for IronMQ's next push", sender.name, task_id, what
        )
        return released

    def shutdown(self, **_: Any) -> None:
        """The worker (or its pool process) exits: retry what is pending for the acks'
        ``flush_timeout`` (each completion still not recorded then is logged as lost)."""
        self.acks.close()

    def prerun(self, sender: Any = None, task_id: str | None = None, **_: Any) -> None:
        request = getattr(sender, "request", None)
        if task_id and self._token(sender, request) is not None:
            self.spans.start(task_id, sender.name, request)

    def postrun(self, task_id: str | None = None, **_: Any) -> None:
        self.spans.end(task_id)

    def retry(self, sender: Any = None, **_: Any) -> None:
        if self._token(sender, getattr(sender, "request", None)) is not None:
            logger.info(
                "task %s[%s] will retry: its push stays deferred", sender.name, sender.request.id
            )


def _warn_if_early_ack(signature: Signature) -> None:
    try:
        task = signature.type
    except KeyError:  # a task sent by name, not registered in this process: cannot tell
        return
    name = getattr(task, "name", "?")
    if getattr(task, "acks_late", True) or name in _warned_not_late:
        return
    _warned_not_late.add(name)
    logger.warning(
        "Celery task %s is not acks_late: a worker killed mid-task loses it, and its push "
        "waits for the router's Leases.external; call acknowledge_pushes(app) before declaring it",
        name,
    )
