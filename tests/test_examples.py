"""Each example runs exactly as its docstring says, step by step, in the documented order.

The steps (the literal block of the module docstring) run in one shell session
(:mod:`docsteps`): ``ironpush dev --port 8080 &`` starts a real dev server, ``ironpush serve
... &`` the example service, ``curl ...  # -> X`` must print X. The only liberties: the
documented ports 8080/8000 become free ports, the working directory is a temporary one with the
repository on ``PYTHONPATH`` (so nothing is written into the clone), and ``pip install`` steps
are checked against the environment instead of run. After the steps, the test checks what the
document promises beyond printed output (a push acknowledged, a message dropped).
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from docsteps import (
    DEV_PORT,
    SERVICE_PORT,
    ShellSession,
    free_ports,
    literal_block,
    missing_requirements,
    parse_steps,
)
from support import wait_until

from ironpush import IronMQ

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def docstring_steps(name: str) -> str:
    doc = ast.get_docstring(ast.parse((EXAMPLES / f"{name}.py").read_text()))
    assert doc, f"examples/{name}.py has no docstring"
    return literal_block(doc)


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[ShellSession]:
    """A fresh terminal: no IronMQ settings, no keys, ironpush's scripts on PATH."""
    dev_port, service_port = free_ports(2)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IRON", "IRONPUSH_")) and k != "PYTHONPATH"
    }
    env |= {
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    }
    ports = {DEV_PORT: dev_port, SERVICE_PORT: service_port}
    with ShellSession(tmp_path, env, ports=ports) as session:
        yield session


def dev_client(shell: ShellSession) -> IronMQ:
    return IronMQ(cloud=f"http://127.0.0.1:{shell.ports[DEV_PORT]}", project_id="dev", token="dev")


def service(shell: ShellSession, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{shell.ports[SERVICE_PORT]}{path}", timeout=10)


def final_statuses(mq: IronMQ, queue: str, message_id: str) -> list[str]:
    statuses = mq.queue(queue).wait_for_push(message_id, timeout=30)
    return [s.status or "" for s in statuses]


def test_every_example_documents_its_steps() -> None:
    documented = {
        p.stem
        for p in EXAMPLES.glob("*.py")
        if "::" in (ast.get_docstring(ast.parse(p.read_text())) or "")
    }
    # The framework recipes (and the project-shaped ones in their folders) run under their
    # real servers in tests/frameworks/test_recipes.py.
    frameworks = {"litestar_service", "quart_service", "aiohttp_service"}
    assert documented == {"starlette_service", "fastapi_service", "long_jobs", *frameworks}
    for name in documented:
        steps = parse_steps(docstring_steps(name))
        assert steps[0].code.startswith(("ironpush dev", "pip install"))
        assert any(s.expect is not None for s in steps), f"{name}: nothing is checked"


def test_starlette_service_steps(shell: ShellSession) -> None:
    outputs = shell.run_text(docstring_steps("starlette_service"))
    good, poison = outputs[-2].split()  # `ironpush post` prints one id per message
    with dev_client(shell) as mq:
        assert final_statuses(mq, "orders", good) == ["deleted"]
        assert final_statuses(mq, "orders", poison) == ["deleted"]  # dropped: 200, no retry
    assert service(shell, "/").text == "order service"  # the service's own routes still work
    assert service(shell, "/ironmq/_health").json()["counters"]["dropped"] == 1


def test_fastapi_service_steps(shell: ShellSession) -> None:
    outputs = shell.run_text(docstring_steps("fastapi_service"))
    [message_id] = outputs[-2].split()
    with dev_client(shell) as mq:
        assert final_statuses(mq, "signups", message_id) == ["deleted"]


def test_long_jobs_steps_with_the_worker_started_first(shell: ShellSession) -> None:
    outputs = []
    for step in parse_steps(docstring_steps("long_jobs")):
        outputs.append(shell.run(step))
        if "examples.worker" in step.code:  # it really runs before anything is posted
            wait_until(
                lambda: "waiting for video-work" in shell.output_of("examples.worker"),
                30,
                "the worker to wait for its queue",
                report=shell.logs,
            )
    thumbnail, video = outputs[-2].split()
    wait_until(
        lambda: "transcoded intro.mp4: acked" in shell.output_of("examples.worker"),
        30,
        "the worker to acknowledge the video",
        report=shell.logs,
    )
    with dev_client(shell) as mq:
        assert final_statuses(mq, "thumbnails", thumbnail) == ["deleted"]
        assert final_statuses(mq, "videos", video) == ["deleted"]
        assert mq.queue("video-work").size() == 0
    assert "Traceback" not in shell.output_of("examples.worker")


def test_worker_once_before_its_queue_exists_exits_cleanly(shell: ShellSession) -> None:
    shell.run_text("ironpush dev --port 8080 &")
    shell.env["IRONMQ_EMULATOR_HOST"] = f"127.0.0.1:{shell.ports[DEV_PORT]}"
    [out] = shell.run_text("python -m examples.worker --service http://127.0.0.1:8000 --once")
    assert out == ""


def test_documented_steps_parse_as_a_reader_types_them() -> None:
    steps = parse_steps(
        "ironpush dev --port 8080 &   # leave it running\n"
        "# a comment line\n"
        "ironpush subscribe --app a:router \\\n    --base-url http://x\n"
        "echo '# not a comment' && true\n"
        'curl -s http://127.0.0.1:8000/  # -> ["ok"]\n'
    )
    assert [(s.code, s.background, s.expect) for s in steps] == [
        ("ironpush dev --port 8080", True, None),
        ("ironpush subscribe --app a:router --base-url http://x", False, None),
        ("echo '# not a comment' && true", False, None),
        ("curl -s http://127.0.0.1:8000/", False, '["ok"]'),
    ]


def test_pip_install_steps_are_checked_against_the_environment() -> None:
    assert missing_requirements("pip install -e '.[fastapi]'") == []
    assert missing_requirements("pip install 'ironpush[redis,postgres]' .") == []
    assert missing_requirements("pip install no-such-package-for-ironpush==1.0") == [
        "no-such-package-for-ironpush==1.0"
    ]
