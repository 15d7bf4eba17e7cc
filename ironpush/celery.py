"""``ironpush.celery``: hand pushes to Celery tasks (``pip install 'ironpush[celery]'``).

The documented import path of :mod:`ironpush.integrations._celery`::

    from ironpush.celery import acknowledge_pushes, enqueue
"""

from __future__ import annotations

from .integrations._celery import ACK_TOKEN_HEADER, acknowledge_pushes, enqueue, push_token

__all__ = ["ACK_TOKEN_HEADER", "acknowledge_pushes", "enqueue", "push_token"]
