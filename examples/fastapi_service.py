"""A FastAPI service that receives IronMQ pushes.

Run it against a local dev server, from the repository root, in one shell::

    pip install -e '.[fastapi]'
    ironpush dev --port 8080 &
    export IRONMQ_EMULATOR_HOST=127.0.0.1:8080
    export IRONPUSH_SECRET_KEYS=$(ironpush keygen)   # serve and subscribe share this key
    ironpush serve examples.fastapi_service:app --port 8000 &
    ironpush subscribe --app examples.fastapi_service:router \\
        --base-url http://127.0.0.1:8000/ironmq
    ironpush post signups '{"email": "ada@example.com"}'
    curl -s http://127.0.0.1:8000/signups            # -> ["ada@example.com"]

(In a project of your own: ``pip install 'ironpush[fastapi]'``.)
"""

from __future__ import annotations

from fastapi import FastAPI

from ironpush import PushMessage, PushRouter, Retry

router = PushRouter()  # keys from IRONPUSH_SECRET_KEYS
welcomed: list[str] = []
mail_server_up = True


@router.route("/signups", queue="signups", subscriber="welcome-mailer", json=True)
def send_welcome_mail(msg: PushMessage) -> Retry | None:
    # A sync handler: it runs in the threadpool, so blocking I/O is fine here.
    if not mail_server_up:
        return Retry("mail server down")  # 503: IronMQ pushes again after retries_delay
    welcomed.append(msg.json()["email"])
    return None


app = FastAPI(lifespan=router.lifespan)
app.mount("/ironmq", router)


@app.get("/signups")
def list_signups() -> list[str]:
    return welcomed
