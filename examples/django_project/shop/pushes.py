"""The shop's IronMQ push receiver: each order pushed to ``/ironmq/orders`` is saved with the
ORM, and its invoice is made by a deferred job (202 at once, acknowledged when it is done).

From ``examples/django_project``, start a dev server and set up once::

    ironpush dev --port 8080 &
    export IRONMQ_EMULATOR_HOST=127.0.0.1:8080
    export IRONPUSH_SECRET_KEYS=$(ironpush keygen)  # the server and subscribe share this key
    export DJANGO_SETTINGS_MODULE=shop.settings     # before anything imports shop.pushes
    python manage.py migrate --verbosity 0

Serve Django's ASGI application (``shop/asgi.py`` mounts the router with ``PushMount``) with
``ironpush serve`` and register the routes the Django way::

    ironpush serve shop.asgi:application --port 8000 &
    python manage.py ironpush_subscribe --base-url http://127.0.0.1:8000/ironmq

or with uvicorn (any ASGI server: ``PushMount`` runs the router's lifespan, which Django
refuses), registering with the CLI::

    uvicorn shop.asgi:application --port 8000 &
    ironpush subscribe --app shop.pushes:router --base-url http://127.0.0.1:8000/ironmq

or keep Django on WSGI (gunicorn's sync workers) and run the router beside it, as a sidecar
process that shares the database (and, with several workers, a store)::

    gunicorn shop.wsgi --bind 127.0.0.1:8000 --workers 2 &
    ironpush serve shop.pushes:router --port 8001 --workers 2 --store sqlite:///pushes.db &
    python manage.py ironpush_subscribe --base-url http://127.0.0.1:8001

Then post an order; Django's own page lists it once its invoice is done::

    ironpush post orders '{"id": 1, "total": 25}'
    curl -s http://127.0.0.1:8000/orders   # -> [{"number": 1, "total": 25, "invoiced": true}]

Handlers and jobs run in ironpush's worker threads, outside Django's request cycle:
``managed_connections`` closes stale database connections before and after each call, as
Django does around a request.
"""

from __future__ import annotations

import logging
import os
import time

import django
from django.apps import apps

if not apps.ready:  # the sidecar and `ironpush subscribe --app` import this module first
    django.setup()

from ironpush import Defer, PushMessage, PushRouter
from ironpush.django import managed_connections
from shop.models import Order

logger = logging.getLogger("shop")
router = PushRouter()  # keys from IRONPUSH_SECRET_KEYS; store from IRONPUSH_STORE, else memory

# Making an invoice is the slow part (rendering and mailing a PDF): simulated here.
INVOICE_SECONDS = float(os.environ.get("SHOP_INVOICE_SECONDS", "0.5"))


@managed_connections
def make_invoice(number: int) -> None:
    logger.info("invoice for order %s: started", number)
    time.sleep(INVOICE_SECONDS)
    Order.objects.filter(number=number).update(invoiced=True)
    logger.info("invoice for order %s: done", number)


@router.route("/orders", queue="orders", subscriber="django-shop", json=True, retries_delay=30)
@managed_connections
def receive_order(msg: PushMessage) -> Defer:
    order = msg.json()
    # Keyed on the order number: a handler re-run after a crash updates the same row.
    Order.objects.update_or_create(number=order["id"], defaults={"total": order["total"]})
    return Defer(make_invoice, order["id"])  # 202 now; acknowledged when the invoice is done
