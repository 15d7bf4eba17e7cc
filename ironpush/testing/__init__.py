"""Test helpers for services that receive IronMQ pushes; also a pytest plugin (no setup).

:class:`PushSimulator` (async) and :class:`SyncPushSimulator` (its sync twin, for plain
``def test_...`` functions) send valid pushes — the ``Iron-*`` headers and the push secret,
built by :func:`build_push` with :mod:`ironpush._protocol` — to your app in-process, and record
the acks and dead-letter posts the router makes, through a client that answers like IronMQ.

The pytest plugin is registered when ironpush is installed. It gives the test run a signing key
(``IRONPUSH_SECRET_KEYS`` is set to a fresh random key before conftest files and test modules
are imported, unless it is already set; ini option ``ironpush_secret_keys = off`` turns that
off), and the fixtures ``ironmq_devserver`` (a running :class:`~ironpush.devserver.DevServer`,
emptied before each test) and ``ironmq_devserver_session`` (the same server, never reset)::

    from ironpush.testing import SyncPushSimulator
    from myservice.app import app, router          # app mounts router at /ironmq

    def test_big_order_is_deferred_then_acked():
        with SyncPushSimulator(app, router=router, mount="/ironmq") as sim:
            result = sim.push("/orders", {"id": 8, "total": 50_000})
            assert result.status_code == 202
            [ack] = sim.wait_for_acks(1)
            assert ack.message_id == result.message_id
            assert sim.redeliver(result).json()["status"] == "duplicate"

    def test_with_a_real_pusher(ironmq_devserver):  # the plugin's fixture
        mq = ironmq_devserver.client()
        ...
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .._config import SECRET_KEYS_ENV
from .._signing import generate_key
from ._fake_ironmq import RecordedAck, RecordedPost
from ._pushes import FAKE_IRONMQ as FAKE_IRONMQ
from ._pushes import FAKE_PROJECT as FAKE_PROJECT
from ._pushes import build_push
from ._simulator import PushResult, PushSimulator, SyncPushSimulator

if TYPE_CHECKING:
    from ..devserver import DevServer

__all__ = [
    "PushResult",
    "PushSimulator",
    "RecordedAck",
    "RecordedPost",
    "SyncPushSimulator",
    "build_push",
    "ironmq_devserver",
    "ironmq_devserver_session",
]


# --------------------------------------------------------------------------- pytest plugin

_KEYS_INI = "ironpush_secret_keys"
_SET_BY_US = "_ironpush_testing_set_keys"


def _provide_test_keys(config: Any) -> None:
    """Give the run a signing key unless one is configured (or the ini option says ``off``)."""
    if getattr(config, _SET_BY_US, None) is not None:
        return
    if str(config.getini(_KEYS_INI)).strip().lower() == "off":
        setattr(config, _SET_BY_US, False)
        return
    provide = not os.environ.get(SECRET_KEYS_ENV, "").strip()
    if provide:
        os.environ[SECRET_KEYS_ENV] = generate_key()
    setattr(config, _SET_BY_US, provide)


try:
    import pytest
except ImportError:  # pragma: no cover - the helpers above work without pytest
    pass
else:

    def pytest_addoption(parser: pytest.Parser) -> None:
        parser.addini(
            _KEYS_INI,
            "ironpush: 'auto' (default) sets IRONPUSH_SECRET_KEYS to a random test key when "
            "unset; 'off' leaves the environment alone",
            default="auto",
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
        # Before conftest.py files import the user's app (whose PushRouter needs keys).
        _provide_test_keys(early_config)

    def pytest_configure(config: pytest.Config) -> None:
        # When registered late (``pytest_plugins = ["ironpush.testing"]`` in a conftest).
        _provide_test_keys(config)

    def pytest_unconfigure(config: pytest.Config) -> None:
        if getattr(config, _SET_BY_US, False):
            os.environ.pop(SECRET_KEYS_ENV, None)

    @pytest.fixture(scope="session")
    def ironmq_devserver_session() -> Iterator[DevServer]:
        """A :class:`~ironpush.devserver.DevServer` for the whole session, never reset."""
        from ..devserver import DevServer

        with DevServer() as server:
            yield server

    @pytest.fixture
    def ironmq_devserver(ironmq_devserver_session: DevServer) -> DevServer:
        """The session's dev server, emptied (no queues, no messages) before each test."""
        ironmq_devserver_session.reset()
        return ironmq_devserver_session
