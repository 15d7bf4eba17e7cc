"""An external worker for ``examples/long_jobs.py``: it does the slow part outside the service.

It reserves jobs from the ``video-work`` pull queue, does the work, then acknowledges the
original push by posting the job's ``ack_token`` to the service's ``/ironmq/_ack`` endpoint
(which acknowledges with the newest reservation the service has seen), and deletes the job.
``PushAcks().ack(token)`` (:mod:`ironpush.integrations.acks`, the same ack-token path) would
work too, acking from the worker itself with the store the service uses.

The steps in ``examples/long_jobs.py`` start it with ``--service URL`` (the service's
``/ironmq`` mount). It may start before anything was posted: until the service creates the
pull queue with the first job, it waits. ``--once`` stops when the queue is empty (or absent).
"""

from __future__ import annotations

import argparse
import json
import time

import httpx

from ironpush import IronMQ, Message, NotFound, Queue

WORK_QUEUE = "video-work"
WAIT_FOR_QUEUE = 1.0  # seconds between looks while the pull queue does not exist yet


def transcode(video: str) -> None:
    time.sleep(0.1)  # stands in for real work


def work(service: str, *, once: bool = False) -> int:
    """Process jobs until none is left (``once``) or forever; returns how many were done."""
    done = 0
    with IronMQ() as mq, httpx.Client(base_url=service, timeout=30) as http:
        queue = mq.queue(WORK_QUEUE)
        waiting = False
        while True:
            jobs = reserve(queue)
            if jobs is None and not once:  # the service creates the queue with the first job
                if not waiting:
                    print(f"waiting for {WORK_QUEUE} (created with the first job)", flush=True)
                    waiting = True
                time.sleep(WAIT_FOR_QUEUE)
                continue
            if not jobs:
                if once:
                    return done
                continue
            for job in jobs:
                payload = json.loads(job.body)
                transcode(payload["video"])
                answer = http.post("/_ack", content=payload["ack_token"])
                answer.raise_for_status()
                queue.delete(job.id, job.reservation_id)
                done += 1
                # flush: the line shows at once when stdout is a file or a pipe.
                print(f"transcoded {payload['video']}: {answer.json()['status']}", flush=True)


def reserve(queue: Queue) -> list[Message] | None:
    """Up to 10 jobs (a long poll of 1 s), or None while the queue does not exist yet."""
    try:
        return queue.reserve(max=10, timeout=60, wait=1)
    except NotFound:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", required=True, help="the service's /ironmq URL")
    parser.add_argument("--once", action="store_true", help="stop when the queue is empty")
    args = parser.parse_args()
    work(args.service, once=args.once)


if __name__ == "__main__":
    main()
