"""Masking of secrets in everything ironpush prints: reprs, log lines, errors and CLI output.

A value is treated as secret when its header or query-parameter name contains one of
:data:`SENSITIVE_WORDS` (``authorization``, ``token``, ``secret``, ...). Masking keeps a short
prefix only when the value is long, so two different secrets stay distinguishable in a log
without being recoverable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SENSITIVE_WORDS: tuple[str, ...] = (
    "authorization",
    "token",
    "secret",
    "password",
    "passwd",
    "oauth",
    "signature",
    "api-key",
    "api_key",
    "apikey",
    "cookie",
)

MASK = "***"


def is_sensitive(name: str) -> bool:
    """Whether a header, query parameter or setting called ``name`` holds a secret."""
    lowered = name.lower()
    return any(word in lowered for word in SENSITIVE_WORDS)


def mask(value: str | None) -> str:
    """Mask a secret value: ``"Et1En7abcdef..."`` → ``"Et1E***"``; short values become ``"***"``."""
    if not value:
        return MASK if value else ""
    if len(value) >= 16:
        return value[:4] + MASK
    return MASK


def hidden(value: object) -> str:
    """The mask alone, whatever ``value`` is (a password: not even a prefix shows)."""
    return MASK


def masked_repr(obj: Any, **masks: Callable[[Any], object]) -> str:
    """The repr of dataclass ``obj``, each field named in ``masks`` shown through its function
    (a field that is None stays None; fields declared with ``repr=False`` are left out)::

        @dataclass(frozen=True, repr=False)
        class Login:
            user: str
            password: str

            def __repr__(self) -> str:
                return masked_repr(self, password=hidden)

        Login("u", "pw")   # Login(user='u', password='***')

    A name in ``masks`` that is no field raises :class:`TypeError`: a renamed secret field
    must not show up unmasked.
    """
    declared = fields(obj)
    unknown = masks.keys() - {f.name for f in declared}
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r} to mask")
    shown = []
    for name in (f.name for f in declared if f.repr):
        value = getattr(obj, name)
        if value is not None and name in masks:
            value = masks[name](value)
        shown.append(f"{name}={value!r}")
    return f"{type(obj).__name__}({', '.join(shown)})"


def redact_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """A copy of ``headers`` with every sensitive value masked."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {k: (mask(v) if is_sensitive(k) else v) for k, v in items}


def redact_url(url: str) -> str:
    """``url`` with sensitive query values and any ``user:password@`` part masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_sensitive(k) for k, _ in pairs):
            query = urlencode([(k, mask(v) if is_sensitive(k) else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing to mask: as given (urlunsplit would turn ironmq:///q into ironmq:/q)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class _Subscriber(Protocol):
    """What :func:`redact_subscriber` reads (a :class:`~ironpush.Subscriber`)."""

    @property
    def name(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...


def redact_subscriber(sub: _Subscriber) -> dict[str, Any]:
    """A subscriber as JSON (``{"name", "url", "headers"}``), its secret header values and
    query parameters masked: what ``ironpush subscribe`` and ``subscribers`` print."""
    return {"name": sub.name, "url": redact_url(sub.url), "headers": redact_headers(sub.headers)}


def redact_text(text: str, secrets: Iterable[str | None]) -> str:
    """Replace each known secret occurring in ``text`` by its mask (for free-form messages).

    Also catches a secret quoted in escaped form, as an HTTP library quotes a header value it
    refuses (``b'OAuth tok\\x00en'``).
    """
    for secret in secrets:
        if not secret or len(secret) < 4:
            continue
        escaped = (repr(secret)[1:-1], repr(secret.encode("utf-8", "replace"))[2:-1])
        for form in dict.fromkeys((secret, *escaped)):
            # str.replace, not re.sub: the mask keeps a prefix, and a backslash in it would be
            # read as a regex template escape ("bad escape \x").
            text = text.replace(form, mask(secret))
    return text
