"""An external worker for ``examples/long_jobs.py``: it does the slow part outside the service.

It reserves jobs from the ``video-work`` pull queue, does the work, then acknowledges the
original push by posting the job's ``ack_token`` to the service's ``/ironmq/_ack`` endpoint
(which acknowledges with the newest reservation the service has seen), and deletes the job.
``IronMQ().ack(token)`` would work too when the push has not been redelivered meanwhile.

Run it (see long_jobs.py for the service)::

    python -m examples.worker --service http://127.0.0.1:8000/ironmq [--once]
"""

from __future__ import annotations

import argparse
import json
import time

import httpx

from ironpush import IronMQ

WORK_QUEUE = "video-work"


def transcode(video: str) -> None:
    time.sleep(0.1)  # stands in for real work


def work(service: str, *, once: bool = False) -> int:
    """Process jobs until none is left (``once``) or forever; returns how many were done."""
    done = 0
    with IronMQ() as mq, httpx.Client(base_url=service, timeout=30) as http:
        queue = mq.queue(WORK_QUEUE)
        while True:
            jobs = queue.reserve(max=10, timeout=60, wait=1)
            if not jobs and once:
                return done
            for job in jobs:
                payload = json.loads(job.body)
                transcode(payload["video"])
                answer = http.post("/_ack", content=payload["ack_token"])
                answer.raise_for_status()
                queue.delete(job.id, job.reservation_id)
                done += 1
                print(f"transcoded {payload['video']}: {answer.json()['status']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", required=True, help="the service's /ironmq URL")
    parser.add_argument("--once", action="store_true", help="stop when the queue is empty")
    args = parser.parse_args()
    work(args.service, once=args.once)


if __name__ == "__main__":
    main()
