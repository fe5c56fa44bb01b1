"""DeliveryTracker.wait_for_final at shutdown: a clear error when the tracker closes, never a
cancellation nobody asked for (and a real cancellation stays one)."""

from __future__ import annotations

import asyncio

import pytest
from store_calls import Answers

from opensms_async import DeliveryStatus, DeliveryTracker, DeliveryUpdate
from opensms_async._state import DeliveryState
from opensms_async.stores import MemoryStore, Store

S = DeliveryStatus
WAIT = 5.0
"""Upper bound on any wait in this file: a hang fails fast."""


@pytest.fixture
def store(tracker_store: Store) -> Store:
    """Each store the tracker runs on: memory, SQLite, Redis (``tests/conftest.py``)."""
    return tracker_store


def update(status: S) -> DeliveryUpdate:
    """A callback update for the one pair these tests wait on."""
    return DeliveryUpdate("req-1", "tel:+331", status)


class GatedStore(MemoryStore):
    """A memory store whose ``get`` holds its answer until the test opens the gate.

    ``read_first``: the state is read before holding (as SQLite's thread answers a read queued
    before the close); otherwise after, when the store is closed already (it raises then).
    """

    def __init__(self, *, read_first: bool) -> None:
        super().__init__()
        self.read_first = read_first
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def get(self, request_id: str, address: str) -> DeliveryState | None:
        """The state, answered once the gate is open."""
        state = await super().get(request_id, address) if self.read_first else None
        self.entered.set()
        await self.gate.wait()
        return state if self.read_first else await super().get(request_id, address)


async def test_close_fails_a_waiter_with_a_clear_error_not_a_cancellation(store: Store) -> None:
    """A wait_for_final still waiting when the tracker closes raises RuntimeError saying the
    tracker closed; the caller's task is not cancelled."""
    tracker = DeliveryTracker(store=store)
    await tracker.open()
    await tracker.ingest([update(S.DELIVERED_TO_NETWORK)])
    reads = Answers(store, "get")
    waiter = asyncio.create_task(tracker.wait_for_final("req-1", "tel:+331"))
    await reads.reach(1)  # it read a state that is not final: it waits
    assert not waiter.done()
    await tracker.aclose()
    await asyncio.wait([waiter], timeout=WAIT)
    assert waiter.done()
    assert not waiter.cancelled()
    error = waiter.exception()
    assert isinstance(error, RuntimeError)
    assert "closed" in str(error)


async def test_a_cancelled_waiter_still_sees_cancelled_error(store: Store) -> None:
    """A caller that really cancels its wait_for_final gets CancelledError, and the tracker
    forgets the waiter."""
    async with DeliveryTracker(store=store) as tracker:
        reads = Answers(store, "get")
        waiter = asyncio.create_task(tracker.wait_for_final("req-1", "tel:+331"))
        await reads.reach(1)  # it read nothing yet: it waits
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiter, WAIT)
        assert waiter.cancelled()
        assert tracker._waiters == {}


@pytest.mark.parametrize("read_first", [True, False])
async def test_close_during_the_store_read_fails_the_waiter_instead_of_hanging(
    read_first: bool,
) -> None:
    """A tracker closing while wait_for_final reads the store (before it registered to be
    woken) still ends that wait with the closed error, rather than leaving it to hang."""
    store = GatedStore(read_first=read_first)
    tracker = DeliveryTracker(store=store)
    await tracker.open()
    waiter = asyncio.create_task(tracker.wait_for_final("req-1", "tel:+331"))
    await asyncio.wait_for(store.entered.wait(), WAIT)
    await tracker.aclose()
    store.gate.set()
    await asyncio.wait([waiter], timeout=WAIT)
    assert waiter.done() and not waiter.cancelled()
    assert isinstance(waiter.exception(), RuntimeError)


async def test_a_final_state_before_close_is_still_returned(store: Store) -> None:
    """A waiter woken by a final state returns it, even when the tracker closes right after."""
    tracker = DeliveryTracker(store=store)
    await tracker.open()
    reads = Answers(store, "get")
    waiter = asyncio.create_task(tracker.wait_for_final("req-1", "tel:+331"))
    await reads.reach(1)  # it read nothing yet: it waits to be woken
    await tracker.ingest([update(S.DELIVERED_TO_TERMINAL)])
    state = await asyncio.wait_for(waiter, WAIT)
    await tracker.aclose()
    assert state.status is S.DELIVERED_TO_TERMINAL
