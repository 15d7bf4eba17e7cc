"""JSON through orjson when the ``speedups`` extra installed it, with the standard library's
results: :func:`loads` (a push's body, a client call's answer) and :func:`dumps` (a client
call's body, a PostgreSQL store batch's calls).

orjson is several times faster on the small documents of every push and call, and differs
from ``json`` in a few places; where it does, the standard library decides, so that a body is
valid, and a request's bytes are, exactly as without the extra. One difference remains: on
reading, integers beyond 64 bits come back as floats::

    loads(b'{"a": 1}')   # {'a': 1}
    dumps({"a": "é"})    # b'{"a":"\\u00e9"}', as json.dumps(..., separators=(",", ":"))
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_fast_loads: Callable[[bytes | str], Any] | None
_fast_dumps: Callable[..., bytes] | None
#: orjson's options that leave to the standard library what orjson alone would encode.
_AS_STDLIB = 0
try:  # ironpush[speedups]
    import orjson
    from orjson import dumps as _fast_dumps
    from orjson import loads as _fast_loads

    _AS_STDLIB = (
        orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_SUBCLASS
    )
except ImportError:  # pragma: no cover - the standard library's json is used
    _fast_loads = _fast_dumps = None
# json.dumps(..., separators=...) builds an encoder per call: one, made once.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def loads(content: bytes | str) -> Any:
    """``json.loads(content)``; where orjson refuses what the standard library accepts (NaN,
    huge integers), the standard library decides."""
    if _fast_loads is not None:
        try:
            return _fast_loads(content)
        except ValueError:
            pass
    return json.loads(content)


def dumps(data: Any) -> bytes:
    """Compact JSON (``json.dumps`` with ``separators=(",", ":")``, as bytes) in about a ninth
    of the standard library encoder's time on an ack's body; what orjson refuses (non-string
    keys; dataclasses, datetimes and subclasses of built-in types, passed through so that
    they meet the standard library's rules) or writes unescaped (non-ASCII text, which
    ``json.dumps`` escapes) the standard library encodes."""
    if _fast_dumps is not None:
        try:
            out = _fast_dumps(data, option=_AS_STDLIB)
        except TypeError:
            pass
        else:
            if out.isascii():
                return out
    return _COMPACT.encode(data).encode()
