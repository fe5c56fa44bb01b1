"""The live buffer that ``DeliveryTracker.events()`` and ``Inbox.messages()`` consumers share.

One implementation, generic over what the log holds (anything with a ``cursor``: delivery events,
inbound messages) and over where it is read from (a :class:`LogSource` and its read function:
``Store.read_events``, ``InboundStore.read_messages``).

For a log no other process appends to (memory, SQLite), each item is built once (by the store,
or the inbox) and published here; every consumer takes the same object from this buffer rather
than asking the store again. The buffer keeps an item only while a consumer still has to read
it, and never more than ``size`` items: a consumer further behind than that reads from the
store's log instead (never blocking the receiver, never losing an item), then comes back here
once it has caught up.

For a shared log (Redis), other replicas append to it too, so what this process published is
not the whole log. A store of one says, with each batch it hands over (a ``LogRun``), the cursor
of the log's item just before it: when that is the newest item the buffer holds, the batch
continues the buffer and is kept as it is, like any publish above (every consumer takes the very
objects the store built; nothing is read back from the log). When it is not (another replica
logged in between, or the buffer is behind), the buffer reads the log at once after the newest
item it holds (the batch comes again in that read, after the other replicas' items), and keeps
what that read brought. A batch with no such cursor (an inbound Redis store's) is not kept.

What other replicas log while this process logs nothing reaches it only by reading the log: once
a consumer waits here, no batch has come for ``_IDLE_AFTER`` (2 ms) and the store has no write in
flight (its ``writing``; looked at again every 2 ms while it has), the buffer starts one blocking
read after the newest item it holds (``XREAD BLOCK``, up to ``SHARED_STORE_RECHECK``), and keeps
what it brings. So another replica's event reaches an idle process's consumers at most about
2 ms (plus a timer's lateness and one round trip) after this process's last batch, or as soon as
it is logged after that. Under load (a write in flight, or batches less than 2 ms apart) no
blocking read is made, and each batch's cursor tells at once whether another replica logged
before it; the few idle gaps that remain under ``bench_receiver.py``'s load cost one blocking
read each, which this process's next batch ends (``bench/diag_redis_reads.py``).

The reads run in a task of the buffer's, never in a consumer's step: a batch published while a
blocking read is in flight wakes the consumers at once (that read then ends when Redis has
something after its start, this very batch, which the buffer already holds and so drops). A
failed read is raised to the consumers waiting when it fails. Four consumers cost one read of
the log (one round trip, each item decoded once), not four; so is a log whose cursors are not
``consecutive`` (the buffer relies on consecutive cursors to tell that what is published is an
unbroken run of the log).

Dropping items as soon as every consumer has passed them matters for speed, not only memory:
an item that dies young is never seen by the garbage collector's older generations, whose
passes would otherwise take a share of the merge's time (``bench/bench_merge.py``). With no
consumer at all (a bare receiver), nothing is kept.

A consumer costs little under load (``bench/diag_consumers.py``, ``bench/bench_receiver.py``):
a publish appends and wakes, visiting no reader and parsing no cursor when the store says that
it continues the buffer (the memory store does), one otherwise; a woken reader takes
everything published since in one batch, in the step that wakes it, so a busy loop turn of
callbacks costs each consumer one wake-up; and the readers drop what all of them have passed as
they read. An item published alone still reaches its consumers on the loop's next turn.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Final, Generic, Protocol, TypeVar

from ._constants import SHARED_STORE_RECHECK
from ._exceptions import StoreError, StoreUnavailableError
from ._lifecycle import OPEN, Lifecycle
from ._telemetry import log_fields

__all__ = ["LiveBuffer", "LogReader", "LogSource", "ReadLog", "Reader", "follow"]

_NO_RUN: Final = object()
"""What a publish's ``after`` is when it has none: a batch not known to be a run of the log."""

_READ_BATCH = 512
_IDLE_AFTER = 0.002
"""Seconds without a batch published after which a shared log's buffer reads the log, blocking,
for what other replicas log (see the module): a bound on their events' extra delay while this
process is idle, far above the gap between batches under load."""
_OUTAGE_BACKOFF = 0.25
_MAX_OUTAGE_BACKOFF = 5.0


