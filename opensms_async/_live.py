"""The live event buffer behind ``DeliveryTracker.events()``: one event object for every consumer.

A store builds each event once; the tracker publishes it here, and every consumer iterating
``events()`` takes the same object from this buffer rather than asking the store again. The
buffer keeps an event only while a consumer still has to read it, and never more than ``size``
events: a consumer further behind than that reads from the store's log instead (never blocking
the receiver, never losing an event), then comes back here once it has caught up.

Dropping events as soon as every consumer has passed them matters for speed, not only memory:
an event that dies young is never seen by the garbage collector's older generations, which at a
few hundred thousand events a second would otherwise cost a sixth of the time
(``bench/bench_merge.py``). With no consumer at all (a bare receiver), nothing is kept.
"""

from __future__ import annotations

import asyncio
import bisect

from ._constants import SHARED_STORE_RECHECK
from ._state import DeliveryEvent
from .stores import Store

__all__ = ["LiveBuffer", "Reader"]

_READ_BATCH = 512


class Reader:
    """One consumer's place in a :class:`LiveBuffer`.

    ``position`` counts the events published before the next one it reads here; None while it
    reads from the store (or has not read yet). The buffer keeps what positioned readers need.
    """

    __slots__ = ("position",)

    def __init__(self) -> None:
        self.position: int | None = None


class LiveBuffer:
    """The newest events of this process, kept while some :class:`Reader` still needs them.

    Holds the events after a base (the cursor key just before the first one). A reader whose
    cursor is older than the base reads from the store's log. Stores shared between processes
    are always read from the store (other replicas append there too), so nothing is kept then.
    Positions find a reader's place in O(1): cursors are parsed only when a reader arrives or
    falls out of the buffer, never once per event.
    """

    def __init__(self, store: Store, size: int) -> None:
        self._store = store
        self._size = max(1, size)
        self._events: list[DeliveryEvent] = []
        self._dropped = 0
        """Events published and since dropped from the head: the position of ``_events[0]``."""
        self._base_key: tuple[int, int] = (0, 0)
        self._dropped_cursor: str | None = None
        """The cursor of the newest event dropped since ``_base_key`` was last computed."""
        self._ready = False
        self._readers: set[Reader] = set()
        self._generation = 0
        """Publishes (and closes) so far: a reader notes it before reading, waits for more."""
        self._waiting: asyncio.Event | None = None

    async def start(self) -> None:
        """Note where the store's log ends: events published from now on are kept here."""
        last = await self._store.last_cursor()
        self._base_key = self._store.cursor_key(last) if last is not None else (0, 0)
        self._ready = not self._store.shared

    def attach(self) -> Reader:
        """A new reader; :meth:`detach` it when done, or it holds events in the buffer."""
        reader = Reader()
        self._readers.add(reader)
        return reader

    def detach(self, reader: Reader) -> None:
        """Forget a reader (idempotent)."""
        self._readers.discard(reader)

    def publish(self, events: list[DeliveryEvent]) -> None:
        """Add events (oldest first) and wake the waiting readers."""
        if self._ready and events:
            if self._readers:
                self._keep(events)
            else:  # nobody to keep them for (a bare receiver): only note the newest
                self._drop_all(events[-1].cursor)
        self.wake()

    def _keep(self, events: list[DeliveryEvent]) -> None:
        """Append events so that the buffer stays one unbroken run of cursors after its base.

        The in-process stores number events 1, 2, 3... (``cursor_key`` ``(n, 0)``). Events the
        store logged but the tracker never published (an ``ingest`` cancelled after the store
        wrote) leave a gap: the buffer then starts over after it, and a reader behind the gap
        reads the store, which has every event. Events published late, behind newer ones, are
        left to the store the same way. A store numbered otherwise only ever starts over.
        """
        tail = self._key(self._events[-1]) if self._events else self._base()
        first = self._key(events[0])
        if first <= tail:
            events = [event for event in events if self._key(event) > tail]
            if not events:
                return
            first = self._key(events[0])
        if first != (tail[0] + 1, 0):
            self._dropped += len(self._events)
            self._events.clear()
            self._base_key, self._dropped_cursor = (first[0] - 1, first[1]), None
        self._events.extend(events)
        self._trim()

    def _trim(self) -> None:
        """Drop the events every positioned reader has passed, and any beyond ``size``."""
        needed = len(self._events)
        for reader in self._readers:
            if reader.position is not None:
                needed = min(needed, reader.position - self._dropped)
        cut = max(needed, len(self._events) - self._size)
        if cut == len(self._events):
            self._drop_all(self._events[-1].cursor)
        elif cut > 0:
            self._dropped_cursor = self._events[cut - 1].cursor
            del self._events[:cut]
            self._dropped += cut

    def _drop_all(self, newest: str) -> None:
        self._dropped += len(self._events)
        self._events.clear()
        self._dropped_cursor = newest

    def _base(self) -> tuple[int, int]:
        """The cursor key just before the first kept event (parsed only when a reader asks)."""
        if self._dropped_cursor is not None:
            self._base_key = self._store.cursor_key(self._dropped_cursor)
            self._dropped_cursor = None
        return self._base_key

    def wake(self) -> None:
        """Wake every waiting reader; allocates nothing unless one waits (the hot path)."""
        self._generation += 1
        if self._waiting is not None:
            self._waiting.set()
            self._waiting = None

    async def read(self, reader: Reader, cursor: str | None) -> list[DeliveryEvent]:
        """The events after ``cursor`` (the last one ``reader`` got), at most a batch of them."""
        start = self._find(cursor, reader.position)
        if start is not None:
            batch = self._events[start : start + _READ_BATCH]
            reader.position = self._dropped + start + len(batch)
            return batch
        batch = await self._store.read_events(cursor, limit=_READ_BATCH)
        # Caught up with what the buffer holds? Then read here from now on.
        index = self._find(batch[-1].cursor if batch else cursor, None)
        reader.position = None if index is None else self._dropped + index
        return batch

    def _find(self, cursor: str | None, position: int | None) -> int | None:
        """The index of the first event after ``cursor``, or None to read from the store."""
        if not self._ready or cursor is None:
            return None
        if position is not None:
            # Trimming keeps what a positioned reader needs unless it fell ``size`` behind. The
            # event before its position must be its cursor's: a store may log an event before
            # the tracker publishes it (SQLite answers from its thread), and a reader that read
            # it from the store in between must not get it again from here.
            index = position - self._dropped
            if 0 < index <= len(self._events) and self._events[index - 1].cursor == cursor:
                return index
        key = self._store.cursor_key(cursor)
        if key < self._base():
            return None
        return bisect.bisect_right(self._events, key, key=self._key)

    def _key(self, event: DeliveryEvent) -> tuple[int, int]:
        return self._store.cursor_key(event.cursor)

    @property
    def changed(self) -> int:
        """A mark for :meth:`wait`, which returns at the first publish (or close) after it."""
        return self._generation

    async def wait(self, changed: int, cursor: str | None) -> None:
        """Wait for a publish after mark ``changed`` (shared stores: for the store's log)."""
        if self._store.shared:
            # Another replica may append: block in the store (e.g. XREAD BLOCK), bounded.
            await self._store.read_events(cursor, limit=1, timeout=SHARED_STORE_RECHECK)
            return
        if self._generation != changed:
            return
        if self._waiting is None:
            self._waiting = asyncio.Event()
        await self._waiting.wait()
