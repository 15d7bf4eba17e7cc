"""What ``manage.py ironpush_subscribe`` runs: the router from the option or the settings,
registered by :func:`~ironpush.receiver._registration.subscribe_app`; every failure is one
``CommandError`` line (Django prints it without a traceback)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import CommandError

from .._errors import IronPushError
from ..receiver._registration import SubscribeReport, load_router, subscribe_app

ROUTER_SETTING = "IRONPUSH_ROUTER"


def subscribe(
    ref: str | None, base_url: str, *, prune: bool, dry_run: bool, scan_all: bool
) -> SubscribeReport:
    """Register the routes of the router ``ref`` (default: ``settings.IRONPUSH_ROUTER``)."""
    ref = ref or getattr(settings, ROUTER_SETTING, None)
    if not ref:
        raise CommandError(
            f"name the router: --router shop.pushes:router, or {ROUTER_SETTING} in settings"
        )
    try:
        router = load_router(ref)
        return subscribe_app(router, base_url, prune=prune, dry_run=dry_run, scan_all=scan_all)
    except IronPushError as exc:
        raise CommandError(str(exc)) from exc
