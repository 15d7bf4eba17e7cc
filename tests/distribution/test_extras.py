"""Each published extra, installed alone from the built wheel into a fresh virtualenv, runs the
documented path it exists for.

``pip install 'ironpush[X]'`` must bring everything the README's (or the example's) code for X
imports and needs at run time, with nothing from this test environment: a fresh virtualenv per
extra, the wheel of this tree, dependencies from PyPI (these tests need the network; CI has it).

- ``redis``: the README's Stores block (``open_store("redis://...")``, ``check()``);
- ``postgres``: the same block with the table's PostgreSQL spec;
- ``celery``: the README's ``shop/tasks.py`` with its Redis broker URL: the README's worker
  line starts, and a task sent from another process (the web side) runs in it;
- ``fastapi``: ``examples/fastapi_service.py``'s documented steps (the README points there):
  dev server, service, subscribe, post, the handler's output;
- ``metrics``: a push through a router, then ``GET /_metrics`` counts it (501 without it);
- ``speedups``: orjson imports, and the README's ``PushMount`` block (a JSON push) runs;
- ``wsgi``: ``ironpush serve`` runs a plain WSGI app with its module's router mounted in front
  (the app's page and a push, over a real socket);
- ``otel``: the README's console-exporter block (with the SDK it says to install) against a dev
  server prints the spans of one trace, from ``send`` to ``settle``.
"""

from __future__ import annotations

import ast
import os
import re
import secrets
import signal
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from docsteps import DEV_PORT, SERVICE_PORT, ShellSession, free_ports, literal_block, parse_steps
from support import wait_until
from venvs import ROOT, Dists, fresh_venv, pip, venv_env

from ironpush.devserver import DevServer

