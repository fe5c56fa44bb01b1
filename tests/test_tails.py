"""Latency tails: what the receiver's path leaves for the garbage collector to walk, and the
CLI's ``gc.freeze()`` (issue 12, item 2)."""

from __future__ import annotations

import gc

from store_helpers import SENDER, S, up

from opensms_async.stores import MemoryStore


async def test_memory_requests_of_one_recipient_each_are_invisible_to_the_collector() -> None:
    """A million sends of one recipient each must not make every full collection walk a million
    objects (its pause is a latency tail): once collected, a request's state is plain values."""
    async with MemoryStore() as store:
        gc.collect()
        before = len(gc.get_objects())
        for start in range(0, 5000, 100):
            await store.apply_events(
                [
                    up(status, f"tel:+33{i:010d}", request_id=f"req-{i}", sender=SENDER)
                    for i in range(start, start + 100)
                    for status in (S.MESSAGE_WAITING, S.DELIVERED_TO_TERMINAL)
                ]
            )
        gc.collect()  # a full collection: the one that stops tracking dicts of plain values
        tracked = len(gc.get_objects()) - before
        assert tracked < 100, f"{tracked} objects tracked for 5,000 requests of one recipient"
        state = await store.get("req-4321", "tel:+330000004321")
        assert state is not None
        assert state.status is S.DELIVERED_TO_TERMINAL
        assert [s.address for s in await store.get_request("req-17")] == ["tel:+330000000017"]
