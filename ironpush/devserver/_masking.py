"""What the dev server shows of a subscriber's secrets: masked everywhere but the owner's read.

A subscriber's **secrets** are the values of its headers whose name marks a secret
(``X-Ironpush-Secret``, ``Authorization``, any name with ``token``, ``secret``, ``password``,
``signature``, ``api-key``, ``cookie``…: :func:`ironpush._redact.is_sensitive`) and the
credentials in its URL (``user:password@``, ``ironmq://PROJECT:TOKEN@…``, a query parameter
such as ``?token=``). They are shown in clear in **one** answer: the queue's own document,
``GET /3/projects/{p}/queues/{name}`` (and the echo of the ``PUT``/``PATCH`` that set them),
which the project owner reads with its token — hosted IronMQ shows them there too, and the
official clients and ``ironpush subscribe`` read them back from it. Everywhere else they are
masked (``Et1E***``): push statuses, error-queue reports, ``/_dev/deliveries``, the event
stream (``ironpush tail``), the inspector, log lines, and error answers quoting a URL. A
subscriber's answer that repeats one of its secrets (``403 bad secret s3cr3t…``) is masked
too before it becomes a push status' ``msg``, an attempt's ``answer`` or an event. ::

    subscriber_secrets("https://h/p?token=abc123", {"X-Push-Secret": "s3cr3t"})
    # ["s3cr3t", "abc123"]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from .._redact import is_sensitive, redact_url

# "scheme://anything@": the credentials of a URL urlsplit cannot read (a bad port, "[").
_USERINFO = re.compile(r"//[^/?#]*@")


def shown_url(url: str) -> str:
    """``url`` as every answer but the owner's read shows it: credentials masked."""
    return _USERINFO.sub("//***@", redact_url(url), count=1)


def subscriber_secrets(url: str, headers: Mapping[str, str]) -> list[str]:
    """The secret values a subscriber holds (see the module docstring)."""
    found = [value for name, value in headers.items() if is_sensitive(name)]
    try:
        parts = urlsplit(url)
        found.append(parts.password or "")
        found += [v for k, v in parse_qsl(parts.query) if is_sensitive(k)]
    except ValueError:
        pass
    return [value for value in found if value]