README = (ROOT / "README.md").read_text()
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
REDIS_URL = os.environ.get("IRONPUSH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_DSN = os.environ.get(
    "IRONPUSH_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
KEY = "extras-test-key-0123456789abcdef-0123"


def readme_python_block(containing: str) -> str:
    """The one ```python block of the README whose code contains ``containing``."""
    blocks = re.findall(r"^```python\n(.*?)^```$", README, flags=re.S | re.M)
    [block] = [b for b in blocks if containing in b]
    return block


def run_python(bin_dir: Path, cwd: Path, code: str, **env: str) -> str:
    script = cwd / f"block_{secrets.token_hex(4)}.py"
    script.write_text(code)
    proc = subprocess.run(
        [str(bin_dir / "python"), script.name],
        cwd=cwd,
        env=venv_env(bin_dir, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{script.name}:\n{code}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# --------------------------------------------------------------------------- each extra


def check_redis(bin_dir: Path, work: Path) -> None:
    block = readme_python_block('open_store("redis://')
    run_python(bin_dir, work, block)


def check_postgres(bin_dir: Path, work: Path) -> None:
    block = readme_python_block('open_store("redis://')
    schema = f"extras_{os.getpid()}_{secrets.token_hex(3)}"
    spec = f"{POSTGRES_DSN}{'&' if '?' in POSTGRES_DSN else '?'}schema={schema}"
    redis_spec = re.search(r'open_store\("([^"]+)"\)', block)
    assert redis_spec is not None
    try:
        run_python(bin_dir, work, block.replace(redis_spec.group(1), spec))
    finally:
        run_python(
            bin_dir,
            work,
            "import psycopg\n"
            f"with psycopg.connect({POSTGRES_DSN!r}, autocommit=True) as db:\n"
            f"    db.execute('DROP SCHEMA IF EXISTS \"{schema}\" CASCADE')\n",
        )


def check_celery(bin_dir: Path, work: Path) -> None:
    tasks = readme_python_block("# shop/tasks.py")
    (work / "shop").mkdir()
    (work / "shop" / "tasks.py").write_text(tasks)
    [worker_line] = [
        line.split("&")[0].strip()
        for line in README.splitlines()
        if line.startswith("celery -A shop.tasks worker")
    ]
    env = venv_env(bin_dir, BROKER_URL=REDIS_URL, PYTHONPATH=str(work))
    log = work / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            ["bash", "-c", f"exec {worker_line}"],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        order = secrets.randbelow(10**9)  # this run's task, whatever else the queue holds
        run_python(bin_dir, work, f"from shop.tasks import render\nrender.delay({order})\n", **env)

        def rendered() -> bool:
            assert worker.poll() is None, f"the worker exited:\n{log.read_text()}"
            return f"rendered order {order}" in log.read_text()

        wait_until(rendered, 90, f"the worker to run render({order})", report=log.read_text)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)


def check_fastapi(bin_dir: Path, work: Path) -> None:
    source = ROOT / "examples" / "fastapi_service.py"
    (work / "examples").mkdir()
    (work / "examples" / "__init__.py").write_text("")
    (work / "examples" / source.name).write_text(source.read_text())
    doc = ast.get_docstring(ast.parse(source.read_text()))
    assert doc is not None
    steps = [s for s in parse_steps(literal_block(doc)) if not s.code.startswith("pip install")]
    assert len(steps) >= 5, steps
    dev_port, service_port = free_ports(2)
    env = venv_env(bin_dir, HOME=str(work), PYTHONPATH=str(work))
    ports = {DEV_PORT: dev_port, SERVICE_PORT: service_port}
    with ShellSession(work, env, ports=ports) as shell:
        for step in steps:
            shell.run(step)


def check_metrics(bin_dir: Path, work: Path) -> None:
    out = run_python(
        bin_dir,
        work,
        """
import asyncio

import httpx

from ironpush import PushMessage, PushRouter
from ironpush.testing import build_push

router = PushRouter()


@router.route("/orders", queue="orders", subscriber="billing")
async def billing(msg: PushMessage) -> None:
    return None


async def main() -> None:
    headers, body, _ = build_push(router, "/orders", b"hi")
    transport = httpx.ASGITransport(app=router)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        assert (await http.post("/orders", headers=headers, content=body)).status_code == 200
        scrape = await http.get("/_metrics")
    assert scrape.status_code == 200, scrape.text
    print(scrape.text)


asyncio.run(main())
""",
        IRONPUSH_SECRET_KEYS=KEY,
    )
    lines = out.splitlines()
    assert "ironpush_acked_total 1.0" in lines, out
    assert 'ironpush_pushes_total{outcome="acked",queue="orders",subscriber="billing"} 1.0' in lines


def check_speedups(bin_dir: Path, work: Path) -> None:
    run_python(bin_dir, work, "import orjson\nassert orjson.loads(b'{\"a\": 1}') == {'a': 1}\n")
    block = readme_python_block("PushMount(site")
    out = run_python(bin_dir, work, block, IRONPUSH_SECRET_KEYS=KEY)
    assert "order 7" in out, out


WSGI_SHOP = """
from ironpush import PushMessage, PushRouter

router = PushRouter()


@router.route("/orders", queue="orders", subscriber="shop")
def orders(msg: PushMessage) -> None:
    return None


def app(environ, start_response):  # a WSGI app, as Flask's and Django's are
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi shop"]
"""
WSGI_CALLS = """
import httpx

from ironpush.testing import build_push
from wsgi_shop import router

headers, body, _ = build_push(router, "/orders", b"one")
assert httpx.get("http://127.0.0.1:{port}/").text == "wsgi shop"
pushed = httpx.post("http://127.0.0.1:{port}/ironmq/orders", headers=headers, content=body)
assert pushed.status_code == 200, pushed.text
"""


def check_wsgi(bin_dir: Path, work: Path) -> None:
    (work / "wsgi_shop.py").write_text(WSGI_SHOP)
    [port] = free_ports(1)
    env = venv_env(bin_dir, HOME=str(work), PYTHONPATH=str(work), IRONPUSH_SECRET_KEYS=KEY)
    with ShellSession(work, env, ports={SERVICE_PORT: port}) as shell:
        shell.run_text("ironpush serve wsgi_shop:app --port 8000 &")
        run_python(bin_dir, work, WSGI_CALLS.format(port=port), IRONPUSH_SECRET_KEYS=KEY)


def check_otel(bin_dir: Path, work: Path) -> None:
    pip(bin_dir, "install", "opentelemetry-sdk")  # the application's SDK, as the README says
    block = readme_python_block("ConsoleSpanExporter")
    with DevServer() as dev:
        env = {"IRONMQ_EMULATOR_HOST": dev.url, "IRONPUSH_SECRET_KEYS": KEY}
        out = run_python(bin_dir, work, block, **env)
    names = set(re.findall(r'"name": "([^"]+)"', out))
    expected = {"send", "process", "settle"}
    assert {f"{n} traced-invoices" for n in expected} | {"job send_invoice"} <= names, out
    assert len(set(re.findall(r'"trace_id": "([^"]+)"', out))) == 1, out


CHECKS: dict[str, Callable[[Path, Path], None]] = {
    "redis": check_redis,
    "postgres": check_postgres,
    "celery": check_celery,
    "fastapi": check_fastapi,
    "metrics": check_metrics,
    "speedups": check_speedups,
    "wsgi": check_wsgi,
    "otel": check_otel,
}


# --------------------------------------------------------------------------- the tests


def test_every_published_extra_is_checked_and_all_is_their_union() -> None:
    assert set(EXTRAS) == {*CHECKS, "all"}
    [everything] = EXTRAS["all"]
    name, _, listed = everything.partition("[")
    assert name == "ironpush"
    assert sorted(listed.rstrip("]").split(",")) == sorted(CHECKS)


def test_the_celery_extra_brings_the_redis_transport_the_readme_broker_uses() -> None:
    assert 'broker=os.environ.get("BROKER_URL", "redis://' in readme_python_block("# shop/tasks.py")
    assert EXTRAS["celery"] == ["celery[redis]>=5.3"]


@pytest.mark.slow
@pytest.mark.parametrize("extra", list(CHECKS))
def test_extra_installed_alone_from_the_wheel_runs_its_documented_path(
    extra: str, dists: Dists, tmp_path: Path
) -> None:
    bin_dir = fresh_venv(tmp_path / "venv", f"ironpush[{extra}] @ {dists.wheel.as_uri()}")
    work = tmp_path / "project"
    work.mkdir()
    CHECKS[extra](bin_dir, work)
