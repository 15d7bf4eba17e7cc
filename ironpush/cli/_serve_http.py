"""uvicorn's httptools protocol with the limits a public endpoint needs (``ironpush serve``).

uvicorn bounds the request body (the app reads it) and idle keep-alive connections, but not the
request head, nor a client that connects and sends nothing or sends its head a byte at a time
(slowloris): each such connection holds memory and a file descriptor forever. This protocol
adds, per connection:

- **head size**: more than ``max_head_bytes`` of request line and headers → ``431`` and close
  (httptools buffers a header value until it ends, so without this one 32 MB header costs
  32 MB);
- **header count**: more than ``max_headers`` header fields → ``431`` and close;
- **request time**: a request (head and body) must arrive within ``request_timeout`` seconds of
  the connection opening or of its first byte: otherwise ``408`` and close (silent connections
  are just closed).

``ironpush serve`` selects it with ``http="ironpush.cli._serve_http:BoundedHttpToolsProtocol"``
and passes the limits in the ``IRONPUSH_SERVE_LIMITS`` environment variable (uvicorn's config
has no room for them, and the spawned workers inherit the environment).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ._serve_limits import LIMITS_ENV, HttpLimits

__all__ = ["LIMITS_ENV", "BoundedHttpToolsProtocol", "HttpLimits"]

logger = logging.getLogger("uvicorn.error")


@functools.cache
def _limits() -> HttpLimits:
    return HttpLimits.from_env()


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head that broke a limit."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`uvicorn.protocols.http.httptools_impl.HttpToolsProtocol` with head limits and
    a request timeout (see the module docs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = _limits()
        self._reading_head = True  # between requests too: the next bytes start a head
        self._head_bytes = 0
        self._header_count = 0
        self._head_rejected = False
        self._got_bytes = False
        self._request_timer: asyncio.TimerHandle | None = None

    # --- the request timer ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._request_timer is None:
            self._request_timer = self.loop.call_later(
                self.limits.request_timeout, self._request_timed_out
            )

    def _disarm(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _request_timed_out(self) -> None:
        self._request_timer = None
        if self.transport.is_closing():
            return
        idle = self.cycle is None or self.cycle.response_complete  # no response of ours pending
        if self._reading_head and self._got_bytes and idle:
            logger.warning(
                "request head not received in %.0f s: closed", self.limits.request_timeout
            )
            self._refuse(408, "request timeout")
        else:  # nothing sent at all, or a body that stalls while the app waits for it
            self.transport.close()

    # --- head limits ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._head_rejected:
            return
        self._got_bytes = True
        counting = self._reading_head
        if counting:
            self._arm()  # the first byte of a new request on a kept-alive connection
        super().data_received(data)
        if counting and self._reading_head and not self.transport.is_closing():
            # The whole chunk belonged to an unfinished head (one that ends inside a chunk
            # resets the count in on_headers_complete).
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_head_bytes:
                self._reject_head(f"request head over {self.limits.max_head_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._header_count = 0
        self._arm()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._head_rejected = True
            raise _HeadTooLarge  # stops the parser; send_400_response answers 431 instead
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._reading_head = True
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._head_rejected:
            self._reject_head(f"more than {self.limits.max_headers} header fields")
            return
        super().send_400_response(msg)

    def _reject_head(self, why: str) -> None:
        self._head_rejected = True
        logger.warning("request refused with 431: %s", why)
        self._refuse(431, "request header fields too large")

    def _refuse(self, status: int, text: str) -> None:
        body = text.encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: text/plain; charset=utf-8\r\n")
        head.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        self.transport.close()
        self._disarm()
