"""Every framework recipe runs as documented, under its real server, and keeps its promises.

Each test runs an example's docstring steps literally (:mod:`framework_kit`): the real server
the recipe names (``ironpush serve``, uvicorn, gunicorn and a sidecar, Hypercorn, aiohttp),
``subscribe`` (the CLI or Django's management command), ``ironpush post`` and the ``curl``
that waits for the invoice job's result. Then: the deferred push was acknowledged, a replay of
the same message was answered 200 from the store without the handler, and SIGTERM while an
invoice job runs let it finish and acknowledge before the server exited. One dev server serves
the whole module (reset before each test).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from framework_kit import (
    EXAMPLES,
    Recipe,
    clean_env,
    docstring_blocks,
    message_id_of,
    open_shell,
    working_copy,
)

from ironpush.devserver import DevServer

pytestmark = pytest.mark.slow

DJANGO_STEPS = EXAMPLES / "django_project" / "shop" / "pushes.py"
FLASK_STEPS = EXAMPLES / "flask_sidecar" / "pushes.py"
INVOICED = [(1, 25, 1), (99, 1, 1)]  # the documented order, and the one the drain test posts


@pytest.fixture(scope="module")
def dev_server() -> Iterator[DevServer]:
    with DevServer() as server:
        yield server


@pytest.fixture
def dev(dev_server: DevServer) -> DevServer:
    dev_server.reset()  # the recipes share queue names
    return dev_server


def orders_in(database: Path, table: str) -> list[tuple[int, int, int]]:
    with sqlite3.connect(database) as db:
        rows = db.execute(f"SELECT number, total, invoiced FROM {table} ORDER BY number")
        return [tuple(row) for row in rows]


# The Django project's steps: set-up, three ways to serve it (the block, and the process that
# holds the router), then the order.
DJANGO_WAYS = {
    "ironpush-serve": (1, "ironpush serve shop.asgi"),
    "uvicorn": (2, "uvicorn shop.asgi"),
    "gunicorn-and-sidecar": (3, "ironpush serve shop.pushes"),
}


@pytest.mark.parametrize("way", list(DJANGO_WAYS))
def test_django_recipe(way: str, dev: DevServer, tmp_path: Path) -> None:
    blocks = docstring_blocks(DJANGO_STEPS)
    assert len(blocks) == 5, blocks
    index, server = DJANGO_WAYS[way]
    project = working_copy("django_project", tmp_path)
    with open_shell(project, tmp_path, dev) as shell:
        recipe = Recipe(shell, dev, server, "django-shop")
        outputs = recipe.run([blocks[0], blocks[index], blocks[4]])
        recipe.check_promises(message_id_of(outputs[-2]))
    # The handler's and the jobs' ORM writes are in the project's SQLite database.
    assert orders_in(project / "db.sqlite3", "shop_order") == INVOICED


FLASK_WAYS = {
    "gunicorn-and-sidecar": (1, "ironpush serve pushes:router"),
    "in-process-a2wsgi": (2, "ironpush serve pushes:app"),
}


@pytest.mark.parametrize("way", list(FLASK_WAYS))
def test_flask_recipe(way: str, dev: DevServer, tmp_path: Path) -> None:
    blocks = docstring_blocks(FLASK_STEPS)
    assert len(blocks) == 4, blocks
    index, server = FLASK_WAYS[way]
    project = working_copy("flask_sidecar", tmp_path)
    with open_shell(project, tmp_path, dev) as shell:
        recipe = Recipe(shell, dev, server, "flask-shop")
        outputs = recipe.run([blocks[0], blocks[index], blocks[3]])
        recipe.check_promises(message_id_of(outputs[-2]))
    assert orders_in(project / "shop.db", "orders") == INVOICED


SINGLE_FILE = {
    "litestar": ("litestar_service", "uvicorn examples.litestar_service", "litestar-shop"),
    "quart-hypercorn": ("quart_service", "hypercorn examples.quart_service", "quart-shop"),
    "aiohttp": ("aiohttp_service", "examples.aiohttp_service", "aiohttp-shop"),
}


@pytest.mark.parametrize("framework", list(SINGLE_FILE))
def test_single_file_recipe(framework: str, dev: DevServer, tmp_path: Path) -> None:
    name, server, subscriber = SINGLE_FILE[framework]
    [steps] = docstring_blocks(EXAMPLES / f"{name}.py")
    with open_shell(tmp_path, tmp_path, dev) as shell:
        recipe = Recipe(shell, dev, server, subscriber)
        outputs = recipe.run([steps])
        recipe.check_promises(message_id_of(outputs[-2]))


def test_subscribe_output_does_not_depend_on_the_apps_logging(
    dev: DevServer, tmp_path: Path
) -> None:
    # Litestar sets the root logger to INFO when the app is built, i.e. when `subscribe --app`
    # imports it: httpx's line per request must not reach the CLI's output.
    env = clean_env(tmp_path) | {
        "IRONMQ_EMULATOR_HOST": f"127.0.0.1:{dev.port}",
        "IRONPUSH_SECRET_KEYS": "framework-test-key-0123456789abcdef",
    }
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "ironpush", "subscribe"),
            *("--app", "examples.litestar_service:router"),
            *("--base-url", "http://127.0.0.1:8000/ironmq"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "litestar-shop created" in proc.stdout
    assert "HTTP Request" not in proc.stdout + proc.stderr
    assert proc.stderr == ""