class Logged(Protocol):
    """What a log holds: anything with a cursor."""

    @property
    def cursor(self) -> str:
        """Its place in the log, ordered by :meth:`LogSource.cursor_key`."""
        ...


T = TypeVar("T", bound=Logged)


class LogSource(Protocol):
    """The store a buffer stands in front of: its cursor order, its newest cursor, and whether
    other processes append to its log (``Store`` and ``InboundStore`` both are one).

    A shared store may also have ``writing``, True while a write is in flight whose batch it
    will publish (``RedisStore``): a buffer then waits for that batch rather than read the log.
    """

    shared: bool

    def cursor_key(self, cursor: str) -> tuple[int, int]:
        """A sortable key for a cursor of the log; ValueError for a malformed one."""
        ...

    async def last_cursor(self) -> str | None:
        """The cursor of the newest item logged, or None for an empty log."""
        ...


class ReadLog(Protocol[T]):
    """The store's read of its log (``read_events``, ``read_messages``)."""

    def __call__(
        self, after: str | None, *, limit: int = ..., timeout: float = ...
    ) -> Awaitable[list[T]]:
        """Up to ``limit`` items after ``after``; with ``timeout``, waits that long for one."""
        ...


class LogReader(Protocol[T]):
    """How one consumer gets its batches."""

    def next(self, cursor: str | None) -> Awaitable[list[T]]:
        """The items after ``cursor``, at most a batch; [] after waiting in vain for some."""
        ...

    def close(self) -> None:
        """Done reading."""


class Reader(Generic[T]):
    """One consumer's place in a :class:`LiveBuffer`.

    ``position`` counts the items published before the next one it reads here; None while it
    reads from the store (or has not read yet). The buffer keeps what positioned readers need.
    """

    __slots__ = ("_buffer", "position")

    def __init__(self, buffer: LiveBuffer[T]) -> None:
        self._buffer = buffer
        self.position: int | None = None

    def next(self, cursor: str | None) -> Awaitable[list[T]]:
        """The items after ``cursor`` (the last one this reader got), at most a batch; when there
        is none yet, waits for the next publish. [] when a wake (a close) brought nothing."""
        return self._buffer.next(self, cursor)

    def close(self) -> None:
        """Stop holding items in the buffer (idempotent)."""
        self._buffer.detach(self)


