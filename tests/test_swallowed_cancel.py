"""A store call that swallows its task's cancellation (redis-py's ``wait_for`` can on Python
3.11) neither keeps a tracker from closing nor keeps ``wait_for_final`` past its timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from opensms_async import DeliveryStatus, DeliveryTracker, SendResult
from opensms_async._state import DeliveryState
from opensms_async.stores import MemoryStore, PendingRequest

WAIT = 10.0
"""Upper bound on any wait here: without the fixes each of these hangs for good."""


class SwallowingStore(MemoryStore):
    """A memory store whose slow calls return quietly when cancelled, as if nothing happened."""

    def __init__(self) -> None:
        super().__init__()
        self.claims = 0

    async def claim_due(
        self, now: float, *, limit: int = 100, lease: float = 60.0
    ) -> list[PendingRequest]:
        """Claims nothing, after a pause in which a cancellation is swallowed."""
        self.claims += 1
        with contextlib.suppress(asyncio.CancelledError):  # the bug this test stands for
            await asyncio.sleep(0.05)
        return []

    async def get(self, request_id: str, address: str) -> DeliveryState | None:
        """The state, after a pause in which a cancellation is swallowed."""
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.3)
        return await super().get(request_id, address)


class NoClient:
    """A client stand-in: the poller never gets as far as polling here."""

    async def get_delivery_infos(self, *args: Any, **kwargs: Any) -> Sequence[object]:
        """Never called."""
        raise AssertionError("not polled")


async def test_a_tracker_closes_though_its_poller_swallowed_the_cancel() -> None:
    """The poller stops at its next round when a store call swallowed the cancellation that
    was to stop it: ``aclose()`` returns instead of waiting for ever."""
    store = SwallowingStore()
    client: Any = NoClient()
    tracker = DeliveryTracker(store=store, client=client, reconcile_after=0.04)
    await tracker.open()
    async with asyncio.timeout(WAIT):
        while store.claims < 2:  # noqa: ASYNC110 - the poller's own rhythm is what we wait on
            await asyncio.sleep(0.01)
    await asyncio.wait_for(tracker.aclose(), WAIT)


async def test_wait_for_final_times_out_though_a_read_swallowed_the_cancel() -> None:
    """``wait_for_final`` raises TimeoutError once its timeout passed, even when the store read
    it was in swallowed the cancellation that said so."""
    async with DeliveryTracker(store=SwallowingStore()) as tracker:
        sent = SendResult("req-1", "tel:+32123", None, [], ("tel:+331",), "c")
        await tracker.track(sent)
        waiting = asyncio.ensure_future(tracker.wait_for_final("req-1", "tel:+331", timeout=0.1))
        done, _ = await asyncio.wait([waiting], timeout=WAIT)
        assert done, "wait_for_final outlived its timeout"
        assert isinstance(waiting.exception(), TimeoutError)
        state = await tracker.get("req-1", "tel:+331")
        assert state is not None and state.status is DeliveryStatus.MESSAGE_ACCEPTED
