"""Reading a share of an ``async for`` stream (``tracker.events()``, ``inbox.messages()``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


async def take(stream: AsyncIterator[T], count: int, timeout: float = 30.0) -> list[T]:
    """The next ``count`` items of ``stream``, within ``timeout`` seconds (TimeoutError after);
    the stream stays open, so that a test can take more from it later."""
    out: list[T] = []
    async with asyncio.timeout(timeout):
        async for item in stream:
            out.append(item)
            if len(out) == count:
                break
    return out
