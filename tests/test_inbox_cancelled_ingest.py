"""An ``ingest`` cancelled after the store logged its messages still publishes them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from inbound_helpers import wire
from stream_helpers import take

from opensms_async import Inbox
from opensms_async._reassembly import Part
from opensms_async.stores.inbound import MemoryInboundStore, Received


class SlowAnswer(MemoryInboundStore):
    """A store whose answer reaches the caller only once ``answer`` is set, after it logged (as
    SQLite's writer thread commits before the loop hands the caller its result)."""

    def __init__(self) -> None:
        super().__init__()
        self.logged = asyncio.Event()
        self.answer = asyncio.Event()

    async def receive(
        self, parts: Sequence[Part], *, now: float, timeout: float, retention: float
    ) -> Received:
        received = await super().receive(parts, now=now, timeout=timeout, retention=retention)
        self.logged.set()
        await self.answer.wait()
        return received


async def test_a_cancelled_ingest_still_reaches_a_waiting_consumer() -> None:
    """The caller of ingest is cancelled after the store logged the message: a consumer
    already waiting in messages() gets it at once, not at the next message."""
    store = SlowAnswer()
    async with Inbox(store=store) as inbox:
        consumer = asyncio.ensure_future(take(inbox.messages(), 1))
        await asyncio.sleep(0)  # the consumer is caught up and waiting
        ingest = asyncio.ensure_future(inbox.ingest([wire("a", "hello")]))
        await store.logged.wait()
        ingest.cancel()
        await asyncio.gather(ingest, return_exceptions=True)
        store.answer.set()
        async with asyncio.timeout(30):  # a hang, not a speed bound: without the fix it waits
            (message,) = await consumer
    assert message.text == "hello"
    assert ingest.cancelled()
