"""The Dockerfiles, fast: their rules checked and their steps replayed without a container engine.

``.ci/images.py`` builds both images with Docker and runs a push through the containers (CI
does, on every run); this module is the quick check any machine can run. Each Dockerfile's own
steps are parsed from the file (not copied) and replayed in a fresh virtualenv of the image's
Python version where the machine has one the image user can run (Debian's python3.11), as the
image's non-root user:

- ``Dockerfile`` (ironpush's image): its ``wheel`` stage's ``RUN`` builds the wheel from a
  build context filtered by ``.dockerignore`` (so the context holds what the build needs);
  the final stage's ``pip install`` takes that wheel, then the ENTRYPOINT + CMD (the dev
  server) runs until the HEALTHCHECK passes.
- ``examples/docker/Dockerfile`` (the template for a user's service), with the sample service
  in ``examples/docker`` (FastAPI, its own requirements.txt) and the wheel in its optional
  ``wheels/`` folder: the requirements are installed as the ``COPY``/``RUN`` pair does, the
  build context copied, the CMD started as uid 10001 with the image's ENV, the HEALTHCHECK
  must pass and the SQLite store must appear in the data volume.

Paths: ``/src``, ``/wheels``, ``/tmp/requirements``, ``/data`` and ``WORKDIR`` map to
directories of the test. The same wheel must carry the MIT LICENSE.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import wait_until

import ironpush

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "Dockerfile"
TEMPLATE = ROOT / "examples" / "docker" / "Dockerfile"
UID = 10001  # the image's user (useradd --uid)
DEV_ONLY = {"pytest", "mypy", "ruff", "hypothesis", "pytest-httpserver", "playwright"}


@dataclass(frozen=True)
class Dockerfile:
    """One stage's instructions as ``(INSTRUCTION, arguments)`` pairs (the last stage unless
    ``stage=`` names one)."""

    steps: list[tuple[str, str]]

    @classmethod
    def read(cls, path: Path, stage: str | None = None) -> Dockerfile:
        joined = re.sub(r"\s*\\\n\s*", " ", path.read_text())
        steps = []
        for line in joined.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                word, _, rest = line.partition(" ")
                steps.append((word.upper(), rest.strip()))
        starts = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
        if stage is None:
            return cls(steps[starts[-1] :])
        [start] = [i for i in starts if steps[i][1].endswith(f" AS {stage}")]
        end = next((i for i in starts if i > start), len(steps))
        return cls(steps[start:end])

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


def mapped(command: str, paths: Mapping[str, Path]) -> str:
    """``command`` with the image's absolute paths replaced by the test's directories."""
    for image_path, local in paths.items():
        command = re.sub(rf"(?<![\w/]){re.escape(image_path)}(?![\w-])", str(local), command)
    return command


def replay_run(
    command: str, *, bin_dir: Path, cwd: Path, env: Mapping[str, str] | None = None
) -> None:
    """A ``RUN`` (shell form) with the virtualenv's ``pip``/``python`` first on PATH."""
    proc = subprocess.run(
        ["sh", "-ec", command],
        cwd=cwd,
        env={**os.environ, **(env or {}), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"


# --------------------------------------------------------------------------- the rules


@pytest.mark.parametrize("path", [PROJECT, TEMPLATE], ids=["project", "template"])
def test_images_run_as_a_user_with_a_data_volume_and_a_healthcheck(path: Path) -> None:
    image = Dockerfile.read(path)
    assert image.one("USER") not in ("root", "0")
    assert f"--uid {UID}" in image.one("RUN", "useradd")
    assert "chown" in image.one("RUN", "useradd")  # /data belongs to that user
    assert json.loads(image.one("VOLUME")) == ["/data"]
    assert image.all("HEALTHCHECK")
    assert all("[test" not in rest and "[dev" not in rest for _, rest in image.steps)


@pytest.mark.parametrize("path", [PROJECT, TEMPLATE], ids=["project", "template"])
def test_images_build_with_the_classic_builder_and_no_registry_but_the_base(path: Path) -> None:
    text = path.read_text()
    assert "# syntax" not in text  # a BuildKit frontend would be pulled from a registry
    assert not re.search(r"--mount|--link|--chmod|<<", text)  # BuildKit-only features
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert set(froms) == {"python:3.11-slim"}  # what .ci/images.py makes without a registry


def test_project_image_builds_this_checkouts_wheel_or_a_release_from_pypi() -> None:
    wheel = Dockerfile.read(PROJECT, stage="wheel")
    assert wheel.args() == {"IRONPUSH_VERSION": ""}  # default: the build context
    assert wheel.one("COPY") == ". /src"
    build = wheel.one("RUN")
    assert "pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /src" in build
    assert '--dest /wheels "ironpush==${IRONPUSH_VERSION}"' in build
    image = Dockerfile.read(PROJECT)
    assert image.all("COPY") == ["--from=wheel /wheels /wheels"]  # no source tree in the image
    assert image.one("RUN", "pip install").startswith(
        "pip install --no-cache-dir /wheels/ironpush-"
    )
    deploying = (ROOT / "README.md").read_text().split("## Deploying", 1)[1].split("\n## ", 1)[0]
    assert "docker build -t ironpush ." in deploying
    assert f"docker build --build-arg IRONPUSH_VERSION={ironpush.__version__} -t ironpush ." in (
        deploying
    )


def test_template_installs_the_users_requirements_and_optional_wheels() -> None:
    image = Dockerfile.read(TEMPLATE)
    assert image.one("COPY", "requirements") == "requirements.txt wheels* /tmp/requirements/"
    install = image.one("RUN", "pip install")
    assert "--find-links /tmp/requirements -r /tmp/requirements/requirements.txt" in install
    assert image.env()["IRONPUSH_STORE"].startswith("/data/")
    requirements = (TEMPLATE.parent / "requirements.txt").read_text()
    assert f"ironpush[redis]=={ironpush.__version__}" in requirements.split()
    deploying = (ROOT / "README.md").read_text().split("## Deploying", 1)[1].split("\n## ", 1)[0]
    assert "pip wheel --no-deps -w examples/docker/wheels ." in deploying
    assert "docker build -t myservice examples/docker" in deploying


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


def docker_context(destination: Path) -> Path:
    """The root build context as Docker sends it: the tree filtered by ``.dockerignore``
    (its form here: ``*``, then ``!path`` exceptions, then excluded patterns)."""
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    kept = [rule[1:].rstrip("/") for rule in rules[1:] if rule.startswith("!")]
    dropped = [rule.removeprefix("**/") for rule in rules[1:] if not rule.startswith("!")]
    ignore = shutil.ignore_patterns(*dropped)
    destination.mkdir()
    for name in kept:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        else:
            shutil.copy(source, destination / name)
    assert not [
        p for p in destination.rglob("*") if any(fnmatch.fnmatch(p.name, d) for d in dropped)
    ]
    return destination


@pytest.fixture(scope="module")
def wheels(world: Path) -> Path:
    """The wheel stage's RUN (the checkout branch), replayed on the filtered build context."""
    stage = Dockerfile.read(PROJECT, stage="wheel")
    context = docker_context(world / "src")
    out = world / "wheels"
    paths = {"/src": context, "/wheels": out}
    replay_run(
        mapped(stage.one("RUN"), paths),
        bin_dir=Path(sys.executable).parent,
        cwd=world,
        env={"IRONPUSH_VERSION": stage.args()["IRONPUSH_VERSION"]},
    )
    return out


def image_python() -> str:
    """The interpreter the replays' virtualenvs are made from: one the image user can run.

    The image runs its ``FROM`` tag's Python (3.11) as uid 10001. The closest here is a
    system-wide Python of that version (Debian's ``/usr/bin/python3.11``); an interpreter
    under a private home (pyenv in ``/root``, mode 700) cannot be run by another user, so this
    test's own interpreter is the last choice."""
    [tag] = {
        line.split()[1] for line in PROJECT.read_text().splitlines() if line.startswith("FROM")
    }
    version = tag.split(":")[1].split("-")[0]
    candidates = [f"/usr/local/bin/python{version}", f"/usr/bin/python{version}", sys.executable]
    for candidate in candidates:
        if Path(candidate).exists():
            probe = subprocess.run(
                [candidate, "-c", "import ensurepip, venv"],
                user=UID,
                group=UID,
                extra_groups=[],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                return candidate
    pytest.fail(f"no Python the image user (uid {UID}) can run among {candidates}")


def fresh_python(where: Path) -> Path:
    subprocess.run([image_python(), "-m", "venv", str(where)], check=True, capture_output=True)
    return where / "bin"


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
    install = image.one("RUN", "pip install").split("&&")[0]
    replay_run(mapped(install, {"/wheels": wheels}), bin_dir=bin_dir, cwd=world)
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
    # COPY requirements.txt wheels* /tmp/requirements/ (with the wheel in wheels/)
    requirements = world / "requirements"
    requirements.mkdir()
    shutil.copy(context / "requirements.txt", requirements)
    for wheel in wheels.glob("*.whl"):
        shutil.copy(wheel, requirements)
    workdir = world / "app"
    workdir.mkdir()
    bin_dir = fresh_python(world / "service-venv")
    install = image.one("RUN", "pip install").split("&&")[0]
    replay_run(mapped(install, {"/tmp/requirements": requirements}), bin_dir=bin_dir, cwd=workdir)
    names = installed(bin_dir)
    assert {"ironpush", "fastapi", "hiredis"} <= names  # the user's own dependencies are in
    assert not names & DEV_ONLY
    shutil.copytree(  # COPY --chown=app:app . .
        context, workdir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
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
