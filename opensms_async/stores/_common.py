"""Small pieces the stores share: cursor parsing, waking readers, handing on what was logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from .._exceptions import InvalidCursorError

__all__ = ["Listeners", "Wakeup", "parse_cursor"]

logger = logging.getLogger("opensms_async.stores")

_T = TypeVar("_T")


def parse_cursor(cursor: str) -> int:
    """The sequence number of a decimal cursor; :class:`InvalidCursorError` for anything else."""
    # int() alone would accept " 12", "+12", "1_2" and non-ASCII digits: cursors are stricter.
    if not (isinstance(cursor, str) and cursor.isascii() and cursor.isdigit()):
        raise InvalidCursorError(f"malformed event cursor: {cursor!r} (expected a whole number)")
    return int(cursor)


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


class Listeners(Generic[_T]):
    """The callables a store hands what it logged to, once it is recorded (see ``Store.listen``).

    A store calls :meth:`publish` on the event loop, with each batch of logged events (oldest
    first) once they are durable, in log order, whether or not the callers that wrote them are
    still waiting. A listener must not block; one that raises is logged and the others still run,
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
            except Exception:
                logger.exception("a store listener failed (the write stays recorded)")
