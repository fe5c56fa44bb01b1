"""What ``track()`` schedules: reconciliation only when someone can ever poll it (a poller here,
or a later process or replica on a durable or shared store), so a tracker that only receives on
a store that dies with it keeps nothing for nobody."""

from __future__ import annotations

from pathlib import Path

import pytest

from opensms_async import DeliveryInfo, DeliveryStatus, DeliveryTracker, OpenSMSClient, SendResult
from opensms_async.stores import MemoryStore, RedisStore, SQLiteStore, Store

S = DeliveryStatus
SENDS = 1_000
FAR_FUTURE = 1e12
"""A time at which every scheduled poll is due."""


def sent(n: int) -> SendResult:
    """The n-th send to one recipient, as the client returns it."""
    return SendResult(
        request_id=f"req-{n}",
        sender="tel:+3212345",
        resource_url=None,
        delivery_infos=[DeliveryInfo(address="tel:+331", status=S.MESSAGE_WAITING)],
        recipients=("tel:+331",),
        client_correlator=f"c-{n}",
    )


async def scheduled(store: Store) -> int:
    """How many requests the store's schedule holds (each claimed with no lease: left as is)."""
    return len(await store.claim_due(FAR_FUTURE, limit=10 * SENDS, lease=0.0))


@pytest.mark.parametrize("path", [None, ":memory:"], ids=["memory", "sqlite-memory"])
async def test_track_without_a_poller_on_a_private_store_schedules_nothing(
    path: str | None,
) -> None:
    """1,000 ``track()`` on a store no other process reaches, with no client, record the sends'
    states and leave no schedule entry (nothing could ever claim one)."""
    store: Store = MemoryStore() if path is None else SQLiteStore(path)
    async with DeliveryTracker(store=store) as tracker:
        for n in range(SENDS):
            await tracker.track(sent(n))
        assert await scheduled(store) == 0
        state = await tracker.get(f"req-{SENDS - 1}", "tel:+331")
        assert state is not None and state.status is S.MESSAGE_WAITING


async def test_track_without_a_poller_on_a_durable_store_schedules(tmp_path: Path) -> None:
    """On a durable store, ``track()`` without a client still schedules each request: a later
    process with a client polls them."""
    async with DeliveryTracker(store=SQLiteStore(tmp_path / "t.db")) as tracker:
        for n in range(3):
            await tracker.track(sent(n))
        assert await scheduled(tracker.store) == 3


@pytest.mark.integration
async def test_track_without_a_poller_on_a_shared_store_schedules(redis_url: str) -> None:
    """On a shared store, ``track()`` without a client still schedules: a replica with a client
    polls it."""
    async with DeliveryTracker(store=RedisStore(redis_url)) as tracker:
        await tracker.track(sent(0))
        assert await scheduled(tracker.store) == 1


async def test_track_with_a_poller_schedules_on_any_store() -> None:
    """With a client, ``track()`` schedules on the memory store too (its own poller polls)."""
    client = OpenSMSClient(api_key="k", base_url="http://127.0.0.1:9/smsmessaging/v1")
    store = MemoryStore()
    async with client, DeliveryTracker(store=store, client=client, reconcile_after=3600) as tracker:
        await tracker.track(sent(0))
        assert await scheduled(store) == 1
