"""The store hands the tracker what it logged: every event SQLite commits reaches live
``events()`` consumers and ``wait_for_final`` at once, whoever wrote it and whether or not the
caller that wrote it is still waiting."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

from opensms_async import DeliveryEvent, DeliveryStatus, DeliveryTracker, DeliveryUpdate
from opensms_async.stores import SQLiteStore

S = DeliveryStatus
WAIT = 30.0
"""Upper bound on any wait in this file: without the store's publish, each test fails here."""


def update(status: S, address: str) -> DeliveryUpdate:
    """A callback update for request ``req-1``."""
    return DeliveryUpdate("req-1", address, status)


async def take_one(events: AsyncIterator[DeliveryEvent]) -> DeliveryEvent:
    """The next event of a consumer, within a bounded time."""
    return await asyncio.wait_for(anext(events), WAIT)


def block_until_committed(path: Path, count: int) -> None:
    """Block this thread (the event loop's: nothing else runs on the loop meanwhile) until the
    file holds ``count`` events, i.e. until the store's writer thread has committed them."""
    deadline = time.monotonic() + WAIT
    with contextlib.closing(sqlite3.connect(path)) as conn:
        while conn.execute("SELECT count(*) FROM events").fetchone()[0] < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the store never committed {count} events")
            time.sleep(0.001)


async def test_a_cancelled_ingest_reaches_a_live_consumer_and_a_waiter_at_once(
    tmp_path: Path,
) -> None:
    """An ``ingest`` cancelled after SQLite committed its update (its caller gave up, a receiver
    request timing out say) still hands its event to a live ``events()`` consumer and wakes a
    ``wait_for_final`` for it, without waiting for any later event or the waiter's timeout."""
    path = tmp_path / "t.db"
    async with DeliveryTracker(store=SQLiteStore(path)) as tracker:
        consumer = tracker.events()
        await tracker.ingest([update(S.MESSAGE_WAITING, "tel:+330")])
        assert (await take_one(consumer)).address == "tel:+330"  # live from here on
        waiter = asyncio.create_task(tracker.wait_for_final("req-1", "tel:+331", timeout=WAIT))
        assert await tracker.get("req-1", "tel:+331") is None  # the waiter read before this
        following = asyncio.ensure_future(take_one(consumer))
        recording = asyncio.create_task(
            tracker.ingest([update(S.DELIVERED_TO_TERMINAL, "tel:+331")])
        )
        await asyncio.sleep(0)  # the ingest has queued its update and awaits the commit
        block_until_committed(path, 2)
        recording.cancel()  # before the loop hears of the commit
        await asyncio.wait([recording])
        assert recording.cancelled()
        event = await following
        final = await waiter
    assert (event.address, event.status) == ("tel:+331", S.DELIVERED_TO_TERMINAL)
    assert final.status is S.DELIVERED_TO_TERMINAL


async def test_a_final_committed_in_the_batch_of_a_waiters_read_wakes_it(tmp_path: Path) -> None:
    """A ``wait_for_final`` whose read of the state runs in the same SQLite batch as the commit
    of the final (so the read saw the state before it) is woken by that final all the same."""
    store = SQLiteStore(tmp_path / "t.db")
    async with DeliveryTracker(store=store) as tracker:
        taken, gate = threading.Event(), threading.Event()

        def hold_the_writer(conn: sqlite3.Connection) -> None:
            taken.set()
            gate.wait(WAIT)

        holding = asyncio.ensure_future(store._ready().call(hold_the_writer))
        assert await asyncio.to_thread(taken.wait, WAIT)  # the writer runs the hold, alone
        waiter = asyncio.create_task(tracker.wait_for_final("req-1", "tel:+331", timeout=WAIT))
        await asyncio.sleep(0)  # the waiter has queued its read
        recording = asyncio.create_task(
            tracker.ingest([update(S.DELIVERED_TO_TERMINAL, "tel:+331")])
        )
        await asyncio.sleep(0)  # and the ingest its update, behind the read: one batch
        gate.set()
        await holding
        [event] = await recording
        final = await waiter
    assert event.status is final.status is S.DELIVERED_TO_TERMINAL
