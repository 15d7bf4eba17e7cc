"""One routed v3 API request, as every endpoint handler receives it (see :mod:`._routes`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._engine import Engine
from ._limits import HOSTED_MIN_TIMEOUT, MAX_TIMEOUT
from ._records import QueueRecord
from ._validation import bad, parse_json

Result = tuple[int, Any]
DELETED = {"msg": "Deleted"}
UPDATED = {"msg": "Updated"}


@dataclass
class Call:
    """One API request, already routed: path parameters decoded, body not yet read."""

    engine: Engine
    project: str
    params: dict[str, str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    read_body: Callable[[], Awaitable[bytes]]
    #: Returns when the client disconnects (call it only once the body has been read).
    disconnected: Callable[[], Awaitable[None]] | None = None
    _body: bytes | None = field(default=None, repr=False)

    async def body(self) -> bytes:
        if self._body is None:
            self._body = await self.read_body()
        return self._body

    async def json(self) -> Any:
        return parse_json(await self.body())

    @property
    def name(self) -> str:
        """The queue named by the path."""
        return self.params["q"]

    def queue(self) -> QueueRecord:
        """The queue named by the path (404 when missing: looked up before the body is read)."""
        return self.engine.queue(self.project, self.name)

    def reservation_timeout(self, body: Mapping[str, Any]) -> float | None:
        """A reserve/touch ``timeout``; 0 = the queue's (the Go client sends 0 when unset)."""
        return self.engine.limits.seconds(
            body,
            "timeout",
            high=MAX_TIMEOUT,
            hosted_min=HOSTED_MIN_TIMEOUT,
            zero_is_default=True,
            positive=True,
        )

    def query_int(self, name: str, *, default: int, low: int, high: int) -> int:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise bad(f"{name} must be an integer") from None
        if not low <= value <= high:
            raise bad(f"{name} must be {low}..{high}")
        return value


Handler = Callable[[Call], Awaitable[Result]]
