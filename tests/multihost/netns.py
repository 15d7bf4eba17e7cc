"""Several "hosts" on one machine: network namespaces joined by a virtual LAN.

:func:`make_network` builds, when the process may (root, ``ip netns`` available):

- one namespace per host (``<run>-h1`` …), each with a veth ``eth0`` at ``10.200.0.1N/24``
  and its own hostname (the instance runs under ``unshare --uts``, so a claim's owner names a
  different host, as on real machines);
- a LAN namespace (``<run>-lan``) holding a bridge at ``10.200.0.1/24`` that every host's veth
  is plugged into. Nothing is added to the machine's own network: every address lives inside
  a namespace made here, and :meth:`Network.close` deletes them all.

The shared services (Redis, PostgreSQL, the dev server) stay on the machine's 127.0.0.1; the
gateway (:mod:`.gateway`) listens on the LAN address inside the LAN namespace and relays to
them, and the load balancer reaches the hosts through sockets made in the LAN namespace
(:func:`socket_in`). Where namespaces cannot be made, the hosts are the loopback addresses
127.0.0.2, .3, … and the services are reached directly (the fallback the issue allows).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import queue
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
SUBNET = "10.200.0"
LAN_ADDRESS = f"{SUBNET}.1"
_PREFIX = "ipx"
_networks = itertools.count(1)


@dataclass(frozen=True)
class Host:
    """One receiver host: where its instance listens and how a process is started on it."""

    index: int
    name: str  # the hostname its processes see
    address: str  # where its instance listens
    netns: str | None  # None: the machine's own network (loopback fallback)

    def argv(self, argv: list[str]) -> list[str]:
        """``argv`` run on this host: in its namespace, under its own hostname."""
        if self.netns is None:
            return argv
        return ["ip", "netns", "exec", self.netns, *with_hostname(self.name, argv)]


def with_hostname(name: str, argv: list[str]) -> list[str]:
    """``argv`` run under hostname ``name`` (its own UTS namespace; needs root): to the claims
    it makes, a process on another machine."""
    return ["unshare", "--uts", "sh", "-c", f'hostname {name} && exec "$@"', "sh", *argv]


@dataclass
class Network:
    """The hosts, the address they reach shared services at, and how to tear it all down."""

    kind: str  # "netns" or "loopback"
    hosts: list[Host]
    service_address: str  # where hosts reach Redis/Postgres/the dev server (via the gateway)
    lan_netns: str | None  # where the gateway listens and the balancer connects from
    namespaces: list[str] = field(default_factory=list)

    def describe(self) -> str:
        hosts = ", ".join(f"{h.name}@{h.address}" for h in self.hosts)
        return f"{self.kind}: {hosts}; services at {self.service_address}"

    def close(self) -> None:
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
        self.namespaces.clear()


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def remove_stale_namespaces() -> None:
    """Delete namespaces left by a run whose process is gone (a harness killed by a timeout)."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    for line in listing.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        pid = name[len(_PREFIX) :].split("-")[0].split("n")[0]
        if name.startswith(_PREFIX) and pid.isdigit() and not _alive(int(pid)):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def netns_possible() -> bool:
    return (
        os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("unshare") is not None
    )


def make_network(hosts: int, *, prefer_netns: bool = True) -> Network:
    """``hosts`` hosts in namespaces when possible, else on 127.0.0.2, 127.0.0.3, …"""
    if prefer_netns and netns_possible():
        remove_stale_namespaces()
        network = Network("netns", [], LAN_ADDRESS, None)
        try:
            _build_netns(network, hosts)
        except OSError:
            network.close()
            raise
        return network
    loopback = [
        Host(i, socket.gethostname(), f"127.0.0.{i + 1}", None) for i in range(1, hosts + 1)
    ]
    return Network("loopback", loopback, "127.0.0.1", None)


def _build_netns(network: Network, hosts: int) -> None:
    run = f"{_PREFIX}{os.getpid()}n{next(_networks)}"  # several networks may exist at once
    lan = f"{run}-lan"
    _ip("netns", "add", lan)
    network.namespaces.append(lan)
    network.lan_netns = lan
    _ip("-n", lan, "link", "set", "lo", "up")
    _ip("-n", lan, "link", "add", "br0", "type", "bridge")
    _ip("-n", lan, "addr", "add", f"{LAN_ADDRESS}/24", "dev", "br0")
    _ip("-n", lan, "link", "set", "br0", "up")
    for i in range(1, hosts + 1):
        ns = f"{run}-h{i}"
        _ip("netns", "add", ns)
        network.namespaces.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        # Made inside the LAN namespace with its peer moved straight into the host's: the
        # machine's own namespace never sees the link.
        _ip("-n", lan, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("-n", lan, "link", "set", f"p{i}", "master", "br0", "up")
        address = f"{SUBNET}.{10 + i}"
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        network.hosts.append(Host(i, f"host-{i}", address, ns))


# --------------------------------------------------------------------------- sockets in a namespace

_libc = ctypes.CDLL(None, use_errno=True)


def _enter(netns: str) -> None:
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({netns}): {os.strerror(errno)}")
    finally:
        os.close(fd)


class NetnsSockets:
    """Makes sockets inside ``netns`` from any thread.

    ``setns`` moves only the calling thread, and a socket belongs to the namespace it was made
    in for life, so one worker thread enters the namespace once and makes sockets on request;
    they are then used anywhere (an asyncio loop in the main thread).
    """

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self._requests: queue.Queue[tuple[Callable[[], object], queue.Queue[object]] | None]
        self._requests = queue.Queue()
        self._thread: threading.Thread | None = None
        if netns is not None:
            ready: queue.Queue[object] = queue.Queue()
            self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
            self._thread.start()
            error = ready.get(timeout=10)
            if isinstance(error, BaseException):
                raise error

    def _serve(self, ready: queue.Queue[object]) -> None:
        assert self.netns is not None
        try:
            _enter(self.netns)
        except OSError as exc:
            ready.put(exc)
            return
        ready.put(None)
        while (request := self._requests.get()) is not None:
            make, reply = request
            try:
                reply.put(make())
            except Exception as exc:
                reply.put(exc)

    def call(self, make: Callable[[], T]) -> T:
        """``make()`` run inside the namespace (directly when there is none)."""
        if self._thread is None:
            return make()
        reply: queue.Queue[object] = queue.Queue()
        self._requests.put((make, reply))
        value = reply.get(timeout=10)
        if isinstance(value, BaseException):
            raise value
        return value  # type: ignore[return-value]

    def tcp(self) -> socket.socket:
        """A fresh non-blocking TCP socket in the namespace."""
        sock = self.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        sock.setblocking(False)
        return sock

    def listener(self, host: str, port: int, backlog: int = 1024) -> socket.socket:
        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(backlog)
            sock.setblocking(False)
            return sock

        return self.call(make)

    def close(self) -> None:
        if self._thread is not None:
            self._requests.put(None)
            self._thread.join(timeout=5)
            self._thread = None


with contextlib.suppress(AttributeError):  # keep the module importable where libc lacks setns
    _libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
