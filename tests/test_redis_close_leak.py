"""Closing a Redis store leaves none of its connections open: not one under a blocked read, not one
taken by a call still in flight (redis-py's aclose() stops neither, and either would hand a live
connection back to the closed pool, left for the garbage collector to report)."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import Coroutine
from typing import Any

import pytest
from redis.asyncio.connection import AbstractConnection

from opensms_async import Inbox, StoreError
from opensms_async.stores import RedisStore
from opensms_async.stores.inbound import RedisInboundStore

pytestmark = pytest.mark.integration

Store = RedisStore | RedisInboundStore
GRACE = 1.0


def named(redis_url: str) -> tuple[str, str]:
    """The URL with a client name of its own, and that name: the test's connections, told apart
    from every other test's (connections of an earlier test may still await collection)."""
    name = f"leak-{uuid.uuid4().hex}"
    return f"{redis_url}?client_name={name}", name


def open_connections(name: str) -> list[AbstractConnection]:
    """The redis-py connections named ``name`` whose socket is still open."""
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, AbstractConnection) and obj.client_name == name and obj.is_connected
    ]


def hold(store: Store, method: str) -> tuple[asyncio.Event, asyncio.Event]:
    """Make the store's client hold calls of ``method`` until released: the events (looking,
    release)."""
    looking, release = asyncio.Event(), asyncio.Event()
    call = getattr(store._redis, method)

    async def held(*args: Any, **kwargs: Any) -> Any:
        looking.set()
        await release.wait()
        return await call(*args, **kwargs)

    setattr(store._redis, method, held)
    return looking, release


async def close_during(store: Store, looking: asyncio.Event, release: asyncio.Event) -> None:
    """Close the store while a held call is in flight, then let that call go on: once aclose()
    is done, or after a grace second if it waits for the call (as it must). The grace is no
    condition of the test: with the fix it passes whatever the timing."""
    await looking.wait()
    closing = asyncio.create_task(store.aclose())
    await asyncio.wait((closing,), timeout=GRACE)
    release.set()
    await closing


def blocked_read(store: Store) -> Coroutine[Any, Any, object]:
    """A read of the store's log that blocks in XREAD for long (nothing is logged)."""
    if isinstance(store, RedisInboundStore):
        return store.read_messages(None, timeout=30.0)
    return store.read_events(None, timeout=30.0)


@pytest.mark.parametrize("kind", [RedisInboundStore, RedisStore], ids=["inbound", "delivery"])
async def test_closing_a_store_ends_a_blocked_read_and_keeps_no_connection(
    redis_url: str, kind: type[Store]
) -> None:
    """A store (an inbox's, a tracker's) closed under a consumer blocked in XREAD ends that read
    at once (StoreError) and holds no connection open afterwards."""
    url, name = named(redis_url)
    store = kind(url)
    await store.open()
    reader = asyncio.create_task(blocked_read(store))
    await asyncio.sleep(0.2)  # not a condition of the test: the read is blocked or soon is
    await store.aclose()
    with pytest.raises(StoreError):
        await asyncio.wait_for(reader, 30.0)
    assert open_connections(name) == []


async def test_a_call_in_flight_when_the_delivery_store_closes_finishes_and_keeps_no_connection(
    redis_url: str,
) -> None:
    """A state read still on its way to Redis when the store closes gets its answer, and the
    connection it took is closed with the store, not left open in the pool."""
    url, name = named(redis_url)
    store = RedisStore(url)
    await store.open()
    looking, release = hold(store, "hget")
    getter = asyncio.create_task(store.get("req-1", "tel:+32470000001"))
    await close_during(store, looking, release)
    assert await getter is None
    assert open_connections(name) == []


async def test_a_call_in_flight_when_the_inbound_store_closes_finishes_and_keeps_no_connection(
    redis_url: str,
) -> None:
    """An id lookup still on its way to Redis when the inbound store closes gets its answer, and
    the connection it took is closed with the store, not left open in the pool."""
    url, name = named(redis_url)
    store = RedisInboundStore(url)
    await store.open()
    looking, release = hold(store, "zscore")
    lookup = asyncio.create_task(store.remembers("in-1"))
    await close_during(store, looking, release)
    assert await lookup is False
    assert open_connections(name) == []


async def test_closing_an_inbox_under_a_consumer_keeps_no_connection(redis_url: str) -> None:
    """An inbox on Redis closed while a ``messages()`` consumer waits ends that consumer and
    holds no connection open afterwards (what ``opensms receive`` does on Ctrl-C)."""
    url, name = named(redis_url)
    inbox = Inbox(url)
    await inbox.open()
    got: list[object] = []

    async def consume() -> None:
        async for message in inbox.messages():
            got.append(message)

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.2)  # not a condition of the test: the consumer is waiting or soon is
    await inbox.aclose()
    await asyncio.wait_for(consumer, 30.0)
    assert got == []
    assert open_connections(name) == []
