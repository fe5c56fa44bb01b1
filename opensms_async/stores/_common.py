"""Small pieces the stores share: cursor parsing, waking readers and reading with a wait, handing
on what was logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Generic, Protocol, TypeVar

from .._exceptions import InvalidCursorError, StoreError
from .._lifecycle import Lifecycle
from .._telemetry import log_fields

__all__ = [
    "CountedLog",
    "InProcessLog",
    "Listeners",
    "LogRun",
    "StoreLifecycle",
    "Wakeup",
    "parse_cursor",
    "read_start",
    "read_waiting",
]

logger = logging.getLogger("opensms_async.stores")

_T = TypeVar("_T")


def parse_cursor(cursor: str) -> int:
    """The sequence number of a decimal cursor; :class:`InvalidCursorError` for anything else."""
    # int() alone would accept " 12", "+12", "1_2" and non-ASCII digits: cursors are stricter.
    if not (isinstance(cursor, str) and cursor.isascii() and cursor.isdigit()):
        raise InvalidCursorError(f"malformed event cursor: {cursor!r} (expected a whole number)")
    return int(cursor)


def read_start(after: str | None, limit: int) -> int:
    """Where a read of the log after decimal cursor ``after`` starts (None: 0, the oldest);
    :class:`InvalidCursorError` for a malformed cursor, ValueError for a ``limit`` below 1."""
    start = 0 if after is None else parse_cursor(after)
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit!r}")
    return start


async def read_waiting(
    read: Callable[[], Awaitable[list[_T]]],
    wakeup: Wakeup,
    timeout: float,
    recheck: float | None = None,
) -> list[_T]:
    """What ``read()`` answers; when that is nothing and ``timeout`` > 0, read again at each
    wake-up (and every ``recheck`` seconds, for a file other processes write to) until something
    comes or ``timeout`` has passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        seen = wakeup.generation
        found = await read()
        remaining = deadline - loop.time()
        if found or remaining <= 0:
            return found
        await wakeup.wait(seen, remaining if recheck is None else min(remaining, recheck))


class CountedLog(Protocol[_T]):
    """A log held in this process whose cursors count 1, 2, 3... (the memory stores')."""

    @property
    def next_cursor(self) -> int:
        """The cursor number the next logged item gets."""
        ...

    @property
    def first_retained(self) -> int:
        """The cursor number of the oldest item still retained."""
        ...

    def read(self, after: int, limit: int) -> list[_T]:
        """Up to ``limit`` retained items with a cursor number above ``after``, oldest first."""
        ...


class StoreLifecycle(Lifecycle):
    """The lifecycle of every store: a second ``open()`` of an open store does nothing (a user
    may open one and hand it to a tracker or an inbox, which opens it again), and using one that
    is not open raises StoreError (so that a receiver whose store was closed answers 503)."""

    _open_twice = True
    _lifecycle_error = StoreError


class InProcessLog(StoreLifecycle, Generic[_T]):
    """The reads of a store whose log is a :class:`CountedLog` in this process (``_log``),
    woken by ``_wakeup``: what the memory stores share of ``read_events``/``read_messages``,
    ``last_cursor`` and ``cursor_key``, and a close that wakes the waiting readers."""

    _log: CountedLog[_T]
    _wakeup: Wakeup

    async def _read_log(self, after: str | None, limit: int, timeout: float) -> list[_T]:
        """The store's ``read_*``, which returns this coroutine as it is (no frame in between)."""
        start = read_start(after, limit)

        async def read() -> list[_T]:
            self._check_usable()
            return self._log.read(start, limit)

        return await read_waiting(read, self._wakeup, timeout)

    async def last_cursor(self) -> str | None:
        """The cursor of the newest item logged, or None for an empty log."""
        self._check_usable()
        last = self._log.next_cursor - 1
        return str(last) if last >= self._log.first_retained else None

    def cursor_key(self, cursor: str) -> tuple[int, int]:
        """``(n, 0)`` for cursor ``"n"``; ValueError for a malformed cursor."""
        return (parse_cursor(cursor), 0)

    async def _aclose(self) -> None:
        # Nothing to release: further use raises StoreError, and waiting readers wake to see it.
        self._wakeup.fire()


class Wakeup:
    """Wakes the ``read_events`` waiters of one event loop when new events were logged.

    ``generation`` counts the wake-ups: a reader notes it before looking at the log and passes it to
    :meth:`wait`, which returns at once if events were logged in between (no lost wake-up).
    """

    __slots__ = ("_event", "generation")

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self.generation = 0

    def fire(self) -> None:
        """Wake every waiter; costs nothing when nobody waits."""
        self.generation += 1
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self, seen: int, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a wake-up later than generation ``seen``."""
        if self.generation != seen or timeout <= 0:
            return
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return


class LogRun(list[_T]):
    """What a store logged in one go, as it hands it to its listeners: the items (a list, oldest
    first) and ``after``, the cursor of the log's item just before the first of them (None: the
    log was empty), nothing of another writer's in between.

    For a log other processes append to (Redis), the live buffer (``_live.py``) appends a run
    that continues what it holds as it is, instead of reading those items back from the log.
    """

    __slots__ = ("after",)

    after: str | None
    """Set by the store once it knows it (no ``__init__`` of its own: the in-process stores
    build one per write, and a Python ``__init__`` would cost more than the list)."""


def log_run(items: Iterable[_T], after: str | None) -> LogRun[_T]:
    """A :class:`LogRun` of ``items`` logged after cursor ``after``."""
    run: LogRun[_T] = LogRun(items)
    run.after = after
    return run


class Listeners(Generic[_T]):
    """The callables a store hands what it logged to, once it is recorded (see ``Store.listen``).

    A store calls :meth:`publish` on the event loop, with each batch of logged events (oldest
    first) once they are durable, in log order (a Redis store: in the order its batches were
    sent, see ``Store`` contract 4), whether or not the callers that wrote them are still
    waiting. A listener must not block; one that raises is logged and the others still run,
    so that nothing it does can undo or fail a write that is already recorded.
    """

    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        self._listeners: tuple[Callable[[Sequence[_T]], None], ...] = ()

    def add(self, listener: Callable[[Sequence[_T]], None]) -> Callable[[], None]:
        """Register ``listener``; returns the function that unregisters it (idempotent)."""
        self._listeners = (*self._listeners, listener)

        def remove() -> None:
            self._listeners = tuple(other for other in self._listeners if other is not listener)

        return remove

    def publish(self, items: Sequence[_T]) -> None:
        """Hand ``items`` to every listener; costs one test when there is none."""
        for listener in self._listeners:
            try:
                listener(items)
            except Exception as exc:
                logger.exception(
                    "a store listener failed (the write stays recorded)",
                    extra=log_fields("store.listen", outcome="error", error=type(exc).__name__),
                )
