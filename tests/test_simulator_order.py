"""The simulator posts each recipient's callbacks in turn, so a seed means one order of arrival."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opensms_async.testing import run_simulator, serve

pytestmark = pytest.mark.integration

SENDER = "tel:+3212345"
REQUESTS = "/outbound/tel%3A%2B3212345/requests"
HOLD = 0.5
"""How long the receiver keeps the first callback of each recipient before answering it."""


async def test_a_recipients_next_callback_waits_for_the_answer_to_the_one_before() -> None:
    """While the receiver has not answered a recipient's first callback (held 0.5 s; its next
    state was due 10 to 30 ms after it), nothing more of that recipient is posted; another
    recipient's callbacks go on meanwhile. On a loaded machine, concurrent posts of one recipient
    could arrive out of their planned order; posted in turn, they cannot."""
    seen: list[tuple[str, str, str, float]] = []  # (address, status, event, time)
    held: set[str] = set()

    async def endpoint(request: Request) -> Response:
        info = (await request.json())["deliveryInfoList"]["deliveryInfo"][0]
        address, status = info["address"], info["deliveryStatus"]
        seen.append((address, status, "arrived", time.monotonic()))
        if address.endswith("1") and address not in held:
            held.add(address)
            await asyncio.sleep(HOLD)
        seen.append((address, status, "answered", time.monotonic()))
        return Response(status_code=204)

    app = Starlette(routes=[Route("/cb", endpoint, methods=["POST"])])
    async with (
        serve(app) as receiver,
        run_simulator(seed=11, step_delay=(0.01, 0.03)) as sim,
        httpx.AsyncClient(
            base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=30
        ) as api,
    ):
        callback = {"url": "https://me.example/cb", "securityToken": "r2k5hq3"}
        assert (await api.post("/outbound/subscriptions", json={"callback": callback})).is_success
        sim.simulator.route_callbacks_to(f"{receiver.url}/cb")  # BICS posts to https only
        body = {
            "outboundSMSMessageRequest": {
                "address": ["tel:+33612345671", "tel:+33612345672"],
                "senderAddress": SENDER,
                "outboundSMSTextMessage": {"message": "Hello"},
            }
        }
        assert (await api.post(REQUESTS, json=body)).status_code == 201
        await sim.simulator.settle(timeout=30)

    slow = [(status, event) for address, status, event, _ in seen if address.endswith("1")]
    assert slow == [
        ("DeliveredToNetwork", "arrived"),
        ("DeliveredToNetwork", "answered"),
        ("DeliveredToTerminal", "arrived"),
        ("DeliveredToTerminal", "answered"),
    ]
    first_answered = next(t for a, _, e, t in seen if a.endswith("1") and e == "answered")
    other = [t for a, _, e, t in seen if a.endswith("2") and e == "answered"]
    assert len(other) == 2
    assert min(other) < first_answered  # the other recipient was not held up
