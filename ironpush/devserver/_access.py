"""Who may talk to the dev server: its own names only, and no other web site's pages.

Every request — the v3 API, the ``/_dev`` control plane, the event stream, the inspector —
passes :class:`AccessGuard` (an ASGI middleware) before anything else reads it; a refusal is a
403 ``{"msg": ...}`` naming the reason in one line.

**Host.** A browser sends the name it resolved in ``Host``: a page of ``evil.test`` whose DNS
name was re-pointed at 127.0.0.1 (DNS rebinding) reaches the server as ``Host: evil.test``,
and it is refused. Answered: ``localhost`` and ``*.localhost``; any IP address (rebinding needs
a name, and an IP is how a container or LAN client reaches a server bound to ``0.0.0.0``);
this machine's name (``socket.gethostname()``); ``--host`` and ``--public-url``'s host; each
``allowed_hosts`` entry (``--allow-host``: ``name``, ``.domain`` for it and its subdomains,
``*`` for any). A request with no ``Host`` (an HTTP/1.0 tool) is not a browser's.

**Origin.** A request a page of another origin made is refused, whatever its method: its
``Origin`` names another scheme/host/port than the server's own (``Origin: null`` included),
or, without ``Origin``, ``Sec-Fetch-Site`` is ``cross-site`` or ``same-site`` (another port of
127.0.0.1 is same-site, not same-origin). Following a link to a page (a ``GET`` navigation)
stays allowed: it shows the page to the person who clicked, not to the other site. Clients
that are not browsers (the official IronMQ clients, curl, httpx) send neither header and pass.

The token (:func:`._http.authorized`) is checked by each endpoint after this. ::

    guarded = AccessGuard(app, Access.of(DevConfig(allowed_hosts=("ironpush",))))
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .._devserver_settings import DevConfig

#: Names that are this machine wherever it runs (``*.localhost`` too: RFC 6761).
LOCAL_NAMES = frozenset({"localhost"})
# Where a browser says the request comes from; "none" is the user typing the URL.
_OWN_SITES = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int | None]


def hostname(authority: str) -> str | None:
    """``Host``'s name, lowercased, without port or trailing dot (None when unreadable)."""
    if any(c in authority for c in "@/?#\\ "):  # "evil.test@127.0.0.1" names nothing
        return None
    try:
        name = urlsplit(f"//{authority}").hostname
    except ValueError:  # "[::1" and the like
        return None
    return name.rstrip(".") if name else None


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return True


def origin_of(url: str) -> Origin | None:
    """``(scheme, host, port)`` of a URL or an ``Origin`` value, the default port filled in."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname.rstrip("."), port or _DEFAULT_PORTS.get(scheme)


@dataclass(frozen=True, slots=True)
class Access:
    """The names a dev server answers to (see the module docstring for the rule)."""

    names: frozenset[str]
    suffixes: tuple[str, ...] = ()
    any_host: bool = False
    public_origin: Origin | None = None

    @classmethod
    def of(cls, config: DevConfig) -> Access:
        """The rule for ``config`` (:class:`DevServer` adds its ``host`` when it is a name)."""
        names = set(LOCAL_NAMES)
        names.add(socket.gethostname().lower().rstrip("."))
        public = origin_of(config.public_url) if config.public_url else None
        if public is not None:
            names.add(public[1])
        patterns = config.allowed_hosts
        names.update(p for p in patterns if not p.startswith(".") and p != "*")
        return cls(
            names=frozenset(names),
            suffixes=tuple(p for p in patterns if p.startswith(".")),
            any_host="*" in patterns,
            public_origin=public,
        )

    def describe(self) -> str:
        """The names answered, for the ``ironpush dev`` banner."""
        if self.any_host:
            return "any name (--allow-host '*')"
        others = sorted(self.names - LOCAL_NAMES)
        return ", ".join(["localhost", "IP addresses", *others, *self.suffixes])

    def allows_host(self, name: str) -> bool:
        if self.any_host or name in self.names or name.endswith(".localhost") or is_ip(name):
            return True
        return any(name == s[1:] or name.endswith(s) for s in self.suffixes)

    def host_refusal(self, host: str | None) -> str | None:
        """Why a request with this ``Host`` header is refused, or None."""
        if host is None:
            return None
        name = hostname(host)
        if name is not None and self.allows_host(name):
            return None
        shown = name or host[:100]
        return (
            f"unexpected Host {shown!r}: this dev server answers its own names only (a page of "
            f"another site may have re-pointed its name here); if {shown!r} is this server's, "
            f"start it with --allow-host {shown}"
        )

    def origin_refusal(self, scope: Scope, headers: Headers) -> str | None:
        """Why this request, made by a page of another origin, is refused, or None."""
        origin = headers.get("origin")
        if origin is not None:
            given = origin_of(origin)
            if given is not None and given in self._own_origins(scope, headers):
                return None
            return (
                f"cross-origin request refused (Origin {origin[:100]!r}): pages of other "
                "sites may not use the dev server"
            )
        site = headers.get("sec-fetch-site")
        if site is None or site in _OWN_SITES:
            return None
        if scope["method"] in ("GET", "HEAD") and headers.get("sec-fetch-mode") == "navigate":
            return None  # following a link: the page is shown to the person, not to the site
        return (
            f"cross-site request refused (Sec-Fetch-Site: {site[:20]}): pages of other sites "
            "may not use the dev server"
        )

    def _own_origins(self, scope: Scope, headers: Headers) -> list[Origin]:
        own = [self.public_origin] if self.public_origin is not None else []
        host = headers.get("host")
        if host is not None:
            mine = origin_of(f"{scope.get('scheme', 'http')}://{host}")
            if mine is not None:
                own.append(mine)
        return own

    def refusal(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        return self.host_refusal(headers.get("host")) or self.origin_refusal(scope, headers)


class AccessGuard:
    """ASGI middleware: :meth:`Access.refusal` answered 403 before the app sees the request."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = self.access.refusal(scope)
            if refused is not None:
                await JSONResponse({"msg": refused}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)
