"""Settings of the example shop: SQLite next to the project, ironpush's Django app installed."""

from __future__ import annotations

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "example-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = ["shop", "ironpush.django"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "shop.urls"
ASGI_APPLICATION = "shop.asgi.application"
WSGI_APPLICATION = "shop.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
        "OPTIONS": {"timeout": 20},  # the web process and the push handlers write at once
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

# python manage.py ironpush_subscribe --base-url ... registers this router's routes
IRONPUSH_ROUTER = "shop.pushes:router"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,  # keep the server's own loggers (uvicorn, gunicorn)
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    # one line per push and per ack, and the drain at shutdown (ironpush serve sets its own
    # handler on the root logger: these propagate to it)
    "loggers": {"ironpush": {"level": "INFO"}, "shop": {"level": "INFO"}},
}
