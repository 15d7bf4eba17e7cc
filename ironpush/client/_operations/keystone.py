"""Keystone authentication: exchanging Keystone credentials for an IronMQ token."""

from __future__ import annotations

from datetime import datetime

from ..._errors import ValidationError
from ..._protocol import Request
from .base import Op, call, mapping_at


def keystone_token(
    server: str, *, tenant: str, username: str, password: str
) -> Op[tuple[str, datetime | None]]:
    """Exchange Keystone credentials for a token (iron_core's scheme): ``(token, expires_at)``."""
    body = {
        "auth": {
            "tenantName": tenant,
            "passwordCredentials": {"username": username, "password": password},
        }
    }
    data = yield from call(Request("POST", server.rstrip("/") + "/tokens", json=body))
    token = mapping_at(mapping_at(data, "access"), "token")
    if not token.get("id"):
        raise ValidationError("the Keystone server answered without access.token.id")
    expires: datetime | None = None
    if token.get("expires"):
        try:
            expires = datetime.fromisoformat(str(token["expires"]).replace("Z", "+00:00"))
        except ValueError:
            expires = None
    return str(token["id"]), expires
