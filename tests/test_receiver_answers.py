"""What the receiver answers a refused callback: a short JSON reason, and a WARNING in its log.

In process (``httpx.ASGITransport``, the unit run) and over a real socket (uvicorn, httpx): every
test runs both ways. Every body and presented token carries a marker, which must
never come back in an answer or appear in a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from receiver_transports import TRANSPORTS, reach
from starlette.applications import Starlette
from starlette.routing import Mount

from opensms_async import DeliveryEvent, DeliveryTracker, DeliveryUpdate, create_receiver_app
from opensms_async._exceptions import StoreUnavailableError
from opensms_async.stores import MemoryStore
from opensms_async.testing import delivery_callback_body

TOKEN = "tok-3f9a1c-secret"
MARKER = "mk7q2z"
"""Put in every refused body: an answer or a log line that quotes the body would show it."""
PATH = "/sms/callback"


def callback(token: object = TOKEN, address: str = "tel:+33612345678") -> dict[str, Any]:
    """A BICS delivery-info callback carrying ``token`` (any JSON value; None: none)."""
    body = delivery_callback_body("req-1", address, "DeliveredToTerminal")
    if token is not None:
        body["deliveryInfoList"]["securityToken"] = token
    return body


class FailingStore(MemoryStore):
    """A store whose every write fails as an unreachable Redis does."""

    async def apply_events(self, updates: Iterable[DeliveryUpdate]) -> list[DeliveryEvent]:
        raise StoreUnavailableError(f"backend down {MARKER}")


class HungStore(MemoryStore):
    """A store whose writes never finish (a SIGSTOPped Redis)."""

    async def apply_events(self, updates: Iterable[DeliveryUpdate]) -> list[DeliveryEvent]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """In process, then over a socket."""
    return str(request.param)


@asynccontextmanager
async def receiver(
    transport: str, store: MemoryStore | None = None, *, mount: bool = False, **options: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A receiver reached over ``transport``, alone or mounted under /hooks: an HTTP client and
    its callback URL."""
    tracker = DeliveryTracker(store=store or MemoryStore())
    app: Any = create_receiver_app(tracker, TOKEN, path=PATH, **options)
    prefix = ""
    if mount:
        app, prefix = Starlette(routes=[Mount("/hooks", app)]), "/hooks"
    async with tracker, reach(app, transport) as (http, url):
        yield http, url + prefix + PATH


def posted(body: object) -> bytes:
    return json.dumps(body).encode()


REFUSALS = [
    pytest.param(f"not json {MARKER}".encode(), 400, "not_json", "the body is not JSON", id="400"),
    pytest.param(
        posted(callback(token=None)), 401, "unauthorized", "missing security token", id="401-none"
    ),
    pytest.param(
        posted(callback(token=f"{TOKEN}-{MARKER}")),
        401,
        "unauthorized",
        "wrong security token",
        id="401-wrong",
    ),
    pytest.param(
        (MARKER * 20_000).encode(),
        413,
        "too_large",
        "the body is over 65536 bytes",
        id="413",
    ),
    pytest.param(
        posted(callback(address=f"+33{MARKER}")),
        422,
        "not_a_callback",
        "not a delivery-info callback",
        id="422",
    ),
]


def assert_reason(response: httpx.Response, status: int, error: str, reason: str) -> None:
    """The answer is ``status`` with exactly ``{"error", "reason"}``, quoting nothing sent."""
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": error, "reason": reason}
    assert MARKER not in response.text and TOKEN not in response.text


@pytest.mark.parametrize(("body", "status", "error", "reason"), REFUSALS)
async def test_each_refusal_has_a_short_json_reason(
    transport: str, body: bytes, status: int, error: str, reason: str
) -> None:
    """400/401/413/422 answer {"error", "reason"} in JSON, never echoing the body or token."""
    async with receiver(transport) as (http, url):
        assert_reason(await http.post(url, content=body), status, error, reason)


@pytest.mark.parametrize(("body", "status", "error", "reason"), REFUSALS)
async def test_a_mounted_receiver_answers_the_same(
    transport: str, body: bytes, status: int, error: str, reason: str
) -> None:
    """Mounted in another Starlette app (not the fast path), the same answers."""
    async with receiver(transport, mount=True) as (http, url):
        assert_reason(await http.post(url, content=body), status, error, reason)


async def test_a_store_that_cannot_record_is_a_503_with_its_reason(transport: str) -> None:
    """A failing store: 503 saying it was not recorded, without the store's own message."""
    async with receiver(transport, FailingStore()) as (http, url):
        response = await http.post(url, json=callback())
    assert_reason(response, 503, "not_recorded", "the store could not record it; retry later")


async def test_a_hung_store_is_a_503_naming_the_deadline(transport: str) -> None:
    """A record past record_deadline: 503 saying within how long it was not recorded."""
    async with receiver(transport, HungStore(), record_deadline=0.25) as (http, url):
        response = await http.post(url, json=callback())
    assert_reason(response, 503, "not_recorded", "not recorded within 0.25 s; retry later")


async def test_a_recorded_callback_is_a_bare_204(transport: str) -> None:
    """The 204 stays bodiless: no body, no content type."""
    async with receiver(transport) as (http, url):
        response = await http.post(url, json=callback())
    assert response.status_code == 204
    assert response.content == b""
    assert "content-type" not in response.headers


@pytest.mark.parametrize(("body", "status", "error", "reason"), REFUSALS)
async def test_each_refusal_is_a_warning_with_its_reason(
    transport: str,
    body: bytes,
    status: int,
    error: str,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refusal is logged at WARNING (shown by default) with its status, reason and sender
    address; the token and the body never appear in any log line, even at DEBUG."""
    caplog.set_level(logging.DEBUG)
    async with receiver(transport) as (http, url):
        await http.post(url, content=body)
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "opensms_async.receiver" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1, warnings
    assert f"callback refused ({status} {error}) from 127.0.0.1: {reason}" in warnings[0]
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        if status != 422:  # the 422 line says which field is wrong, as the parser tells it
            assert MARKER not in record.getMessage()
