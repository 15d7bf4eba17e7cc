"""Make ``docs/inspector.png``: the inspector after a few typical deliveries.

Run ``python docs/inspector_screenshot.py [PATH]`` (needs ``/usr/bin/chromium``). A dev server
and a subscriber run in this process: an order is delivered at once, one is deferred (202)
and acknowledged, one fails once then succeeds, and one fails every try and lands in the error
queue.
"""

from __future__ import annotations

import sys
from collections import Counter

from playwright.sync_api import expect, sync_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironpush.devserver import DevServer
from ironpush.server_thread import ServerThread

tries: Counter[str] = Counter()


async def handle(request: Request) -> Response:
    body = (await request.body()).decode()
    tries[body] += 1
    if "broken" in body:
        return Response("payment provider unreachable", status_code=502)
    if "flaky" in body and tries[body] == 1:
        return Response("database busy, try later", status_code=503)
    if "long" in body:
        return Response("accepted: job queued", status_code=202)
    return Response("ok")


def main(path: str) -> None:
    service = ServerThread(Starlette(routes=[Route("/orders", handle, methods=["POST"])]))
    with service, DevServer() as dev, sync_playwright() as p:
        mq = dev.client()
        sub = {"name": "billing", "url": service.url + "/orders"}
        mq.create_queue(
            "orders", subscribers=[sub], retries=2, retries_delay=1.0, error_queue="orders-errors"
        )
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1360, "height": 860})
        page.goto(dev.url + "/_dev/ui")
        expect(page.locator("#live")).to_have_text("live")
        orders = mq.queue("orders")
        [_, long_id, *_] = orders.post(
            '{"order": 1, "kind": "quick"}',
            '{"order": 2, "kind": "long"}',
            '{"order": 3, "kind": "flaky"}',
            '{"order": 4, "kind": "broken"}',
        )
        expect(page.locator("#feed tr", has_text="deferred")).to_have_count(1)
        rid = dev.deliveries(message_id=long_id)[-1]["reservation_id"]
        orders.delete(long_id, reservation_id=rid, subscriber_name="billing")  # the job's ack
        expect(page.locator("#feed tr", has_text="acked")).to_have_count(1)
        expect(page.locator("#feed tr", has_text="error-queue")).to_have_count(1)
        page.wait_for_timeout(2500)  # let the new rows' highlight fade
        page.screenshot(path=path, full_page=True)
        browser.close()
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/inspector.png")
