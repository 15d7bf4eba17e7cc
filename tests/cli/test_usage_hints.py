"""Mistakes on the command line get one line naming the fix: a typo in a closed set of values
("Did you mean …?", exit 2), a ``MODULE:APP`` that does not import, a busy port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import click
import pytest
from observe_cli import cli, dev

from ironpush.cli import main
from ironpush.cli._choice import Choice, suggestion

__all__ = ["cli", "dev"]  # fixtures


def ironpush(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ironpush", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(cwd), **(env or {})},
        check=False,
    )


# --------------------------------------------------------------------------- closed sets


def test_a_misspelt_outcome_is_a_usage_error_that_suggests_the_word(cli: Any) -> None:
    result = cli("tail", "--outcome", "delivred", code=2)

    [line] = result.stderr.splitlines()
    assert line.startswith("error: Invalid value for '--outcome': 'delivred' is not one of")
    assert line.endswith("Did you mean 'delivered'? — see `ironpush tail --help`")


def test_a_value_close_to_nothing_gets_the_list_without_a_guess(cli: Any) -> None:
    result = cli("tail", "--outcome", "zzz", code=2)

    assert "'zzz' is not one of 'delivered', 'deferred'" in result.stderr
    assert "Did you mean" not in result.stderr


@pytest.mark.parametrize(
    ("args", "meant"),
    [
        (["serve", "app:app", "--log-level", "inof"], "info"),
        (["serve", "app:app", "--lifespan", "of"], "off"),
        (["dev", "--log-level", "wraning"], "warning"),
        (["subscribe", "q", "http://127.0.0.1:9/x", "--type", "multicst"], "multicast"),
    ],
)
def test_every_command_suggests_the_value_meant(cli: Any, args: list[str], meant: str) -> None:
    result = cli(*args, code=2)

    assert f"Did you mean {meant!r}?" in result.stderr


def _options(command: click.Command) -> list[tuple[str, click.Parameter]]:
    found = [(command.name or "", p) for p in command.params]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            found += [(f"{command.name} {n}", p) for n, p in _options(sub)]
    return found


def test_every_option_with_a_closed_set_of_values_suggests() -> None:
    closed = [(name, p) for name, p in _options(main) if isinstance(p.type, click.Choice)]

    assert len(closed) >= 5  # tail --outcome, dev/serve --log-level, --lifespan, --type
    assert [(n, p.name) for n, p in closed if not isinstance(p.type, Choice)] == []


def test_suggestion_ignores_case_and_gives_up_on_nonsense() -> None:
    assert suggestion("ERROR-QUEU", ["error-queue", "expired"]) == "error-queue"
    assert suggestion("xyz", ["error-queue", "expired"]) is None


# --------------------------------------------------------------------------- serve MODULE:APP


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory with a service module (two apps in it) and one that imports a missing
    package."""
    (tmp_path / "hintsvc.py").write_text(
        textwrap.dedent(
            """
            from starlette.applications import Starlette

            web = Starlette()
            helper = 42

            async def raw(scope, receive, send):
                pass
            """
        )
    )
    (tmp_path / "needsdep.py").write_text("import ironpush_no_such_dependency\n")
    return tmp_path


def test_serve_a_module_that_is_not_found_names_where_it_looked(project: Path) -> None:
    proc = ironpush("serve", "nosuchmodule:app", cwd=project)

    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: no module named 'nosuchmodule' (for nosuchmodule:app) from {project} — run "
        "from the directory that contains it, or add that directory to PYTHONPATH "
        "(e.g. PYTHONPATH=src)"
    ]


def test_serve_a_missing_package_in_a_dotted_module_is_not_found_too(project: Path) -> None:
    proc = ironpush("serve", "nosuchpkg.app:app", cwd=project)

    assert proc.returncode == 2, proc.stderr
    assert "no module named 'nosuchpkg'" in proc.stderr


def test_serve_a_missing_attribute_lists_the_apps_of_the_module(project: Path) -> None:
    proc = ironpush("serve", "hintsvc:app", cwd=project)

    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: 'hintsvc' has no attribute 'app' (for hintsvc:app) — apps in hintsvc: web, raw "
        "(e.g. `hintsvc:web`)"
    ]


def test_serve_the_module_found_by_pythonpath_then_serves(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = ironpush("serve", "hintsvc:nope", cwd=elsewhere, env={"PYTHONPATH": str(project)})

    assert proc.returncode == 2
    assert "apps in hintsvc: web, raw" in proc.stderr  # the hint's fix works


def test_serve_a_module_whose_own_import_fails_names_the_missing_package(project: Path) -> None:
    proc = ironpush("serve", "needsdep:app", cwd=project)

    assert proc.returncode == 1, proc.stderr  # not a usage mistake: the environment lacks it
    [line] = proc.stderr.splitlines()
    assert line.startswith("error: cannot import 'needsdep': No module named")
    assert line.endswith(
        f"— install 'ironpush_no_such_dependency' into the environment of {sys.executable}"
    )


# --------------------------------------------------------------------------- dev --port


def test_dev_on_a_busy_port_names_the_port_and_the_fix(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        proc = ironpush("dev", "--port", str(port), cwd=tmp_path)

    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use (another `ironpush dev`?) — pass "
        "another --port, or --port 0 for a free one"
    ]
