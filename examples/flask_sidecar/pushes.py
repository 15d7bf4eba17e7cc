"""The Flask shop's IronMQ push receiver, run as a **sidecar**: ``ironpush serve`` in its own
process next to the WSGI server, calling into the shop's code.

A WSGI server (gunicorn's sync workers, mod_wsgi, uWSGI) has no event loop for the router's
deferred jobs and acks, and no lifespan to drain them at shutdown; a sidecar has both, scales
on its own, and shares the app's database (and, with several workers, a store). From
``examples/flask_sidecar``, start a dev server and set up once::

    ironpush dev --port 8080 &
    export IRONMQ_EMULATOR_HOST=127.0.0.1:8080
    export IRONPUSH_SECRET_KEYS=$(ironpush keygen)  # the sidecar and subscribe share this key

Serve the shop with gunicorn and the pushes with the sidecar::

    gunicorn shop:app --bind 127.0.0.1:8000 --workers 2 &
    ironpush serve pushes:router --port 8001 --workers 2 --store sqlite:///pushes.db &
    ironpush subscribe --app pushes:router --base-url http://127.0.0.1:8001

or both in one process: ``ironpush serve`` runs the Flask app through a2wsgi with this
module's router mounted in front of it at ``/ironmq`` (one process, no pre-forked workers)::

    pip install 'ironpush[wsgi]'
    ironpush serve pushes:app --port 8000 &
    ironpush subscribe --app pushes:router --base-url http://127.0.0.1:8000/ironmq

Then post an order; the shop's own page lists it once its invoice is done::

    ironpush post orders '{"id": 1, "total": 25}'
    curl -s http://127.0.0.1:8000/orders   # -> [{"number": 1, "total": 25, "invoiced": true}]
"""

from __future__ import annotations

import os
import time

from shop import app, mark_invoiced, save_order

from ironpush import Defer, PushMessage, PushRouter

router = PushRouter()  # keys from IRONPUSH_SECRET_KEYS; store from --store / IRONPUSH_STORE

# Making an invoice is the slow part (rendering and mailing a PDF): simulated here.
INVOICE_SECONDS = float(os.environ.get("SHOP_INVOICE_SECONDS", "0.5"))


def make_invoice(number: int) -> None:
    time.sleep(INVOICE_SECONDS)
    with app.app_context():  # the shop's code expects its app context (config, g.db)
        mark_invoiced(number)


@router.route("/orders", queue="orders", subscriber="flask-shop", json=True, retries_delay=30)
def receive_order(msg: PushMessage) -> Defer:
    order = msg.json()
    with app.app_context():
        save_order(order["id"], order["total"])
    return Defer(make_invoice, order["id"])  # 202 now; acknowledged when the invoice is done
