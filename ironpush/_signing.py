"""Push secrets and ack tokens: the itsdangerous side of ironpush.

IronMQ signs nothing, so ironpush proves that a push came from *your* subscriber registration
with a **push secret**: a token signed with your secret key and bound to one
``(queue, subscriber name)`` pair. ``ironpush subscribe`` puts it in the subscriber's custom
headers (``X-Ironpush-Secret``) or, as a fallback, in the subscriber URL's query string
(``?ironpush_secret=``); the :class:`~ironpush.receiver.PushRouter` checks it on every push, in
constant time, before reading the body.

An **ack token** lets another process acknowledge a push that was answered with 202: it carries
the queue and the delivery (message id, reservation id, subscriber name), is timestamped and
expires, and is salted for this one purpose, so a push secret can never be replayed as an ack
token or the other way round::

    from ironpush._signing import dump_ack_token, load_ack_token

    token = dump_ack_token("orders", delivery, ["old-key", "new-key"])
    queue, delivery = load_ack_token(token, ["old-key", "new-key"], max_age=3600)

Keys rotate like itsdangerous keys: give a list, **oldest first, newest last**; the newest signs,
every listed key is accepted. Keys come from ``secret_keys=`` or the ``IRONPUSH_SECRET_KEYS``
environment variable (comma-separated), resolved by :mod:`ironpush._config`.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable, Sequence

from itsdangerous import BadData, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from ._config.keys import KEYGEN_HINT
from ._errors import ConfigError, SignatureError
from ._protocol import Delivery, delivery_from_dict, delivery_to_dict

DEFAULT_SECRET_HEADER = "X-Ironpush-Secret"
DEFAULT_SECRET_PARAM = "ironpush_secret"
#: Ack tokens older than this are refused unless ``max_age`` says otherwise (one day: a v3 202
#: reservation lasts ``retries_delay`` seconds, at most 86400).
DEFAULT_ACK_TOKEN_MAX_AGE = 86_400.0

# Distinct salts make a push secret useless as an ack token and vice versa (itsdangerous derives
# a different signing key per salt). Bump the version suffix if a payload format ever changes.
_PUSH_SECRET_SALT = "ironpush.push-secret.v1"
_ACK_TOKEN_SALT = "ironpush.ack-token.v1"

Keys = str | bytes | Iterable[str | bytes]


def normalize_keys(keys: Keys | None) -> tuple[str | bytes, ...]:
    """Return ``keys`` as a tuple, oldest first; refuse none or empty ones with ConfigError.

    A single string is one key (not a list of characters)::

        normalize_keys("k1")            # ('k1',)
        normalize_keys(["old", "new"])  # ('old', 'new')
    """
    if keys is None:
        found: tuple[str | bytes, ...] = ()
    elif isinstance(keys, str | bytes):
        found = (keys,)
    else:
        found = tuple(keys)
    if not found:
        raise ConfigError(
            "no secret keys configured: pass secret_keys=[...] or set IRONPUSH_SECRET_KEYS "
            f"({KEYGEN_HINT})"
        )
    for index, key in enumerate(found):
        if not isinstance(key, str | bytes) or not key:
            raise ConfigError(f"secret key #{index} is empty or not a string")
    return found


def generate_key() -> str:
    """A new random secret key (32 bytes, URL-safe text), e.g. for ``IRONPUSH_SECRET_KEYS``."""
    return secrets.token_urlsafe(32)


# --------------------------------------------------------------------------- push secrets


def _secret_for(queue: str, subscriber: str, key: str | bytes) -> str:
    # No timestamp: the secret must be deterministic so the router can precompute it and
    # IronMQ can send the same header value forever (until the key is rotated out).
    return URLSafeSerializer(key, salt=_PUSH_SECRET_SALT).dumps([queue, subscriber])


def push_secret(queue: str, subscriber: str, keys: Keys) -> str:
    """The push secret to register for ``(queue, subscriber)``, signed with the newest key.

    ::

        headers = {"X-Ironpush-Secret": push_secret("orders", "billing", ["k-old", "k-new"])}
    """
    return _secret_for(queue, subscriber, normalize_keys(keys)[-1])


def push_secrets(queue: str, subscriber: str, keys: Keys) -> tuple[bytes, ...]:
    """Every accepted push secret for ``(queue, subscriber)``, one per key, as bytes.

    The router precomputes these per route so verifying a push is a few constant-time
    comparisons and no HMAC work.
    """
    return tuple(_secret_for(queue, subscriber, k).encode() for k in normalize_keys(keys))


def verify_push_secret(presented: bytes | None, expected: Sequence[bytes]) -> bool:
    """Whether ``presented`` equals one of ``expected``, in constant time.

    Every candidate is compared (no early exit), so the time taken does not tell an attacker
    which key, or how much of a secret, matched.
    """
    if not presented:
        return False
    ok = False
    for candidate in expected:
        ok |= hmac.compare_digest(presented, candidate)
    return ok


# --------------------------------------------------------------------------- ack tokens


def _ack_serializer(keys: Keys) -> URLSafeTimedSerializer:
    # itsdangerous wants all keys of one type; text keys are encoded as it would encode them.
    found = [k.encode() if isinstance(k, str) else k for k in normalize_keys(keys)]
    return URLSafeTimedSerializer(found, salt=_ACK_TOKEN_SALT)


def dump_ack_token(queue: str, delivery: Delivery, keys: Keys) -> str:
    """Sign ``(queue, delivery)`` into an ack token for an external worker.

    The token is timestamped (see :func:`load_ack_token`'s ``max_age``) and signed with the
    newest key. It is a bearer credential for acknowledging this one push: keep it out of logs.
    """
    if not queue:
        raise ValueError("an ack token needs a queue name")
    return _ack_serializer(keys).dumps({"q": queue, "d": delivery_to_dict(delivery)})


def load_ack_token(
    token: str | bytes, keys: Keys, *, max_age: float | None = None
) -> tuple[str, Delivery]:
    """Verify an ack token and return ``(queue, delivery)``.

    Raises :class:`~ironpush._errors.SignatureError` when the token was tampered with, signed
    with a key not in ``keys``, made for another purpose (e.g. a push secret), malformed, or
    older than ``max_age`` seconds (default :data:`DEFAULT_ACK_TOKEN_MAX_AGE`); and
    :class:`~ironpush._errors.ConfigError` when ``keys`` is empty. Acknowledging with a token
    is the verification's first step, taken by the one ack-token path
    (:class:`ironpush.receiver._acks.TokenAcks`)::

        queue, delivery = load_ack_token(token, settings.secret_keys)
    """
    age = DEFAULT_ACK_TOKEN_MAX_AGE if max_age is None else max_age
    if age < 0:
        raise ValueError("max_age must be >= 0")
    try:
        # itsdangerous compares whole seconds; round up so max_age=0.5 still means "fresh".
        data = _ack_serializer(keys).loads(token, max_age=int(-(-age // 1)))
    except SignatureExpired:
        raise SignatureError("ack token expired") from None
    except (BadData, UnicodeError):
        # UnicodeError: a str token with lone surrogates (e.g. undecodable CLI argument bytes).
        # from None: the itsdangerous exception carries the payload, which must not be logged.
        raise SignatureError(
            "invalid ack token (tampered, wrong key or not an ack token)"
        ) from None
    try:
        queue = data["q"]
        delivery = delivery_from_dict(data["d"])
        if not isinstance(queue, str) or not queue:
            raise ValueError("no queue")
    except (KeyError, TypeError, ValueError):
        raise SignatureError("invalid ack token (unexpected payload)") from None
    return queue, delivery
