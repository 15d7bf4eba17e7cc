"""The Django app config of ``ironpush.django`` (Django finds it here by name)."""

from __future__ import annotations

from django.apps import AppConfig


class IronPushConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    """``INSTALLED_APPS = [..., "ironpush.django"]``: the ``ironpush_subscribe`` command."""

    name = "ironpush.django"
    label = "ironpush"
    verbose_name = "ironpush"
