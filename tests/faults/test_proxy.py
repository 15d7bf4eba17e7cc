"""The fault proxy itself: it relays, injects 503s, and drops connections before/after."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ironpush.server_thread import ServerThread

from .proxy import BurstPlan, Fault, FaultProxy


def make_app(seen: list[str]) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        seen.append(f"{request.method} {request.url.path} {body.decode()}")
        return JSONResponse({"got": body.decode()})

    return Starlette(routes=[Route("/{p:path}", echo, methods=["GET", "POST", "DELETE"])])


@pytest.mark.parametrize(
    ("fault", "reaches_server", "client_sees"),
    [
        (Fault.PASS, True, 200),
        (Fault.STATUS_503, False, 503),
        (Fault.DROP_BEFORE, False, "error"),
        (Fault.DROP_AFTER, True, "error"),
    ],
)
def test_each_fault_does_what_it_says(
    fault: Fault, reaches_server: bool, client_sees: int | str
) -> None:
    seen: list[str] = []
    with (
        ServerThread(make_app(seen)) as server,
        FaultProxy(server.port, lambda m, p: fault if p.startswith("/x") else Fault.PASS) as proxy,
        httpx.Client(base_url=proxy.url) as client,
    ):
        assert client.post("/warmup", content=b"w").json() == {"got": "w"}
        try:
            outcome: int | str = client.request(
                "DELETE", "/x/messages/1", content=b"abc"
            ).status_code
        except httpx.TransportError:
            outcome = "error"
        assert outcome == client_sees
        assert ("DELETE /x/messages/1 abc" in seen) is reaches_server
        # The proxy keeps serving after any fault.
        assert client.get("/after").status_code == 200
        assert proxy.counts[fault] >= 1


def test_burst_plan_is_deterministic_and_only_hits_matching_requests() -> None:
    a, b = BurstPlan(period=5, burst=2, seed=1), BurstPlan(period=5, burst=2, seed=1)
    seq_a = [a("DELETE", f"/q/messages/{i}") for i in range(20)]
    seq_b = [b("DELETE", f"/q/messages/{i}") for i in range(20)]
    assert seq_a == seq_b
    assert sum(f is not Fault.PASS for f in seq_a) == 8  # 2 of every 5
    assert a("GET", "/q/messages/1") is Fault.PASS
    assert a("DELETE", "/q/subscribers") is Fault.PASS