class LiveBuffer(Generic[T]):
    """The newest items of this process, kept while some :class:`Reader` still needs them.

    Holds the items after a base (the cursor key just before the first one). A reader whose
    cursor is older than the base reads from the store's log (``read``). For a log shared
    between processes, or whose cursors are not ``consecutive``, only a publish that says it
    continues the buffer (a run after its newest item) is kept; the rest comes from the
    buffer's reads of the log (see the module). Positions find a
    reader's place in O(1): a publish parses its first cursor (and its last), a reader's cursor
    is parsed only when it arrives or falls out of the buffer.
    """

    def __init__(
        self, source: LogSource, read: ReadLog[T], size: int, *, consecutive: bool
    ) -> None:
        self._source = source
        self._read = read
        """``read(after, limit=, timeout=)``: the store's log after a cursor."""
        self._size = max(1, size)
        self._items: list[T] = []
        self._dropped = 0
        """Items published and since dropped from the head: the position of ``_items[0]``."""
        self._base_key: tuple[int, int] | None = (0, 0)
        """The cursor key just before ``_items[0]``; None until parsed from ``_head``."""
        self._head: str | None = None
        """The cursor of the newest item dropped (the one just before ``_items[0]``)."""
        self._tail: tuple[int, int] | None = None
        """The cursor key of the newest item kept, once known (None: ask the items)."""
        self._tailed = source.shared or not consecutive
        """Filled by the publishes that continue it and by its reads of the log (see above)."""
        self._fetch: asyncio.Future[list[T]] | None = None
        """The buffer's read of the log in flight, for every reader (tailed buffers only)."""
        self._behind = False
        """A publish did not continue the buffer: read the log at once (tailed buffers)."""
        self._published_at = -_IDLE_AFTER
        """Loop time of the last run published (tailed buffers): this process is busy logging."""
        self._idle: asyncio.TimerHandle | None = None
        """The timer that starts a blocking read once publishes stop (tailed buffers)."""
        self._ready = False
        self._readers: set[Reader[T]] = set()
        self._generation = 0
        """Publishes (and closes) so far: a reader notes it before reading, waits for more."""
        self._waiters: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop the buffer started on (None before), whose futures its readers wait for:
        noted once, as ``asyncio.get_running_loop()`` costs a ``getpid()`` system call on
        CPython 3.11 (not 3.12 or 3.13), which on a virtual machine is a sizeable part of a
        wake-up (``bench/diag_merge.py``)."""

    async def start(self) -> None:
        """Note where the store's log ends: items published from now on are kept here."""
        self._loop = asyncio.get_running_loop()
        last = await self._source.last_cursor()
        self._base_key = self._source.cursor_key(last) if last is not None else (0, 0)
        self._head, self._tail = last, self._base_key
        self._ready = True

    def attach(self) -> LogReader[T]:
        """A new reader; :meth:`~LogReader.close` it when done, or it holds items here."""
        reader = Reader(self)
        self._readers.add(reader)
        return reader

    def detach(self, reader: Reader[T]) -> None:
        """Forget a reader (idempotent); the last one leaves nothing held."""
        self._readers.discard(reader)
        if not self._readers and self._items:
            self._drop_all(self._items[-1].cursor)

    def publish(self, items: Sequence[T]) -> None:
        """Add items (oldest first) and wake the waiting readers.

        O(1) per publish: no reader visited, and no cursor parsed for a run that says it
        continues the buffer (else one, two for a batch of several);
        what every reader has passed is dropped as they read (:meth:`_release`). A tailed buffer
        keeps only a run that continues it (:meth:`_continue`).
        """
        if self._tailed:
            after = getattr(items, "after", _NO_RUN)
            if after is not _NO_RUN and self._ready and items:
                self._continue(items, after)
            return
        if self._ready and items:
            if self._readers:
                self._keep(items)
            else:  # nobody to keep them for (a bare receiver): only note the newest
                self._drop_all(items[-1].cursor)
        self.wake()

    def _keep(self, items: Sequence[T]) -> None:
        """Append items so that the buffer stays one unbroken run of the store's log after its
        base.

        Items are published in log order (the delivery store hands over every event it logs;
        the inbox, what each of its calls to the store logged), and the cursors are consecutive
        (``(n, 0)``, ``(n + 1, 0)``...): a gap means that someone else logged items in between
        (another process writing the same SQLite file), that the store logged some while the
        buffer started, or that a call was cancelled after the store logged its items. The buffer
        then starts over after it, and a reader behind the gap reads the store, which has every
        item. Items at or below the tail (published late) are left to the store the same way.

        A run whose ``after`` (a ``LogRun``'s: the memory store hands one over per write) is the
        newest item held, or dropped, continues the buffer as it is: two strings compared and no
        cursor parsed. Anything else has its cursors' keys compared.
        """
        after = getattr(items, "after", _NO_RUN)
        if after is not _NO_RUN and after == (
            self._items[-1].cursor if self._items else self._head
        ):
            self._extend(items)
            return
        tail = self._tail
        if tail is None:
            tail = self._key(self._items[-1]) if self._items else self._base()
        first = self._key(items[0])
        last = first if len(items) == 1 else self._key(items[-1])
        if first != (tail[0] + 1, 0) or last != (first[0] + len(items) - 1, 0):
            items = self._unbroken(items, tail)
            if not items:
                return
            last = self._key(items[-1])
        self._items.extend(items)
        self._tail = last
        if len(self._items) > self._size:  # a reader fell behind: it reads the store now
            self._cut(len(self._items) - self._size)

    def _continue(self, items: Sequence[T], after: object) -> None:
        """A tailed buffer's publish of a run of the log after cursor ``after``: kept as it is
        when ``after`` is the newest item held (or dropped), the common case, which compares
        two strings and parses no cursor; else the log is read at once after the newest item
        held. Either way this process is busy logging: the idle read waits (see the module)."""
        self._published_at = self._loop.time() if self._loop is not None else 0.0
        newest = self._items[-1].cursor if self._items else self._head
        if after == newest:
            if self._readers:
                self._extend(items)
            else:  # nobody to keep them for: only note the newest
                self._drop_all(items[-1].cursor)
            self.wake()
            return
        if self._key(items[-1]) <= self._newest_key():
            return  # a read of the log brought it first
        if not self._readers:
            # Nothing held, nothing to fill: whatever came before it, a reader that comes later
            # and is older than the newest item published reads the store.
            self._drop_all(items[-1].cursor)
            return
        self._behind = True
        if self._fetch is None:
            self._read_log(0.0)

    def _extend(self, items: Sequence[T]) -> None:
        """Append a run known to continue the buffer (its tail then parsed only if needed)."""
        self._items.extend(items)
        self._tail = None
        if len(self._items) > self._size:  # a reader fell behind: it reads the store now
            self._cut(len(self._items) - self._size)

    def _unbroken(self, items: Sequence[T], tail: tuple[int, int]) -> Sequence[T]:
        """The rare publish that does not continue the buffer: what to append after a restart."""
        items = [item for item in items if self._key(item) > tail]
        if not items:
            return items
        keys = [self._key(item) for item in items]
        start = 0  # the last unbroken run of the batch (a gap inside restarts after it)
        for i in range(1, len(keys)):
            if keys[i] != (keys[i - 1][0] + 1, 0):
                start = i
        items, first = items[start:], keys[start]
        if start or first != (tail[0] + 1, 0):
            self._drop_all(None)
            self._base_key = (first[0] - 1, first[1])
        return items

    def _release(self) -> None:
        """Drop the items every positioned reader has passed (they die young: see above)."""
        needed = len(self._items)
        dropped = self._dropped
        for reader in self._readers:
            position = reader.position
            if position is not None and position - dropped < needed:
                needed = position - dropped
        if needed > 0:
            self._cut(needed)

    def _cut(self, count: int) -> None:
        """Drop the ``count`` oldest items (all of them at most); the tail stays known."""
        items = self._items
        if count >= len(items):
            self._head, self._base_key = items[-1].cursor, self._tail
            self._dropped += len(items)
            items.clear()
            return
        self._head, self._base_key = items[count - 1].cursor, None
        del items[:count]
        self._dropped += count

    def _drop_all(self, newest: str | None) -> None:
        """Drop every item, the newest published being ``newest`` (None: a restart, which sets
        the base itself)."""
        self._dropped += len(self._items)
        self._items.clear()
        self._head, self._base_key, self._tail = newest, None, None

    def _base(self) -> tuple[int, int]:
        """The cursor key just before the first kept item (parsed only when a reader asks)."""
        if self._base_key is None:
            self._base_key = (0, 0) if self._head is None else self._source.cursor_key(self._head)
        return self._base_key

    def wake(self) -> None:
        """Wake every waiting reader; allocates nothing unless one waits (the hot path).

        Each reader is resumed on the loop's next turn: an item published alone reaches its
        consumers one turn after it was recorded, and the items published meanwhile (the other
        callbacks of a busy turn) come in the same batch.
        """
        self._generation += 1
        waiters = self._waiters
        if waiters:
            self._waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def next(self, reader: Reader[T], cursor: str | None) -> list[T]:
        """The items after ``cursor``, at most a batch; when there is none, waits for the next
        publish (or :meth:`wake`) and reads again: [] when that brought nothing new."""
        start = self._find(cursor, reader.position)
        if start is None:
            if self._tailed:  # behind the buffer: read the log, waiting there if at its end
                return await self._read_store(reader, cursor, SHARED_STORE_RECHECK)
            changed = self._generation  # taken before reading, so no publish slips between
            batch = await self._read_store(reader, cursor)
            if batch or self._generation != changed:
                return batch
            await self._wait()
            return []
        if start == len(self._items):  # caught up: nothing published since (no await above)
            reader.position = self._dropped + start
            if self._tailed:
                self._follow_log()
            await self._wait()
            start = self._find(cursor, reader.position)
            if start is None or start == len(self._items):
                return []  # a close, or the buffer started over: the caller looks again
        return self._take(reader, start)

    def _take(self, reader: Reader[T], start: int) -> list[T]:
        batch = self._items[start : start + _READ_BATCH]
        reader.position = self._dropped + start + len(batch)
        self._release()
        return batch

    def _follow_log(self) -> None:
        """A reader of a tailed buffer is caught up and about to wait: make sure that what
        other replicas log reaches it. No read while one is in flight; at once after a publish
        that did not continue the buffer; else a blocking read once no batch has been published
        for ``_IDLE_AFTER`` seconds and the store writes none (one timer until then, looked at
        every ``_IDLE_AFTER`` while the store writes: never one per wait)."""
        if self._fetch is None:
            if self._behind:
                self._read_log(0.0)
            elif self._idle is None:
                self._read_when_idle()

    def _read_when_idle(self) -> None:
        """Start the blocking read if no batch was published for ``_IDLE_AFTER`` and the store
        is not writing one, else look again when none will have been (or in ``_IDLE_AFTER``)."""
        loop = self._loop or asyncio.get_running_loop()
        quiet = self._published_at + _IDLE_AFTER - loop.time()
        if quiet <= 0 and getattr(self._source, "writing", False) is True:
            # Its batch comes, and says whether another replica logged before it: under load
            # (a write in flight most of the time) this process reads nothing back.
            quiet = _IDLE_AFTER
        if quiet <= 0:
            self._read_log(SHARED_STORE_RECHECK)
        else:
            self._idle = loop.call_later(quiet, self._on_idle)

    def _on_idle(self) -> None:
        """The idle timer: read if someone still waits and no read is in flight (a reader that
        waits later looks again itself)."""
        self._idle = None
        if self._fetch is None and self._waiters:
            self._read_when_idle()

    def _read_log(self, timeout: float) -> None:
        """Read the log after the newest item held, for every reader, in a task of the
        buffer's (no reader's step waits for it: a publish wakes them meanwhile); with
        ``timeout``, Redis waits up to that long for an item."""
        self._behind = False
        after = self._items[-1].cursor if self._items else self._head
        fetch = asyncio.ensure_future(self._read(after, limit=_READ_BATCH, timeout=timeout))
        self._fetch = fetch
        fetch.add_done_callback(self._fetched)

    def _fetched(self, fetch: asyncio.Future[list[T]]) -> None:
        """The read of the log ended: keep what it brought (for the readers there are), read
        again at once if a publish did not continue the buffer meanwhile, and wake the waiting
        readers, with its error if it failed (the next caught-up reader reads again)."""
        self._fetch = None
        error = None if fetch.cancelled() else fetch.exception()
        if error is None and not fetch.cancelled():
            batch = fetch.result()
            if batch and self._readers:
                self._append(batch)
        if self._behind and self._readers:
            self._read_log(0.0)
        if error is None:
            self.wake()
            return
        self._generation += 1
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)

    def _append(self, batch: list[T]) -> None:
        """Add what was read of the log after a cursor no newer than the newest item held: the
        log's next items, an unbroken run by construction. What was added meanwhile (by a
        publish, or a reader behind that caught up during the buffer's read) is not added
        twice."""
        newest = self._newest_key()
        if self._key(batch[0]) <= newest:
            batch = batch[bisect.bisect_right(batch, newest, key=self._key) :]
            if not batch:
                return
        self._items.extend(batch)
        self._tail = self._key(batch[-1])
        if len(self._items) > self._size:  # a reader fell behind: it reads the store now
            self._cut(len(self._items) - self._size)

    def _newest_key(self) -> tuple[int, int]:
        """The cursor key of the newest item held or dropped."""
        if self._tail is None:
            self._tail = self._key(self._items[-1]) if self._items else self._base()
        return self._tail

    def _adopt(self, batch: list[T], after: str | None) -> None:
        """What a reader behind a tailed buffer read past the newest item held continues the
        buffer (the log's next items), so the reader can
        wait here with the others and the buffer need not read those again."""
        if after is not None and self._source.cursor_key(after) > self._newest_key():
            return  # a read that does not cover the newest held: not known to continue it
        self._append(batch)

    async def _read_store(
        self, reader: Reader[T], cursor: str | None, timeout: float = 0.0
    ) -> list[T]:
        batch = await self._read(cursor, limit=_READ_BATCH, timeout=timeout)
        if batch and self._tailed:
            self._adopt(batch, cursor)
        # Caught up with what the buffer holds? Then read here from now on.
        index = self._find(batch[-1].cursor if batch else cursor, None)
        reader.position = None if index is None else self._dropped + index
        return batch

    def _find(self, cursor: str | None, position: int | None) -> int | None:
        """The index of the first item after ``cursor``, or None to read from the store."""
        if not self._ready or cursor is None:
            return None
        if position is not None:
            # Trimming keeps what a positioned reader needs unless it fell ``size`` behind. The
            # position is trusted only when the item before it is the reader's cursor; in any
            # other case the cursor's key finds the place, so no item comes twice or is skipped.
            index = position - self._dropped
            if 0 < index <= len(self._items) and self._items[index - 1].cursor == cursor:
                return index
            if index == 0 and self._head == cursor:
                return 0  # everything it read was dropped since: it is at the head
        key = self._source.cursor_key(cursor)
        if key < self._base():
            return None
        return bisect.bisect_right(self._items, key, key=self._key)

    def _key(self, item: T) -> tuple[int, int]:
        return self._source.cursor_key(item.cursor)

    async def _wait(self) -> None:
        """Wait for the next publish (or wake)."""
        waiter = (self._loop or asyncio.get_running_loop()).create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            # A consumer that gives up (a timeout around its anext) leaves no waiter behind: on
            # a tracker idle for hours, they would pile up until the next publish.
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            raise


