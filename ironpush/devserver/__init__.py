"""A local IronMQ v3-compatible server with a real pusher (``ironpush dev``).

::

    from ironpush.devserver import DevServer

    with DevServer() as mq:               # 127.0.0.1:<free port>, state in memory
        mq.client().queue("jobs").post("hello")

It serves the v3 API (``/3/projects/{project_id}/...``) and pushes messages of multicast and
unicast queues to their HTTP subscribers exactly as IronMQ's pusher does (headers, 200/202/other
answers, retries, ``retries_delay``, error queues, push statuses; see :mod:`.pusher`). State lives
in memory or, with ``db=PATH``, in a SQLite file that survives restarts and crashes.

Timings accept fractions of a second (``retries_delay=0.05``, message ``delay``, the push
timeout), so tests of retry behaviour take milliseconds. The hosted service's minimum
``retries_delay`` is 3 s: do not rely on smaller values in production settings, or run with
``strict=True`` (``ironpush dev --strict``) to get hosted IronMQ's limits. Official clients
(iron-mq, iron_mq_java, iron_go3, iron_mq_ruby) work unchanged; the README's "The dev server"
section lists every remaining difference from hosted IronMQ.

Also runnable as ``python -m ironpush.devserver --port 8080 --db dev.sqlite``.
"""

from __future__ import annotations

from ._app import create_app
from ._options import DevConfig
from ._server import DevServer

__all__ = ["DevConfig", "DevServer", "create_app"]
