"""The per-connection limits of ``ironpush serve`` and how they reach its workers.

Kept apart from :mod:`.serve_http` (which subclasses uvicorn's protocol) so that the CLI can
read and pass them without importing uvicorn until ``serve`` runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

__all__ = ["LIMITS_ENV", "HttpLimits"]

LIMITS_ENV = "IRONPUSH_SERVE_LIMITS"


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Per-connection limits of :class:`BoundedHttpToolsProtocol`."""

    max_head_bytes: int = 32 * 1024
    max_headers: int = 100
    request_timeout: float = 15.0

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> HttpLimits:
        text = os.environ.get(LIMITS_ENV)
        return cls(**json.loads(text)) if text else cls()
