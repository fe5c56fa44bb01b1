"""The callback receiver's answers, in process (``httpx.ASGITransport``, the unit run) and over
a real socket (a uvicorn server, an integration test): every test runs both ways."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from receiver_transports import TRANSPORTS, reach
from starlette.applications import Starlette
from starlette.routing import Mount

from opensms_async import (
    DeliveryEvent,
    DeliveryStatus,
    DeliveryTracker,
    DeliveryUpdate,
    StoreUnavailableError,
    create_receiver_app,
)
from opensms_async.stores import MemoryStore
from opensms_async.testing import delivery_callback_body

TOKEN = "r2k5hq3-secret"
PATH = "/sms/callback"
SENDER = "tel:+32123"
RESOURCE = "https://opensms.api.bics.com/smsmessaging/v1/outbound/tel%3A%2B32123/requests/req-1/deliveryInfos"


def callback(
    status: str = "DeliveredToTerminal",
    address: str = "tel:+331234567",
    token: object = TOKEN,
    **extra: Any,
) -> dict[str, Any]:
    """A callback body in the BICS shape carrying ``token`` (any JSON value; None: none), with
    ``extra`` fields in its entry."""
    body = delivery_callback_body("req-1", address, status, sender=SENDER)
    body["deliveryInfoList"]["deliveryInfo"][0] |= extra
    if token is not None:
        body["deliveryInfoList"]["securityToken"] = token
    return body


class Receiver:
    """A running receiver: its tracker, its URL and an HTTP client."""

    def __init__(self, tracker: DeliveryTracker, url: str, http: httpx.AsyncClient) -> None:
        self.tracker = tracker
        self.url = url
        self.http = http

    async def post(
        self, body: object = None, *, raw: bytes | None = None, **kw: Any
    ) -> httpx.Response:
        """POST a callback body (JSON) or raw bytes."""
        content = raw if raw is not None else json.dumps(body).encode()
        return await self.http.post(self.url + PATH, content=content, **kw)

    async def stored(self) -> int:
        """How many events the store logged."""
        return len(await self.tracker.store.read_events(None, limit=100_000))


@asynccontextmanager
async def start(
    transport: str, tokens: str | Sequence[str] = TOKEN, store: Any = None, **kw: Any
) -> AsyncIterator[Receiver]:
    """A receiver reached over ``transport``; its lifespan opens the tracker."""
    tracker = DeliveryTracker(store=store or MemoryStore())
    app = create_receiver_app(tracker, tokens, path=PATH, **kw)
    async with reach(app, transport, timeout=30) as (http, url):
        yield Receiver(tracker, url, http)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """In process, then over a socket."""
    return str(request.param)


@pytest.fixture
async def receiver(transport: str) -> AsyncIterator[Receiver]:
    """A receiver with the memory store and one token."""
    async with start(transport) as r:
        yield r


async def test_accepted_callback_is_recorded_before_2xx(receiver: Receiver) -> None:
    """A valid callback answers 204 and its state and event are already in the store."""
    response = await receiver.post(callback())
    assert response.status_code == 204
    state = await receiver.tracker.get("req-1", "+331234567")
    assert state is not None and state.status is DeliveryStatus.DELIVERED_TO_TERMINAL
    assert state.sender == "tel:+32123"
    assert await receiver.stored() == 1


@pytest.mark.parametrize(
    "token", [None, "wrong", "r2k5hq3-secreT", "", 12345, ["r2k5hq3-secret"], "tökén-ü", "\ud800"]
)
async def test_wrong_or_missing_token_stores_nothing(receiver: Receiver, token: object) -> None:
    """Missing, wrong, non-string and non-ASCII tokens get 401 and nothing is stored."""
    response = await receiver.post(callback(token=token))
    assert response.status_code == 401
    assert await receiver.stored() == 0


async def test_token_from_bearer_header(receiver: Receiver) -> None:
    """Without a token in the body, Authorization: Bearer is checked instead."""
    ok = await receiver.post(callback(token=None), headers={"Authorization": f"Bearer {TOKEN}"})
    bad = await receiver.post(callback(token=None), headers={"Authorization": "Bearer nope"})
    assert (ok.status_code, bad.status_code) == (204, 401)
    latin = await receiver.post(callback(token=None), headers={"Authorization": b"Bearer \xe9\xff"})
    assert latin.status_code == 401


async def test_two_tokens_during_rotation(transport: str) -> None:
    """Both the new and the old token are accepted while rotating."""
    async with start(transport, tokens=["new-token-1", "old-token-0"]) as r:
        assert (await r.post(callback(token="new-token-1"))).status_code == 204
        assert (await r.post(callback(token="old-token-0", address="tel:+332"))).status_code == 204
        assert (await r.post(callback(token="other"))).status_code == 401


def test_receiver_refuses_to_start_without_a_token() -> None:
    """An empty token is refused at construction: a receiver never accepts everything."""
    with pytest.raises(ValueError, match="token"):
        create_receiver_app(DeliveryTracker(), "")


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000])
async def test_malformed_json_is_400(receiver: Receiver, raw: bytes) -> None:
    """Bodies that are not JSON (including absurdly nested ones) answer 400."""
    response = await receiver.post(raw=raw[:60_000])
    assert response.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        {"hello": "world"},
        {"deliveryInfoList": {"securityToken": TOKEN, "deliveryInfo": []}},
        {
            "deliveryInfoList": {
                "securityToken": TOKEN,
                "resourceURL": RESOURCE,
                "deliveryInfo": [{"address": "tel:+331"}],
            }
        },
    ],
)
async def test_not_a_delivery_payload_is_422_or_401(receiver: Receiver, body: object) -> None:
    """JSON that is not a delivery callback is refused (422 with the token, 401 without)."""
    response = await receiver.post(body)
    assert response.status_code in (401, 422)
    assert await receiver.stored() == 0


async def test_one_bad_entry_refuses_the_whole_callback(receiver: Receiver) -> None:
    """A callback with one malformed address stores none of its entries."""
    body = callback()
    body["deliveryInfoList"]["deliveryInfo"].append(
        {"address": "nonsense", "deliveryStatus": "DeliveredToTerminal"}
    )
    assert (await receiver.post(body)).status_code == 422
    assert await receiver.stored() == 0


async def test_oma_notification_shape(receiver: Receiver) -> None:
    """The OMA deliveryInfoNotification form with a link href is accepted."""
    body = {
        "deliveryInfoNotification": {
            "securityToken": TOKEN,
            "callbackData": "x",
            "deliveryInfo": {"address": "tel:+3399", "deliveryStatus": "DeliveryImpossible"},
            "link": {
                "rel": "OutboundMessageRequest",
                "href": "https://h/outbound/ALPHA%20NUM/requests/req-7",
            },
        }
    }
    assert (await receiver.post(body)).status_code == 204
    state = await receiver.tracker.get("req-7", "tel:+3399")
    assert state is not None and state.sender == "ALPHA NUM"


async def test_oversized_body_is_413(receiver: Receiver) -> None:
    """A body over 64 KiB answers 413, declared or streamed without a length."""
    big = json.dumps(callback(description="x" * 70_000)).encode()
    assert (await receiver.post(raw=big)).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    response = await receiver.http.post(receiver.url + PATH, content=chunks())
    assert response.status_code == 413
    assert await receiver.stored() == 0


async def test_health_route(receiver: Receiver) -> None:
    """GET /healthz answers 200 once the tracker is open."""
    response = await receiver.http.get(receiver.url + "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


class FailingStore(MemoryStore):
    """A store whose writes fail, as when its backend is down."""

    async def apply_events(self, updates: Sequence[DeliveryUpdate]) -> list[DeliveryEvent]:
        """Refuse every write."""
        raise StoreUnavailableError("backend down")


async def test_store_failure_is_503_not_2xx(transport: str) -> None:
    """When the store cannot record, the receiver answers 503 rather than acknowledge."""
    async with start(transport, store=FailingStore()) as r:
        assert (await r.post(callback())).status_code == 503


async def test_duplicate_and_out_of_order_storm_converges(receiver: Receiver) -> None:
    """Shuffled duplicated callbacks for many recipients converge, with one event per advance."""
    chain = ["DeliveredToNetwork", "DeliveryUncertain", "DeliveredToTerminal"]
    bodies = [
        callback(status=s, address=f"tel:+3361{i:05d}")
        for i in range(60)
        for s in chain
        for _ in range(2)
    ]
    random.Random(11).shuffle(bodies)
    semaphore = asyncio.Semaphore(16)

    async def post(body: dict[str, Any]) -> int:
        async with semaphore:
            return (await receiver.post(body)).status_code

    statuses = await asyncio.gather(*(post(b) for b in bodies))
    assert set(statuses) == {204}
    for i in range(60):
        state = await receiver.tracker.get("req-1", f"tel:+3361{i:05d}")
        assert state is not None and state.status is DeliveryStatus.DELIVERED_TO_TERMINAL
    events = await receiver.tracker.store.read_events(None, limit=10_000)
    assert len({(e.address, e.status) for e in events}) == len(events)


async def test_tokens_never_logged(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    """Accepted and refused callbacks leave no token in the logs, even at DEBUG."""
    caplog.set_level(logging.DEBUG)
    await receiver.post(callback())
    await receiver.post(callback(token="guess-" + TOKEN))
    await receiver.post(callback(token=TOKEN, address="bad"))
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


async def test_mounted_in_an_existing_app(transport: str) -> None:
    """Mounted under a prefix in another Starlette app, the receiver records callbacks."""
    tracker = DeliveryTracker()
    outer = Starlette(routes=[Mount("/hooks", create_receiver_app(tracker, TOKEN, path="/bics"))])
    async with tracker, reach(outer, transport) as (http, url):
        response = await http.post(url + "/hooks/bics", json=callback())
        assert response.status_code == 204
        assert await tracker.get("req-1", "tel:+331234567") is not None
