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
import functools
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final, TypeVar

from .._exceptions import StoreError, StoreUnavailableError
from .._lifecycle import OPEN
from .._telemetry import log_fields
from ._common import StoreLifecycle
from ._redis_codec import cursor_key

__all__ = ["CallingStore", "Calls"]

logger = logging.getLogger("opensms_async.stores.redis")

_T = TypeVar("_T")
_DRAIN_ROUNDS: Final = 1000
"""Most times :meth:`Calls.drain` waits for the calls in flight to end (a call in flight may
make another, as a group read acknowledges trimmed events): a bound, never reached in practice."""


class Calls:
    """What one store has in flight: calls (:meth:`tracked`) and blocking reads (:meth:`read`).

    ``closed`` is the store's error for a call made once :meth:`drain` has returned; ``name`` and
    ``where`` (the store's class and redacted URL) go into the messages of blocking reads;
    ``grace`` (the store's ``timeout``) is how long a cancelled read may take to end.
    """

    def __init__(
        self, closed: Callable[[], Exception], name: str, where: str, grace: float
    ) -> None:
        self._closed = closed
        self._name = name
        self._where = where
        self._grace = grace
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
        """Cancel the blocking reads and wait until each has ended, ``grace`` seconds at most.

        One whose cancel redis-py swallowed ends with its block, which the socket timeout
        bounds; a client of the caller's may have none, and a close must not wait for ever: such
        a read is left to end on its own (logged), its connection with it.
        """
        reads = list(self._reads)
        for read in reads:
            read.cancel()
        if not reads:
            return
        _, running = await asyncio.wait(reads, timeout=self._grace)
        if running:
            logger.warning(
                "%s closed with %d blocking read(s) still running %.0f s after being cancelled"
                " (a Redis client without a socket timeout?)",
                self._name,
                len(running),
                self._grace,
                extra=log_fields("store.close", outcome="abandoned"),
            )

    async def drain(self) -> None:
        """End the blocking reads, wait for the calls in flight; none may start afterwards, so
        the store's clients can be closed for good."""
        await self.end_reads()
        for _ in range(_DRAIN_ROUNDS):
            if not self._count:
                break
            await self._idle.wait()
        self._drained = True  # in the same step as the last look at the count: nothing slips in


class CallingStore(StoreLifecycle):
    """What both Redis stores do around their calls: check that they are open and that a cursor
    is well formed, and repeat a blocking read in slices (``_slice`` seconds) through ``_calls``
    until it brings something."""

    timeout: float
    _slice: float
    _calls: Calls

    async def _wait(self, read: Callable[[int], Awaitable[_T]], timeout: float) -> _T | None:
        """Repeat a blocking read (given its block in ms) until it returns something or
        ``timeout`` passes; :meth:`aclose` ends it with StoreError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            self._ready()  # closed while this read was on its way here: never start to block
            block = min(remaining, self._slice)
            limit = block + self.timeout  # as long as the socket waits, then unanswered
            ms = max(1, round(block * 1000))
            reply = await self._calls.read(functools.partial(read, ms), limit)
            if reply:
                return reply
        return None

    def _checked(self, cursor: str) -> str:
        cursor_key(cursor)
        return cursor

    def _ready(self) -> None:
        if self._state is not OPEN:
            raise self._unusable()


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a background read's outcome as seen (it may end after its reader stopped waiting)."""
    if not task.cancelled():
        task.exception()
