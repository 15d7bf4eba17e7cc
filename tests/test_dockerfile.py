"""The Dockerfiles cannot rot: their install, copy, CMD and HEALTHCHECK steps run here.

No container engine runs on this machine, so the tests replay each Dockerfile's own steps
(parsed from the file, not copied) in a fresh virtualenv, as the image's non-root user:

- ``Dockerfile`` (ironpush's image): ``pip install "ironpush==${IRONPUSH_VERSION}"`` resolves
  to the wheel built from this tree (it stands in for the published one), then the
  ENTRYPOINT + CMD (the dev server) runs until the HEALTHCHECK passes.
- ``examples/docker/Dockerfile`` (the template for a user's service), with the sample service
  in ``examples/docker`` (FastAPI, its own requirements.txt): the requirements are installed,
  the build context copied, the CMD started as uid 10001 with the image's ENV, the
  HEALTHCHECK must pass and the SQLite store must appear in the data volume.

Paths: ``/data`` and ``WORKDIR`` map to directories of the test; pip finds the ironpush wheel
through ``PIP_FIND_LINKS`` (an index setting, not a change to the command). The same wheel
must carry the MIT LICENSE.
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
import tempfile
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import wait_until

import ironpush

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "Dockerfile"
TEMPLATE = ROOT / "examples" / "docker" / "Dockerfile"
UID = 10001  # the image's user (useradd --uid)
DEV_ONLY = {"pytest", "mypy", "ruff", "hypothesis", "pytest-httpserver"}


@dataclass(frozen=True)
class Dockerfile:
    """The final stage's instructions as ``(INSTRUCTION, arguments)`` pairs."""

    steps: list[tuple[str, str]]

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        joined = re.sub(r"\\\n\s*", " ", path.read_text())
        steps = []
        for line in joined.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                word, _, rest = line.partition(" ")
                steps.append((word.upper(), rest.strip()))
        last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
        return cls(steps[last_from:])

    def all(self, word: str) -> list[str]:
        return [rest for w, rest in self.steps if w == word]

    def one(self, word: str, containing: str = "") -> str:
        [found] = [rest for rest in self.all(word) if containing in rest]
        return found

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for rest in self.all("ENV"):
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
        return env

    def args(self) -> dict[str, str]:
        return dict(rest.split("=", 1) for rest in self.all("ARG"))

    def exec_form(self, word: str) -> list[str]:
        rest = self.one(word)
        if word == "HEALTHCHECK":
            rest = rest.split(" CMD ", 1)[1]
        return list(json.loads(rest))

    def command(self) -> list[str]:
        entry = self.exec_form("ENTRYPOINT") if self.all("ENTRYPOINT") else []
        return entry + self.exec_form("CMD")


@pytest.mark.parametrize("path", [PROJECT, TEMPLATE], ids=["project", "template"])
def test_images_run_as_a_user_with_a_data_volume_and_a_healthcheck(path: Path) -> None:
    image = Dockerfile.read(path)
    assert image.one("USER") not in ("root", "0")
    assert f"--uid {UID}" in image.one("RUN", "useradd")
    assert "chown" in image.one("RUN", "useradd")  # /data belongs to that user
    assert json.loads(image.one("VOLUME")) == ["/data"]
    assert image.all("HEALTHCHECK")
    assert all("[test" not in rest and "[dev" not in rest for _, rest in image.steps)


def test_project_image_installs_the_published_wheel_of_this_version() -> None:
    image = Dockerfile.read(PROJECT)
    assert image.args()["IRONPUSH_VERSION"] == ironpush.__version__
    assert not image.all("COPY")  # nothing from the source tree: the wheel only
    assert image.one("RUN", "pip install").endswith('"ironpush==${IRONPUSH_VERSION}"')


def test_template_installs_the_users_requirements_and_stores_under_data() -> None:
    image = Dockerfile.read(TEMPLATE)
    assert image.one("RUN", "pip install").endswith("-r requirements.txt")
    assert image.env()["IRONPUSH_STORE"].startswith("/data/")
    assert image.one("COPY", "requirements") == "requirements.txt ./"
    requirements = (TEMPLATE.parent / "requirements.txt").read_text()
    assert f"ironpush=={ironpush.__version__}" in requirements


# --------------------------------------------------------------------------- the replays


