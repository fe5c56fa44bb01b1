"""One lifecycle for the client, the tracker and every store: open, use, aclose, in that order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from opensms_async import DeliveryStatus, DeliveryTracker, DeliveryUpdate, OpenSMSClient
from opensms_async._exceptions import StoreError
from opensms_async.stores import MemoryStore, SQLiteStore, Store
from opensms_async.stores.redis import RedisStore

S = DeliveryStatus
STORE_KINDS = ["memory", "sqlite", pytest.param("redis", marks=pytest.mark.integration)]


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    """A fresh, unopened store of one kind."""
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "life.db")
    return RedisStore(request.getfixturevalue("redis_url"))


def update() -> DeliveryUpdate:
    """Any update."""
    return DeliveryUpdate("req-1", "tel:+331", S.MESSAGE_WAITING)


@pytest.mark.parametrize("kind", STORE_KINDS)
async def test_a_store_refuses_use_before_open_and_after_aclose(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Every store, the memory one included, says "not open" before open() and "closed" after
    aclose(), with StoreError; it cannot be opened again once closed."""
    store = make_store(kind, tmp_path, request)
    with pytest.raises(StoreError, match="not open"):
        await store.apply_events([update()])
    with pytest.raises(StoreError, match="not open"):
        await store.get("req-1", "tel:+331")
    await store.open()
    assert await store.apply_events([update()])
    await store.aclose()
    with pytest.raises(StoreError, match="closed"):
        await store.get("req-1", "tel:+331")
    with pytest.raises(StoreError, match="closed"):
        await store.open()


@pytest.mark.parametrize("kind", STORE_KINDS)
async def test_a_store_opens_twice_and_closes_twice(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A store may be opened by its user and again by a tracker (the second open does nothing),
    and aclose() twice is harmless; concurrent opens open it once."""
    store = make_store(kind, tmp_path, request)
    await asyncio.gather(store.open(), store.open())
    await store.open()
    async with DeliveryTracker(store) as tracker:
        await tracker.ingest([update()])
    with pytest.raises(StoreError, match="closed"):  # the tracker closed it
        await store.get("req-1", "tel:+331")
    await store.aclose()


async def test_a_tracker_opens_once() -> None:
    """A tracker opens once; a second open(), even after aclose(), raises RuntimeError."""
    tracker = DeliveryTracker(MemoryStore())
    with pytest.raises(RuntimeError, match="not open"):
        await tracker.ingest([update()])
    async with tracker:
        with pytest.raises(RuntimeError, match="opened once"):
            await tracker.open()
    with pytest.raises(RuntimeError, match="closed"):
        await tracker.open()
    with pytest.raises(RuntimeError, match="closed"):
        await tracker.get("req-1", "tel:+331")
    await tracker.aclose()


async def test_closing_a_tracker_never_opened_leaves_its_store_alone() -> None:
    """aclose() of a tracker that was never opened closes it, not the store it was given."""
    async with MemoryStore() as store:
        tracker = DeliveryTracker(store)
        await tracker.aclose()
        assert not tracker.is_open
        assert await store.get("req-1", "tel:+331") is None  # still open
        with pytest.raises(RuntimeError, match="closed"):
            await tracker.open()


async def test_aclose_during_open_waits_for_it() -> None:
    """An aclose() while open() runs waits for the opening, then closes what it opened."""
    entered, release = asyncio.Event(), asyncio.Event()

    class SlowStore(MemoryStore):
        async def _open(self) -> None:
            entered.set()
            await release.wait()

    store = SlowStore()
    opening = asyncio.create_task(store.open())
    await entered.wait()
    closing = asyncio.create_task(store.aclose())
    await asyncio.sleep(0)
    assert not closing.done()
    release.set()
    await asyncio.wait_for(asyncio.gather(opening, closing), 5)
    with pytest.raises(StoreError, match="closed"):
        await store.get("req-1", "tel:+331")


async def test_the_client_opens_once_and_refuses_use_once_closed() -> None:
    """The client opens once (as httpx's), may be used unopened (as httpx's), and refuses every
    call once closed."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={})

    transport = httpx.MockTransport(answer)
    async with OpenSMSClient(api_key="k", transport=transport) as client:
        with pytest.raises(RuntimeError, match="opened once"):
            await client.open()
    unopened = OpenSMSClient(api_key="k", transport=transport)
    assert await unopened.get_subscription() is None  # unopened use, as httpx allows
    await unopened.aclose()
    await unopened.aclose()
    for closed in (client, unopened):
        with pytest.raises(RuntimeError, match="closed"):
            await closed.get_subscription()
