"""The dev server's ``/_dev`` control plane, as the CLI reaches it (``tail``, ``replay``).

The address and token are the client's (``--cloud``, ``IRONMQ_EMULATOR_HOST``, iron.json…), so
a command pointed at a dev server needs nothing more. Against hosted IronMQ there is no
``/_dev``: :func:`is_dev_server` says so, and the commands fall back to what the v3 API allows.
"""

from __future__ import annotations

from typing import Any

import httpx

from .._errors import TransportError
from .._protocol import Reply, Request, error_for
from ..client._sync_client import IronMQ


class DevControl:
    """``/_dev/*`` requests with the client's address and token::

    control = DevControl(client)
    if control.is_dev_server():
        control.post("/_dev/replay", {...})
    """

    def __init__(self, client: IronMQ, *, timeout: float = 15.0) -> None:
        settings = client.settings
        self.base = f"{settings.origin}{settings.path_prefix}"
        self.project_id = settings.project_id
        self.headers = {"Authorization": f"OAuth {settings.token}"} if settings.token else {}
        self.timeout = timeout

    def url(self, path: str) -> str:
        return self.base + path

    def is_dev_server(self) -> bool:
        """Whether the server answers ``GET /_dev/health`` like the ironpush dev server."""
        try:
            response = httpx.get(self.url("/_dev/health"), headers=self.headers, timeout=5.0)
        except httpx.HTTPError:
            return False
        try:
            return response.status_code == 200 and response.json() == {"ok": True}
        except ValueError:
            return False

    def post(self, path: str, doc: dict[str, Any]) -> Any:
        """POST JSON; an error answer raises the :class:`~ironpush._errors.APIError` for it."""
        try:
            response = httpx.post(
                self.url(path), json=doc, headers=self.headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise TransportError(f"POST {path}: {type(exc).__name__}: {exc}") from exc
        try:
            data = response.json()
        except ValueError:
            data = response.text
        if response.status_code >= 400:  # typed like the client's errors (404 → NotFound, …)
            raise error_for(Request("POST", path), Reply(response.status_code, data))
        return data
