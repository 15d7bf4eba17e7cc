"""The README runs as written: every ```python and ```sh block, in document order.

How each block runs (the README's Development section says the same to its readers):

- a Python block whose first line is a path comment (``# myservice/app.py``) is a file: it is
  written there (all of them first, so any block may use them); a ``test_*.py`` file is then
  run with pytest in a clean environment — no signing key, no dev server, no IronMQ settings —
  which is what the README promises about the test kit;
- any other Python block runs as a script, against the module's dev server
  (``IRONMQ_EMULATOR_HOST`` and ``IRONPUSH_SECRET_KEYS`` set);
- shell blocks run in one :class:`docsteps.ShellSession` (bash ``set -e``, one working
  directory, exports carried over, ``&`` jobs, ``# -> OUTPUT`` checks), with the documented
  ports 8080 and 8000 mapped to the dev server's and a free one;
- a block preceded by ``<!-- illustrative -->`` is skipped (the test command itself, long-running
  servers, Docker).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from docsteps import DEV_PORT, SERVICE_PORT, ShellSession, free_ports

from ironpush.devserver import DevServer

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ILLUSTRATIVE = "<!-- illustrative -->"
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
FILE_COMMENT = re.compile(r"^# ([\w./-]+\.py)\b")


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # 1-based line of the opening fence
    illustrative: bool
    section: str

    @property
    def path(self) -> str | None:
        """The file a Python block defines (its first line names it), else None."""
        found = FILE_COMMENT.match(self.code) if self.language == "python" else None
        return found.group(1) if found else None

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"{slug}-{self.language}-line{self.line}"


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block, with whether the comment lines just above it mark it illustrative."""
    lines = text.splitlines()
    blocks: list[Block] = []
    section, i = "top", 0
    while i < len(lines):
        if lines[i].startswith("## "):
            section = lines[i][3:]
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, language = opening.groups()
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        body = "\n".join(line.removeprefix(indent) for line in lines[i + 1 : end])
        above, k = [], i - 1
        while k >= 0 and lines[k].strip().startswith("<!--"):
            above.append(lines[k].strip())
            k -= 1
        blocks.append(Block(language, body + "\n", i + 1, ILLUSTRATIVE in above, section))
        i = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text())
RUN = [b for b in BLOCKS if b.language in ("python", "sh") and not b.illustrative]
SCRIPTS = [b for b in RUN if b.path is None or Path(b.path).name.startswith("test_")]


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer() as server:
        yield server


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reader's directory, holding every file the README defines."""
    path = tmp_path_factory.mktemp("readme")
    for block in RUN:
        if block.path is not None:
            (path / block.path).parent.mkdir(parents=True, exist_ok=True)
            (path / block.path).write_text(block.code)
    return path


def clean_env(home: Path) -> dict[str, str]:
    """A new user's environment: no IronMQ settings, no ironpush keys, ironpush on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRON") and k != "PYTHONPATH"}
    env["HOME"] = str(home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def shell(dev: DevServer, workdir: Path) -> Iterator[ShellSession]:
    [service_port] = free_ports(1)
    env = clean_env(workdir) | {
        "IRONMQ_EMULATOR_HOST": f"127.0.0.1:{dev.port}",
        "IRONPUSH_SECRET_KEYS": "readme-test-key-0123456789abcdef-0123",
    }
    ports = {DEV_PORT: dev.port, SERVICE_PORT: service_port}
    with ShellSession(workdir, env, ports=ports) as session:
        yield session


def test_the_readme_has_runnable_blocks_and_few_illustrative_ones() -> None:
    languages = {b.language for b in BLOCKS}
    assert {"python", "sh"} <= languages
    illustrative = [b for b in BLOCKS if b.illustrative]
    assert len(illustrative) <= 6, [b.id for b in illustrative]
    assert all(b.language in ("python", "sh", "") for b in BLOCKS)


def test_the_test_command_is_the_one_ci_runs() -> None:
    text = README.read_text()
    inside = text.split("<!-- test-command -->", 1)[1].split("<!-- /test-command -->", 1)[0]
    [block] = [b for b in readme_blocks(inside) if b.language == "sh"]
    assert block.code.strip() == (
        'python -m pip install -U "pip>=25.1" && pip install -e ".[all]" --group dev '
        "&& ruff check . && ruff format --check . && mypy --strict ironpush && pytest -q"
    )
    assert '-m "not slow"' in text  # the documented fast inner loop


@pytest.mark.parametrize("block", SCRIPTS, ids=[b.id for b in SCRIPTS])
def test_readme_block(block: Block, shell: ShellSession, workdir: Path) -> None:
    if block.language == "sh":
        shell.run_text(block.code)
        return
    if block.path is not None:  # a test file of the README: pytest, in a clean environment
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", block.path]
        env = clean_env(workdir)
    else:
        script = workdir / f"readme_block_{block.line}.py"
        script.write_text(block.code)
        command, env = [sys.executable, script.name], shell.env
    proc = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"{block.id}:\n{proc.stdout}\n{proc.stderr}\n{shell.logs()}"


def test_the_quick_start_says_to_keep_the_key_and_how_to_make_one() -> None:
    quick_start = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "export IRONPUSH_SECRET_KEYS=$(ironpush keygen)" in quick_start
    assert "**Keep the key**" in quick_start
    assert "export IRONMQ_EMULATOR_HOST=127.0.0.1:8080" in quick_start
