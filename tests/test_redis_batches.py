"""A Redis store sends a second batch of applies while Redis runs the first, and still hands out
the answers in the order the batches were sent: each caller its own events, the listeners each
batch in that order, and live consumers every event once, in log order, even when Redis ran the
second batch first; a failed batch fails only its own callers; no cancellation wedges it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from stream_helpers import take

from opensms_async import DeliveryEvent, DeliveryStatus, DeliveryTracker, DeliveryUpdate
from opensms_async._exceptions import StoreUnavailableError
from opensms_async.stores import RedisStore
from opensms_async.stores._redis_batches import IN_FLIGHT

pytestmark = pytest.mark.integration

WAIT = 10.0


def update(n: int) -> DeliveryUpdate:
    """A first sighting of recipient ``n``: one event."""
    return DeliveryUpdate("req-1", f"tel:+3361000{n:04d}", DeliveryStatus.MESSAGE_WAITING)


class HeldScript:
    """Stands in for the store's merge script: the first call waits for ``release`` before it
    reaches Redis (or fails, with ``fail_first``); every call is counted when it starts and
    when Redis has answered it."""

    def __init__(self, script: Any, *, fail_first: bool = False) -> None:
        self.script = script
        self.fail_first = fail_first
        self.release = asyncio.Event()
        self.started = 0
        self.answered = 0
        self.first_started = asyncio.Event()
        self.second_answered = asyncio.Event()

    async def until_first_started(self) -> None:
        """Until the first call is held (bounded)."""
        await asyncio.wait_for(self.first_started.wait(), WAIT)

    async def __call__(self, **kwargs: Any) -> Any:
        self.started += 1
        if self.started == 1:
            self.first_started.set()
            await self.release.wait()
            if self.fail_first:
                raise RedisConnectionError("the first batch's connection was lost")
        reply = await self.script(**kwargs)
        self.answered += 1
        if self.started >= 2:
            self.second_answered.set()
        return reply


def hold_merges(store: RedisStore, **options: Any) -> HeldScript:
    """Put a :class:`HeldScript` in front of ``store``'s merge script."""
    held = HeldScript(store._merge, **options)
    store._merge = held  # type: ignore[assignment]
    return held


async def test_a_second_batch_goes_to_redis_while_the_first_is_in_flight(redis_url: str) -> None:
    """While the first batch waits for its answer, the calls made meanwhile are sent as a second
    batch (before: they waited for the first's answer). Redis ran the second first, yet its
    caller returns only after the first's, and the listeners get the two batches in the order
    they were sent; each caller gets its own events, as logged."""
    async with RedisStore(redis_url) as store:
        await store.apply_events([update(9999)])  # scripts loaded, a connection in the pool
        held = hold_merges(store)
        published: list[list[str]] = []
        store.listen(lambda events: published.append([e.address for e in events]))
        first = asyncio.ensure_future(store.apply_events([update(1), update(2)]))
        await held.until_first_started()
        second = asyncio.ensure_future(store.apply_events([update(3)]))
        async with asyncio.timeout(WAIT):
            await held.second_answered.wait()
        await asyncio.sleep(0.05)
        assert not second.done()  # answered by Redis, handed out after the first
        assert store.writing
        held.release.set()
        got_first, got_second = await asyncio.wait_for(asyncio.gather(first, second), WAIT)
        assert [e.address for e in got_first] == [update(1).address, update(2).address]
        assert [e.address for e in got_second] == [update(3).address]
        assert published == [[e.address for e in got_first], [e.address for e in got_second]]
        log = await store.read_events(None, limit=10)
        assert [e.cursor for e in log[1:]] == [e.cursor for e in got_second + got_first]
        assert not store.writing


async def test_a_live_consumer_gets_every_event_once_in_log_order_when_redis_ran_them_reversed(
    redis_url: str,
) -> None:
    """The batches reach the live buffer in the order sent, which is not the log's here: the
    consumer still gets each event once, in log order (the rest read from the log)."""
    store = RedisStore(redis_url)
    async with DeliveryTracker(store=store) as tracker:
        stream = tracker.events()
        await tracker.ingest([update(9999)])
        await take(stream, 1)
        held = hold_merges(store)
        first = asyncio.ensure_future(tracker.ingest([update(1)]))
        await held.until_first_started()
        second = asyncio.ensure_future(tracker.ingest([update(2), update(3)]))
        async with asyncio.timeout(WAIT):
            await held.second_answered.wait()
        held.release.set()
        await asyncio.wait_for(asyncio.gather(first, second), WAIT)
        got = await take(stream, 3, timeout=WAIT)
        log = await store.read_events(None, limit=10)
        assert [e.cursor for e in got] == [e.cursor for e in log[1:]]
        assert [e.address for e in got] == [update(n).address for n in (2, 3, 1)]


async def test_a_failed_batch_fails_only_its_own_callers(redis_url: str) -> None:
    """The first batch's connection is lost: its caller gets StoreUnavailableError, the second
    batch's caller (in flight meanwhile) its events, and the listeners only those."""
    async with RedisStore(redis_url) as store:
        await store.apply_events([update(9999)])
        held = hold_merges(store, fail_first=True)
        published: list[Sequence[DeliveryEvent]] = []
        store.listen(published.append)
        first = asyncio.ensure_future(store.apply_events([update(1)]))
        await held.until_first_started()
        second = asyncio.ensure_future(store.apply_events([update(2)]))
        async with asyncio.timeout(WAIT):
            await held.second_answered.wait()
        assert not first.done()  # both batches were in flight together
        held.release.set()
        with pytest.raises(StoreUnavailableError, match="lost"):
            await asyncio.wait_for(first, WAIT)
        logged = await asyncio.wait_for(second, WAIT)
        assert [e.address for e in logged] == [update(2).address]
        assert [list(batch) for batch in published] == [logged]


