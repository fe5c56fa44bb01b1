"""The public helpers of ``opensms_async.testing`` for tests of a receiver: ``serve`` (an ASGI app
on a real uvicorn socket) and ``delivery_callback_body`` (the JSON body BICS posts)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openapi import schema_errors
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import opensms_async.testing
from opensms_async import DeliveryStatus, DeliveryTracker, OpenSMSClient, create_receiver_app
from opensms_async.testing import (
    RunningServer,
    delivery_callback_body,
    run_simulator,
    serve,
)

TOKEN = "helpers-token-4"
PATH = "/sms/callback"
S = DeliveryStatus


# --- delivery_callback_body ---------------------------------------------------------------------


def test_the_body_is_the_documented_bics_callback() -> None:
    """With the defaults, the body is PROTOCOL.md's example callback and valid against the
    OpenAPI's DeliveryInfoList."""
    body = delivery_callback_body(
        "4c27a6e0", "tel:+331234567", S.DELIVERED_TO_TERMINAL, security_token="r2k5hq3",
        sender="tel:+32123",
    )  # fmt: skip
    resource = (
        "https://opensms.api.bics.com/smsmessaging/v1/outbound/tel%3A%2B32123"
        "/requests/4c27a6e0/deliveryInfos"
    )
    assert body == {
        "deliveryInfoList": {
            "securityToken": "r2k5hq3",
            "resourceURL": resource,
            "smsParts": 1,
            "deliveryInfo": [
                {
                    "address": "tel:+331234567",
                    "deliveryStatus": "DeliveredToTerminal",
                    "deliveryStatusCode": 2,
                }
            ],
        }
    }
    assert schema_errors(body["deliveryInfoList"], "DeliveryInfoList") == []


def test_optional_fields_appear_only_when_given() -> None:
    """No token, no parts delivered, no callbackData unless asked; an unknown status has no
    code unless one is given; a given code wins over BICS's."""
    bare = delivery_callback_body("r", "tel:+1", "SomeNewState")["deliveryInfoList"]
    assert "securityToken" not in bare
    assert bare["deliveryInfo"] == [{"address": "tel:+1", "deliveryStatus": "SomeNewState"}]
    full = delivery_callback_body(
        "r", "tel:+1", S.PARTIALLY_DELIVERED, parts=3, parts_delivered=2, status_code=99,
        callback_data="ref-7",
    )["deliveryInfoList"]  # fmt: skip
    assert full["smsParts"] == 3
    assert full["deliveryInfo"] == [
        {
            "address": "tel:+1",
            "deliveryStatus": "PartiallyDelivered",
            "deliveryStatusCode": 99,
            "smsPartsDeliveredToTerminal": 2,
            "callbackData": "ref-7",
        }
    ]
    assert schema_errors(full, "DeliveryInfoList") == []


