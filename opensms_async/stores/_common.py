"""Small pieces the stores share: cursor parsing, waking readers."""

from __future__ import annotations

import asyncio

from .._exceptions import InvalidCursorError

__all__ = ["Wakeup", "parse_cursor"]


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
