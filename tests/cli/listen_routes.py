"""The routes of :mod:`listen_service`: the queue of each path, and the subscriber name
(importable without a signing key, unlike the service itself)."""

from __future__ import annotations

QUEUES = {
    "/quick": "listen-quick",
    "/defer": "listen-defer",
    "/worker": "listen-worker",
    "/failing": "listen-failing",
    "/gated": "listen-gated",
}
SUBSCRIBER = "service"
