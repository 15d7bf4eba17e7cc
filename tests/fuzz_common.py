"""What both fuzzing kits share (``tests/devserver/fuzz_kit.py``, ``tests/receiver/fuzz_kit.py``):
hypothesis's settings and one raw ASGI request, for what no HTTP client would send.

::

    answer = await asgi_exchange(app, {"method": "POST", "path": "/x"}, [b"body"])
    assert answer.status == 200 and answer.reads == 2
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("IRONPUSH_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Exchange:
    status: int | None  # None: nothing was sent back (the pusher went away)
    headers: dict[bytes, bytes]
    body: bytes
    reads: int  # receive() calls the app made: 0 means the body was never read

    def error(self) -> str:
        """The ``error`` field of a JSON answer (the receiver's)."""
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return str(data["error"])


async def asgi_exchange(
    app: Any, scope: Mapping[str, Any], chunks: Sequence[bytes], disconnect: bool = False
) -> Exchange:
    """One HTTP request to ``app`` as raw ASGI: ``scope`` over a plain HTTP/1.1 one, the body
    in ``chunks`` then its end (or the client going away); what came back."""
    full: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "scheme": "http",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
        **scope,
    }
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": True} for c in chunks
    ]
    if disconnect:
        incoming.append({"type": "http.disconnect"})
    else:
        incoming.append({"type": "http.request", "body": b"", "more_body": False})
    sent: list[dict[str, Any]] = []
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app(full, receive, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) <= 1, sent
    if not starts:
        return Exchange(None, {}, b"", reads)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Exchange(starts[0]["status"], dict(starts[0]["headers"]), body, reads)
