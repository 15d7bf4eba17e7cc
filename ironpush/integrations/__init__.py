"""Hand-offs from a :class:`~ironpush.PushRouter` to existing job engines.

A handler that hands a push to a job engine returns ``Defer()`` (the router answers 202 and
holds the message as *external*) and gives the job the push's ``ack_token``; the worker
acknowledges the push when the job succeeds and releases it when the job finally fails.

- :mod:`ironpush.integrations.acks`: the engine-neutral part (any worker: RQ, arq, Dramatiq,
  your own): :func:`~ironpush.integrations.acks.acknowledge`,
  :func:`~ironpush.integrations.acks.release` and the blocking
  :class:`~ironpush.integrations.acks.PushAcks` for sync workers.
- :mod:`ironpush.celery` (``pip install 'ironpush[celery]'``): ``enqueue(task, msg, ...)`` in the
  handler, ``acknowledge_pushes(app)`` in the Celery app.
"""

from __future__ import annotations
