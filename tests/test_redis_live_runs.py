"""Live consumers of a Redis store take the events this process built, with no read of the log,
and still get every other replica's events once, in log order: idle, busy, and in a gap between
two of this process's batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from stream_helpers import take

from opensms_async import DeliveryEvent, DeliveryStatus, DeliveryTracker, DeliveryUpdate, _live
from opensms_async.stores import RedisStore

pytestmark = pytest.mark.integration


class CountingRedisStore(RedisStore):
    """A Redis store that counts its ``read_events`` calls (every read of the log)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reads = 0

    async def read_events(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> list[DeliveryEvent]:
        """The store's read, counted."""
        self.reads += 1
        return await super().read_events(after, limit=limit, timeout=timeout)


def update(n: int) -> DeliveryUpdate:
    """A first sighting of recipient ``n``: one event."""
    return DeliveryUpdate("req-1", f"tel:+3361000{n:04d}", DeliveryStatus.MESSAGE_WAITING)


async def settled(tracker: DeliveryTracker) -> None:
    """Until the tracker's live buffer has no read of the log in flight (bounded)."""
    for _ in range(1000):
        if getattr(tracker._live, "_fetch", None) is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the live buffer's read never ended")


async def warmed(tracker: DeliveryTracker, stream: AsyncIterator[DeliveryEvent]) -> None:
    """One event logged and consumed, and any read of the log the buffer started meanwhile
    over: from here, this process's batches come alone."""
    await tracker.ingest([update(9999)])
    await take(stream, 1)
    await settled(tracker)


async def test_a_consumer_gets_the_very_events_the_store_built_without_reading_the_log(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of this process's applies reaches its consumers as the event objects the store
    built from the merge's answer: no read of the log (before: each event read back from Redis
    and decoded again)."""
    monkeypatch.setattr(
        _live, "_IDLE_AFTER", 60.0, raising=False
    )  # no blocking read once the burst started
    store = CountingRedisStore(redis_url)
    async with DeliveryTracker(store=store) as tracker:
        streams = [tracker.events(), tracker.events()]
        await asyncio.gather(*(warmed(tracker, stream) for stream in streams[:1]))
        await take(streams[1], 1)
        reads = store.reads
        pending = [asyncio.ensure_future(take(stream, 100)) for stream in streams]
        batches = await asyncio.gather(*(tracker.ingest([update(n)]) for n in range(100)))
        logged = {event.cursor: event for batch in batches for event in batch}
        for got in await asyncio.gather(*pending):
            assert sorted(e.cursor for e in got) == sorted(logged)
            assert all(event is logged[event.cursor] for event in got)
        assert store.reads == reads


async def test_another_replicas_event_reaches_an_idle_and_a_busy_process(redis_url: str) -> None:
    """An event another store logs on the same Redis reaches this process's consumers while
    this one is idle (its blocking read) and while it applies too (interleaved): each consumer
    gets every event of both, once, in log order."""
    store = CountingRedisStore(redis_url)
    async with DeliveryTracker(store=store) as tracker, RedisStore(redis_url) as replica:
        streams = [tracker.events(), tracker.events()]
        await tracker.ingest([update(0)])
        await asyncio.gather(*(take(stream, 1) for stream in streams))
        idle = await replica.apply_events([update(1)])
        for stream in streams:
            assert [e.cursor for e in await take(stream, 1, timeout=10.0)] == [idle[0].cursor]

        async def record(apply: Any, start: int) -> None:
            for n in range(start, start + 60, 2):
                await apply([update(n)])

        pending = [asyncio.ensure_future(take(stream, 60)) for stream in streams]
        await asyncio.gather(record(tracker.ingest, 100), record(replica.apply_events, 101))
        log = [e.cursor for e in await store.read_events(idle[0].cursor, limit=100)]
        assert len(log) == 60
        for got in await asyncio.gather(*pending):
            assert [e.cursor for e in got] == log


async def test_a_gap_between_two_local_batches_is_filled_in_log_order(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another replica logs between two of this process's batches: the consumer gets the three
    events in log order, the other's read from the log, and the buffer continues with this
    process's next batch as built (the events before the gap too)."""
    monkeypatch.setattr(
        _live, "_IDLE_AFTER", 60.0, raising=False
    )  # only the gap makes the buffer read
    store = CountingRedisStore(redis_url)
    async with DeliveryTracker(store=store) as tracker, RedisStore(redis_url) as replica:
        stream = tracker.events()
        await warmed(tracker, stream)
        first = await tracker.ingest([update(1)])
        other = await replica.apply_events([update(2)])
        second = await tracker.ingest([update(3)])
        got = await take(stream, 3, timeout=10.0)
        assert [e.cursor for e in got] == [e.cursor for e in first + other + second]
        assert got[0] is first[0]
        await settled(tracker)
        third = await tracker.ingest([update(4), update(5)])
        after = await take(stream, 2, timeout=10.0)
        assert after == third
        assert all(a is b for a, b in zip(after, third, strict=True))


async def test_a_blocking_read_in_flight_holds_no_consumer(redis_url: str) -> None:
    """While the buffer's blocking read of the log is in flight (here it never answers), this
    process's events still reach its consumer at once; closing ends that read."""
    store = RedisStore(redis_url)
    blocking = asyncio.Event()
    hung = asyncio.Event()

    async def hung_xread(*args: Any, **kwargs: Any) -> Any:
        blocking.set()
        await hung.wait()
        return []

    store._blocking.xread = hung_xread  # type: ignore[method-assign]
    async with DeliveryTracker(store=store) as tracker:
        stream = tracker.events()
        await tracker.ingest([update(0)])
        await take(stream, 1)  # read from the log (no wait): the consumer is now caught up
        waiting = asyncio.ensure_future(take(stream, 1, timeout=10.0))
        await asyncio.wait_for(blocking.wait(), 10.0)
        logged = await tracker.ingest([update(1)])
        got = await waiting  # before: it waited in the hung read (3 s), then read a copy back
        assert got[0] is logged[0]
        assert not hung.is_set()


async def test_no_read_of_the_log_while_the_store_writes_a_batch(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the store has a batch in flight (held here), its caught-up consumer's buffer reads
    nothing, however long the wait (its batch will say whether another replica logged first);
    the batch then reaches the consumer as built."""
    monkeypatch.setattr(_live, "_IDLE_AFTER", 0.001, raising=False)  # looks every millisecond
    store = CountingRedisStore(redis_url)
    release = asyncio.Event()
    async with DeliveryTracker(store=store) as tracker:
        await tracker.ingest([update(0)])
        merge = store._merge

        async def held(*args: Any, **kwargs: Any) -> Any:
            await release.wait()
            return await merge(*args, **kwargs)

        store._merge = held  # type: ignore[assignment]
        writing = asyncio.ensure_future(tracker.ingest([update(1)]))
        stream = tracker.events()
        await take(stream, 1)  # read from the log (no wait): caught up, the batch held
        reads = store.reads
        waiting = asyncio.ensure_future(take(stream, 1, timeout=10.0))
        try:
            await asyncio.sleep(0.1)
            assert store.reads == reads
        finally:
            release.set()
        logged = await writing
        assert (await waiting)[0] is logged[0]


async def test_each_batch_handed_to_the_listeners_names_the_event_logged_before_it(
    redis_url: str,
) -> None:
    """The merge script answers the stream's newest id before its first entry: each batch a
    store hands its listeners says, as ``after``, the cursor of the event just before it in the
    log, whichever replica logged that one (None for the first event of the log)."""
    runs: list[Any] = []
    async with RedisStore(redis_url) as store, RedisStore(redis_url) as replica:
        store.listen(runs.append)
        for n in range(6):
            await store.apply_events([update(2 * n), update(2 * n + 1)])
            if n % 2:
                await replica.apply_events([update(100 + n)])
        log = [e.cursor for e in await store.read_events(None, limit=100)]
    assert len(runs) == 6
    for run in runs:
        index = log.index(run[0].cursor)
        assert run.after == (log[index - 1] if index else None)
        assert [e.cursor for e in run] == log[index : index + len(run)]
