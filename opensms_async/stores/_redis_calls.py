"""The calls a Redis store has in flight, so that closing it ends or waits for every one of them
before it closes its clients.

redis-py's ``Redis.aclose()`` disconnects the connections of the pool, those in use included, but
stops no command in flight: one whose connection it cut reconnects (the stores' clients retry a
broken connection), and one still on its way to the pool takes a new connection from it. Either
then hands its connection back to the closed pool still connected, where it stays open until the
garbage collector finds it (``ResourceWarning: unclosed Connection``, and a connection held on
the server meanwhile). So a store closes its clients only once nothing is in flight: its blocking
reads are cancelled (they may wait for seconds), its other calls (each bounded by the store's
``timeout``) are waited for, and none starts after that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final, TypeVar

from .._exceptions import StoreError, StoreUnavailableError

__all__ = ["Calls"]

_T = TypeVar("_T")
_DRAIN_ROUNDS: Final = 1000
"""Most times :meth:`Calls.drain` waits for the calls in flight to end (a call in flight may
make another, as a group read acknowledges trimmed events): a bound, never reached in practice."""


class Calls:
    """What one store has in flight: calls (:meth:`tracked`) and blocking reads (:meth:`read`).

    ``closed`` is the store's error for a call made once :meth:`drain` has returned; ``name`` and
    ``where`` (the store's class and redacted URL) go into the messages of blocking reads.
    """

    def __init__(self, closed: Callable[[], Exception], name: str, where: str) -> None:
        self._closed = closed
        self._name = name
        self._where = where
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._reads: set[asyncio.Future[Any]] = set()
        self._drained = False

    @contextlib.contextmanager
    def tracked(self) -> Iterator[None]:
        """Count a call as in flight while it runs; the store's closed error once drained."""
        if self._drained:
            raise self._closed()
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if not self._count:
                self._idle.set()

    async def read(self, read: Callable[[], Awaitable[_T]], limit: float) -> _T:
        """``read()``, a blocking read, in a task that :meth:`end_reads` cancels (then
        StoreError); StoreUnavailableError when it has not returned within ``limit`` seconds."""
        if self._drained:
            raise self._closed()
        task = asyncio.ensure_future(read())
        self._reads.add(task)
        task.add_done_callback(_retrieve)
        task.add_done_callback(self._reads.discard)
        try:
            done, _ = await asyncio.wait((task,), timeout=limit)
        finally:
            if not task.done():
                task.cancel()
        if not done:
            raise StoreUnavailableError(f"Redis at {self._where} did not answer in {limit:.0f} s")
        if task.cancelled():
            raise StoreError(f"this {self._name} was closed while reading")
        return task.result()

    async def end_reads(self) -> None:
        """Cancel the blocking reads and wait until each has ended (one whose cancel redis-py
        swallowed ends with its block, which the socket timeout bounds)."""
        reads = list(self._reads)
        for read in reads:
            read.cancel()
        if reads:
            await asyncio.wait(reads)

    async def drain(self) -> None:
        """End the blocking reads, wait for the calls in flight; none may start afterwards, so
        the store's clients can be closed for good."""
        await self.end_reads()
        for _ in range(_DRAIN_ROUNDS):
            if not self._count:
                break
            await self._idle.wait()
        self._drained = True  # in the same step as the last look at the count: nothing slips in


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a background read's outcome as seen (it may end after its reader stopped waiting)."""
    if not task.cancelled():
        task.exception()
