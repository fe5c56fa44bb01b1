"""Where ``DeliveryTracker.events()`` reads: the live buffer of this process, or the shared log.

For a store no other process appends to (memory, SQLite), the store builds each event once and
hands it to the tracker's listener, which publishes it here; every consumer iterating ``events()``
takes the same object from this buffer rather than asking the store again. The buffer keeps an
event only while a consumer still has to read it, and never more than ``size`` events: a consumer
further behind than that reads from the store's log instead (never blocking the receiver, never
losing an event), then comes back here once it has caught up.

For a shared store (Redis), other replicas append to the log too: a :class:`StoreReader` reads the
log itself, one blocking read per wake-up, and yields what that read returned. So does a store
whose cursors are not ``consecutive``: the buffer relies on consecutive cursors to tell that it
holds an unbroken run of the log.

Dropping events as soon as every consumer has passed them matters for speed, not only memory:
an event that dies young is never seen by the garbage collector's older generations, which at a
few hundred thousand events a second would otherwise cost a sixth of the time
(``bench/bench_merge.py``). With no consumer at all (a bare receiver), nothing is kept.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Awaitable, Sequence
from typing import Protocol

from ._constants import SHARED_STORE_RECHECK
from ._state import DeliveryEvent
from .stores import Store

__all__ = ["EventReader", "LiveBuffer", "Reader", "StoreReader"]

_READ_BATCH = 512


class EventReader(Protocol):
    """How one ``events()`` consumer gets its batches."""

    def next(self, cursor: str | None) -> Awaitable[list[DeliveryEvent]]:
        """The events after ``cursor``, at most a batch; [] after waiting in vain for some."""
        ...

    def close(self) -> None:
        """Done reading."""


class Reader:
    """One consumer's place in a :class:`LiveBuffer`.

    ``position`` counts the events published before the next one it reads here; None while it
    reads from the store (or has not read yet). The buffer keeps what positioned readers need.
    """

    __slots__ = ("_buffer", "position")

    def __init__(self, buffer: LiveBuffer) -> None:
        self._buffer = buffer
        self.position: int | None = None

    def next(self, cursor: str | None) -> Awaitable[list[DeliveryEvent]]:
        """The events after ``cursor`` (the last one this reader got), at most a batch; when there
        is none, waits for the next publish (or :meth:`LiveBuffer.wake`) and returns [].

        The buffer's own coroutine, handed back (not awaited here): one coroutine less per read.
        """
        return self._buffer.next(self, cursor)

    def close(self) -> None:
        """Stop holding events in the buffer (idempotent)."""
        self._buffer.detach(self)


class StoreReader:
    """A consumer of a shared store: reads its log, waiting there for the next event (bounded
    by ``SHARED_STORE_RECHECK``, so that the caller looks up now and then)."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    async def next(self, cursor: str | None) -> list[DeliveryEvent]:
        """The events after ``cursor``, at most a batch, or [] after waiting in vain."""
        return await self._store.read_events(
            cursor, limit=_READ_BATCH, timeout=SHARED_STORE_RECHECK
        )

    def close(self) -> None:
        """Nothing to release."""


class LiveBuffer:
    """The newest events of this process, kept while some :class:`Reader` still needs them.

    Holds the events after a base (the cursor key just before the first one). A reader whose
    cursor is older than the base reads from the store's log. For a store shared between
    processes, or whose cursors are not consecutive, nothing is kept (:meth:`attach` gives a
    :class:`StoreReader`): a publish only wakes. Positions find a reader's place in O(1): cursors
    are parsed only when a reader arrives or falls out of the buffer, never once per event.
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
        self._buffered = not store.shared and store.consecutive
        self._ready = False
        self._readers: set[Reader] = set()
        self._generation = 0
        """Publishes (and closes) so far: a reader notes it before reading, waits for more."""
        self._waiting: asyncio.Event | None = None

    async def start(self) -> None:
        """Note where the store's log ends: events published from now on are kept here."""
        last = await self._store.last_cursor()
        self._base_key = self._store.cursor_key(last) if last is not None else (0, 0)
        self._ready = self._buffered

    def attach(self) -> EventReader:
        """A new reader; :meth:`~EventReader.close` it when done, or it holds events here."""
        if not self._buffered:
            return StoreReader(self._store)
        reader = Reader(self)
        self._readers.add(reader)
        return reader

    def detach(self, reader: Reader) -> None:
        """Forget a reader (idempotent)."""
        self._readers.discard(reader)

    def publish(self, events: Sequence[DeliveryEvent]) -> None:
        """Add events (oldest first) and wake the waiting readers."""
        if self._ready and events:
            if self._readers:
                self._keep(events)
            else:  # nobody to keep them for (a bare receiver): only note the newest
                self._drop_all(events[-1].cursor)
        self.wake()

    def _keep(self, events: Sequence[DeliveryEvent]) -> None:
        """Append events so that the buffer stays one unbroken run of the store's log after its
        base.

        The store publishes every event it logs, in log order, and its cursors are consecutive
        (``(n, 0)``, ``(n + 1, 0)``...): a gap means that someone else logged events in between
        (another process writing the same SQLite file), or that the store logged some while the
        buffer started. The buffer then starts over after it, and a reader behind the gap reads
        the store, which has every event. Events at or below the tail are left to the store the
        same way.
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

    async def next(self, reader: Reader, cursor: str | None) -> list[DeliveryEvent]:
        """:meth:`read`, or when there is nothing to read, a wait for the next publish (or
        :meth:`wake`) and []."""
        changed = self._generation  # taken before reading, so no publish slips between
        batch = await self.read(reader, cursor)
        if not batch and self._generation == changed:
            await self._wait()
        return batch

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
            # position is trusted only when the event before it is the reader's cursor; in any
            # other case the cursor's key finds the place, so no event comes twice or is skipped.
            index = position - self._dropped
            if 0 < index <= len(self._events) and self._events[index - 1].cursor == cursor:
                return index
        key = self._store.cursor_key(cursor)
        if key < self._base():
            return None
        return bisect.bisect_right(self._events, key, key=self._key)

    def _key(self, event: DeliveryEvent) -> tuple[int, int]:
        return self._store.cursor_key(event.cursor)

    async def _wait(self) -> None:
        """Wait for the next publish (or wake)."""
        if self._waiting is None:
            self._waiting = asyncio.Event()
        await self._waiting.wait()
