"""MemoryStore's merge loop: a failed call is undone exactly (each row back as it was, newest
change first) and cursors stay consecutive decimal strings across calls, failed ones included."""

from __future__ import annotations

import pytest
from store_helpers import ADDR, REQ, read_all, summary, up

from opensms_async._models import DeliveryStatus as S
from opensms_async._state import DeliveryUpdate
from opensms_async.stores.memory import MemoryStore


def malformed_update(address: str = "tel:+33600000009") -> DeliveryUpdate:
    """An update past the gate that the merge cannot compare (as only a bug could make one)."""
    update = up(S.PARTIALLY_DELIVERED, address, parts=2)
    object.__setattr__(update, "parts_delivered", "2")
    return update


async def test_failed_call_puts_back_a_pair_changed_twice_in_it() -> None:
    """A pair advanced twice by a call that then fails is back to its state before the call."""
    async with MemoryStore() as store:
        await store.apply_events([up(S.MESSAGE_WAITING, received_at=10.0)])
        before = await store.get(REQ, ADDR)
        with pytest.raises((TypeError, ValueError)):
            await store.apply_events(
                [
                    up(S.DELIVERED_TO_NETWORK, received_at=20.0),
                    up(S.DELIVERY_UNCERTAIN, received_at=30.0),
                    malformed_update(ADDR),
                ]
            )
        assert await store.get(REQ, ADDR) == before
        assert [e.status for e in await read_all(store)] == [S.MESSAGE_WAITING]


async def test_failed_call_forgets_a_pair_it_first_saw_and_then_advanced() -> None:
    """A pair first seen in a failed call (and advanced in it) is unknown again afterwards."""
    async with MemoryStore() as store:
        await store.apply_events([up(S.MESSAGE_WAITING)])
        with pytest.raises((TypeError, ValueError)):
            await store.apply_events(
                [
                    up(S.MESSAGE_WAITING, "tel:+33600000001", request_id="new"),
                    up(S.DELIVERED_TO_NETWORK, "tel:+33600000001", request_id="new"),
                    up(S.MESSAGE_WAITING, "tel:+33600000002"),
                    malformed_update(),
                ]
            )
        assert await store.get_request("new") == []
        assert await store.get(REQ, "tel:+33600000002") is None
        assert [s.address for s in await store.get_request(REQ)] == [ADDR]
        # What was undone can be recorded afresh: it is a first sighting again.
        [event] = await store.apply_events([up(S.DELIVERED_TO_NETWORK, "tel:+33600000001",
                                                request_id="new")])  # fmt: skip
        assert event.previous is None


async def test_failed_call_on_its_first_update_of_a_new_request_leaves_nothing() -> None:
    """A call whose only update fails leaves no trace of its request id, and logs nothing."""
    async with MemoryStore() as store:
        with pytest.raises((TypeError, ValueError)):
            await store.apply_events([malformed_update()])
        assert await store.get_request(REQ) == []
        assert await store.last_cursor() is None
        assert store._requests == {} and store._ids == {}  # nothing left behind


async def test_cursors_are_consecutive_decimal_strings_across_calls_and_failures() -> None:
    """Event cursors count "1", "2"... across calls; a failed call's cursors are reused."""
    async with MemoryStore() as store:
        first = await store.apply_events(
            [up(S.MESSAGE_WAITING, f"tel:+3360000000{i}") for i in range(3)]
        )
        second = await store.apply_events(
            [up(S.DELIVERED_TO_NETWORK), up(S.DELIVERED_TO_NETWORK), up(S.DELIVERY_UNCERTAIN)]
        )  # the duplicate in the middle logs nothing
        with pytest.raises((TypeError, ValueError)):
            await store.apply_events([up(S.DELIVERED_TO_TERMINAL), malformed_update()])
        third = await store.apply_events([up(S.DELIVERED_TO_TERMINAL)])
        cursors = [e.cursor for e in (*first, *second, *third)]
        assert cursors == ["1", "2", "3", "4", "5", "6"]
        assert all(type(c) is str for c in cursors)
        assert [e.cursor for e in await read_all(store)] == cursors
        assert await store.last_cursor() == "6"
        assert summary(await store.get(REQ, ADDR)) == (S.DELIVERED_TO_TERMINAL, None, False,
                                                       None, None)  # fmt: skip
