"""DeliveryTracker over the memory, SQLite and Redis stores: recording, events, waiting."""

from __future__ import annotations

import asyncio
import random
import weakref
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from store_calls import Answers
from stream_helpers import take

from opensms_async import (
    DeliveryEvent,
    DeliveryInfo,
    DeliveryStatus,
    DeliveryTracker,
    DeliveryUpdate,
    SendResult,
    Source,
)
from opensms_async.stores import MemoryStore, Store

S = DeliveryStatus


def sent(
    request_id: str = "req-1", recipients: tuple[str, ...] = ("tel:+331", "tel:+332")
) -> SendResult:
    """A send result as the client returns it."""
    return SendResult(
        request_id=request_id,
        sender="tel:+3212345",
        resource_url=None,
        delivery_infos=[DeliveryInfo(address=a, status=S.DELIVERED_TO_NETWORK) for a in recipients],
        recipients=recipients,
        client_correlator="c",
    )


def update(
    status: S | str, address: str = "tel:+331", request_id: str = "req-1", parts: int | None = None
) -> DeliveryUpdate:
    """A callback update."""
    return DeliveryUpdate(request_id, address, status, parts_delivered=parts)


@pytest.fixture
def store(tracker_store: Store) -> Store:
    """Each store the tracker runs on: memory, SQLite, Redis (``tests/conftest.py``)."""
    return tracker_store


@pytest.fixture
async def tracker(store: Store) -> AsyncIterator[DeliveryTracker]:
    """An open tracker without a client (receive only)."""
    async with DeliveryTracker(store=store) as t:
        yield t


async def test_track_records_send_states(tracker: DeliveryTracker) -> None:
    """track() records each recipient with the send's status and source 'send'."""
    caused = await tracker.track(sent())
    assert [(e.address, e.status) for e in caused] == [
        ("tel:+331", S.DELIVERED_TO_NETWORK),
        ("tel:+332", S.DELIVERED_TO_NETWORK),
    ]
    state = await tracker.get("req-1", "+331")
    assert state is not None
    assert state.status is S.DELIVERED_TO_NETWORK
    assert state.sender == "tel:+3212345"
    events = await take(tracker.events(), 2)
    assert [e.source for e in events] == [Source.SEND, Source.SEND]
    assert await tracker.get("req-1", "+339") is None


async def test_events_only_on_advance(tracker: DeliveryTracker) -> None:
    """A late DeliveredToNetwork and a duplicate final emit nothing; the final state stays."""
    caused = await tracker.ingest([update(S.DELIVERED_TO_TERMINAL)])
    assert await tracker.ingest(u for u in [update(S.DELIVERED_TO_NETWORK)]) == []
    assert await tracker.ingest([update(S.DELIVERED_TO_TERMINAL)]) == []
    events = await take(tracker.events(), 1)
    assert events == caused
    assert events[0].status is S.DELIVERED_TO_TERMINAL
    assert events[0].previous is None
    assert await tracker.store.last_cursor() == events[0].cursor
    state = await tracker.get("req-1", "tel:+331")
    assert state is not None and state.status is S.DELIVERED_TO_TERMINAL


async def test_events_resume_after_cursor(tracker: DeliveryTracker) -> None:
    """events(since=c) yields exactly the events after c."""
    await tracker.ingest([update(S.DELIVERED_TO_NETWORK), update(S.DELIVERED_TO_TERMINAL)])
    first, second = await take(tracker.events(), 2)
    resumed = await take(tracker.events(since=first.cursor), 1)
    assert resumed == [second]


async def test_concurrent_consumers_each_see_every_event(tracker: DeliveryTracker) -> None:
    """Several live consumers each receive every advance, in order."""
    reads = Answers(tracker.store, "read_events")
    consumers = [asyncio.create_task(take(tracker.events(), 20)) for _ in range(3)]
    await reads.reach(3)  # each read the (empty) log: all three wait, live
    for i in range(10):
        await tracker.ingest([update(S.DELIVERED_TO_NETWORK, address=f"tel:+33{i}")])
        await tracker.ingest([update(S.DELIVERED_TO_TERMINAL, address=f"tel:+33{i}")])
    results = await asyncio.gather(*consumers)
    assert results[0] == results[1] == results[2]
    assert len({e.cursor for e in results[0]}) == 20


async def test_slow_consumer_reads_from_the_log(store: Store) -> None:
    """A consumer far behind a tiny live buffer still gets every event, in order."""
    async with DeliveryTracker(store=store, live_buffer=4) as tracker:
        slow = tracker.events()
        await tracker.ingest(
            [update(S.DELIVERED_TO_NETWORK, address=f"tel:+33{i}") for i in range(50)]
        )
        events = await take(slow, 50)
        assert [e.address for e in events] == [f"tel:+33{i}" for i in range(50)]
        cursor = events[10].cursor
        assert [e.address for e in await take(tracker.events(since=cursor), 39)] == [
            f"tel:+33{i}" for i in range(11, 50)
        ]


