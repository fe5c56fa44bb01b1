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

A consumer costs little under load (``bench/diag_consumers.py``, ``bench/bench_receiver.py``):
a publish appends and wakes, parsing one cursor and visiting no reader; a woken reader takes
everything published since in one batch, in the step that wakes it, so a busy loop turn of
callbacks costs each consumer one wake-up; and the readers drop what all of them have passed as
they read. An event published alone still reaches its consumers on the loop's next turn.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
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
        is none yet, waits for the next publish. [] when a wake (a close) brought nothing."""
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
    :class:`StoreReader`): a publish only wakes. Positions find a reader's place in O(1): a
    publish parses its first cursor (and its last), a reader's cursor is parsed only when it
    arrives or falls out of the buffer.
    """

    def __init__(self, store: Store, size: int) -> None:
        self._store = store
        self._size = max(1, size)
        self._events: list[DeliveryEvent] = []
        self._dropped = 0
        """Events published and since dropped from the head: the position of ``_events[0]``."""
        self._base_key: tuple[int, int] | None = (0, 0)
        """The cursor key just before ``_events[0]``; None until parsed from ``_head``."""
        self._head: str | None = None
        """The cursor of the newest event dropped (the one just before ``_events[0]``)."""
        self._tail: tuple[int, int] | None = None
        """The cursor key of the newest event kept, once known (None: ask the events)."""
        self._buffered = not store.shared and store.consecutive
        self._ready = False
        self._readers: set[Reader] = set()
        self._generation = 0
        """Publishes (and closes) so far: a reader notes it before reading, waits for more."""
        self._waiters: list[asyncio.Future[None]] = []

    async def start(self) -> None:
        """Note where the store's log ends: events published from now on are kept here."""
        last = await self._store.last_cursor()
        self._base_key = self._store.cursor_key(last) if last is not None else (0, 0)
        self._head, self._tail = last, self._base_key
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
        """Add events (oldest first) and wake the waiting readers.

        O(1) per publish: one cursor parsed (two for a batch of several), no reader visited;
        what every reader has passed is dropped as they read (:meth:`_release`).
        """
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
        tail = self._tail
        if tail is None:
            tail = self._key(self._events[-1]) if self._events else self._base()
        first = self._key(events[0])
        last = first if len(events) == 1 else self._key(events[-1])
        if first != (tail[0] + 1, 0) or last != (first[0] + len(events) - 1, 0):
            events = self._unbroken(events, tail)
            if not events:
                return
            last = self._key(events[-1])
        self._events.extend(events)
        self._tail = last
        if len(self._events) > self._size:  # a reader fell behind: it reads the store now
            self._cut(len(self._events) - self._size)

    def _unbroken(
        self, events: Sequence[DeliveryEvent], tail: tuple[int, int]
    ) -> Sequence[DeliveryEvent]:
        """The rare publish that does not continue the buffer: what to append after a restart."""
        events = [event for event in events if self._key(event) > tail]
        if not events:
            return events
        keys = [self._key(event) for event in events]
        start = 0  # the last unbroken run of the batch (a gap inside restarts after it)
        for i in range(1, len(keys)):
            if keys[i] != (keys[i - 1][0] + 1, 0):
                start = i
        events, first = events[start:], keys[start]
        if start or first != (tail[0] + 1, 0):
            self._drop_all(None)
            self._base_key = (first[0] - 1, first[1])
        return events

    def _release(self) -> None:
        """Drop the events every positioned reader has passed (they die young: see above)."""
        needed = len(self._events)
        dropped = self._dropped
        for reader in self._readers:
            position = reader.position
            if position is not None and position - dropped < needed:
                needed = position - dropped
        if needed > 0:
            self._cut(needed)

    def _cut(self, count: int) -> None:
        """Drop the ``count`` oldest events (all of them at most); the tail stays known."""
        events = self._events
        if count >= len(events):
            self._head, self._base_key = events[-1].cursor, self._tail
            self._dropped += len(events)
            events.clear()
            return
        self._head, self._base_key = events[count - 1].cursor, None
        del events[:count]
        self._dropped += count

    def _drop_all(self, newest: str | None) -> None:
        """Drop every event, the newest published being ``newest`` (None: a restart, which sets
        the base itself)."""
        self._dropped += len(self._events)
        self._events.clear()
        self._head, self._base_key, self._tail = newest, None, None

    def _base(self) -> tuple[int, int]:
        """The cursor key just before the first kept event (parsed only when a reader asks)."""
        if self._base_key is None:
            self._base_key = (0, 0) if self._head is None else self._store.cursor_key(self._head)
        return self._base_key

    def wake(self) -> None:
        """Wake every waiting reader; allocates nothing unless one waits (the hot path).

        Each reader is resumed on the loop's next turn: an event published alone reaches its
        consumers one turn after it was recorded, and the events published meanwhile (the other
        callbacks of a busy turn) come in the same batch.
        """
        self._generation += 1
        waiters = self._waiters
        if waiters:
            self._waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def next(self, reader: Reader, cursor: str | None) -> list[DeliveryEvent]:
        """The events after ``cursor``, at most a batch; when there is none, waits for the next
        publish (or :meth:`wake`) and reads again: [] when that brought nothing new."""
        start = self._find(cursor, reader.position)
        if start is None:
            changed = self._generation  # taken before reading, so no publish slips between
            batch = await self._read_store(reader, cursor)
            if batch or self._generation != changed:
                return batch
            await self._wait()
            return []
        if start == len(self._events):  # caught up: nothing published since (no await above)
            reader.position = self._dropped + start
            await self._wait()
            start = self._find(cursor, reader.position)
            if start is None or start == len(self._events):
                return []  # a close, or the buffer started over: the caller looks again
        return self._take(reader, start)

    def _take(self, reader: Reader, start: int) -> list[DeliveryEvent]:
        batch = self._events[start : start + _READ_BATCH]
        reader.position = self._dropped + start + len(batch)
        self._release()
        return batch

    async def _read_store(self, reader: Reader, cursor: str | None) -> list[DeliveryEvent]:
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
            if index == 0 and self._head == cursor:
                return 0  # everything it read was dropped since: it is at the head
        key = self._store.cursor_key(cursor)
        if key < self._base():
            return None
        return bisect.bisect_right(self._events, key, key=self._key)

    def _key(self, event: DeliveryEvent) -> tuple[int, int]:
        return self._store.cursor_key(event.cursor)

    async def _wait(self) -> None:
        """Wait for the next publish (or wake)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            # A consumer that gives up (a timeout around its anext) leaves no waiter behind: on
            # a tracker idle for hours, they would pile up until the next publish.
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            raise
