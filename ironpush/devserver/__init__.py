"""A local IronMQ v3-compatible server with a real pusher (``ironpush dev``).

::

    from ironpush.devserver import DevServer

    with DevServer() as mq:               # 127.0.0.1:<free port>, state in memory
        mq.client().queue("jobs").post("hello")

    DevServer(pushes=PushSettings(timeout=2.0), retention=Retention(finished=60))

It serves the v3 API (``/3/projects/{project_id}/...``) and pushes messages of multicast and
unicast queues to their HTTP subscribers exactly as IronMQ's pusher does (headers, 200/202/other
answers, retries, ``retries_delay``, error queues, push statuses; see :mod:`._pushes`). State
lives in memory or, with ``db=PATH``, in a SQLite file that survives restarts and crashes.
:class:`PushSettings` and :class:`Retention` group the tunables, with their defaults.

Timings accept fractions of a second (``retries_delay=0.05``, message ``delay``, the push
timeout), so tests of retry behaviour take milliseconds. The hosted service's minimum
``retries_delay`` is 3 s: do not rely on smaller values in production settings, or run with
``strict=True`` (``ironpush dev --strict``) to get hosted IronMQ's limits. Official clients
(iron-mq, iron_mq_java, iron_go3, iron_mq_ruby) work unchanged; the README's "The dev server"
section lists every remaining difference from hosted IronMQ.

Also runnable as ``python -m ironpush.devserver --port 8080 --db dev.sqlite``.
"""

from __future__ import annotations

from .._devserver_settings import DevConfig, PushSettings, Retention
from ._app import create_app
from ._server import DevServer

__all__ = ["DevConfig", "DevServer", "PushSettings", "Retention", "create_app"]

for _name in __all__:  # users import them from here: say so in reprs and docs
    globals()[_name].__module__ = __name__
del _name
