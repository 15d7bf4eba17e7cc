"""``ironpush serve`` with what Django and Flask users give it: never a traceback.

The kind of app is told before anything starts (:func:`app_kind`): ASGI apps are served, a WSGI
app goes through a2wsgi with its module's router in front (``ironpush[wsgi]``) or is refused in
one line naming the recipes, and ``--lifespan on`` with an app that refuses the lifespan stops
the start in one line. The subprocess tests run the real command on the example projects.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2wsgi import WSGIMiddleware
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from flask import Flask
from framework_kit import clean_env, working_copy
from starlette.applications import Starlette
from support import free_port, wait_until

from ironpush import PushRouter
from ironpush._errors import ConfigError
from ironpush.cli._serve_apps import LifespanRequired, app_kind, servable
from ironpush.cli._serve_settings import AppSettings
from ironpush.receiver.mount import PushMount

KEY = "serve-apps-test-key-0123456789abcdef"


def wsgi_function(environ: Any, start_response: Any) -> list[bytes]:
    return []


async def asgi_function(scope: Any, receive: Any, send: Any) -> None:
    return None


class Asgi2:
    def __init__(self, scope: Any) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        return None


@pytest.mark.parametrize(
    ("app", "kind"),
    [
        (Flask("shop"), "wsgi"),
        (object.__new__(WSGIHandler), "wsgi"),  # get_wsgi_application() (no settings here)
        (wsgi_function, "wsgi"),
        (Flask("shop").wsgi_app, "wsgi"),
        (object.__new__(ASGIHandler), "asgi"),  # get_asgi_application()
        (Starlette(), "asgi"),
        (asgi_function, "asgi"),
        (WSGIMiddleware(wsgi_function), "asgi"),  # type: ignore[arg-type]
        (PushRouter(verify=False), "asgi"),
        (Asgi2, None),  # a class: uvicorn's ASGI 2 shape, not what serve takes
        (os, None),
        ("app", None),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else v,
)
def test_the_kind_of_app_is_told_before_start(app: Any, kind: str | None) -> None:
    assert app_kind(app) == kind


def test_a_wsgi_app_is_served_behind_a2wsgi_with_its_modules_router_in_front() -> None:
    module = type(sys)("shop")
    module.app, module.router = Flask("shop"), PushRouter(verify=False)
    served = servable(module.app, module, ref="shop:app", settings=AppSettings(wsgi_mount="/push"))
    assert isinstance(served, PushMount)
    assert (served.router, served.prefix) == (module.router, "/push")
    assert isinstance(served.app, WSGIMiddleware)


@pytest.mark.parametrize("routers", [0, 2])
def test_a_wsgi_app_without_exactly_one_router_is_refused_in_one_line(routers: int) -> None:
    module = type(sys)("shop")
    module.app = Flask("shop")
    for n in range(routers):
        setattr(module, f"router{n}", PushRouter(verify=False))
    with pytest.raises(ConfigError) as caught:
        servable(module.app, module, ref="shop:app", settings=AppSettings())
    message = str(caught.value)
    assert "\n" not in message
    assert "shop:app is a WSGI app (Flask app)" in message
    assert "sidecar" in message


def test_lifespan_on_guards_apps_but_not_push_mounts() -> None:
    module = type(sys)("svc")
    on = AppSettings(lifespan="on")
    assert isinstance(servable(asgi_function, module, ref="svc:app", settings=on), LifespanRequired)
    mount = PushMount(asgi_function, router=PushRouter(verify=False))
    assert servable(mount, module, ref="svc:app", settings=on) is mount
    assert servable(asgi_function, module, ref="svc:app", settings=AppSettings()) is asgi_function


def test_the_lifespan_option_takes_uvicorns_values_only() -> None:
    with pytest.raises(ValueError, match="must be one of auto, on, off"):
        AppSettings(lifespan="yes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the real command


@pytest.fixture
def django_project(tmp_path: Path) -> Path:
    project = working_copy("django_project", tmp_path)
    (project / "bare.py").write_text(
        "import os\n"
        "from django.core.asgi import get_asgi_application\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'shop.settings')\n"
        "application = get_asgi_application()  # no PushMount\n"
    )
    return project


def serve(cwd: Path, *args: str, extra_path: Path | None = None) -> subprocess.Popen[str]:
    env = clean_env(cwd) | {"IRONPUSH_SECRET_KEYS": KEY, "DJANGO_SETTINGS_MODULE": "shop.settings"}
    if extra_path is not None:
        env["PYTHONPATH"] = f"{extra_path}{os.pathsep}{env['PYTHONPATH']}"
    return subprocess.Popen(
        [sys.executable, "-m", "ironpush", "serve", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def refusal(cwd: Path, *args: str, extra_path: Path | None = None) -> str:
    """The one line ``serve`` exits with (status 1, nothing else on stderr)."""
    proc = serve(cwd, *args, "--port", str(free_port()), extra_path=extra_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    [line] = err.strip().splitlines()
    assert line.startswith("error: ")
    return line


@pytest.fixture
def no_a2wsgi(tmp_path: Path) -> Path:
    """A path entry on which ``import a2wsgi`` fails, as where ``ironpush[wsgi]`` is missing."""
    shadow = tmp_path / "without-a2wsgi"
    (shadow / "a2wsgi").mkdir(parents=True)
    (shadow / "a2wsgi" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'a2wsgi'\", name='a2wsgi')\n"
    )
    return shadow


@pytest.mark.slow
def test_serve_refuses_a_flask_app_without_the_wsgi_extra_naming_both_recipes(
    tmp_path: Path, no_a2wsgi: Path
) -> None:
    project = working_copy("flask_sidecar", tmp_path)
    line = refusal(project, "pushes:app", extra_path=no_a2wsgi)
    assert "pushes:app is a WSGI app (Flask app); ironpush serve runs ASGI apps" in line
    assert "ironpush serve MODULE:router" in line
    assert "pip install 'ironpush[wsgi]'" in line


@pytest.mark.slow
def test_serve_refuses_wsgi_apps_with_no_router_to_mount_and_things_that_are_no_app(
    tmp_path: Path, django_project: Path
) -> None:
    flask = working_copy("flask_sidecar", tmp_path / "flask")
    assert "shop has no PushRouter" in refusal(flask, "shop:app")
    line = refusal(django_project, "shop.wsgi:application")
    assert "shop.wsgi:application is a WSGI app (WSGIHandler (django.core.handlers.wsgi))" in line
    assert "shop.wsgi has no PushRouter" in line
    assert "shop.settings:DEBUG is a bool (builtins), not an app" in refusal(
        django_project, "shop.settings:DEBUG"
    )


@pytest.fixture
def served_bare_django(django_project: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    proc = serve(django_project, "bare:application", "--port", str(port))
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


@pytest.mark.slow
def test_serve_runs_a_django_asgi_app_that_refuses_the_lifespan(
    served_bare_django: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = served_bare_django

    def page() -> str | None:
        assert proc.poll() is None, proc.communicate()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
        except httpx.TransportError:
            return None

    assert wait_until(page, 60, "Django to answer") == "django shop"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in out + err
    assert "ASGI 'lifespan' protocol appears unsupported" in err  # --lifespan auto: uvicorn's


@pytest.mark.slow
def test_serve_lifespan_on_stops_a_django_app_that_refuses_it_in_one_line(
    django_project: Path,
) -> None:
    proc = serve(django_project, "bare:application", "--lifespan", "on", "--port", str(free_port()))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in out + err
    [line] = [line for line in err.splitlines() if "--lifespan on" in line]
    assert "bare:application does not take the ASGI lifespan (ValueError: Django can only" in line
    assert "wrap it in PushMount(app, router=router)" in line
    assert "Application startup failed" in err
