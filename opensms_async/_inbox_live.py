"""The live buffer behind ``Inbox.messages()``: one message object for every consumer.

The same discipline as the delivery tracker's (``_live.py``), written generic over what the log
holds (anything with a ``cursor``) and over where it is read from (a :class:`LogSource`), so that
one buffer could serve both streams later. A store builds each message once; the inbox publishes
it here, and every consumer iterating ``messages()`` takes the same object from this buffer
rather than asking the store again. The buffer keeps a message only while a consumer still has to
read it, and never more than ``size``: a consumer further behind than that reads from the store's
log instead (never blocking the receiver, never losing a message), then comes back here once it
has caught up. With no consumer at all (a bare receiver), nothing is kept.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from ._constants import SHARED_STORE_RECHECK

__all__ = ["LiveBuffer", "LogSource", "Reader"]

_READ_BATCH = 512


class _Logged(Protocol):
    @property
    def cursor(self) -> str: ...


T = TypeVar("T", bound=_Logged)


class LogSource(Protocol):
    """Where a buffer reads what it does not hold: a store's log (``read`` is the store's
    ``read_messages``), its newest cursor, its cursor order, and whether others append to it."""

    shared: bool

    def cursor_key(self, cursor: str) -> tuple[int, int]: ...

    async def last_cursor(self) -> str | None: ...


class Reader:
    """One consumer's place in a :class:`LiveBuffer`.

    ``position`` counts the items published before the next one it reads here; None while it
    reads from the store (or has not read yet).
    """

    __slots__ = ("position",)

    def __init__(self) -> None:
        self.position: int | None = None


class LiveBuffer(Generic[T]):
    """The newest items of this process, kept while some :class:`Reader` still needs them.

    Holds the items after a base (the cursor key just before the first one). A reader whose
    cursor is older than the base reads from the store's log (``read``). Logs shared between
    processes are always read from the store (other replicas append there too), so nothing is
    kept then. Positions find a reader's place in O(1): cursors are parsed only when a reader
    arrives or falls out of the buffer, never once per item.
    """

    def __init__(
        self,
        source: LogSource,
        read: Callable[..., Awaitable[list[T]]],
        size: int,
    ) -> None:
        self._source = source
        self._read = read
        """``read(after, limit=, timeout=)``: the store's log after a cursor."""
        self._size = max(1, size)
        self._items: list[T] = []
        self._dropped = 0
        """Items published and since dropped from the head: the position of ``_items[0]``."""
        self._base_key: tuple[int, int] = (0, 0)
        self._dropped_cursor: str | None = None
        """The cursor of the newest item dropped since ``_base_key`` was last computed."""
        self._ready = False
        self._readers: set[Reader] = set()
        self._generation = 0
        self._waiting: asyncio.Event | None = None

    async def start(self) -> None:
        """Note where the store's log ends: items published from now on are kept here."""
        last = await self._source.last_cursor()
        self._base_key = self._source.cursor_key(last) if last is not None else (0, 0)
        self._ready = not self._source.shared

    def attach(self) -> Reader:
        """A new reader; :meth:`detach` it when done, or it holds items in the buffer."""
        reader = Reader()
        self._readers.add(reader)
        return reader

    def detach(self, reader: Reader) -> None:
        """Forget a reader (idempotent)."""
        self._readers.discard(reader)

    def publish(self, items: list[T]) -> None:
        """Add items (oldest first) and wake the waiting readers."""
        if self._ready and items:
            if self._readers:
                self._keep(items)
            else:  # nobody to keep them for (a bare receiver): only note the newest
                self._drop_all(items[-1].cursor)
        self.wake()

    def _keep(self, items: list[T]) -> None:
        """Append items so that the buffer stays one unbroken run of cursors after its base.

        The in-process stores number items 1, 2, 3... (``cursor_key`` ``(n, 0)``). Items the
        store logged but nobody published here (a call cancelled after the store wrote) leave a
        gap: the buffer then starts over after it, and a reader behind the gap reads the store,
        which has every item. Items published late, behind newer ones, are left to the store the
        same way. A store numbered otherwise only ever starts over.
        """
        tail = self._key(self._items[-1]) if self._items else self._base()
        first = self._key(items[0])
        if first <= tail:
            items = [item for item in items if self._key(item) > tail]
            if not items:
                return
            first = self._key(items[0])
        if first != (tail[0] + 1, 0):
            self._dropped += len(self._items)
            self._items.clear()
            self._base_key, self._dropped_cursor = (first[0] - 1, first[1]), None
        self._items.extend(items)
        self._trim()

    def _trim(self) -> None:
        """Drop the items every positioned reader has passed, and any beyond ``size``."""
        needed = len(self._items)
        for reader in self._readers:
            if reader.position is not None:
                needed = min(needed, reader.position - self._dropped)
        cut = max(needed, len(self._items) - self._size)
        if cut == len(self._items):
            self._drop_all(self._items[-1].cursor)
        elif cut > 0:
            self._dropped_cursor = self._items[cut - 1].cursor
            del self._items[:cut]
            self._dropped += cut

    def _drop_all(self, newest: str) -> None:
        self._dropped += len(self._items)
        self._items.clear()
        self._dropped_cursor = newest

    def _base(self) -> tuple[int, int]:
        """The cursor key just before the first kept item (parsed only when a reader asks)."""
        if self._dropped_cursor is not None:
            self._base_key = self._source.cursor_key(self._dropped_cursor)
            self._dropped_cursor = None
        return self._base_key

    def wake(self) -> None:
        """Wake every waiting reader; allocates nothing unless one waits (the hot path)."""
        self._generation += 1
        if self._waiting is not None:
            self._waiting.set()
            self._waiting = None

    async def read(self, reader: Reader, cursor: str | None) -> list[T]:
        """The items after ``cursor`` (the last one ``reader`` got), at most a batch of them."""
        start = self._find(cursor, reader.position)
        if start is not None:
            batch = self._items[start : start + _READ_BATCH]
            reader.position = self._dropped + start + len(batch)
            return batch
        batch = await self._read(cursor, limit=_READ_BATCH)
        # Caught up with what the buffer holds? Then read here from now on.
        index = self._find(batch[-1].cursor if batch else cursor, None)
        reader.position = None if index is None else self._dropped + index
        return batch

    def _find(self, cursor: str | None, position: int | None) -> int | None:
        """The index of the first item after ``cursor``, or None to read from the store."""
        if not self._ready or cursor is None:
            return None
        if position is not None:
            # The item before its position must be its cursor's: a store may log an item before
            # it is published here (SQLite answers from its thread), and a reader that read it
            # from the store in between must not get it again from here.
            index = position - self._dropped
            if 0 < index <= len(self._items) and self._items[index - 1].cursor == cursor:
                return index
        key = self._source.cursor_key(cursor)
        if key < self._base():
            return None
        return bisect.bisect_right(self._items, key, key=self._key)

    def _key(self, item: T) -> tuple[int, int]:
        return self._source.cursor_key(item.cursor)

    @property
    def changed(self) -> int:
        """A mark for :meth:`wait`, which returns at the first publish (or close) after it."""
        return self._generation

    async def wait(self, changed: int, cursor: str | None) -> None:
        """Wait for a publish after mark ``changed`` (shared logs: for the store's log)."""
        if self._source.shared:
            # Another replica may append: block in the store (e.g. XREAD BLOCK), bounded.
            await self._read(cursor, limit=1, timeout=SHARED_STORE_RECHECK)
            return
        if self._generation != changed:
            return
        if self._waiting is None:
            self._waiting = asyncio.Event()
        await self._waiting.wait()
