"""``python manage.py ironpush_subscribe --base-url URL``: register the router's routes.

What ``ironpush subscribe --app`` does, with Django's settings loaded: the router is
``--router MODULE:ROUTER`` or ``settings.IRONPUSH_ROUTER``; IronMQ's address and credentials
come from the usual configuration (``IRON_*``, ``iron.json``, ``IRONMQ_EMULATOR_HOST``).
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from ..._subscribe import subscribe


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    help = (
        "Register every route of the PushRouter named by --router or settings.IRONPUSH_ROUTER "
        "with IronMQ, for the router mounted at --base-url (creates push queues, adds or "
        "updates subscribers; lists stale ones)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--base-url", required=True, help="The public URL the router is mounted at."
        )
        parser.add_argument("--router", help="MODULE:ROUTER (default: settings.IRONPUSH_ROUTER).")
        parser.add_argument(
            "--prune", action="store_true", help="Remove stale subscribers under --base-url."
        )
        parser.add_argument("--dry-run", action="store_true", help="Change nothing; report.")
        parser.add_argument(
            "--scan-all",
            action="store_true",
            help="Look for stale subscribers on every queue of the project, not only the "
            "router's (one request per queue).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = subscribe(
            options["router"],
            options["base_url"],
            prune=options["prune"],
            dry_run=options["dry_run"],
            scan_all=options["scan_all"],
        )
        for warning in report.warnings:
            self.stderr.write(f"warning: {warning}")
        self.stdout.write(report.text())
