"""A private Docker engine for CI, and the base image the Dockerfiles name, made without a
registry (used by ``.ci/images.py``; see its docstring).

- :class:`Docker`: a ``dockerd`` of its own (socket, data root and exec root in a directory
  given to it; ``--iptables=false --bridge=none``; overlay2, else vfs) and the ``docker``
  client pointed at it (the classic builder: ``DOCKER_BUILDKIT=0``).
- :func:`make_base_image`: ``python:3.11-slim`` from Debian bookworm by ``debootstrap`` (python3
  and a virtualenv at ``/usr/local``, so ``python``, ``pip`` and console scripts are on PATH as
  in the official image), imported with ``docker import``. The root filesystem is cached as a
  tarball in ``/var/cache/ironpush-ci`` (``IRONPUSH_CI_CACHE``); the host's own CA certificates
  (``/usr/local/share/ca-certificates``, e.g. an egress proxy's) are layered on top at each
  run, never cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("IRONPUSH_CI_CACHE", "/var/cache/ironpush-ci"))
MIRROR = os.environ.get("IRONPUSH_CI_DEBIAN_MIRROR", "http://deb.debian.org/debian")
BASE_TAG = "python:3.11-slim"  # what both Dockerfiles' FROM lines name
ROOTFS_RECIPE = "bookworm minbase python3 python3-venv ca-certificates, venv at /usr/local, v1"
HOST_CAS = Path("/usr/local/share/ca-certificates")
DOCKERFILES = (ROOT / "Dockerfile", ROOT / "examples" / "docker" / "Dockerfile")

SECRETS: list[str] = []  # masked wherever a command line is printed


def mask(text: str) -> str:
    for secret in SECRETS:
        text = text.replace(secret, "***")
    return text


def log(text: str) -> None:
    print(f"images: {mask(text)}", flush=True)


def run(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 600, quiet: bool = False
) -> str:
    """Run a command; its stdout. A failure raises with the command's output."""
    words = [str(a) for a in args]
    if not quiet:
        log("$ " + shlex.join(words))
    proc = subprocess.run(
        words, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            mask(
                f"`{shlex.join(words)}` exited {proc.returncode}\n{proc.stdout[-4000:]}"
                f"\n{proc.stderr[-4000:]}"
            )
        )
    return proc.stdout


def wait_until(what: str, check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.3)


@contextlib.contextmanager
def phase(name: str, timings: dict[str, float]) -> Iterator[None]:
    start = time.monotonic()
    log(f"--- {name}")
    try:
        yield
    finally:
        timings[name] = time.monotonic() - start
        log(f"--- {name}: {timings[name]:.1f} s")


# --------------------------------------------------------------------------- dockerd


class Docker:
    """A private dockerd and the ``docker`` client pointed at it."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.env = {
            **os.environ,
            "DOCKER_HOST": f"unix://{state}/docker.sock",
            "DOCKER_BUILDKIT": "0",  # the classic builder: no frontend image to pull
            "DOCKER_CONFIG": str(state / "client"),
        }
        self.daemon: subprocess.Popen[bytes] | None = None
        self.driver = ""

    def __call__(self, *args: str | Path, timeout: float = 600, quiet: bool = False) -> str:
        return run("docker", *args, env=self.env, timeout=timeout, quiet=quiet)

    def responds(self) -> bool:
        assert self.daemon is not None
        if self.daemon.poll() is not None:
            raise RuntimeError(f"dockerd exited:\n{self.daemon_log()}")
        proc = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            env=self.env,
            capture_output=True,
            timeout=30,
            check=False,
        )
        return proc.returncode == 0

    def daemon_log(self) -> str:
        path = self.state / "dockerd.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def start(self) -> None:
        for driver in ("overlay2", "vfs"):
            try:
                self._start(driver)
            except RuntimeError as exc:
                log(f"dockerd with {driver} did not start: {str(exc)[-500:]}")
                self.stop()
                continue
            self.driver = driver
            log(
                f"dockerd {self('version', '--format', '{{.Server.Version}}', quiet=True).strip()}"
                f" ({driver}) on {self.env['DOCKER_HOST']}"
            )
            return
        raise RuntimeError("dockerd could not start (see above)")

    def _start(self, driver: str) -> None:
        for sub in ("data", "exec", "client"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        command = [
            "dockerd",
            f"--host={self.env['DOCKER_HOST']}",
            f"--data-root={self.state / 'data'}",
            f"--exec-root={self.state / 'exec'}",
            f"--pidfile={self.state / 'dockerd.pid'}",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            f"--storage-driver={driver}",
        ]
        with (self.state / "dockerd.log").open("ab") as out:
            self.daemon = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until("dockerd to answer", self.responds, 60)

    def remove_everything(self) -> None:
        """Containers and volumes this daemon holds (all of them are this run's)."""
        if self.daemon is None or self.daemon.poll() is not None:
            return
        containers = self("ps", "-aq", quiet=True).split()
        if containers:
            self("rm", "-f", "-v", *containers, timeout=120, quiet=True)
        volumes = self("volume", "ls", "-q", quiet=True).split()
        if volumes:
            self("volume", "rm", "-f", *volumes, timeout=120, quiet=True)

    def stop(self) -> None:
        daemon, self.daemon = self.daemon, None
        if daemon is None or daemon.poll() is not None:
            return
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=30)