async def test_consumers_share_one_event_object_and_release_it() -> None:
    """Live consumers get the very object ingest returned; once every consumer has read past an
    event, the tracker holds it no longer (a bare receiver holds none at all)."""
    async with DeliveryTracker(store=MemoryStore()) as tracker:
        await tracker.ingest([update(S.MESSAGE_WAITING)])
        first, second = tracker.events(), tracker.events()
        assert len(await take(first, 1)) == len(await take(second, 1)) == 1  # from the store
        [caused] = await tracker.ingest([update(S.DELIVERED_TO_NETWORK)])
        [a] = await take(first, 1)
        [b] = await take(second, 1)
        assert a is b is caused
        ref = weakref.ref(caused)
        del a, b, caused
        await tracker.ingest([update(S.DELIVERED_TO_TERMINAL)])  # a publish trims the buffer
        assert len(await take(first, 1)) == len(await take(second, 1)) == 1
        assert ref() is None  # read by both: nothing holds it (each consumer holds its latest)
        await first.aclose()  # type: ignore[attr-defined]
        await second.aclose()  # type: ignore[attr-defined]
        unread = await tracker.ingest([update(S.DELIVERED_TO_NETWORK, address="tel:+339")])
        ref = weakref.ref(unread[0])
        del unread
        assert ref() is None  # no consumer: nothing kept


async def test_consumer_behind_the_buffer_reads_the_store_then_returns(store: Store) -> None:
    """A consumer that falls more than ``live_buffer`` behind reads the store, loses nothing,
    and (on a store of this process alone) shares live objects again once it has caught up."""
    async with DeliveryTracker(store=store, live_buffer=8) as tracker:
        lagging = tracker.events()
        await tracker.ingest([update(S.MESSAGE_WAITING, address="tel:+330")])
        assert len(await take(lagging, 1)) == 1  # positioned in the buffer
        for i in range(1, 40):
            await tracker.ingest([update(S.MESSAGE_WAITING, address=f"tel:+33{i}")])
        caught_up = await take(lagging, 39)
        assert [e.address for e in caught_up] == [f"tel:+33{i}" for i in range(1, 40)]
        [live] = await tracker.ingest([update(S.MESSAGE_WAITING, address="tel:+3399")])
        [got] = await take(lagging, 1)
        assert got == live
        if not store.shared:  # a shared store's log has other writers: always read from it
            assert got is live


class LateAnswerStore(MemoryStore):
    """A store that logs an event (handing it to its listeners) and answers its caller only when
    released, as SQLite commits on its thread before the caller's task resumes."""

    def __init__(self) -> None:
        super().__init__()
        self.logged = asyncio.Event()
        self.release = asyncio.Event()

    async def apply_events(self, updates: Sequence[DeliveryUpdate]) -> list[DeliveryEvent]:
        """Log, then wait for the release before answering."""
        events = await super().apply_events(updates)
        self.logged.set()
        await self.release.wait()
        return events


async def test_event_read_from_the_store_before_its_publish_comes_once() -> None:
    """A consumer that reads an event before the ingest that logged it has returned gets it once,
    not a second time when that ingest returns."""
    store = LateAnswerStore()
    async with DeliveryTracker(store=store) as tracker:
        recording = asyncio.create_task(tracker.ingest([update(S.DELIVERED_TO_NETWORK)]))
        await store.logged.wait()  # logged by the store, not yet returned
        consumer = tracker.events()
        [early] = await take(consumer, 1)  # logged, not yet returned
        store.release.set()
        [returned] = await recording
        assert early == returned
        await tracker.ingest([update(S.DELIVERED_TO_TERMINAL)])
        [after] = await take(consumer, 1)
    assert after.status is S.DELIVERED_TO_TERMINAL


async def test_events_of_a_cancelled_ingest_still_reach_live_consumers() -> None:
    """An ingest cancelled after the store logged its events (it never returns them) leaves no
    hole in a live consumer's stream: the store handed them over when it logged them."""
    store = LateAnswerStore()
    async with DeliveryTracker(store=store) as tracker:
        store.release.set()
        await tracker.ingest([update(S.MESSAGE_WAITING, address="tel:+330")])
        consumer = tracker.events()
        assert [e.address for e in await take(consumer, 1)] == ["tel:+330"]
        store.release.clear()
        store.logged.clear()
        cancelled = asyncio.create_task(
            tracker.ingest([update(S.MESSAGE_WAITING, address=f"tel:+33{i}") for i in (1, 2)])
        )
        await store.logged.wait()  # logged by the store, and then the caller gives up
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        store.release.set()
        await tracker.ingest([update(S.MESSAGE_WAITING, address="tel:+333")])
        rest = await take(consumer, 3)
    assert [e.address for e in rest] == ["tel:+331", "tel:+332", "tel:+333"]
    assert [int(e.cursor) for e in rest] == [2, 3, 4]


