"""Temporary ablations (h23c); deleted after use."""
import logging
from typing import Any
from benchmarks import receiver_apps
from ironpush._protocol import Delivery

def _quiet():
    logging.getLogger("ironpush").setLevel(logging.WARNING)

def noclaim() -> Any:
    _quiet()
    r = receiver_apps._router()
    r.pipeline._claim_now = lambda k, d, l, t: ("new", "c1", 1)
    r.pipeline._complete_now = lambda k, o, t, d: d
    return r

def nometrics_nojson() -> Any:
    _quiet()
    from ironpush import PushRouter
    app = PushRouter(secret_keys=receiver_apps.KEYS, metrics=False, tracing=False)
    @app.route("/orders", queue=receiver_apps.QUEUE, subscriber=receiver_apps.SUBSCRIBER)
    async def orders(msg: Any) -> None:
        return None
    return app

def noverify() -> Any:
    _quiet()
    r = receiver_apps._router()
    r.pipeline._verify = False
    return r

def norefusal() -> Any:
    _quiet()
    r = receiver_apps._router()
    class N:
        def record(self, a, b): pass
    r.pipeline._refusals = N()
    return r

def fixeddelivery() -> Any:
    _quiet()
    from ironpush.receiver import _pipeline
    _pipeline.delivery_from_raw = lambda found, sub: Delivery(found[b"iron-message-id"].decode(), "r", sub, None, None, "v3")
    return receiver_apps._router()
