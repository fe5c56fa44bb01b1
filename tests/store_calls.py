"""Wait for another task's store call instead of sleeping: count the answers of one method.

A test that must act while a ``wait_for_final`` or an ``events()`` consumer waits used to sleep
a few milliseconds and hope the other task had got there; on a loaded machine it had not, and
the test passed without testing anything. ``Answers(store, "get")`` counts the answers of
``store.get`` instead: once the waiter's read has been answered, it waits (the tracker registers
a waiter, or a consumer starts waiting, in the same step as the read returns).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

__all__ = ["Answers"]


class Answers:
    """Counts the answers (values or errors) of the coroutine method ``method`` of ``store``."""

    def __init__(self, store: object, method: str, *, timeout: float = 10.0) -> None:
        self.count = 0
        self._timeout = timeout
        self._changed = asyncio.Event()
        real = getattr(store, method)

        @functools.wraps(real)
        async def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                return await real(*args, **kwargs)
            finally:
                self.count += 1
                self._changed.set()

        setattr(store, method, counted)  # on the instance: only this store is counted

    async def reach(self, count: int = 1) -> None:
        """Wait until the method has answered ``count`` times in all (TimeoutError if never)."""
        async with asyncio.timeout(self._timeout):
            while self.count < count:
                self._changed.clear()
                await self._changed.wait()
