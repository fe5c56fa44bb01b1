"""What the inbound tests post and run: a callback body as BICS posts it (and the message as
the client's model), its header, an inbound-only receiver on a real socket, and a memory
inbound store that fails or hangs on cue."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from opensms_async import InboundSmsMessage, Inbox, StoreUnavailableError, create_receiver_app
from opensms_async._reassembly import Part
from opensms_async._server import serve
from opensms_async.stores.inbound import MemoryInboundStore, Received

TOKEN = "in-tok-r2k5hq3"
PATH = "/sms/inbound"


def body(message_id: str = "m-1", text: str = "Hello", **extra: Any) -> dict[str, Any]:
    """An inbound callback body as BICS posts it."""
    message = {
        "dateTime": "2021-11-24T09:13:40.639",
        "destinationAddress": "32470000000",
        "senderAddress": "32470000001",
        "messageId": message_id,
        "message": text,
        **extra,
    }
    return {"InboundSmsMessage": message}


def wire(message_id: str, text: str) -> InboundSmsMessage:
    """An inbound message as BICS posts it, as ``Inbox.ingest`` takes it."""
    return InboundSmsMessage(
        message_id=message_id,
        sender_address="32470000001",
        destination_address="32470000000",
        message=text,
        date_time="2021-11-24T09:13:40.639",
    )


def bearer(token: str = TOKEN) -> dict[str, str]:
    """The header BICS sends."""
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def receiving(
    inbox: Inbox, token: str | Sequence[str] = TOKEN, **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An inbound-only receiver on a real socket, and a client pointed at it."""
    app = create_receiver_app(None, inbox=inbox, inbound_security_token=token, **options)
    async with serve(app) as server, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


class FlakyStore(MemoryInboundStore):
    """A memory store whose receive fails while ``failures`` remain, or hangs while ``hang``."""

    def __init__(self, failures: int = 0, hang: bool = False) -> None:
        super().__init__()
        self.failures = failures
        self.hang = hang

    async def receive(
        self, parts: Sequence[Part], *, now: float, timeout: float, retention: float
    ) -> Received:
        if self.hang:
            await asyncio.sleep(60)
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailableError("the store is down (test)")
        return await super().receive(parts, now=now, timeout=timeout, retention=retention)
