"""Closing a Redis store never leaves a reader blocking: not even one still on its way to block."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from opensms_async._exceptions import StoreError
from opensms_async.stores.redis import RedisStore


async def test_a_read_that_reaches_its_wait_after_close_raises_at_once(redis_url: str) -> None:
    """A reader whose first look at the log was still in flight when the store closed gets
    StoreError as soon as that look returns, instead of blocking for its whole timeout."""
    store = RedisStore(redis_url)
    await store.open()
    looking = asyncio.Event()
    release = asyncio.Event()
    xrange = store._redis.xrange

    async def slow_xrange(*args: Any, **kwargs: Any) -> Any:
        looking.set()
        await release.wait()
        return await xrange(*args, **kwargs)

    store._redis.xrange = slow_xrange  # type: ignore[method-assign]
    reader = asyncio.create_task(store.read_events(None, timeout=300.0))
    await looking.wait()
    closing = asyncio.create_task(store.aclose())
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(StoreError):
        await asyncio.wait_for(reader, 30.0)  # without the fix: blocks the whole 300 s
    await closing
