"""``ironpush replay``: error-queue reports back into their source queue, nothing lost."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result
from observe_cli import Subscribers, cli, dev, subs
from starlette.applications import Starlette
from starlette.routing import Mount
from support import wait_until

from ironpush import PushMessage, PushRouter
from ironpush._errors import ValidationError
from ironpush.cli._replay import replay_error_queue
from ironpush.client._models import ErrorReport
from ironpush.devserver import DevServer
from ironpush.devserver._replay import push_headers_from_report
from ironpush.receiver._registration import sync_subscriptions
from ironpush.server_thread import ServerThread

__all__ = ["cli", "dev", "subs"]  # fixtures

Cli = Callable[..., Result]


def failed_queue(
    dev: DevServer, subs: Subscribers, name: str, *codes: int, messages: int = 1, **extra: Any
) -> tuple[str, list[str]]:
    """A push queue whose subscriber answers ``codes``; its messages end in the error queue."""
    url = subs.url(*codes)
    dev.client().create_queue(
        name,
        subscribers=[{"name": "s", "url": url}, *extra.get("more", [])],
        retries=0,
        retries_delay=0.05,
        error_queue=name + "-errors",
    )
    bodies = [{"body": f"job {i}", "push_headers": {"X-Trace": f"t{i}"}} for i in range(messages)]
    ids = dev.client().queue(name).post(*bodies)
    expected = messages * (1 + len(extra.get("more", [])))  # one per failed subscriber
    wait_until(lambda: reports(dev, name + "-errors") == expected, what="the error reports")
    return url, ids


def reports(dev: DevServer, queue: str) -> int:
    return dev.client().queue(queue).size()


def test_replay_pushes_each_message_again_then_deletes_its_report(
    cli: Cli, dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    url, ids = failed_queue(dev, subs, queue_name, 500, 500, 200, 200, messages=2)

    result = cli("replay", queue_name + "-errors", "--json")

    doc = json.loads(result.stdout)
    assert (doc["source"], doc["server"], doc["dry_run"]) == (queue_name, "dev", False)
    assert [(r["source_msg_id"], r["message_id"], r["how"]) for r in doc["replayed"]] == [
        (ids[0], ids[0], "same message"),
        (ids[1], ids[1], "same message"),
    ]
    assert reports(dev, queue_name + "-errors") == 0
    hits = subs.wait_hits(url, 4)
    assert [h.headers["iron-message-id"] for h in hits[2:]] == ids  # the same ids again
    assert [h.headers["x-trace"] for h in hits[2:]] == ["t0", "t1"]
    for mid in ids:
        wait_until(
            lambda m=mid: (
                dev.client().queue(queue_name).get_message_push_statuses(m)[0].status == "deleted"
            )
        )


def test_dry_run_changes_nothing_and_limit_replays_that_many(
    cli: Cli, dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    errors = queue_name + "-errors"
    failed_queue(dev, subs, queue_name, 500, 500, 500, 200, 200, messages=3)

    preview = cli("replay", errors, "--dry-run")
    assert preview.stdout.count("would replay report") == 3
    assert reports(dev, errors) == 3
    limited = json.loads(cli("replay", errors, "--limit", "2", "--json").stdout)
    assert len(limited["replayed"]) == 2
    assert reports(dev, errors) == 1


def test_to_one_subscriber_only(
    cli: Cli, dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    other = subs.url(500)
    url, [mid] = failed_queue(
        dev, subs, queue_name, 500, 200, more=[{"name": "other", "url": other}]
    )
    errors = queue_name + "-errors"

    result = cli("replay", errors, "--to", "s", "--limit", "1")

    assert f"pushed {mid} again to s" in result.stdout
    subs.wait_hits(url, 2)
    assert dev.wait_idle(queue=queue_name)
    assert len(subs.at(other)) == 1  # never pushed again
    assert "has no subscriber 'nobody'" in cli("replay", errors, "--to", "nobody", code=1).stderr


def test_the_hosted_path_posts_a_new_message_with_body_and_push_headers(
    dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    url, [mid] = failed_queue(dev, subs, queue_name, 500, 200)
    with dev.client() as client:
        done = replay_error_queue(client, queue_name + "-errors", server="hosted")
    [replayed] = done.replayed
    assert (replayed.how, replayed.source_msg_id) == ("new message", mid)
    assert replayed.message_id != mid
    [_, again] = subs.wait_hits(url, 2)
    assert again.headers["iron-message-id"] == replayed.message_id
    assert (again.body, again.headers["x-trace"]) == (b"job 0", "t0")
    assert reports(dev, queue_name + "-errors") == 0


def test_hosted_ironmq_cannot_push_to_one_subscriber(
    dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    failed_queue(dev, subs, queue_name, 500)
    with dev.client() as client, pytest.raises(Exception, match="cannot push to one subscriber"):
        replay_error_queue(client, queue_name + "-errors", to="s", server="hosted")
    assert reports(dev, queue_name + "-errors") == 1


def test_a_failed_re_post_keeps_the_report_and_other_messages_stay(
    dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    errors = queue_name + "-errors"
    failed_queue(dev, subs, queue_name, 500, 200)
    report = json.loads(dev.client().queue(errors).peek()[0].body)
    bad = {**report, "headers": {"Bad Header": "x"}}  # refused as a push header
    dev.client().queue(errors).post("not a report", json.dumps(bad))
    with dev.client() as client, pytest.raises(ValidationError):
        replay_error_queue(client, errors, server="hosted")
    # the good report was replayed and deleted; the bad one was released, the junk kept
    assert dev.wait_idle(queue=queue_name)
    assert sorted(m.body[:12] for m in dev.client().queue(errors).peek(max=10)) == [
        "not a report",
        '{"source_msg',
    ]


def test_an_interrupted_replay_at_worst_replays_twice_and_dedupe_absorbs_it(
    cli: Cli, dev: DevServer, queue_name: str
) -> None:
    runs: Counter[str] = Counter()
    router = PushRouter(secret_keys=["replay-key-0123456789abcdef"])

    @router.route("/jobs", queue=queue_name, subscriber="worker", retries=0, retries_delay=0.05)
    def jobs(msg: PushMessage) -> None:
        runs[msg.id] += 1
        if runs[msg.id] == 1:
            raise RuntimeError("downstream down")  # 5xx: no try left, an error report

    app = Starlette(routes=[Mount("/ironmq", app=router)], lifespan=router.lifespan)
    errors = queue_name + "-errors"
    with ServerThread(app) as service, dev.client() as client:
        [sub] = router.subscriptions(service.url + "/ironmq")
        sync_subscriptions(client, [sub])
        client.queue(queue_name).update(error_queue=errors)
        [mid] = client.queue(queue_name).post("job")
        wait_until(lambda: reports(dev, errors) == 1)
        [report] = client.queue(errors).peek()
        # An earlier run re-posted this report, then died before deleting it: the same report
        # is there twice once its reservation ran out.
        client.queue(errors).post(report.body)

        cli("replay", errors)

        assert reports(dev, errors) == 0
        wait_until(
            lambda: client.queue(queue_name).get_message_push_statuses(mid)[0].status == "deleted"
        )
        assert dev.wait_idle(queue=queue_name)
    assert runs[mid] == 2  # failed once, then ran once: the second replay was deduplicated


def test_report_headers_lose_the_pushers_and_the_subscribers_own() -> None:
    report = ErrorReport.parse(
        json.dumps(
            {
                "source_msg_id": "1",
                "body": "b",
                "headers": {
                    "USER_AGENT": "IronMQ Pusherd",
                    "Content-Type": "text/plain",
                    "Iron-Message-Id": "1",
                    "X-Ironpush-Secret": "k",
                    "X-Trace": "t",
                },
                "subscribers": [],
            }
        )
    )
    kept = push_headers_from_report(report.headers, subscriber_headers=["x-ironpush-secret"])
    assert kept == {"X-Trace": "t"}


@pytest.fixture
def no_source(dev: DevServer, queue_name: str) -> str:
    dev.client().queue(queue_name).post("orphan")
    return queue_name


def test_an_error_queue_without_a_source_is_one_clear_error(cli: Cli, no_source: str) -> None:
    result = cli("replay", no_source, code=1)
    assert result.stderr.startswith("error: no push queue names")
    assert "--source" in result.stderr


def test_a_message_failing_again_waits_for_the_next_run(
    cli: Cli, dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    errors = queue_name + "-errors"
    failed_queue(dev, subs, queue_name, 500)  # fails on every try
    [first] = dev.client().queue(errors).peek()

    doc = json.loads(cli("replay", errors, "--json").stdout)

    assert [r["report_id"] for r in doc["replayed"]] == [first.id]  # and the run ended
    [again] = wait_until(lambda: dev.client().queue(errors).peek())
    assert again.id != first.id  # the new failure's report, left for the next run
