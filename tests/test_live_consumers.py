"""Live consumers of either stream (``tracker.events()``, ``inbox.messages()``: one live buffer
serves both) cost little: one cursor parse per publish at most, next-turn delivery, no waiter
left behind by a consumer that gives up."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from opensms_async import DeliveryStatus, DeliveryTracker, DeliveryUpdate, InboundSmsMessage, Inbox
from opensms_async.stores import MemoryStore, SQLiteStore
from opensms_async.stores.inbound import MemoryInboundStore, SQLiteInboundStore

CONSUMERS = 4
GIVE_UPS = 100
STREAMS = ["events", "messages"]


def update(n: int) -> DeliveryUpdate:
    """Callback ``n``: a first sighting of its own recipient (one event)."""
    return DeliveryUpdate(
        f"req-{n // 10}", f"tel:+3361000{n:04d}", DeliveryStatus.DELIVERED_TO_NETWORK
    )


def wire(n: int) -> InboundSmsMessage:
    """Inbound message ``n``, a whole one (one message logged per ingest)."""
    return InboundSmsMessage(
        message_id=f"m{n}",
        sender_address="32470000001",
        destination_address="32470000000",
        message=f"hello {n}",
        date_time="2021-11-24T09:13:40.639",
    )


class ParsesCursors(Protocol):
    """What both stores' live buffers ask of them to order cursors."""

    def cursor_key(self, cursor: str) -> tuple[int, int]:
        """Where ``cursor`` stands in the log."""
        ...


@dataclass(frozen=True)
class Live:
    """One stream under test, open: its store, how to record item ``n`` alone, how to iterate."""

    store: ParsesCursors
    ingest: Callable[[int], Awaitable[object]]
    stream: Callable[[], AsyncIterator[object]]


@asynccontextmanager
async def opened(stream: str, tmp_path: Path, backend: str = "memory") -> AsyncIterator[Live]:
    """The tracker's ``events()`` or the inbox's ``messages()`` over a fresh ``backend`` store."""
    if stream == "events":
        store = MemoryStore() if backend == "memory" else SQLiteStore(tmp_path / "live.db")
        async with DeliveryTracker(store) as tracker:
            yield Live(store, lambda n: tracker.ingest([update(n)]), tracker.events)
    else:
        inbound = (
            MemoryInboundStore() if backend == "memory" else SQLiteInboundStore(tmp_path / "in.db")
        )
        async with Inbox(inbound) as inbox:
            yield Live(inbound, lambda n: inbox.ingest([wire(n)]), inbox.messages)


def count_parses(store: ParsesCursors, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make ``store`` count its cursor parses (``cursor_key``) from now on, in the returned cell."""
    parsed = [0]
    parse = store.cursor_key

    def counted(cursor: str) -> tuple[int, int]:
        parsed[0] += 1
        return parse(cursor)

    monkeypatch.setattr(store, "cursor_key", counted)
    return parsed


class Consumers:
    """``count`` tasks iterating ``live.stream()``, each noting how many items it got."""

    def __init__(self, live: Live, count: int) -> None:
        self.seen = [0] * count
        self._changed = asyncio.Event()
        self._tasks = [asyncio.create_task(self._run(live, i)) for i in range(count)]

    async def _run(self, live: Live, index: int) -> None:
        async for _ in live.stream():
            self.seen[index] += 1
            self._changed.set()

    async def reach(self, count: int) -> None:
        """Wait until every consumer has seen ``count`` items (30 s at most: a hang guard)."""
        async with asyncio.timeout(30):
            while min(self.seen) < count:
                self._changed.clear()
                await self._changed.wait()

    async def stop(self) -> None:
        """Cancel the consumers and wait for them."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.mark.parametrize(
    ("stream", "backend", "least"),
    [
        ("events", "memory", 0),
        ("events", "sqlite", 1),
        ("messages", "memory", 0),
        ("messages", "sqlite", 1),
    ],
)
async def test_a_publish_parses_one_cursor_at_most_whatever_the_consumers(
    stream: str, backend: str, least: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With four live consumers, each lone item costs one cursor parse at most in all: a publish
    visits no consumer, and a woken consumer finds its place without parsing. Over the memory
    stores an item costs none: each write says that it continues the buffer."""
    async with opened(stream, tmp_path, backend) as live:
        consumers = Consumers(live, CONSUMERS)
        await live.ingest(0)
        await consumers.reach(1)  # every consumer positioned in the live buffer
        parsed = count_parses(live.store, monkeypatch)
        for n in range(1, 51):
            await live.ingest(n)
            await consumers.reach(n + 1)
        # SQLite's publishes are counted (the patch takes): one parse each at most.
        assert least <= parsed[0] <= (0 if least == 0 else 50)
        await consumers.stop()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@pytest.mark.parametrize("stream", STREAMS)
async def test_a_lone_item_reaches_every_consumer_on_the_next_loop_turn(
    stream: str, backend: str, tmp_path: Path
) -> None:
    """An item recorded alone reaches each waiting consumer at most one loop turn after its
    ingest returned: a consumer costs no latency beyond that turn."""
    async with opened(stream, tmp_path, backend) as live:
        consumers = Consumers(live, CONSUMERS)
        await live.ingest(0)
        await consumers.reach(1)
        for n in range(1, 21):
            await live.ingest(n)
            await asyncio.sleep(0)  # one turn of the loop
            assert consumers.seen == [n + 1] * CONSUMERS
        await consumers.stop()


def futures_alive() -> int:
    """How many asyncio futures (tasks included) the process holds."""
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, asyncio.Future))


async def drain(live: Live, seconds: float) -> None:
    """Iterate ``live.stream()`` for ``seconds`` (TimeoutError then)."""
    async with asyncio.timeout(seconds):
        async for _ in live.stream():
            pass


@pytest.mark.parametrize("stream", STREAMS)
async def test_a_consumer_that_gives_up_waiting_leaves_nothing_behind(
    stream: str, tmp_path: Path
) -> None:
    """A consumer whose wait for the next item is cancelled (a timeout around it) leaves no
    waiter behind: an idle tracker or inbox polled that way for hours holds nothing more."""
    async with opened(stream, tmp_path) as live:
        await live.ingest(0)
        with pytest.raises(TimeoutError):
            await drain(live, 0.005)
        before = futures_alive()
        for _ in range(GIVE_UPS):
            with pytest.raises(TimeoutError):
                await drain(live, 0.002)
        assert futures_alive() - before < GIVE_UPS // 10
        consumers = Consumers(live, 1)  # and the next consumer still gets every item
        await consumers.reach(1)
        await live.ingest(1)
        await consumers.reach(2)
        await consumers.stop()