def unmount_under(path: Path) -> None:
    """Leftover mounts below ``path`` (a dockerd killed mid-way), deepest first."""
    mounts = [
        line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if line.strip()
    ]
    for mount in sorted((m for m in mounts if m.startswith(f"{path}/")), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


# --------------------------------------------------------------------------- the base image


def from_tags() -> set[str]:
    """The images both Dockerfiles start FROM (build stages named with AS excluded)."""
    tags, stages = set(), set()
    for path in DOCKERFILES:
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] == ["FROM"]:
                if words[1] not in stages:
                    tags.add(words[1])
                if len(words) == 4 and words[2].upper() == "AS":
                    stages.add(words[3])
    return tags


def rootfs_tarball(work: Path) -> Path:
    """The cached root filesystem, made by debootstrap when the cache lacks it."""
    key = hashlib.sha256(f"{ROOTFS_RECIPE} {MIRROR}".encode()).hexdigest()[:12]
    cached = CACHE / f"rootfs-bookworm-python3-{key}.tar"
    if cached.exists():
        log(f"base root filesystem from the cache: {cached}")
        return cached
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is missing: apt-get install debootstrap")
    rootfs = work / "rootfs"
    run(
        "debootstrap",
        "--variant=minbase",
        "--include=python3,python3-venv,ca-certificates",
        "bookworm",
        rootfs,
        MIRROR,
        timeout=1200,
    )
    # The official image's interpreter lives in /usr/local with pip beside it; a virtualenv
    # there gives the same PATH layout and lets `pip install` write (Debian's own python3 is
    # externally managed).
    run("chroot", rootfs, "/usr/bin/python3", "-m", "venv", "/usr/local")
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (rootfs / junk).glob("*"):
            if item.is_file():
                item.unlink()
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    run("tar", "--numeric-owner", "-C", rootfs, "-cf", partial, ".")
    partial.rename(cached)
    shutil.rmtree(rootfs, ignore_errors=True)
    log(f"base root filesystem cached: {cached} ({cached.stat().st_size >> 20} MiB)")
    return cached


def make_base_image(docker: Docker, work: Path) -> None:
    tags = from_tags()
    if tags != {BASE_TAG}:
        raise RuntimeError(
            f"the Dockerfiles start FROM {sorted(tags)}; this script makes only "
            f"{BASE_TAG} (Debian bookworm's python3 is 3.11)"
        )
    tarball = rootfs_tarball(work)
    rootfs_tag = "ironpush-ci/rootfs:bookworm"
    docker(
        "import",
        "--change", "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change", "ENV LANG=C.UTF-8",
        "--change", 'CMD ["python3"]',
        tarball,
        rootfs_tag,
    )  # fmt: skip
    context = work / "trust"
    context.mkdir()
    cas = sorted(HOST_CAS.glob("*.crt")) if HOST_CAS.is_dir() else []
    for ca in cas:
        shutil.copy(ca, context / ca.name)
    # pip 23 (bookworm's) verifies with its own certifi bundle unless told: point it at the
    # system bundle that now holds the host's CAs.
    steps = [f"FROM {rootfs_tag}"]
    if cas:
        steps += [
            "COPY *.crt /usr/local/share/ca-certificates/",
            "RUN update-ca-certificates"
            " && printf '[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n' > /etc/pip.conf",
        ]
    (context / "Dockerfile").write_text("\n".join(steps) + "\n")
    docker("build", "--network", "host", "-q", "-t", BASE_TAG, context)
    log(f"{BASE_TAG} = {rootfs_tag} + {len(cas)} host CA certificate(s)")
