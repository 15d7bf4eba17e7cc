"""The ironpush exception tree.

Every error ironpush raises derives from :class:`IronPushError`, so one ``except`` clause catches
them all::

    try:
        mq.queue("jobs").post("hello")
    except ironpush._errors.NotFound:
        ...
    except ironpush.IronPushError as exc:
        log.warning("IronMQ call failed: %s", exc)

httpx exceptions are translated at a single boundary (the client's transport) with
``raise ... from exc``; no message here ever contains a token or a push secret.
"""

from __future__ import annotations

from typing import Any


class IronPushError(Exception):
    """Root of every error raised by ironpush."""


class ConfigError(IronPushError):
    """The configuration is incomplete or invalid (e.g. no project id or token was found)."""


class ValidationError(IronPushError, ValueError):
    """An argument was refused before anything was sent (e.g. a forbidden push header)."""


class InvalidPayload(ValidationError):
    """A push body that does not decode into its model (a route's ``model=``, ``msg.parse``).

    The message says where and why (``total: Input should be a valid integer``), never the
    body itself. The router answers it by the route's ``on_invalid`` (``"drop"`` by default)::

        try:
            order = msg.parse(Order)
        except InvalidPayload as exc:
            return Drop(str(exc))
    """


class SignatureError(IronPushError):
    """A push secret or ack token is missing, tampered with, expired, or for another purpose."""


class StoreUnavailable(IronPushError):
    """A receiver store (SQLite, Redis, PostgreSQL) failed or timed out.

    The router answers 503 while it lasts (IronMQ retries after ``retries_delay``) and
    ``/_health`` reports the store as down; nothing is acknowledged that was not recorded.
    ``store`` names the engine (``"redis"``, ...); the message never carries credentials.
    """

    def __init__(self, message: str, *, store: str = "") -> None:
        super().__init__(message)
        self.store = store


class TransportError(IronPushError):
    """The server could not be reached or did not answer in time (connect/read timeout, reset).

    ``unsent`` is true when the request certainly never reached the server (the connection
    could not be made).
    """

    def __init__(
        self, message: str, *, method: str = "", url: str = "", unsent: bool = False
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.unsent = unsent


class APIError(IronPushError):
    """IronMQ answered with an error status.

    ``status_code`` is the HTTP status, ``msg`` the server's ``{"msg": ...}`` text, ``method`` and
    ``path`` the call that failed. ``response`` is the raw :class:`httpx.Response` when the call
    went through the client (``None`` when the error was built from parsed data).
    """

    def __init__(
        self,
        status_code: int,
        msg: str,
        *,
        method: str = "",
        path: str = "",
        response: Any = None,
    ) -> None:
        self.status_code = status_code
        self.msg = msg
        self.method = method
        self.path = path
        self.response = response
        where = f" ({method} {path})" if method else ""
        super().__init__(f"{status_code} {msg}{where}")

    def __reduce__(self) -> tuple[Any, ...]:  # keep pickling working for multiprocessing users
        return (
            _rebuild_api_error,
            (type(self), self.status_code, self.msg, self.method, self.path),
        )


def _rebuild_api_error(
    cls: type[APIError], status_code: int, msg: str, method: str, path: str
) -> APIError:
    return cls(status_code, msg, method=method, path=path)


class BadRequest(APIError):
    """400: the server refused the request body (malformed JSON, wrong types, bad push headers)."""


class Unauthorized(APIError):
    """401: the token is wrong or missing (a v2 token used against v3 also gives 401)."""


class NotFound(APIError):
    """404: the queue or message does not exist."""


class ReservationExpired(APIError):
    """403 "Reservation timed out": the reservation id is stale; the message will be redelivered."""


class ServiceUnavailable(APIError):
    """503/504: IronMQ is overloaded; idempotent calls were already retried with backoff."""
