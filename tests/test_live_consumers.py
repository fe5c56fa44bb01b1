"""Live events() consumers cost little: one cursor parse per publish, next-turn delivery, no
waiter left behind by a consumer that gives up."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from pathlib import Path

import pytest

from opensms_async import DeliveryStatus, DeliveryTracker, DeliveryUpdate
from opensms_async.stores import MemoryStore, SQLiteStore, Store

CONSUMERS = 4
GIVE_UPS = 100


class CountingStore(MemoryStore):
    """A memory store that counts how often a cursor is parsed (``cursor_key``)."""

    def __init__(self) -> None:
        super().__init__()
        self.parsed = 0

    def cursor_key(self, cursor: str) -> tuple[int, int]:
        """Count, then parse as the memory store does."""
        self.parsed += 1
        return super().cursor_key(cursor)


def update(n: int, status: DeliveryStatus = DeliveryStatus.DELIVERED_TO_NETWORK) -> DeliveryUpdate:
    """Callback ``n``: a first sighting of its own recipient (one event)."""
    return DeliveryUpdate(f"req-{n // 10}", f"tel:+3361000{n:04d}", status)


class Consumers:
    """``count`` tasks iterating ``tracker.events()``, each noting how many events it got."""

    def __init__(self, tracker: DeliveryTracker, count: int) -> None:
        self.seen = [0] * count
        self._changed = asyncio.Event()
        self._tasks = [asyncio.create_task(self._run(tracker, i)) for i in range(count)]

    async def _run(self, tracker: DeliveryTracker, index: int) -> None:
        async for _ in tracker.events():
            self.seen[index] += 1
            self._changed.set()

    async def reach(self, count: int) -> None:
        """Wait until every consumer has seen ``count`` events (2 s at most)."""
        async with asyncio.timeout(2):
            while min(self.seen) < count:
                self._changed.clear()
                await self._changed.wait()

    async def stop(self) -> None:
        """Cancel the consumers and wait for them."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def test_a_publish_parses_one_cursor_whatever_the_consumers() -> None:
    """With four live consumers, each lone event costs the tracker one cursor parse in all: a
    publish visits no consumer, and a woken consumer finds its place without parsing."""
    store = CountingStore()
    async with DeliveryTracker(store) as tracker:
        consumers = Consumers(tracker, CONSUMERS)
        await tracker.ingest([update(0)])
        await consumers.reach(1)  # every consumer positioned in the live buffer
        before = store.parsed
        for n in range(1, 51):
            await tracker.ingest([update(n)])
            await consumers.reach(n + 1)
        assert store.parsed - before <= 50
        await consumers.stop()


def _memory() -> Store:
    return MemoryStore()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_lone_event_reaches_every_consumer_on_the_next_loop_turn(
    kind: str, tmp_path: Path
) -> None:
    """An event recorded alone reaches each waiting consumer at most one loop turn after its
    ingest returned: a consumer costs no latency beyond that turn."""
    factory: Callable[[], Store] = (
        _memory if kind == "memory" else lambda: SQLiteStore(tmp_path / "live.db")
    )
    async with DeliveryTracker(factory()) as tracker:
        consumers = Consumers(tracker, CONSUMERS)
        await tracker.ingest([update(0)])
        await consumers.reach(1)
        for n in range(1, 21):
            await tracker.ingest([update(n)])
            await asyncio.sleep(0)  # one turn of the loop
            assert consumers.seen == [n + 1] * CONSUMERS
        await consumers.stop()


async def drain(tracker: DeliveryTracker, seconds: float) -> None:
    """Iterate ``tracker.events()`` for ``seconds`` (TimeoutError then)."""
    async with asyncio.timeout(seconds):
        async for _ in tracker.events():
            pass


def futures_alive() -> int:
    """How many asyncio futures (tasks included) the process holds."""
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, asyncio.Future))


async def test_a_consumer_that_gives_up_waiting_leaves_nothing_behind() -> None:
    """A consumer whose wait for the next event is cancelled (a timeout around it) leaves no
    waiter in the tracker: an idle tracker polled that way for hours holds nothing more."""
    async with DeliveryTracker(MemoryStore()) as tracker:
        await tracker.ingest([update(0)])
        with pytest.raises(TimeoutError):
            await drain(tracker, 0.005)
        before = futures_alive()
        for _ in range(GIVE_UPS):
            with pytest.raises(TimeoutError):
                await drain(tracker, 0.002)
        assert futures_alive() - before < GIVE_UPS // 10
        consumers = Consumers(tracker, 1)  # and the next consumer still gets every event
        await consumers.reach(1)
        await tracker.ingest([update(1)])
        await consumers.reach(2)
        await consumers.stop()