async def test_calls_beyond_the_batches_in_flight_wait_and_go_together(redis_url: str) -> None:
    """With every batch in flight held, later calls queue, and go in one batch once one
    answers: no more than IN_FLIGHT script calls are ever in flight."""
    async with RedisStore(redis_url) as store:
        await store.apply_events([update(9999)])
        held = hold_merges(store)
        first = asyncio.ensure_future(store.apply_events([update(1)]))
        await held.until_first_started()
        second = asyncio.ensure_future(store.apply_events([update(2)]))
        async with asyncio.timeout(WAIT):
            await held.second_answered.wait()
        assert IN_FLIGHT == 2
        # The second batch is answered but not handed out: its slot stays taken until the first.
        queued = [asyncio.ensure_future(store.apply_events([update(n)])) for n in range(3, 13)]
        await asyncio.sleep(0.05)
        assert held.started == 2
        held.release.set()
        results = await asyncio.wait_for(asyncio.gather(first, second, *queued), WAIT)
        assert [len(events) for events in results] == [1] * 12
        assert held.started == 3  # the ten queued calls: one script call


async def test_a_hung_first_batch_holds_the_next_answers_only_until_its_deadline(
    redis_url: str,
) -> None:
    """The first batch never answers: its caller fails at its deadline (its timeout after it
    was made); the second batch, answered meanwhile, and the call queued behind both get their
    events then, not a timeout of their own."""
    async with RedisStore(redis_url, timeout=0.5) as store:
        await store.apply_events([update(9999)])
        held = hold_merges(store)  # never released: the first batch hangs until its deadline
        loop = asyncio.get_running_loop()
        started = loop.time()
        calls = []
        for n in range(3):
            calls.append(asyncio.ensure_future(store.apply_events([update(n)])))
            await asyncio.sleep(0.15)
        first = await asyncio.wait_for(asyncio.gather(calls[0], return_exceptions=True), WAIT)
        failed_after = loop.time() - started
        assert isinstance(first[0], StoreUnavailableError)
        assert "did not answer within 0.5 s" in str(first[0])
        rest = await asyncio.wait_for(asyncio.gather(*calls[1:]), WAIT)
        assert [[e.address for e in events] for events in rest] == [
            [update(1).address],
            [update(2).address],
        ]
        assert held.started == 3
        assert 0.45 <= failed_after < 0.5 + 1.0


async def test_a_batch_cancelled_before_it_ran_wedges_nothing(redis_url: str) -> None:
    """Something cancels every task just as a batch is about to start (its caller with it):
    the next call still goes to Redis at once (before: it waited out its timeout)."""
    async with RedisStore(redis_url, timeout=5.0) as store:
        await store.apply_events([update(9999)])
        caller = asyncio.ensure_future(store.apply_events([update(1)]))
        await asyncio.sleep(0)  # the caller queued its call; the batch's task has not run
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        logged = await asyncio.wait_for(store.apply_events([update(2)]), 2.0)
        assert [e.address for e in logged] == [update(2).address]
        assert not store.writing


async def test_a_batch_cancelled_while_the_one_before_is_in_flight_still_hands_out_its_answer(
    redis_url: str,
) -> None:
    """The second batch, answered by Redis, is cancelled while it waits for the first: once the
    first is out, its caller still gets its events and the listeners the batch, in order (not
    "cancelled before Redis answered" for events that are in the log)."""
    async with RedisStore(redis_url) as store:
        await store.apply_events([update(9999)])
        held = hold_merges(store)
        published: list[list[str]] = []
        store.listen(lambda events: published.append([e.address for e in events]))
        first = asyncio.ensure_future(store.apply_events([update(1)]))
        await held.until_first_started()
        second = asyncio.ensure_future(store.apply_events([update(2)]))
        async with asyncio.timeout(WAIT):
            await held.second_answered.wait()
        second_batch = store._batches._sending[1].task
        assert second_batch is not None
        second_batch.cancel()
        await asyncio.sleep(0.05)
        assert not second.done()
        held.release.set()
        got_first, got_second = await asyncio.wait_for(asyncio.gather(first, second), WAIT)
        assert [e.address for e in got_first + got_second] == [update(1).address, update(2).address]
        assert published == [[update(1).address], [update(2).address]]
        assert second_batch.cancelled()  # the cancellation is passed on once the answer is out


async def test_cancelling_every_task_mid_batch_leaves_the_store_idle_and_working(
    redis_url: str,
) -> None:
    """Every task is cancelled while one batch is in flight and the next not started yet: the
    store ends with nothing queued or in flight (its live consumers' idle reads of the log
    resume) and the next call goes to Redis at once."""
    async with RedisStore(redis_url, timeout=5.0) as store:
        await store.apply_events([update(9999)])
        held = hold_merges(store)
        first = asyncio.ensure_future(store.apply_events([update(1)]))
        await held.until_first_started()
        second = asyncio.ensure_future(store.apply_events([update(2)]))
        await asyncio.sleep(0)  # the second call queued; its batch's task has not run
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert all(isinstance(result, asyncio.CancelledError) for result in results)
        await asyncio.sleep(0.05)
        assert not store.writing
        held.release.set()
        logged = await asyncio.wait_for(store.apply_events([update(3)]), 2.0)
        assert [e.address for e in logged] == [update(3).address]