@contextlib.asynccontextmanager
async def in_process_receiver() -> AsyncIterator[tuple[DeliveryTracker, httpx.AsyncClient]]:
    """A receiver app called in process (``httpx.ASGITransport``), its tracker open."""
    async with DeliveryTracker() as tracker:
        app = create_receiver_app(tracker, TOKEN, path=PATH, manage_tracker=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
            yield tracker, http


async def test_the_receiver_records_what_the_body_says() -> None:
    """The receiver takes the request id and sender back out of the body's resource URL, odd
    characters included, and records the recipient's state and parts."""
    body = delivery_callback_body(
        "req/7 ü?", "+33612345678", S.DELIVERED_TO_TERMINAL, security_token=TOKEN,
        sender="ALPHA NUM", parts=2, parts_delivered=2,
    )  # fmt: skip
    async with in_process_receiver() as (tracker, http):
        assert (await http.post(PATH, json=body)).status_code == 204
        state = await tracker.get("req/7 ü?", "tel:+33612345678")
    assert state is not None
    assert (state.status, state.sender, state.parts_delivered) == (S.DELIVERED_TO_TERMINAL,
                                                                    "ALPHA NUM", 2)  # fmt: skip


async def test_a_body_without_its_token_goes_with_a_bearer_header() -> None:
    """Built without ``security_token``, the body is accepted with the token as Bearer and
    refused without it."""
    body = delivery_callback_body("req-1", "tel:+331", S.DELIVERY_IMPOSSIBLE)
    async with in_process_receiver() as (_, http):
        refused = await http.post(PATH, json=body)
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        accepted = await http.post(PATH, json=body, headers=bearer)
    assert (refused.status_code, accepted.status_code) == (401, 204)


@contextlib.asynccontextmanager
async def recording_receiver() -> AsyncIterator[tuple[RunningServer, list[Any]]]:
    """An app served with ``serve`` that keeps every JSON body posted to it."""
    bodies: list[Any] = []

    async def keep(request: Request) -> Response:
        bodies.append(await request.json())
        return Response(status_code=204)

    async with serve(Starlette(routes=[Route(PATH, keep, methods=["POST"])])) as server:
        yield server, bodies


@pytest.mark.integration
async def test_the_body_is_what_the_simulator_posts() -> None:
    """For the same send, the builder and the simulator (which posts as BICS does) write the
    same callback, to the byte of its JSON structure."""
    sender, address = "tel:+3212345678", "tel:+33612345678"
    async with (
        run_simulator(seed=2, step_delay=(0.01, 0.02)) as sim,
        recording_receiver() as (receiver, bodies),
        OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client,
    ):
        sim.simulator.route_callbacks_to(receiver.url + PATH)
        await client.create_subscription("https://me.example/sms/callback", TOKEN)
        sent = await client.send_message(sender, [address], "Hello")
        await sim.simulator.settle(timeout=30)
    assert bodies, "the simulator posted no callback"
    for body in bodies:
        [info] = body["deliveryInfoList"]["deliveryInfo"]
        assert body == delivery_callback_body(
            sent.request_id, address, info["deliveryStatus"], security_token=TOKEN,
            sender=sender, base_url=sim.base_url,
            parts_delivered=info["smsPartsDeliveredToTerminal"],
        )  # fmt: skip


# --- serve ---------------------------------------------------------------------------------------


def accepts(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.integration
async def test_serve_runs_an_app_with_its_lifespan_on_a_free_local_port() -> None:
    """Two apps served at once each get their own free 127.0.0.1 port; the app's lifespan has
    started when the block begins and has finished when it ends, and the port is closed then."""
    phases: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        phases.append("startup")
        yield
        phases.append("shutdown")

    async def hello(request: Request) -> Response:
        return JSONResponse({"phases": phases})

    app = Starlette(routes=[Route("/", hello)], lifespan=lifespan)
    async with serve(app) as one, serve(app) as two, httpx.AsyncClient() as http:
        assert (one.host, two.host) == ("127.0.0.1", "127.0.0.1")
        assert one.port != two.port
        assert one.url == f"http://127.0.0.1:{one.port}"
        answer = await http.get(one.url + "/")
        assert answer.json() == {"phases": ["startup", "startup"]}
    assert phases == ["startup", "startup", "shutdown", "shutdown"]
    assert not accepts(one.port) and not accepts(two.port)


@pytest.mark.integration
async def test_serve_says_when_the_app_cannot_start() -> None:
    """An app whose lifespan startup fails raises RuntimeError at the ``async with``, not
    SystemExit (which would end the test run's event loop)."""

    @contextlib.asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise LookupError("no database")
        yield  # pragma: no cover

    with pytest.raises(RuntimeError, match="failed to start"):
        async with serve(Starlette(lifespan=broken)):
            pytest.fail("served an app that did not start")


# --- the public names ---------------------------------------------------------------------------


def test_the_testing_package_exports_its_helpers_documented() -> None:
    """``serve``, ``RunningServer`` and ``delivery_callback_body`` are public and documented,
    in a sorted ``__all__`` that names what the package holds."""
    names = opensms_async.testing.__all__
    assert names == sorted(names)
    assert all(hasattr(opensms_async.testing, name) for name in names)
    for helper in (serve, RunningServer, delivery_callback_body):
        assert helper.__name__ in names and helper.__doc__
