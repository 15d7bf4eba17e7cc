"""The inspector in a real headless Chromium (Debian's, driven by Playwright).

The README's screenshot comes from ``python docs/inspector_screenshot.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from subscriber_servers import Subscribers

from ironpush.devserver import DevServer

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert os.path.exists(CHROMIUM), (
        f"{CHROMIUM} is missing: apt-get update && apt-get install -y chromium"
    )
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def dev() -> Iterator[DevServer]:
    with DevServer() as server:
        yield server


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    yield tab
    context.close()  # closes the page's event stream before the server stops


def test_a_failing_push_appears_live_then_is_opened_and_replayed(
    dev: DevServer, subs: Subscribers, page: Page, tmp_path: Path
) -> None:
    url = subs.url(503, 200)  # the first try fails, IronMQ retries, the second succeeds
    mq = dev.client()
    mq.create_queue(
        "orders",
        subscribers=[
            {"name": "billing", "url": url, "headers": {"X-Push-Secret": "s3cr3t-abc-123"}}
        ],
        retries=2,
        retries_delay=0.2,
        error_queue="orders-errors",
    )
    page.goto(dev.url + "/_dev/ui")
    expect(page.locator("#live")).to_have_text("live")  # the event stream is connected
    page.evaluate("window.__notReloaded = true")

    [mid] = mq.queue("orders").post('{"order": 42, "items": ["tea"]}')

    rows = page.locator("#feed tr", has_text=mid)
    expect(rows.filter(has_text="retrying")).to_have_count(1)  # the 503, live
    expect(rows.filter(has_text="delivered")).to_have_count(1)  # then the retry's 200
    assert page.evaluate("window.__notReloaded") is True  # rows came without a reload
    expect(page.locator("#queues")).to_contain_text("orders")
    _screenshot(page, tmp_path / "overview.png")

    rows.filter(has_text="delivered").get_by_role("link", name=mid).click()
    expect(page.get_by_test_id("message-id")).to_have_text(mid)
    expect(page.get_by_test_id("body")).to_contain_text('"order": 42')  # pretty JSON
    expect(page.get_by_test_id("status-billing")).to_contain_text("deleted")
    attempts = page.locator(".subscriber[data-subscriber=billing] table.attempts tbody tr")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("503")
    expect(attempts.nth(0)).to_contain_text("answer 503")  # the answer's body excerpt
    expect(attempts.nth(1)).to_contain_text("200")
    attempts.nth(0).locator("summary").click()
    sent = attempts.nth(0).locator("pre")
    expect(sent).to_contain_text(f"Iron-Message-Id: {mid}")
    expect(sent).to_contain_text("X-Push-Secret: ***")  # masked, never the secret
    assert "s3cr3t-abc-123" not in page.content()

    page.get_by_test_id("replay-billing").click()

    expect(page.locator(".notice")).to_contain_text("replayed to billing")
    expect(attempts).to_have_count(3)  # the new attempt, pushed again with the same id
    expect(attempts.nth(2)).to_contain_text("delivered")
    expect(page.get_by_test_id("status-billing")).to_contain_text("tries 1")
    assert len(subs.at(url)) == 3
    assert subs.at(url)[2].headers["iron-message-id"] == mid


def test_post_and_clear_from_the_browser(dev: DevServer, page: Page) -> None:
    page.goto(dev.url + "/_dev/ui")
    page.locator("summary", has_text="Post a message").click()
    page.get_by_test_id("post-queue").fill("jobs")
    page.get_by_test_id("post-body").fill("plain text job")
    page.get_by_test_id("post-submit").click()

    expect(page.locator(".notice")).to_contain_text("posted message")
    expect(page.get_by_test_id("body")).to_have_text("plain text job")
    assert dev.client().queue("jobs").size() == 1

    page.goto(dev.url + "/_dev/ui/q/dev/jobs")
    page.once("dialog", lambda dialog: dialog.accept())  # "Delete every message of jobs?"
    page.get_by_test_id("clear").click()
    expect(page.locator(".notice")).to_contain_text("cleared jobs: 1 message(s) deleted")
    assert dev.client().queue("jobs").size() == 0


def test_a_declined_confirmation_clears_nothing(dev: DevServer, page: Page) -> None:
    dev.client().queue("keep").post("a", "b")
    page.goto(dev.url + "/_dev/ui/q/dev/keep")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_test_id("clear").click()
    expect(page.get_by_test_id("clear")).to_be_visible()
    assert dev.client().queue("keep").size() == 2


def _screenshot(page: Page, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
