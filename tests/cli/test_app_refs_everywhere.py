"""Every command that takes ``MODULE:ATTR`` (``serve``, ``subscribe --app``, ``listen --app``)
loads it with one loader: a reference that does not import gets the same line, the same hint
and the same exit status whichever command was given (2 for a module not found or a missing
attribute: a usage mistake; 1 for a module whose own import fails: the environment lacks a
package).

Before, ``subscribe --app nosuch:router`` said ``cannot import 'nosuch': No module named
'nosuch'`` with no hint and exit 1, while ``serve nosuch:app`` named the directory and the fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

COMMANDS = {
    "serve": ["serve"],
    "subscribe": ["subscribe", "--base-url", "https://api.example.com/ironmq", "--app"],
    "listen": ["listen", "--forward-to", "http://127.0.0.1:9/ironmq", "--app"],
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A service module (a router and a web app) and one importing a package not installed."""
    (tmp_path / "refsvc.py").write_text(
        textwrap.dedent(
            """
            from starlette.applications import Starlette
            from starlette.routing import Mount

            from ironpush import PushRouter

            router = PushRouter(secret_keys=["refsvc-key-0123456789abcdef0123456789"])

            @router.route("/orders", queue="refsvc-orders", subscriber="svc")
            def orders(msg):
                return None

            web = Starlette(routes=[Mount("/ironmq", app=router)])
            """
        )
    )
    (tmp_path / "needsdep.py").write_text("import ironpush_no_such_dependency\n")
    return tmp_path


def ironpush(
    command: str, ref: str, *extra: str, cwd: Path, pythonpath: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``ironpush COMMAND ... REF EXTRA`` in ``cwd`` (also its ``HOME``), to its end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IRON_", "IRONMQ_"))}
    env.update(HOME=str(cwd), IRON_TOKEN="t", IRON_PROJECT_ID="p")  # never reached: no calls
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run(
        [sys.executable, "-m", "ironpush", *COMMANDS[command], ref, *extra],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _answers(ref: str, cwd: Path) -> dict[str, tuple[int, list[str]]]:
    found = {}
    for command in COMMANDS:
        proc = ironpush(command, ref, cwd=cwd)
        found[command] = (proc.returncode, proc.stderr.splitlines())
    return found


@pytest.mark.parametrize(
    ("ref", "line"),
    [
        pytest.param(
            "nosuchmodule:router",
            "error: no module named 'nosuchmodule' (for nosuchmodule:router) from {project} — "
            "run from the directory that contains it, or add that directory to PYTHONPATH "
            "(e.g. PYTHONPATH=src)",
            id="module-not-found",
        ),
        pytest.param(
            "refsvc:nope",
            "error: 'refsvc' has no attribute 'nope' (for refsvc:nope) — apps in refsvc: router, "
            "web (e.g. `refsvc:router`)",
            id="missing-attribute-lists-the-apps",
        ),
    ],
)
def test_a_usage_mistake_gets_the_same_line_and_exit_2_in_every_command(
    project: Path, ref: str, line: str
) -> None:
    answers = _answers(ref, project)

    assert answers == dict.fromkeys(COMMANDS, (2, [line.format(project=project)]))


def test_a_module_whose_import_fails_names_the_package_and_exits_1_in_every_command(
    project: Path,
) -> None:
    answers = _answers("needsdep:router", project)

    codes = {code for code, _ in answers.values()}
    texts = {tuple(lines) for _, lines in answers.values()}
    assert codes == {1}
    [(line,)] = texts  # one line, the same in every command
    assert line.startswith("error: cannot import 'needsdep': No module named")
    assert line.endswith(
        f"— install 'ironpush_no_such_dependency' into the environment of {sys.executable}"
    )


def test_the_module_found_through_pythonpath_loads_in_every_command(
    project: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = os.pathsep.join(filter(None, [str(project), os.environ.get("PYTHONPATH")]))
    for command in ("subscribe", "listen"):
        proc = ironpush(command, "refsvc:web", cwd=elsewhere, pythonpath=path)
        # The app loaded: what stops it now is that a Starlette app is not a router.
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines() == [
            "error: refsvc:web is a Starlette, not a PushRouter — routers in refsvc: router "
            "(e.g. `refsvc:router`)"
        ]


def test_a_malformed_reference_is_a_usage_error_naming_its_option(project: Path) -> None:
    serve = ironpush("serve", "refsvc", cwd=project)
    subscribe = ironpush("subscribe", "refsvc", cwd=project)
    listen = ironpush("listen", "refsvc", cwd=project)

    assert serve.returncode == subscribe.returncode == listen.returncode == 2
    assert serve.stderr.startswith("error: Invalid value for MODULE:APP: expected MODULE:APP")
    for proc in (subscribe, listen):
        assert proc.stderr.startswith(
            "error: Invalid value for --app: expected MODULE:ROUTER, e.g. myservice.app:router, "
            "got 'refsvc'"
        )


def test_with_json_the_error_is_one_json_object_with_the_hint(project: Path) -> None:
    for command in ("subscribe", "listen"):
        proc = ironpush(command, "nosuchmodule:router", "--json", cwd=project)

        assert proc.returncode == 2, proc.stderr
        assert json.loads(proc.stderr) == {
            "error": f"no module named 'nosuchmodule' (for nosuchmodule:router) from {project}",
            "hint": "run from the directory that contains it, or add that directory to "
            "PYTHONPATH (e.g. PYTHONPATH=src)",
            "exit_code": 2,
        }
