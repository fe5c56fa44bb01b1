"""The simulator posts each recipient's callbacks in turn, so a seed means one order of arrival."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opensms_async.testing import RunningSimulator, run_simulator, serve

pytestmark = pytest.mark.integration

SENDER = "tel:+3212345"
REQUESTS = "/outbound/tel%3A%2B3212345/requests"
HELD, OTHER = "tel:+33612345671", "tel:+33612345672"
WAIT = 30.0
"""A hang guard: nothing here waits on a clock."""


@asynccontextmanager
async def sending(callback_url: str) -> AsyncIterator[RunningSimulator]:
    """A simulator whose callbacks go to ``callback_url``, after one send to HELD and OTHER."""
    async with (
        run_simulator(seed=11, step_delay=(0.01, 0.03)) as sim,
        httpx.AsyncClient(
            base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=30
        ) as api,
    ):
        callback = {"url": "https://me.example/cb", "securityToken": "r2k5hq3"}
        assert (await api.post("/outbound/subscriptions", json={"callback": callback})).is_success
        sim.simulator.route_callbacks_to(callback_url)  # BICS posts to https only
        body = {
            "outboundSMSMessageRequest": {
                "address": [HELD, OTHER],
                "senderAddress": SENDER,
                "outboundSMSTextMessage": {"message": "Hello"},
            }
        }
        assert (await api.post(REQUESTS, json=body)).status_code == 201
        yield sim


async def test_a_recipients_next_callback_waits_for_the_answer_to_the_one_before() -> None:
    """The receiver holds HELD's first callback until OTHER's two callbacks have both arrived
    (its next state was due 10 to 30 ms after it): nothing more of HELD is posted meanwhile, and
    OTHER's go on. Concurrent posts of one recipient could arrive out of their planned order on a
    loaded machine; posted in turn, they cannot."""
    seen: list[tuple[str, str, str]] = []  # (address, status, arrived | answered)
    other_done = asyncio.Event()

    async def endpoint(request: Request) -> Response:
        info = (await request.json())["deliveryInfoList"]["deliveryInfo"][0]
        address, status = info["address"], info["deliveryStatus"]
        seen.append((address, status, "arrived"))
        if sum(1 for a, _, e in seen if a == OTHER and e == "arrived") == 2:
            other_done.set()
        if address == HELD and len([a for a, _, _ in seen if a == HELD]) == 1:
            async with asyncio.timeout(WAIT):
                await other_done.wait()
        seen.append((address, status, "answered"))
        return Response(status_code=204)

    app = Starlette(routes=[Route("/cb", endpoint, methods=["POST"])])
    async with serve(app) as receiver, sending(f"{receiver.url}/cb") as sim:
        await sim.simulator.settle(timeout=WAIT)

    assert [(s, e) for a, s, e in seen if a == HELD] == [
        ("DeliveredToNetwork", "arrived"),
        ("DeliveredToNetwork", "answered"),
        ("DeliveredToTerminal", "arrived"),
        ("DeliveredToTerminal", "answered"),
    ]
    assert other_done.is_set()  # OTHER's callbacks were posted while HELD's first was held


async def test_a_callback_that_cannot_be_posted_is_lost_alone_and_the_simulator_settles() -> None:
    """A callback URL httpx refuses outright (port 99999: not an ``httpx.HTTPError``) loses
    every callback, each recorded as failed with the error's name, and the simulator still
    settles: one failure does not stop a recipient's later callbacks or leave them pending."""
    async with sending("http://127.0.0.1:99999/cb") as sim:
        await sim.simulator.settle(timeout=WAIT)
        attempts = sim.simulator.callback_attempts
        planned = [p for p in sim.simulator.planned_callbacks if not p.dropped]
    assert len(attempts) == len(planned) >= 4
    assert {a.outcome for a in attempts} == {"failed"}
    assert all(a.error for a in attempts)  # the exception's name
