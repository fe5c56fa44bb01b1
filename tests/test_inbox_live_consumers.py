"""Live messages() consumers cost what events() consumers cost (one live buffer serves both):
one cursor parse per publish, next-turn delivery, no waiter left behind by one that gives up."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from opensms_async import InboundSmsMessage, Inbox
from opensms_async.stores.inbound import InboundStore, MemoryInboundStore, SQLiteInboundStore

CONSUMERS = 4
GIVE_UPS = 100


class CountingStore(MemoryInboundStore):
    """A memory inbound store that counts how often a cursor is parsed (``cursor_key``)."""

    def __init__(self) -> None:
        super().__init__()
        self.parsed = 0

    def cursor_key(self, cursor: str) -> tuple[int, int]:
        """Count, then parse as the memory store does."""
        self.parsed += 1
        return super().cursor_key(cursor)


def wire(n: int) -> InboundSmsMessage:
    """Inbound message ``n``, a whole one (one message logged per ingest)."""
    return InboundSmsMessage(
        message_id=f"m{n}",
        sender_address="32470000001",
        destination_address="32470000000",
        message=f"hello {n}",
        date_time="2021-11-24T09:13:40.639",
    )


class Consumers:
    """``count`` tasks iterating ``inbox.messages()``, each noting how many messages it got."""

    def __init__(self, inbox: Inbox, count: int) -> None:
        self.seen = [0] * count
        self._changed = asyncio.Event()
        self._tasks = [asyncio.create_task(self._run(inbox, i)) for i in range(count)]

    async def _run(self, inbox: Inbox, index: int) -> None:
        async for _ in inbox.messages():
            self.seen[index] += 1
            self._changed.set()

    async def reach(self, count: int) -> None:
        """Wait until every consumer has seen ``count`` messages (5 s at most)."""
        async with asyncio.timeout(5):
            while min(self.seen) < count:
                self._changed.clear()
                await self._changed.wait()

    async def stop(self) -> None:
        """Cancel the consumers and wait for them."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def test_a_publish_parses_one_cursor_whatever_the_consumers() -> None:
    """With four live consumers, each lone message costs the inbox one cursor parse in all: a
    publish visits no consumer, and a woken consumer finds its place without parsing."""
    store = CountingStore()
    async with Inbox(store) as inbox:
        consumers = Consumers(inbox, CONSUMERS)
        await inbox.ingest([wire(0)])
        await consumers.reach(1)  # every consumer positioned in the live buffer
        before = store.parsed
        for n in range(1, 51):
            await inbox.ingest([wire(n)])
            await consumers.reach(n + 1)
        assert store.parsed - before <= 50
        await consumers.stop()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_lone_message_reaches_every_consumer_on_the_next_loop_turn(
    kind: str, tmp_path: Path
) -> None:
    """A message recorded alone reaches each waiting consumer at most one loop turn after its
    ingest returned: a consumer costs no latency beyond that turn."""
    store: InboundStore = (
        MemoryInboundStore() if kind == "memory" else SQLiteInboundStore(tmp_path / "in.db")
    )
    async with Inbox(store) as inbox:
        consumers = Consumers(inbox, CONSUMERS)
        await inbox.ingest([wire(0)])
        await consumers.reach(1)
        for n in range(1, 21):
            await inbox.ingest([wire(n)])
            await asyncio.sleep(0)  # one turn of the loop
            assert consumers.seen == [n + 1] * CONSUMERS
        await consumers.stop()


def futures_alive() -> int:
    """How many asyncio futures (tasks included) the process holds."""
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, asyncio.Future))


async def drain(inbox: Inbox, seconds: float) -> None:
    """Iterate ``inbox.messages()`` for ``seconds`` (TimeoutError then)."""
    async with asyncio.timeout(seconds):
        async for _ in inbox.messages():
            pass


async def test_a_consumer_that_gives_up_waiting_leaves_nothing_behind() -> None:
    """A consumer whose wait for the next message is cancelled (a timeout around it) leaves no
    waiter in the inbox: an idle inbox polled that way for hours holds nothing more."""
    async with Inbox() as inbox:
        await inbox.ingest([wire(0)])
        with pytest.raises(TimeoutError):
            await drain(inbox, 0.005)
        before = futures_alive()
        for _ in range(GIVE_UPS):
            with pytest.raises(TimeoutError):
                await drain(inbox, 0.002)
        assert futures_alive() - before < GIVE_UPS // 10
        consumers = Consumers(inbox, 1)  # and the next consumer still gets every message
        await consumers.reach(1)
        await inbox.ingest([wire(1)])
        await consumers.reach(2)
        await consumers.stop()