async def test_out_of_order_storm_converges(tracker: DeliveryTracker) -> None:
    """Shuffled, duplicated updates for many recipients converge and log each advance once."""
    chain = [S.DELIVERED_TO_NETWORK, S.DELIVERY_UNCERTAIN, S.DELIVERED_TO_TERMINAL]
    updates = [update(s, address=f"tel:+33{i}") for i in range(40) for s in chain for _ in range(3)]
    random.Random(3).shuffle(updates)
    await asyncio.gather(*(tracker.ingest(updates[i : i + 7]) for i in range(0, len(updates), 7)))
    for i in range(40):
        state = await tracker.get("req-1", f"tel:+33{i}")
        assert state is not None and state.status is S.DELIVERED_TO_TERMINAL
    log = await tracker.store.read_events(None, limit=10_000)
    per_pair: dict[str, list[str]] = {}
    for event in log:
        per_pair.setdefault(event.address, []).append(str(event.status))
    for statuses in per_pair.values():
        assert len(statuses) == len(set(statuses))
        assert statuses[-1] == "DeliveredToTerminal"


async def test_wait_for_final_on_an_unseen_pair(tracker: DeliveryTracker) -> None:
    """wait_for_final waits for a pair never seen and returns its final state."""
    reads = Answers(tracker.store, "get")
    waiter = asyncio.create_task(tracker.wait_for_final("req-9", "+339", timeout=60))
    await reads.reach(1)  # it read nothing: it waits
    await tracker.ingest([update(S.DELIVERED_TO_NETWORK, address="tel:+339", request_id="req-9")])
    assert not waiter.done()
    await tracker.ingest([update(S.DELIVERY_IMPOSSIBLE, address="tel:+339", request_id="req-9")])
    state = await waiter
    assert state.status is S.DELIVERY_IMPOSSIBLE


async def test_wait_for_final_times_out(tracker: DeliveryTracker) -> None:
    """wait_for_final raises TimeoutError when no final state comes in time."""
    await tracker.ingest([update(S.DELIVERED_TO_NETWORK)])
    with pytest.raises(TimeoutError):
        await tracker.wait_for_final("req-1", "tel:+331", timeout=0.05)


async def test_close_ends_iterators(store: Store) -> None:
    """Closing the tracker ends every events() iterator (on Redis too, where a read is pending
    in XREAD when the store closes)."""
    tracker = DeliveryTracker(store=store)
    await tracker.open()
    reads = Answers(store, "read_events")
    consumer = asyncio.create_task(take(tracker.events(), 100))
    await reads.reach(1)  # it read the (empty) log: it waits for events
    await tracker.aclose()
    assert await asyncio.wait_for(consumer, 30) == []
    await tracker.aclose()
    with pytest.raises(RuntimeError):
        await tracker.ingest([update(S.DELIVERED_TO_NETWORK)])


async def test_sqlite_tracker_reopens_with_state_and_replays(tmp_path: Path) -> None:
    """A tracker reopened on the same SQLite file has the same states and replays after a cursor."""
    url = f"sqlite:///{tmp_path / 'durable.db'}"
    async with DeliveryTracker(store=url) as tracker:
        await tracker.track(sent())
        await tracker.ingest([update(S.DELIVERED_TO_TERMINAL)])
        events = await take(tracker.events(), 3)
        saved = events[0].cursor
    async with DeliveryTracker(store=url) as tracker:
        state = await tracker.get("req-1", "tel:+331")
        assert state is not None and state.status is S.DELIVERED_TO_TERMINAL
        assert await take(tracker.events(since=saved), 2) == events[1:]
        await tracker.ingest([update(S.DELIVERED_TO_TERMINAL, address="tel:+332")])
        (new,) = await take(tracker.events(since=events[-1].cursor), 1)
        assert int(new.cursor) > int(events[-1].cursor)


def test_bad_store_url_is_a_clear_error() -> None:
    """An unknown store URL raises InvalidStoreURLError naming the URL."""
    from opensms_async import InvalidStoreURLError

    with pytest.raises(InvalidStoreURLError, match="postgres"):
        DeliveryTracker(store="postgres://x")


class FlakyStore(MemoryStore):
    """A memory store whose log reads fail a few times, as a Redis restart would make them."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def read_events(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> list[DeliveryEvent]:
        """Fail while failures remain, then read."""
        from opensms_async import StoreUnavailableError

        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailableError("store restarting")
        return await super().read_events(after, limit=limit, timeout=timeout)


async def test_events_survive_a_store_outage() -> None:
    """events() waits out an unavailable store and resumes without skipping an event."""
    store = FlakyStore(failures=2)
    async with DeliveryTracker(store=store) as tracker:
        await tracker.ingest([update(S.DELIVERED_TO_NETWORK), update(S.DELIVERED_TO_TERMINAL)])
        events = await take(tracker.events(), 2)
    assert [e.status for e in events] == [S.DELIVERED_TO_NETWORK, S.DELIVERED_TO_TERMINAL]
    assert store.failures == 0
