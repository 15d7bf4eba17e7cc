"""Helpers of the dev-server API tests (the fixtures ``dev``, ``mq``, ``raw``: conftest.py)."""

from __future__ import annotations

from urllib.parse import quote

HOOK = "http://127.0.0.1:9/never-called"  # subscribers that are never pushed to in these tests


def qpath(name: str, *rest: str) -> str:
    """A queue's path under ``/3/projects/{p}``, each segment escaped like the client does."""
    return "/queues/" + "/".join(quote(s, safe="") for s in (name, *rest))
