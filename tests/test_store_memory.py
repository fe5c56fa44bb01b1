"""What is particular to the memory store: bounded retention, interned shapes, no GC load."""

from __future__ import annotations

import gc

import pytest
from store_helpers import (
    REQ,
    SENDER,
    S,
    read_all,
    up,
)

from opensms_async._state import DeliveryState
from opensms_async.stores.memory import DEFAULT_MAX_EVENTS, MemoryStore

# --- MemoryStore --------------------------------------------------------------------------------


async def test_memory_retention_drops_the_oldest_events() -> None:
    """Past ``max_events`` the oldest events go; an old cursor resumes at the oldest retained."""
    async with MemoryStore(max_events=3) as store:
        for i in range(5):
            await store.apply_events([up(S.MESSAGE_WAITING, f"tel:+3361000000{i}")])
        retained = await store.read_events(None)
        assert [e.cursor for e in retained] == ["3", "4", "5"]
        assert await store.read_events("1") == retained
        assert await store.read_events("3") == retained[1:]
        assert await store.last_cursor() == "5"


async def test_memory_retention_stays_bounded() -> None:
    """A long run keeps the log within ``max_events`` plus its trimming slack."""
    async with MemoryStore(max_events=10) as store:
        for i in range(2000):
            await store.apply_events([up(S.MESSAGE_WAITING, f"tel:+33{i:010d}")])
        assert [e.cursor for e in await read_all(store)] == [str(n) for n in range(1991, 2001)]
        assert len(store._log.shapes) <= 10 + 64


async def test_memory_states_share_interned_shapes() -> None:
    """Recipients in the same state share one shape tuple and the request id string."""
    async with MemoryStore() as store:
        await store.apply_events(
            [up(S.MESSAGE_WAITING, f"tel:+3360000000{i}", sender=SENDER) for i in (1, 2)]
        )
        rows = list(store._requests[REQ].values())
        assert rows[0][1] is rows[1][1]
        assert store._log.request_ids[0] is store._log.request_ids[1]


async def test_memory_states_are_invisible_to_the_garbage_collector() -> None:
    """A million tracked recipients must not make every full collection walk a million rows:
    the rows hold plain values only, so the collector stops tracking them."""
    async with MemoryStore() as store:
        gc.collect()
        before = len(gc.get_objects())
        for start in range(0, 5000, 100):
            await store.apply_events(
                [
                    up(status, f"tel:+33{i:010d}", sender=SENDER)
                    for i in range(start, start + 100)
                    for status in (S.MESSAGE_WAITING, S.DELIVERY_UNCERTAIN)
                ]
            )
        gc.collect()
        tracked = len(gc.get_objects()) - before
        assert tracked < 100, f"{tracked} objects tracked for 5,000 recipients of one request"
        assert (await store.get(REQ, "tel:+330000000001")) == DeliveryState(
            REQ, "tel:+330000000001", S.DELIVERY_UNCERTAIN, sender=SENDER, updated_at=0.0
        )


def test_memory_default_and_invalid_max_events() -> None:
    """The default retention is documented; a bound below 1 is refused."""
    assert MemoryStore().max_events == DEFAULT_MAX_EVENTS
    with pytest.raises(ValueError, match="max_events"):
        MemoryStore(max_events=0)
