"""Long jobs: answer 202 at once and acknowledge when the work is done.

Two styles, one route each:

- ``/thumbnails``: the job runs in this process (``Defer(job, ...)``); the router acknowledges
  it through its outbox when ``render_thumbnail`` returns.
- ``/videos``: the job runs in an external worker (``examples/worker.py``). The handler hands
  the worker the message and its signed ``ack_token`` through a pull queue and returns
  ``Defer()``; the worker acknowledges by posting the token back to ``/ironmq/_ack``.

On v3 a 202 reservation lasts ``retries_delay`` seconds; a job that takes longer is pushed
again (the router answers 202 again and acknowledges with the newest reservation), and each
such push uses one retry. So choose ``retries_delay * (retries + 1)`` above the longest job.

Run it against a local dev server, from the repository root, in one shell::

    ironpush dev --port 8080 &
    export IRONMQ_EMULATOR_HOST=127.0.0.1:8080
    export IRONPUSH_SECRET_KEYS=$(ironpush keygen)   # serve and subscribe share this key
    ironpush serve examples.long_jobs:app --port 8000 &
    ironpush subscribe --app examples.long_jobs:router --base-url http://127.0.0.1:8000/ironmq
    python -m examples.worker --service http://127.0.0.1:8000/ironmq &
    ironpush post thumbnails cat.png && ironpush post videos intro.mp4
    curl -s http://127.0.0.1:8000/rendered          # -> ["cat.png"]

The worker may start first: it waits for its pull queue, which the first video creates. It
prints ``transcoded intro.mp4: acked`` when it has acknowledged the video's push.
"""

from __future__ import annotations

import json
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from ironpush import AsyncIronMQ, Defer, PushMessage, PushRouter

WORK_QUEUE = "video-work"  # a pull queue the external worker reserves from
JOB_SECONDS = 0.2

router = PushRouter(store="long_jobs.sqlite")  # durable dedupe + ack outbox across restarts
rendered: list[str] = []


def render_thumbnail(name: str) -> None:
    time.sleep(JOB_SECONDS)  # stands in for real work; runs in a worker thread
    rendered.append(name)


@router.route(
    "/thumbnails", queue="thumbnails", subscriber="thumbnailer", retries=3, retries_delay=30
)
def thumbnails(msg: PushMessage) -> Defer:
    return Defer(render_thumbnail, msg.text)


@router.route("/videos", queue="videos", subscriber="transcoder", retries=3, retries_delay=60)
async def videos(msg: PushMessage) -> Defer:
    async with AsyncIronMQ() as mq:
        job = {"video": msg.text, "ack_token": msg.ack_token}
        await mq.queue(WORK_QUEUE).post(json.dumps(job))
    return Defer()  # 202; the worker acknowledges with the token


async def list_rendered(request: Request) -> JSONResponse:
    return JSONResponse(rendered)


app = Starlette(
    routes=[Route("/rendered", list_rendered), Mount("/ironmq", app=router)],
    lifespan=router.lifespan,
)
