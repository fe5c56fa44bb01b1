"""A live ``events()`` consumer on a Redis store reads the shared log once per wake-up: the read
that waited for an event is the one whose events it yields, never followed by a second read of
the same events."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from opensms_async import DeliveryEvent, DeliveryStatus, DeliveryTracker, DeliveryUpdate
from opensms_async.stores import RedisStore

S = DeliveryStatus
WAIT = 30.0
"""Upper bound on any wait in this file."""

pytestmark = pytest.mark.integration


class CountingRedisStore(RedisStore):
    """A Redis store that notes what each ``read_events`` returned, and when one begins to wait."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reads: list[Sequence[DeliveryEvent]] = []
        self.waiting = asyncio.Event()

    async def read_events(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> list[DeliveryEvent]:
        """The store's read, noted."""
        if timeout > 0:
            self.waiting.set()
        events = await super().read_events(after, limit=limit, timeout=timeout)
        self.reads.append(events)
        return events


def update(address: str) -> DeliveryUpdate:
    """A first sighting of one recipient: one event."""
    return DeliveryUpdate("req-1", address, S.MESSAGE_WAITING)


async def test_a_live_consumer_reads_each_event_of_the_shared_log_once(redis_url: str) -> None:
    """Each event another replica (or this process) logs while a consumer waits is read from
    Redis once: by the read that waited for it, which the consumer yields from."""
    store = CountingRedisStore(redis_url)
    async with DeliveryTracker(store=store) as tracker, RedisStore(redis_url) as replica:
        consumer = tracker.events()
        logged: list[DeliveryEvent] = []
        for i in range(6):
            store.waiting.clear()
            following = asyncio.ensure_future(anext(consumer))
            async with asyncio.timeout(WAIT):
                await store.waiting.wait()  # the consumer waits in the store for the next event
            record = replica.apply_events if i % 2 else tracker.ingest
            [event] = await record([update(f"tel:+33{i}")])
            assert await asyncio.wait_for(following, WAIT) == event
            logged.append(event)
    for event in logged:
        assert sum(event in read for read in store.reads) == 1, event
