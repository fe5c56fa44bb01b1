"""Closing a Redis store never waits for ever for a blocking read that will not end."""

from __future__ import annotations

import asyncio
import logging

import pytest

from opensms_async._exceptions import StoreError
from opensms_async.stores._redis_calls import Calls

WAIT = 30.0
"""A hang guard, far above the grace under test."""


async def test_a_cancelled_read_that_swallows_its_cancel_delays_the_close_by_the_grace_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A blocking read whose client swallows the cancel (a client of the caller's without a
    socket timeout can) holds a close for the store's timeout at most, then is logged and left:
    the close returns, and later calls get the store's closed error."""
    calls = Calls(lambda: StoreError("closed"), "RedisStore", "redis://127.0.0.1:1", grace=0.2)
    release = asyncio.Event()
    started = asyncio.Event()

    async def stubborn() -> list[str]:
        started.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # as a client that swallows the cancel
        return []

    reader = asyncio.ensure_future(calls.read(stubborn, limit=WAIT * 10))
    async with asyncio.timeout(WAIT):
        await started.wait()
    with caplog.at_level(logging.WARNING, logger="opensms_async.stores.redis"):
        async with asyncio.timeout(WAIT):
            await calls.drain()
    assert "1 blocking read(s) still running" in caplog.text
    with pytest.raises(StoreError, match="closed"), calls.tracked():
        pass
    release.set()
    async with asyncio.timeout(WAIT):
        assert await reader == []
