"""``ironpush serve`` guards its uvicorn hook: with a uvicorn whose private protocol changed, it
serves with uvicorn's own protocol and says once which limits are lost.

Each changed uvicorn is simulated in a subprocess by patching the installed one (a module that
is gone, a method that is gone, a method that behaves differently) before ironpush looks.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from serve_process import ROOT, run_serve

from ironpush.cli._serve_protocol import BOUNDED, FALLBACK, hook_problem, protocol_for_uvicorn

LOST = ("--max-head-bytes", "--max-headers", "--timeout-request")

GONE_MODULE = """
import sys
sys.modules["uvicorn.protocols.http.httptools_impl"] = None
"""
GONE_METHOD = """
import uvicorn.protocols.http.httptools_impl as impl
del impl.HttpToolsProtocol.send_400_response
"""
CHANGED_BEHAVIOUR = """
import httptools
import uvicorn.protocols.http.httptools_impl as impl

def data_received(self, data):  # a parser error now just closes, without send_400_response
    try:
        self.parser.feed_data(data)
    except httptools.HttpParserError:
        self.transport.close()

impl.HttpToolsProtocol.data_received = data_received
"""


def test_the_installed_uvicorn_carries_the_bounded_protocol() -> None:
    assert hook_problem() is None
    assert protocol_for_uvicorn() == BOUNDED


@pytest.mark.parametrize(
    ("patch", "why"),
    [
        (GONE_MODULE, "cannot be extended"),
        (GONE_METHOD, "has no send_400_response"),
        (CHANGED_BEHAVIOUR, "answered headers with"),
    ],
    ids=["module-gone", "hook-gone", "behaviour-changed"],
)
def test_a_changed_uvicorn_falls_back_with_one_warning_naming_the_limits_lost(
    patch: str, why: str
) -> None:
    code = patch + textwrap.dedent(
        """
        import json, logging
        records = []
        logging.getLogger("ironpush.serve").addHandler(
            type("H", (logging.Handler,), {"emit": lambda self, r: records.append(r)})()
        )
        from ironpush.cli._serve_protocol import protocol_for_uvicorn
        chosen = protocol_for_uvicorn()
        print(json.dumps({"chosen": chosen, "warnings": [r.getMessage() for r in records]}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["chosen"] == FALLBACK
    [warning] = result["warnings"]
    assert why in warning
    assert all(flag in warning for flag in LOST)


def test_serve_with_a_changed_uvicorn_still_serves_without_the_lost_limits(
    tmp_path: Path,
) -> None:
    (tmp_path / "sitecustomize.py").write_text(GONE_METHOD)
    served = run_serve(tmp_path, "--max-headers", "8", pythonpath=(tmp_path,))
    try:
        fields = b"".join(b"X-F%d: v\r\n" % i for i in range(20))
        with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
            sock.sendall(
                b"GET /ironmq/_health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                + fields
                + b"\r\n"
            )
            answer = sock.recv(65536)
        # uvicorn's own protocol has no header-count limit: the request is served.
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:80]
    finally:
        served.stop()
    logs = served.logs()
    assert logs.count("WITHOUT ironpush's limits") == 1, logs
    assert "has no send_400_response" in logs


def test_serve_with_the_installed_uvicorn_keeps_its_limits_and_says_nothing(
    tmp_path: Path,
) -> None:
    served = run_serve(tmp_path, "--max-headers", "8")
    try:
        fields = b"".join(b"X-F%d: v\r\n" % i for i in range(20))
        with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
            sock.sendall(b"GET /ironmq/_health HTTP/1.1\r\nHost: t\r\n" + fields + b"\r\n")
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    finally:
        served.stop()
    assert "WITHOUT ironpush's limits" not in served.logs()
