"""Who may use the inspector: this machine only, and no other web site's pages.

- **Loopback clients only** (127.0.0.0/8, ::1), whatever address the dev server is bound to.
- **Host header** must be one of the dev server's names (:mod:`.._access`, which checks it
  for every endpoint first): a page of another site whose DNS name was re-pointed at 127.0.0.1
  (DNS rebinding) is refused.
- **Actions are POSTs** carrying the per-process token embedded in the page (a hidden field),
  compared in constant time; their ``Origin`` (or ``Sec-Fetch-Site``) must be this server
  (:meth:`.._access.Access.origin_refusal`, again).
- **A server started with a token** wants it once: ``/_dev/ui?token=…`` sets an HttpOnly,
  ``SameSite=Strict`` cookie holding a value derived from the token (never the token itself).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from starlette.requests import Request

from ..._devserver_settings import DevConfig
from .._access import Access

COOKIE = "ironpush_inspector"


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return host == "localhost"


class Guard:
    """The inspector's checks for one dev server (the page token lives as long as the process)."""

    def __init__(self, config: DevConfig) -> None:
        self.config = config
        self.page_token = secrets.token_urlsafe(32)
        self._cookie_key = secrets.token_bytes(32)
        self.access = Access.of(config)

    # ------------------------------------------------------------------ reading pages

    def refusal(self, request: Request) -> tuple[int, str] | None:
        """Why this request may not see the inspector (status, reason), or None."""
        client = request.client.host if request.client else None
        if not _is_loopback(client):
            return 403, "the inspector answers clients on this machine (loopback) only"
        bad_host = self.access.host_refusal(request.headers.get("host"))
        if bad_host is not None:
            return 403, bad_host
        if self.config.token is not None and not self.signed_in(request):
            return 401, (
                "this dev server requires its token: open /_dev/ui?token=<the token> once "
                "(a cookie keeps you signed in)"
            )
        return None

    def cookie_value(self) -> str:
        token = (self.config.token or "").encode()
        return hmac.new(self._cookie_key, token, hashlib.sha256).hexdigest()

    def signed_in(self, request: Request) -> bool:
        given = request.cookies.get(COOKIE, "")
        return bool(given) and hmac.compare_digest(given, self.cookie_value())

    def token_in_query(self, request: Request) -> bool:
        """``?token=`` is the server's token (the sign-in link)."""
        given = request.query_params.get("token", "")
        token = self.config.token
        return bool(given and token) and hmac.compare_digest(given.encode(), str(token).encode())

    # ------------------------------------------------------------------ actions

    def action_refusal(self, request: Request, form: dict[str, str]) -> tuple[int, str] | None:
        """:meth:`refusal`, plus the cross-site checks an action (a POST) must pass."""
        refused = self.refusal(request)
        if refused is not None:
            return refused
        cross_site = self.access.origin_refusal(request.scope, request.headers)
        if cross_site is not None:
            return 403, cross_site
        given = form.get("csrf", "")
        if not (given and hmac.compare_digest(given.encode(), self.page_token.encode())):
            return 403, "missing or wrong page token: reload the inspector page and try again"
        return None
