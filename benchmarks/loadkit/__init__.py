"""The load kit: one receiver process under many concurrent pushes, and what it measured.

- :mod:`.app`: the receiver a subprocess serves (``python -m benchmarks.loadkit.app --fd N``);
- :mod:`.process`: starting, sampling (RSS, ``/_health``) and stopping that subprocess;
- :mod:`.ack_sink`: both sides of IronMQ (a counting ack sink and a fast pusher);
- :mod:`.sustained` and :mod:`.inflight`: the two scenarios, each returning a result whose
  ``problems()`` lists every property that failed.

Used by ``benchmarks/load_receiver.py`` (the full runs) and ``tests/faults/test_load.py`` (the
short CI versions). Nothing here imports from ``tests/``.
"""
