"""Live consumers of a shared (Redis) log share its reads: the log is read once for all of
them, and each still gets every event of every replica, once, in log order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from opensms_async import DeliveryEvent, DeliveryStatus, DeliveryTracker, DeliveryUpdate
from opensms_async.stores import RedisStore

pytestmark = pytest.mark.integration

CONSUMERS = 4
WAIT = 30.0
"""Upper bound on any wait in this file."""


class CountingRedisStore(RedisStore):
    """A Redis store that counts the events its ``read_events`` calls returned, in all."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.events_read = 0

    async def read_events(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> list[DeliveryEvent]:
        """The store's read, counted."""
        events = await super().read_events(after, limit=limit, timeout=timeout)
        self.events_read += len(events)
        return events


def update(n: int) -> DeliveryUpdate:
    """A first sighting of recipient ``n``: one event."""
    return DeliveryUpdate("req-1", f"tel:+3361000{n:04d}", DeliveryStatus.MESSAGE_WAITING)


async def take(events: AsyncIterator[DeliveryEvent], count: int) -> list[DeliveryEvent]:
    """The next ``count`` events of a stream (bounded in time)."""
    out: list[DeliveryEvent] = []
    async with asyncio.timeout(WAIT):
        async for event in events:
            out.append(event)
            if len(out) == count:
                break
    return out


async def test_consumers_of_a_shared_log_read_it_once_for_all(redis_url: str) -> None:
    """Four live consumers each get every event, this process's and another replica's, in log
    order; Redis is read once per event for all of them, not once per consumer."""
    store = CountingRedisStore(redis_url)
    async with DeliveryTracker(store=store) as tracker, RedisStore(redis_url) as replica:
        await tracker.ingest([update(0)])
        streams = [tracker.events() for _ in range(CONSUMERS)]
        firsts = await asyncio.gather(*(take(stream, 1) for stream in streams))
        assert len({first[0].cursor for first in firsts}) == 1
        before = store.events_read
        pending = [asyncio.ensure_future(take(stream, 40)) for stream in streams]
        logged: list[DeliveryEvent] = []
        for n in range(1, 41):
            record = replica.apply_events if n % 2 else tracker.ingest
            logged += await record([update(n)])
            await asyncio.sleep(0)
        results = await asyncio.gather(*pending)
        assert all([e.cursor for e in result] == [e.cursor for e in logged] for result in results)
        assert store.events_read - before <= len(logged)


async def test_a_consumer_behind_catches_up_and_joins_the_shared_reads(redis_url: str) -> None:
    """A consumer resuming from an old cursor reads the log up to the live ones, loses and
    repeats nothing, then gets the next events with them from the same reads."""
    store = CountingRedisStore(redis_url)
    async with DeliveryTracker(store=store) as tracker:
        live = tracker.events()
        logged = await tracker.ingest([update(n) for n in range(30)])
        assert await take(live, 30) == logged
        behind = tracker.events(since=logged[4].cursor)
        assert [e.cursor for e in await take(behind, 25)] == [e.cursor for e in logged[5:]]
        before = store.events_read
        both = asyncio.gather(take(live, 10), take(behind, 10))
        more: list[DeliveryEvent] = []
        for n in range(30, 40):
            more += await tracker.ingest([update(n)])
            await asyncio.sleep(0)
        got_live, got_behind = await both
        assert [e.cursor for e in got_live] == [e.cursor for e in got_behind]
        assert [e.cursor for e in got_live] == [e.cursor for e in more]
        assert store.events_read - before <= len(more)
