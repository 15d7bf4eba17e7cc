"""Numeric limits: hosted IronMQ's, and the dev server's relaxed ones (``--strict`` = hosted).

By default the dev server takes any duration from 0 up to the hosted maximum, fractions of a
second included, so tests of retries and reservations run in milliseconds. With
``strict=True`` (``ironpush dev --strict``) it refuses, with a 400 naming the hosted rule,
everything hosted IronMQ refuses [v3 API, v3 push page, v3 environment page]:

====================== ===================== ==============================================
value                  default mode          strict (hosted)
====================== ===================== ==============================================
reservation timeout    > 0                   whole seconds, >= 30 (queue ``message_timeout``,
                                             reserve and touch ``timeout``)
``retries_delay``      >= 0                  whole seconds, >= 3
``delay``, ``wait``,   >= 0, fractions       whole seconds
``message_expiration``
message body           <= 256 KB             <= 64 KB (hosted's smallest plan)
====================== ===================== ==============================================

Both modes: maxima (timeout 86,400 s, delay 604,800 s, expiration 2,592,000 s, wait 30 s),
at most 100 messages per post and per reserve, and ``0`` for a timeout or expiration meaning
"the default" (the Go client always sends them, as 0 when unset).

::

    limits = Limits(strict=True)
    limits.seconds({"timeout": 10}, "timeout", high=86_400, hosted_min=30)   # 400
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import APIError

MAX_TIMEOUT = 86_400
MAX_EXPIRATION = 2_592_000
MAX_WAIT = 30
HOSTED_MIN_TIMEOUT = 30
HOSTED_MIN_RETRIES_DELAY = 3
HOSTED_MESSAGE_SIZE = 64 * 1024
DEV_MESSAGE_SIZE = 256 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What the API accepts: relaxed by default, hosted IronMQ's rules with ``strict``."""

    strict: bool = False
    max_message_size: int = DEV_MESSAGE_SIZE

    @classmethod
    def of(cls, *, strict: bool, max_message_size: int | None) -> Limits:
        default = HOSTED_MESSAGE_SIZE if strict else DEV_MESSAGE_SIZE
        return cls(strict, max_message_size or default)

    def seconds(
        self,
        data: Mapping[str, Any],
        key: str,
        *,
        high: float,
        hosted_min: float = 0,
        zero_is_default: bool = False,
        positive: bool = False,
    ) -> float | None:
        """An optional duration field; ``None`` when absent (or 0 with ``zero_is_default``)."""
        value = data.get(key)
        if value is None:
            return None
        # isfinite only on floats: math.isfinite(10**400) raises OverflowError.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise APIError(400, f"{key} must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise APIError(400, f"{key} must be a number")
        if value == 0 and zero_is_default:
            return None
        if value < 0 or value > high or (positive and value == 0):
            lower = "> 0" if positive else ">= 0"
            raise APIError(400, f"{key} must be {lower} and <= {high}, got {value}")
        if self.strict:
            if value != int(value):
                raise APIError(
                    400, f"{key} must be a whole number of seconds (hosted IronMQ), got {value}"
                )
            if value < hosted_min:
                raise APIError(
                    400, f"{key} must be >= {hosted_min} (hosted IronMQ's minimum), got {value}"
                )
        return float(value)
