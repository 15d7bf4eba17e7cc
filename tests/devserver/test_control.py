"""The ``/_dev`` control plane: state, reset and idle (``/_dev/expire``: test_dev_expire.py)."""

from __future__ import annotations

from typing import TypeVar

import pytest

from ironpush._errors import NotFound
from ironpush.devserver import DevServer

T = TypeVar("T")


def test_control_plane_state_reset_and_idle(queue_name: str) -> None:
    with DevServer() as dev, dev.client() as mq:
        mq.queue(queue_name).post("a", "b")
        mq.queue(queue_name).reserve()
        counts = dev.state()["projects"]["dev"][queue_name]
        assert (counts["size"], counts["ready"], counts["reserved"]) == (2, 1, 1)
        assert dev.wait_idle(timeout=1)
        dev.reset()
        assert dev.state()["projects"] == {}
        with pytest.raises(NotFound):
            mq.queue(queue_name).info()