@pytest.fixture(scope="module")
def world() -> Iterator[Path]:
    """A directory the non-root user can traverse (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="ironpush-docker-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def wheels(world: Path) -> Path:
    """ironpush's wheel, built from this tree: what the project publishes."""
    out = world / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def fresh_python(where: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(where)
    return where / "bin"


def replay_pip(bin_dir: Path, run: str, *, cwd: Path, wheels: Path, args: dict[str, str]) -> None:
    """``RUN pip install ...`` with the image's ARG values, in the fresh environment."""
    words = shlex.split(run.split("&&")[0])
    words = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], w) for w in words]
    assert words[0] == "pip"
    env = {**os.environ, "PIP_FIND_LINKS": f"{os.environ.get('PIP_FIND_LINKS', '')} {wheels}"}
    subprocess.run(
        [str(bin_dir / "python"), "-m", *words],
        check=True,
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def installed(bin_dir: Path) -> set[str]:
    listing = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {p["name"].lower() for p in json.loads(listing)}


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def as_image_user(command: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        user=UID,
        group=UID,
        extra_groups=[],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def healthcheck_passes(
    check: list[str], server: subprocess.Popen[str], *, cwd: Path, env: dict[str, str]
) -> None:
    """Run the HEALTHCHECK command (as the image user) until it exits 0."""
    last: list[str] = []

    def healthy() -> bool:
        assert server.poll() is None, (
            f"the CMD exited: {server.stdout.read() if server.stdout else ''}"
        )
        proc = subprocess.run(
            check, cwd=cwd, env=env, user=UID, group=UID, capture_output=True, text=True, timeout=10
        )
        last[:] = [proc.stderr[-500:]]
        return proc.returncode == 0

    wait_until(healthy, 90, "the HEALTHCHECK to pass", interval=0.2, report=lambda: last)


def stop(server: subprocess.Popen[str]) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


def user_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    os.chown(path, UID, UID)  # what `mkdir -p /data && chown ...` does in the image
    return path


@pytest.mark.slow
def test_project_image_steps_serve_the_dev_server_as_the_image_user(
    world: Path, wheels: Path
) -> None:
    image = Dockerfile.read(PROJECT)
    bin_dir = fresh_python(world / "project-venv")
    replay_pip(
        bin_dir, image.one("RUN", "pip install"), cwd=world, wheels=wheels, args=image.args()
    )
    names = installed(bin_dir)
    assert "ironpush" in names
    assert not names & DEV_ONLY

    data = user_dir(world / "project-data")
    port = free_port()
    command = [
        str(bin_dir / w) if w == "ironpush" else w.replace("/data", str(data))
        for w in image.command()
    ]
    command = [{"8080": port, "0.0.0.0": "127.0.0.1"}.get(w, w) for w in command]
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(data),
        **image.env(),
    }
    server = as_image_user(command, cwd=data, env=env)
    try:
        health = [w.replace(":8080/", f":{port}/") for w in image.exec_form("HEALTHCHECK")]
        healthcheck_passes(health, server, cwd=data, env=env)
        assert (data / "dev.sqlite").stat().st_uid == UID  # the dev server's state, in /data
    finally:
        stop(server)


@pytest.fixture(scope="module")
def service_image(world: Path, wheels: Path) -> tuple[Dockerfile, Path, Path]:
    """The template's install and COPY steps for the sample service: (image, bin, workdir)."""
    image = Dockerfile.read(TEMPLATE)
    context = TEMPLATE.parent
    workdir = world / "app"
    workdir.mkdir()
    shutil.copy(context / "requirements.txt", workdir)  # COPY requirements.txt ./
    bin_dir = fresh_python(world / "service-venv")
    replay_pip(bin_dir, image.one("RUN", "pip install"), cwd=workdir, wheels=wheels, args={})
    names = installed(bin_dir)
    assert {"ironpush", "fastapi"} <= names  # the user's own dependency is in
    assert not names & DEV_ONLY
    shutil.copytree(context, workdir, dirs_exist_ok=True)  # COPY --chown=app:app . .
    for path in [workdir, *workdir.rglob("*")]:
        os.chown(path, UID, UID)
    return image, bin_dir, workdir


def service_env(image: Dockerfile, bin_dir: Path, data: Path, **overrides: str) -> dict[str, str]:
    values = {k: v.replace("/data", str(data)) for k, v in image.env().items()}
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(data),
        **values,
        "IRONPUSH_HOST": "127.0.0.1",
        "IRONPUSH_PORT": free_port(),
        "IRONPUSH_SECRET_KEYS": "docker-test-key-0123456789abcdef-0123",
        "IRON_PROJECT_ID": "p",
        "IRON_TOKEN": "t",
        **overrides,
    }


@pytest.mark.slow
def test_template_steps_serve_a_fastapi_service_as_the_image_user(
    world: Path, service_image: tuple[Dockerfile, Path, Path]
) -> None:
    image, bin_dir, workdir = service_image
    data = user_dir(world / "service-data")
    env = service_env(image, bin_dir, data)
    server = as_image_user(image.command(), cwd=workdir, env=env)
    try:
        healthcheck_passes(image.exec_form("HEALTHCHECK"), server, cwd=workdir, env=env)
        store = data / "ironpush.db"
        assert store.exists(), sorted(p.name for p in data.iterdir())
        assert store.stat().st_uid == UID
    finally:
        stop(server)


@pytest.mark.slow
def test_template_refuses_several_workers_with_an_unshared_store(
    world: Path, service_image: tuple[Dockerfile, Path, Path]
) -> None:
    image, bin_dir, workdir = service_image
    data = user_dir(world / "refused-data")
    env = service_env(image, bin_dir, data, IRONPUSH_WORKERS="2", IRONPUSH_STORE="memory")
    proc = subprocess.run(
        image.command(),
        cwd=workdir,
        env=env,
        user=UID,
        group=UID,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: --workers 2: a PushRouter of myservice.app:app keeps")
    assert "memory store" in proc.stderr


def test_the_wheel_carries_the_mit_license(wheels: Path) -> None:
    [wheel] = wheels.glob("ironpush-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        [license_name] = [
            n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")
        ]
        text = archive.read(license_name).decode()
        metadata = archive.read(license_name.split("/")[0] + "/METADATA").decode()
    assert text == (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "License-Expression: MIT" in metadata.splitlines()
