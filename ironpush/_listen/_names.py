"""What ``ironpush listen`` creates is recognisably temporary and owned: the names.

A listener (one ``ironpush listen`` process) has an 8-hex-digit id. For each push queue it
relays, it creates a pull queue and adds one subscriber to the push queue::

    relay queue   orders--listen-laptop-1a2b3c4d          (a 2nd route of the queue: ...-2)
    subscriber    listen-laptop-1a2b3c4d  →  ironmq:///orders--listen-laptop-1a2b3c4d

The relay queue's name says which queue it copies, which machine and which listener made it;
the subscriber's URL points at the relay queue, which is how ``--cleanup`` and ``subscribe
--app``'s stale scan recognise a listener's subscriber (:func:`listener_of`)::

    name = RelayName("orders", "laptop", "1a2b3c4d")
    RelayName.parse(name.relay_queue) == name
"""

from __future__ import annotations

import re
import secrets
import socket
from dataclasses import dataclass
from urllib.parse import quote, unquote

#: What separates the copied queue's name from the listener's part in a relay queue's name.
MARK = "--listen-"
SUBSCRIBER_PREFIX = "listen-"
_SCHEME = "ironmq:///"
_HOST_MAX = 24
_PARSE = re.compile(
    r"^(?P<queue>.+)" + re.escape(MARK) + r"(?P<host>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)"
    r"-(?P<id>[0-9a-f]{8})(?:-(?P<index>[2-9]|[1-9][0-9]+))?$"
)


def host_slug(hostname: str | None = None) -> str:
    """This machine's name as it goes into relay names: lower-case letters, digits and ``-``."""
    raw = (hostname if hostname is not None else socket.gethostname()).split(".")[0].lower()
    slug = re.sub(r"[^a-z0-9]+", "-", raw).strip("-")[:_HOST_MAX].strip("-")
    return slug or "host"


def new_listener_id() -> str:
    """A fresh listener id: 8 random hex digits."""
    return secrets.token_hex(4)


@dataclass(frozen=True, slots=True)
class RelayName:
    """The names of one relay: ``queue`` (the push queue copied), ``host`` and ``listener``
    (whose it is) and ``index`` (the k-th target of that queue for that listener)."""

    queue: str
    host: str
    listener: str
    index: int = 1

    @property
    def _suffix(self) -> str:
        return f"{self.host}-{self.listener}" + (f"-{self.index}" if self.index > 1 else "")

    @property
    def relay_queue(self) -> str:
        """The pull queue IronMQ copies the push queue's messages into."""
        return f"{self.queue}{MARK}{self._suffix}"

    @property
    def subscriber_name(self) -> str:
        """The name of the extra subscriber on the push queue."""
        return f"{SUBSCRIBER_PREFIX}{self._suffix}"

    @property
    def subscriber_url(self) -> str:
        """``ironmq:///<relay queue>``: IronMQ posts each message into the relay queue."""
        return _SCHEME + quote(self.relay_queue, safe="")

    @classmethod
    def parse(cls, relay_queue: str) -> RelayName | None:
        """The names a relay queue's name encodes, or None when it is not a relay queue."""
        found = _PARSE.match(relay_queue)
        if found is None:
            return None
        index = int(found.group("index") or 1)
        return cls(found.group("queue"), found.group("host"), found.group("id"), index)


def listener_of(url: str) -> RelayName | None:
    """The relay a subscriber URL delivers to, when it is a listener's (``ironmq:///…--listen-…``)."""
    if not url.startswith(_SCHEME):
        return None
    return RelayName.parse(unquote(url[len(_SCHEME) :]))
