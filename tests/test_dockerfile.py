"""The Dockerfile cannot rot: its build, install, CMD and HEALTHCHECK steps run here.

No container engine runs on this machine, so the test replays the Dockerfile's own steps
(parsed from the file, not copied) in a fresh virtualenv: build the wheel, install it with
runtime dependencies only, copy the app directory, start the CMD with the ENV values, and run
the HEALTHCHECK command until it passes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def env_values() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in final_stage():
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def exec_form(prefix: str) -> list[str]:
    for word, rest in final_stage():
        if word == prefix == "HEALTHCHECK":
            return list(json.loads(rest.split(" CMD ", 1)[1]))
        if word == prefix:
            return list(json.loads(rest))
    raise AssertionError(f"no {prefix} in the Dockerfile")


def test_the_image_is_slim_non_root_and_healthchecked() -> None:
    words = [w for w, _ in final_stage()]
    assert "USER" in words
    assert "HEALTHCHECK" in words
    user = next(rest for w, rest in final_stage() if w == "USER")
    assert user not in ("root", "0")
    assert all("[test" not in rest and "[dev" not in rest for _, rest in instructions())


@pytest.mark.slow
def test_dockerfile_steps_build_install_serve_and_pass_the_healthcheck(tmp_path: Path) -> None:
    # 1. Build stage: the wheel, exactly as `RUN pip wheel ...` (paths mapped to tmp_path).
    build = next(rest for w, rest in instructions() if w == "RUN" and "pip wheel" in rest)
    wheels = tmp_path / "wheels"
    command = build.replace("/wheels", str(wheels)).split()
    subprocess.run(
        [sys.executable, "-m", *command[:-1], str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = wheels.glob("ironpush-*.whl")

    # 2. Final stage: a fresh interpreter environment with the wheel and runtime deps only.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    install = next(rest for w, rest in final_stage() if w == "RUN" and "pip install" in rest)
    pip_args = install.split("&&")[0].replace("/wheels/*.whl", str(wheel)).split()
    subprocess.run(
        [str(bin_dir / "python"), "-m", *pip_args], check=True, capture_output=True, timeout=600
    )
    installed = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    names = {p["name"].lower() for p in json.loads(installed)}
    assert "ironpush" in names
    assert not names & {"pytest", "mypy", "ruff", "hypothesis", "pytest-httpserver"}

    # 3. COPY the app directory (default build arg) into the working directory.
    app_dir = next(rest for w, rest in final_stage() if w == "ARG").split("=", 1)[1]
    workdir = tmp_path / "app"
    shutil.copytree(ROOT / app_dir, workdir / app_dir)

    # 4. CMD with the image's ENV (on a free port), then the HEALTHCHECK command until it passes.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        **env_values(),
        "IRONPUSH_HOST": "127.0.0.1",
        "IRONPUSH_PORT": port,
        "IRONPUSH_SECRET_KEYS": "docker-test-key-0123456789",
        "IRON_PROJECT_ID": "p",
        "IRON_TOKEN": "t",
    }
    server = subprocess.Popen(exec_form("CMD"), cwd=workdir, env=env)
    try:
        health = exec_form("HEALTHCHECK")
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "the CMD exited"
            check = subprocess.run(health, cwd=workdir, env=env, capture_output=True, timeout=10)
            if check.returncode == 0:
                break
            assert time.monotonic() < deadline, check.stderr.decode()
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