async def follow(
    owner: Lifecycle,
    buffer: LiveBuffer[T],
    since: str | None,
    closing: asyncio.Event,
    *,
    logger: logging.Logger,
    name: str,
    describe: Callable[[str], str] = str,
) -> AsyncIterator[T]:
    """Every item after cursor ``since``, then live ones, while ``owner`` is open: the body of
    ``DeliveryTracker.events()`` and ``Inbox.messages()``, which return it as it is (no
    generator of theirs in between, each item taken once from the buffer).

    Raises ``owner``'s unusable error at the first step when it is not open. While the store is
    unavailable, logs (``name``, the error through ``describe``) and waits, doubling from 0.25 s
    up to 5 s, until ``closing`` is set or it is time to read again, then resumes after the last
    item it yielded. Ends when ``owner`` closes, a store error raised by the close included.
    """
    owner._check_usable()
    cursor = since
    outage = _OUTAGE_BACKOFF
    reader = buffer.attach()
    try:
        while owner._state is OPEN:
            try:
                batch = await reader.next(cursor)
            except StoreUnavailableError as exc:
                logger.warning(
                    "%s paused, store unavailable: %s",
                    name,
                    describe(str(exc)),
                    extra=log_fields(name, outcome="paused", error=type(exc).__name__),
                )
                with contextlib.suppress(TimeoutError):  # a close ends the wait at once
                    await asyncio.wait_for(closing.wait(), outage)
                outage = min(outage * 2, _MAX_OUTAGE_BACKOFF)
                continue
            except StoreError:
                if owner._state is OPEN:
                    raise
                return  # the store closed under a read: the owner is closing
            outage = _OUTAGE_BACKOFF
            for item in batch:
                yield item
            if batch:
                cursor = batch[-1].cursor
    finally:
        reader.close()
