"""The body read both receiver endpoints share (``Endpoint._read_json``), over real sockets.

Each case runs against the delivery callback endpoint and the inbound one: a body over the limit
(declared, or streamed without a length), a body that is not JSON, and a sender that closes the
connection mid-body each get the same answer and log line on both, and record nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest

from opensms_async import DeliveryTracker, Inbox, create_receiver_app
from opensms_async._server import serve
from opensms_async.stores import MemoryStore
from opensms_async.stores.inbound import MemoryInboundStore

pytestmark = pytest.mark.integration

TOKEN = "tok-b0dy-r3ad"
LIMIT = 1024
_WAIT_STEPS = 400
"""Bounded wait for a log line: 400 steps of 25 ms (10 s, for a loaded machine)."""


@dataclass
class Target:
    """One endpoint under test: its path, the headers a sender sends, and its log noun."""

    path: str
    headers: dict[str, str]
    what: str


TARGETS = {
    "callback": Target("/sms/callback", {}, "callback"),
    "inbound": Target("/sms/inbound", {"Authorization": f"Bearer {TOKEN}"}, "inbound message"),
}


@contextlib.asynccontextmanager
async def receiving() -> AsyncIterator[tuple[str, DeliveryTracker, Inbox]]:
    """A receiver with both endpoints on a real socket (body limit ``LIMIT``): its URL, the
    tracker and the inbox behind it."""
    tracker = DeliveryTracker(store=MemoryStore())
    inbox = Inbox(store=MemoryInboundStore())
    app = create_receiver_app(
        tracker, TOKEN, inbox=inbox, inbound_security_token=TOKEN, max_body_size=LIMIT
    )
    async with serve(app) as server:
        yield server.url, tracker, inbox


async def nothing_recorded(tracker: DeliveryTracker, inbox: Inbox) -> bool:
    """True while neither store has logged anything."""
    return await tracker.store.last_cursor() is None and await inbox.store.last_cursor() is None


async def chunks(size: int) -> AsyncIterator[bytes]:
    """A body of ``size`` bytes, streamed (no Content-Length: chunked)."""
    for _ in range(size // 256):
        yield b" " * 256


@pytest.mark.parametrize("kind", sorted(TARGETS))
@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "streamed"])
async def test_a_body_over_the_limit_is_refused_413(kind: str, streamed: bool) -> None:
    """A body over max_body_size gets 413 on either endpoint, whether its length is declared
    or not, and nothing is recorded."""
    target = TARGETS[kind]
    async with receiving() as (url, tracker, inbox), httpx.AsyncClient(timeout=10) as http:
        content = chunks(4 * LIMIT) if streamed else b" " * (4 * LIMIT)
        response = await http.post(url + target.path, content=content, headers=target.headers)
        assert response.status_code == 413
        assert response.json() == {
            "error": "too_large",
            "reason": f"the body is over {LIMIT} bytes",
        }
        assert await nothing_recorded(tracker, inbox)


@pytest.mark.parametrize("kind", sorted(TARGETS))
async def test_a_body_that_is_not_json_is_refused_400(kind: str) -> None:
    """A body that is not JSON gets 400 not_json on either endpoint, and nothing is recorded."""
    target = TARGETS[kind]
    async with receiving() as (url, tracker, inbox), httpx.AsyncClient(timeout=10) as http:
        response = await http.post(url + target.path, content=b"{nope", headers=target.headers)
        assert response.status_code == 400
        assert response.json() == {"error": "not_json", "reason": "the body is not JSON"}
        assert await nothing_recorded(tracker, inbox)


@pytest.mark.parametrize("kind", sorted(TARGETS))
async def test_a_sender_gone_mid_body_is_logged_and_nothing_recorded(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A sender that closes its connection before its body ended is logged (INFO, saying which
    endpoint) and nothing is recorded; the receiver goes on serving."""
    caplog.set_level(logging.INFO, logger="opensms_async.receiver")
    target = TARGETS[kind]
    expected = f"{target.what} abandoned: the sender closed the connection mid-body"
    async with receiving() as (url, tracker, inbox):
        parts = urlsplit(url)
        _reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        head = [f"POST {target.path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Length: 500"]
        head += [f"{name}: {value}" for name, value in target.headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + b'{"deliveryInfo')
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        for _ in range(_WAIT_STEPS):
            if expected in caplog.messages:
                break
            await asyncio.sleep(0.025)
        assert expected in caplog.messages
        assert await nothing_recorded(tracker, inbox)
        async with httpx.AsyncClient(timeout=10) as http:  # still serving
            response = await http.post(url + target.path, content=b"[", headers=target.headers)
        assert response.status_code == 400
