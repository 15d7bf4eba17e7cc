"""A FastAPI service mounting a PushRouter, as packaged by ``examples/docker/Dockerfile``.

A router built without ``store=`` uses ``IRONPUSH_STORE`` (the image sets the SQLite file
``/data/ironpush.db``). From the repository root, with ironpush's wheel from the checkout::

    pip wheel --no-deps -w examples/docker/wheels .
    docker build -t myservice examples/docker
"""

from __future__ import annotations

from fastapi import FastAPI

from ironpush import PushMessage, PushRouter

router = PushRouter()  # keys from IRONPUSH_SECRET_KEYS, store from IRONPUSH_STORE
sent: list[str] = []


@router.route("/emails", queue="emails", subscriber="mailer", json=True)
def send_email(msg: PushMessage) -> None:
    sent.append(msg.json()["to"])  # a real service would call its mail provider here


app = FastAPI(lifespan=router.lifespan)
app.mount("/ironmq", router)


@app.get("/")
def home() -> dict[str, list[str]]:
    return {"sent": sent}
