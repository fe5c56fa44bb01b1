"""``SQLiteStore``: delivery states, events and the polling schedule in one SQLite file.

The durable default for a single process, on the standard library's :mod:`sqlite3`.

Threading: a SQLite connection belongs to the thread that made it, so one dedicated *writer
thread* owns the only connection and runs every statement; the event loop never blocks on disk.
Reads go through the same thread: they are short primary-key lookups, the GIL would serialise a
second reader thread's row handling anyway, and one connection makes "read your own commits"
trivial.

Group commit: ``apply_events`` (and the schedule writes) queue a job and await its future. The
writer takes everything queued, runs the merges inside *one* transaction, commits once, then
hands the batch's events to the listeners and resolves every caller's future together, in one
hop to the event loop. The merges of every caller share their statements: one ``SELECT`` of the
stored states, one ``executemany`` of the new states and one of the events. A caller whose update
fails is rolled back alone, all its updates with it: should any job fail, the batch is rolled back
and run again with a savepoint per job, each job merged by the same batched merge, alone
(savepoints cost two statements per job, so the common, failure-free batch goes without). Each
caller thus returns only after its commit (the receiver may answer 2xx), while a burst of
callbacks shares one commit and three statements. A failed ``COMMIT`` rolls the whole batch back
and fails every caller of that batch with :class:`StoreUnavailableError`: nothing is
half-written.

Retention (``retention``, ``max_events``: the Redis store's promises) runs on the same thread,
between batches and while it is idle, in small steps (:mod:`._sqlite_retention`).

Schema: version 2 (``SCHEMA_VERSION``). A file of version 1 is migrated when opened, in one
transaction; a file of any other version is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Final, Literal, TypeAlias, TypeVar, cast
from urllib.parse import unquote, urlsplit

from .._constants import RECEIPT_RETENTION
from .._exceptions import InvalidStoreURLError, StoreError, StoreUnavailableError
from .._lifecycle import OPEN, Lifecycle
from .._models import DeliveryStatus
from .._state import DeliveryEvent, DeliveryState, DeliveryUpdate, Source, build_event
from ._base import PendingRequest
from ._common import Listeners, Wakeup, parse_cursor
from ._memo import EventShape, MergeMemo, StateShape, Step
from ._sqlite_retention import Retention
from ._url_options import options, positive_int, positive_seconds, redact

__all__ = ["DEFAULT_MAX_EVENTS", "DEFAULT_RETENTION", "SCHEMA_VERSION", "SQLiteStore"]

SCHEMA_VERSION: Final = 2
"""Version of the tables below, kept in ``meta``: version 1 is migrated (:data:`_MIGRATE_1`),
any other is refused."""
DEFAULT_RETENTION: Final = RECEIPT_RETENTION
"""Seconds a request's states outlive their last write by default: the 7-day receipt retention."""
DEFAULT_MAX_EVENTS: Final = 1_000_000
"""Events the log keeps by default; past it the oldest are deleted first."""

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS states (
        request_id TEXT NOT NULL, address TEXT NOT NULL, status TEXT NOT NULL,
        parts_delivered INTEGER, sms_parts INTEGER, sender TEXT,
        conflict INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL,
        written_at REAL NOT NULL,
        PRIMARY KEY (request_id, address)) WITHOUT ROWID""",
    # AUTOINCREMENT: a cursor is never reused, even after the newest events were deleted.
    """CREATE TABLE IF NOT EXISTS events (
        cursor INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL,
        address TEXT NOT NULL, status TEXT NOT NULL, previous TEXT, source TEXT NOT NULL,
        parts_delivered INTEGER, sms_parts INTEGER, conflict INTEGER NOT NULL, at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS pending (
        request_id TEXT PRIMARY KEY, sender TEXT NOT NULL, tracked_at REAL NOT NULL,
        next_poll_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, leased_until REAL,
        written_at REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS pending_due ON pending (next_poll_at)",
    # Schedule entries are few and written per send and per poll, not per callback: an index
    # finds the expired ones directly. States are swept instead (see _sqlite_retention).
    "CREATE INDEX IF NOT EXISTS pending_written ON pending (written_at)",
)
_MIGRATE_1: Final = (
    # ``written_at``: the store's clock at a row's last write, which retention counts from. The
    # rows of version 1 count as written at the migration, so none goes sooner than
    # ``retention`` after it; a column default, so that no row is rewritten.
    "ALTER TABLE states ADD COLUMN written_at REAL NOT NULL DEFAULT {now}",
    "ALTER TABLE pending ADD COLUMN written_at REAL NOT NULL DEFAULT {now}",
    "CREATE INDEX IF NOT EXISTS pending_written ON pending (written_at)",
)
"""Version 1 to 2, with the time of the migration as ``{now}`` (a float the store made)."""
_SYNCHRONOUS: Final = {
    "NORMAL": "PRAGMA synchronous=NORMAL",
    "FULL": "PRAGMA synchronous=FULL",
}
# Statements are spelled out; only lists of ``?`` placeholders are assembled: nothing user-given
# becomes SQL.
_SELECT_STATE: Final = """SELECT request_id, address, status, parts_delivered, sms_parts, sender,
    conflict, updated_at FROM states WHERE request_id = ? AND address = ?"""
# The stored states of many pairs at once: VALUES (?, ?) repeated, one row per pair. CROSS JOIN
# keeps SQLite from scanning states: each pair is a primary-key search.
_SELECT_SHAPES: Final = """SELECT s.request_id, s.address, s.status, s.parts_delivered,
    s.sms_parts, s.sender, s.conflict, s.updated_at FROM (VALUES {pairs}) AS v
    CROSS JOIN states AS s ON s.request_id = v.column1 AND s.address = v.column2"""
_PAIRS_PER_SELECT: Final = 64
_SELECT_REQUEST: Final = """SELECT request_id, address, status, parts_delivered, sms_parts, sender,
    conflict, updated_at FROM states WHERE request_id = ? ORDER BY address"""
_UPSERT_STATE: Final = """INSERT OR REPLACE INTO states (request_id, address, status,
    parts_delivered, sms_parts, sender, conflict, updated_at, written_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"""
_INSERT_EVENT: Final = """INSERT INTO events (request_id, address, status, previous, source,
    parts_delivered, sms_parts, conflict, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"""
_SELECT_EVENTS: Final = """SELECT cursor, request_id, address, status, previous, source,
    parts_delivered, sms_parts, conflict, at FROM events WHERE cursor > ? ORDER BY cursor LIMIT ?"""
_SCHEDULE: Final = """INSERT INTO pending (request_id, sender, tracked_at, next_poll_at,
    written_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET
    sender = excluded.sender, tracked_at = min(tracked_at, excluded.tracked_at),
    next_poll_at = excluded.next_poll_at, written_at = excluded.written_at"""
_RESCHEDULE: Final = """UPDATE pending SET next_poll_at = ?, attempts = ?, leased_until = NULL,
    written_at = ? WHERE request_id = ?"""
_LEASE: Final = "UPDATE pending SET leased_until = ?, written_at = ? WHERE request_id = ?"
_SELECT_DUE: Final = """SELECT request_id, sender, tracked_at, next_poll_at, attempts FROM pending
    WHERE next_poll_at <= ? AND (leased_until IS NULL OR leased_until <= ?)
    ORDER BY next_poll_at, request_id LIMIT ?"""

_T = TypeVar("_T")
_Kind: TypeAlias = Literal["read", "write", "merge", "stop"]
_Outcome: TypeAlias = tuple["asyncio.Future[Any] | None", BaseException | None, object]
_Connection: TypeAlias = sqlite3.Connection
_Pair: TypeAlias = tuple[str, str]
_Merged: TypeAlias = tuple[DeliveryUpdate, Step, float, int]
"""What merging one update did: the update, the step, ``updated_at`` after it, the event cursor."""


class SQLiteStore(Lifecycle):
    """A :class:`~opensms_async.stores.Store` in one SQLite file (WAL mode), for one process.

    ``path`` is the database file (created when missing; its directory must exist), or
    ``":memory:"`` for a private in-memory database (not ``durable``). ``synchronous="NORMAL"``
    (the default) with WAL makes every returned ``apply_events`` survive a crash of this process,
    but the last commits may be lost (never corrupted) on power loss or an OS crash;
    ``synchronous="FULL"`` syncs the WAL on every commit and survives those too, at some
    throughput. ``poll_interval`` is how often a waiting ``read_events`` re-checks the file for
    events written by other processes; ``max_batch`` caps how many queued jobs share one
    transaction.

    Retention, as in the Redis store: a request's states are deleted ``retention`` seconds (default
    :data:`DEFAULT_RETENTION`, 7 days; None: never) after their last write, and so is a
    polling-schedule entry (the poller gives up on one sooner); the event log keeps the newest
    ``max_events`` events (default :data:`DEFAULT_MAX_EVENTS`), and a reader whose cursor was
    trimmed resumes at the oldest retained event. The writer thread deletes in small steps
    between batches and while idle, never in one long transaction; a request goes within about a
    tenth of the retention (at most an hour) after it expired. ``clock`` (Unix seconds, called on
    the writer thread) is what retention counts with.

    Use it as ``async with SQLiteStore(path) as store`` or call :meth:`open` and :meth:`aclose`.
    Cursors are the events' decimal row ids; they keep increasing across reopenings and trimming.
    """

    shared: bool = False
    consecutive: bool = True
    _open_twice = True
    _lifecycle_error = StoreError

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        poll_interval: float = 0.5,
        max_batch: int = 1000,
        retention: float | None = DEFAULT_RETENTION,
        max_events: int = DEFAULT_MAX_EVENTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}")
        if poll_interval <= 0 or max_batch < 1:
            raise ValueError("poll_interval must be positive and max_batch at least 1")
        _check_retention(retention, max_events)
        self.path = os.fspath(path)
        self.durable = self.path not in (":memory:", "")
        """False for a private in-memory (or temporary) database, which ends with this store."""
        self.synchronous = synchronous.upper()
        self.retention = None if retention is None else float(retention)
        self.max_events = max_events
        self._clock = clock
        self._poll_interval = poll_interval
        self._max_batch = max_batch
        self._wakeup = Wakeup()
        self._listeners: Listeners[DeliveryEvent] = Listeners()
        self._memo = MergeMemo()  # used on the writer thread only
        self._writer: _Writer | None = None
        self._started: asyncio.Future[None] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """The store a ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or
        ``sqlite:///:memory:`` URL names, with options ``synchronous`` (NORMAL or FULL),
        ``retention`` (seconds) and ``max_events``; InvalidStoreURLError for anything else."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "sqlite" or parts.netloc:
            raise InvalidStoreURLError(
                f"a SQLite URL has no host: {redact(url)!r} (relative: sqlite:///file.db,"
                " absolute: sqlite:////path/file.db)"
            )
        path = unquote(parts.path[1:])  # the third slash ends the empty host
        if not path or path.endswith("/"):
            raise InvalidStoreURLError(f"a SQLite URL needs a file name: {url!r}")
        given = options(url, parts.query, {"synchronous", "retention", "max_events"})
        synchronous = given.pop("synchronous", "NORMAL").upper()
        if synchronous not in _SYNCHRONOUS:
            raise InvalidStoreURLError(f"synchronous must be NORMAL or FULL in {url!r}")
        retention = DEFAULT_RETENTION
        if "retention" in given:
            retention = positive_seconds(url, "retention", given["retention"])
        max_events = DEFAULT_MAX_EVENTS
        if "max_events" in given:
            max_events = positive_int(url, "max_events", given["max_events"])
        return cls(path, synchronous=synchronous, retention=retention, max_events=max_events)

    def __repr__(self) -> str:
        return (
            f"SQLiteStore({self.path!r}, synchronous={self.synchronous!r}, "
            f"retention={self.retention!r}, max_events={self.max_events!r})"
        )

    async def open(self) -> None:
        """Start the writer thread, open the file and create the schema; idempotent.

        Raises :class:`StoreError` when the file is not a database (or one of another schema
        version) or cannot be opened for writing, and once the store was closed.
        """
        await super().open()

    async def _open(self) -> None:
        if self._started is None:
            loop = asyncio.get_running_loop()
            retention = Retention(self.retention, self.max_events, self._clock)
            self._writer = _Writer(
                self.path, self.synchronous, loop, self._wakeup, self._listeners,
                self._max_batch, self._memo, retention, self._clock,
            )  # fmt: skip
            self._started = self._writer.start()
            # A store dropped without aclose() still stops its thread.
            self._finalizer = weakref.finalize(self, self._writer.stop_nowait)
        await asyncio.shield(self._started)

    async def aclose(self) -> None:
        """Finish the queued work, close the file and stop the thread; idempotent."""
        await super().aclose()

    async def _aclose(self) -> None:
        self._wakeup.fire()
        if self._started is None or self._writer is None or self._finalizer is None:
            return
        self._finalizer.detach()
        with contextlib.suppress(StoreError):
            await asyncio.shield(self._started)
            await self._writer.stop()

    # --- states ------------------------------------------------------------------------------

    async def apply_events(self, updates: Sequence[DeliveryUpdate]) -> list[DeliveryEvent]:
        """Merge each update into its state and log an event per advance; returns the events
        logged (oldest first) once committed.

        Raises :class:`StoreUnavailableError` when nothing was recorded (the transaction was
        rolled back). A cancelled call may still be committed: its events reach the listeners
        all the same.
        """
        writer = self._ready()
        if not updates:
            return []
        events: list[DeliveryEvent] = await writer.merge(tuple(updates))
        return events

    def listen(self, listener: Callable[[Sequence[DeliveryEvent]], None]) -> Callable[[], None]:
        """Hand every batch of logged events to ``listener`` on the event loop once committed, in
        commit (cursor) order, whether or not its callers still wait; returns the function that
        stops it."""
        return self._listeners.add(listener)

    async def get(self, request_id: str, address: str) -> DeliveryState | None:
        """The state of one recipient, or None if the pair was never seen."""
        row = await self._ready().call(partial(_select_one, _SELECT_STATE, (request_id, address)))
        return None if row is None else _state_from_row(row)

    async def get_request(self, request_id: str) -> list[DeliveryState]:
        """The states of every recipient seen for a request, sorted by address."""
        rows = await self._ready().call(partial(_select_all, _SELECT_REQUEST, (request_id,)))
        return [_state_from_row(row) for row in rows]

    # --- events ------------------------------------------------------------------------------

    async def read_events(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> list[DeliveryEvent]:
        """Up to ``limit`` events after cursor ``after`` (None: the oldest), oldest first.

        With ``timeout`` > 0, waits up to that long for one when there is none: woken by this
        process's commits, and re-checking every ``poll_interval`` for other processes' writes.
        """
        start = 0 if after is None else parse_cursor(after)
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit!r}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            seen = self._wakeup.generation
            rows = await self._ready().call(partial(_select_all, _SELECT_EVENTS, (start, limit)))
            remaining = deadline - loop.time()
            if rows or remaining <= 0:
                return [_event_from_row(row) for row in rows]
            await self._wakeup.wait(seen, min(remaining, self._poll_interval))

    async def last_cursor(self) -> str | None:
        """The cursor of the newest logged event, or None for an empty log."""
        row = await self._ready().call(partial(_select_one, "SELECT max(cursor) FROM events", ()))
        return None if row is None or row[0] is None else str(row[0])

    def cursor_key(self, cursor: str) -> tuple[int, int]:
        """``(n, 0)`` for cursor ``"n"``; ValueError for a malformed cursor."""
        return (parse_cursor(cursor), 0)

    # --- polling schedule --------------------------------------------------------------------

    async def schedule(
        self, request_id: str, sender: str, *, tracked_at: float, poll_at: float
    ) -> None:
        """Add a request to the polling schedule (an existing entry keeps attempts and lease)."""
        params = (request_id, sender, tracked_at, poll_at, self._clock())
        await self._ready().call(partial(_execute, _SCHEDULE, params), "write")

    async def claim_due(
        self, now: float, *, limit: int = 100, lease: float = 60.0
    ) -> list[PendingRequest]:
        """Lease up to ``limit`` due requests (earliest first) for ``lease`` seconds."""
        claim = partial(_claim_due, now, limit, lease, self._clock())
        return await self._ready().call(claim, "write")

    async def reschedule(self, request_id: str, *, next_poll_at: float, attempts: int) -> None:
        """Set a request's next poll time and attempts and release its lease (no-op if gone)."""
        params = (next_poll_at, attempts, self._clock(), request_id)
        await self._ready().call(partial(_execute, _RESCHEDULE, params), "write")

    async def unschedule(self, request_id: str) -> None:
        """Stop polling a request (no-op if it is not scheduled)."""
        sql = "DELETE FROM pending WHERE request_id = ?"
        await self._ready().call(partial(_execute, sql, (request_id,)), "write")

    def _ready(self) -> _Writer:
        writer = self._writer
        if self._state is not OPEN or writer is None:
            raise self._unusable()
        return writer


class _Job:
    """A function to run on the writer thread, and the future awaiting its result.

    A merge job carries its updates instead (``fn`` None), so that a batch merges those of every
    job together (``_merge_batch``), or, when one fails, each job alone by the same merge.
    """

    __slots__ = ("fn", "future", "kind", "updates")

    def __init__(
        self,
        fn: Callable[[_Connection], object] | None,
        kind: _Kind,
        future: asyncio.Future[Any] | None,
        updates: tuple[DeliveryUpdate, ...] | None = None,
    ) -> None:
        self.fn = fn
        self.kind = kind
        self.future = future
        self.updates = updates

    def run(self, conn: _Connection) -> object:
        if self.fn is None:
            raise RuntimeError("a merge or stop job has no function to run")
        return self.fn(conn)


class _Writer:
    """The thread that owns the connection: it runs queued jobs in batches (group commit)."""

    def __init__(
        self,
        path: str,
        synchronous: str,
        loop: asyncio.AbstractEventLoop,
        wakeup: Wakeup,
        listeners: Listeners[DeliveryEvent],
        max_batch: int,
        memo: MergeMemo,
        retention: Retention,
        clock: Callable[[], float],
    ) -> None:
        self._path = path
        self._memo = memo  # the writer thread's alone
        self._synchronous = synchronous
        self._loop = loop
        self._wakeup = wakeup
        self._listeners = listeners
        self._max_batch = max_batch
        self._retention = retention  # the writer thread's alone, like the memo
        self._clock = clock
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.batches = 0
        """Write transactions committed so far (a test of group commit reads it)."""

    def start(self) -> asyncio.Future[None]:
        """Start the thread; the future resolves once the file is open and the schema ready."""
        opened: asyncio.Future[None] = self._loop.create_future()
        name = f"opensms-sqlite-writer {os.path.basename(self._path)}"
        threading.Thread(target=self._run, args=(opened,), name=name, daemon=True).start()
        return opened

    async def call(self, fn: Callable[[_Connection], _T], kind: _Kind = "read") -> _T:
        """Run ``fn(connection)`` on the writer thread (writes inside the batch transaction)."""
        if asyncio.get_running_loop() is not self._loop:
            raise StoreError("an SQLiteStore must be used from the event loop that opened it")
        future: asyncio.Future[_T] = self._loop.create_future()
        self._queue.put(_Job(fn, kind, future))
        return await future

    async def merge(self, updates: tuple[DeliveryUpdate, ...]) -> Any:
        """Merge ``updates`` in the next batch; answers the events they logged."""
        if asyncio.get_running_loop() is not self._loop:
            raise StoreError("an SQLiteStore must be used from the event loop that opened it")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._queue.put(_Job(None, "merge", future, updates))
        return await future

    async def stop(self) -> None:
        """Run what is queued, close the connection and end the thread."""
        future: asyncio.Future[None] = self._loop.create_future()
        self._queue.put(_Job(None, "stop", future))
        await future

    def stop_nowait(self) -> None:
        """Ask the thread to stop without waiting (finaliser of an unclosed store)."""
        self._queue.put(_Job(None, "stop", None))

    # --- on the writer thread ----------------------------------------------------------------

    def _run(self, opened: asyncio.Future[None]) -> None:
        try:
            conn = _connect(self._path, self._synchronous, self._clock())
        except Exception as exc:
            error = exc if isinstance(exc, StoreError) else StoreError(f"cannot open: {exc!r}")
            self._settle([(opened, error, None)], [])
            return
        self._settle([(opened, None, None)], [])
        try:
            while self._serve_batch(conn):
                pass
        finally:
            conn.close()

    def _serve_batch(self, conn: _Connection) -> bool:
        """Run one batch of queued jobs, then a retention step if one is due (when no job came
        in time, only the step); False once a stop job was seen."""
        jobs = self._take(self._retention.wait())
        if not jobs:
            self._retention.step(conn)
            return True
        outcomes = [self._read(conn, job) for job in jobs if job.kind == "read"]
        writes = [job for job in jobs if job.kind in ("write", "merge")]
        logged: list[DeliveryEvent] = []
        if writes:
            written, logged = self._write(conn, writes)
            outcomes += written
        stops = [job for job in jobs if job.kind == "stop"]
        if stops:
            conn.close()  # before the stop is acknowledged: the file can be reopened at once
            outcomes += [(job.future, None, None) for job in stops]
        self._settle(outcomes, logged)
        if stops:
            return False
        if logged:
            self._retention.logged()
        if self._retention.due_between_batches():  # the callers have their answers already
            self._retention.step(conn)
        return True

    def _take(self, wait: float) -> list[_Job]:
        """The queued jobs, up to a batch; waits up to ``wait`` seconds for the first (none: [])."""
        try:
            first = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
        except queue.Empty:
            return []
        jobs = [first]
        while len(jobs) < self._max_batch:
            try:
                jobs.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return jobs

    def _read(self, conn: _Connection, job: _Job) -> _Outcome:
        try:
            return (job.future, None, job.run(conn))
        except sqlite3.Error as exc:
            error = StoreError(f"SQLite read failed: {exc}")
            error.__cause__ = exc
            return (job.future, error, None)
        except Exception as exc:  # a bug in the job: hand it to its caller, keep the thread
            return (job.future, exc, None)

    def _write(
        self, conn: _Connection, jobs: list[_Job]
    ) -> tuple[list[_Outcome], list[DeliveryEvent]]:
        """One transaction for every write job: each job's outcome, and the events committed (in
        cursor order); on a failed commit, every job fails and none was."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes = self._run_all(conn, jobs, self._clock())
            self._commit(conn)
        except Exception as exc:
            _rollback(conn)
            return [(job.future, _write_error(exc), None) for job in jobs], []
        self.batches += 1
        logged = [
            event
            for job, (_, error, value) in zip(jobs, outcomes, strict=True)
            if error is None and job.updates is not None
            for event in cast("list[DeliveryEvent]", value)
        ]
        return outcomes, logged

    def _run_all(self, conn: _Connection, jobs: list[_Job], now: float) -> list[_Outcome]:
        """Run the jobs in the open transaction (writing at ``now``); a failing job is undone
        alone."""
        try:  # optimistic: no savepoints and merges batched, as long as nothing fails
            return self._run_together(conn, jobs, now)
        except Exception:
            if len(jobs) == 1:  # alone in its transaction: it fails, rolled back with it
                raise
        conn.execute("ROLLBACK")
        conn.execute("BEGIN IMMEDIATE")
        return [self._write_one(conn, job, now) for job in jobs]

    def _run_together(self, conn: _Connection, jobs: list[_Job], now: float) -> list[_Outcome]:
        # Merge jobs touch states and events, the others only the polling schedule: the order
        # between the two kinds does not matter, within each it is kept.
        merges = [job for job in jobs if job.updates is not None]
        merged = iter(_merge_batch(conn, self._memo, merges, now) if merges else [])
        return [
            (job.future, None, next(merged) if job.updates is not None else job.run(conn))
            for job in jobs
        ]

    def _write_one(self, conn: _Connection, job: _Job, now: float) -> _Outcome:
        # A savepoint per job: a job that fails is undone alone, the others still commit. A
        # merge job runs the same batched merge as a whole batch does, on a batch of one job.
        conn.execute("SAVEPOINT job")
        try:
            if job.updates is None:
                value = job.run(conn)
            else:
                [value] = _merge_batch(conn, self._memo, [job], now)
        except Exception as exc:
            conn.execute("ROLLBACK TO job")  # if this fails too, the whole batch fails
            conn.execute("RELEASE job")
            return (job.future, _write_error(exc), None)
        conn.execute("RELEASE job")
        return (job.future, None, value)

    def _commit(self, conn: _Connection) -> None:
        conn.execute("COMMIT")

    def _settle(self, outcomes: list[_Outcome], logged: list[DeliveryEvent]) -> None:
        # One hop to the loop per batch, not one per caller; batches arrive in commit order.
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(
                _resolve, outcomes, logged, self._wakeup, self._listeners
            )


def _resolve(
    outcomes: list[_Outcome],
    logged: list[DeliveryEvent],
    wakeup: Wakeup,
    listeners: Listeners[DeliveryEvent],
) -> None:
    """On the loop: hand what a batch committed to the listeners (whether or not its callers
    still wait), then each caller its result (callers that gave up are skipped)."""
    if logged:
        wakeup.fire()
        listeners.publish(logged)
    for future, error, value in outcomes:
        if future is None or future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def _write_error(exc: Exception) -> Exception:
    """What a writer whose transaction was rolled back gets: a bug stays itself."""
    if not isinstance(exc, sqlite3.Error):
        return exc
    error = StoreUnavailableError(f"SQLite write failed, nothing recorded: {exc}")
    error.__cause__ = exc
    return error


def _rollback(conn: _Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")


# --- connection and schema -------------------------------------------------------------------


def _check_retention(retention: float | None, max_events: int) -> None:
    if retention is not None and not (math.isfinite(retention) and retention > 0):
        raise ValueError(f"retention must be a positive number of seconds or None: {retention!r}")
    if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
        raise ValueError(f"max_events must be an integer of at least 1, not {max_events!r}")


def _connect(path: str, synchronous: str, now: float) -> _Connection:
    """Open ``path`` in WAL mode with the schema ready (migrated at ``now`` if it was of
    version 1); StoreError when that is impossible."""
    try:
        # Autocommit mode: transactions are begun and committed explicitly by the writer.
        conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open SQLite store {path!r}: {exc}") from exc
    try:
        conn.execute("PRAGMA journal_mode=WAL").fetchone()
        conn.execute(_SYNCHRONOUS[synchronous])
        _create_schema(conn, now)
    except (sqlite3.Error, OSError, StoreError) as exc:
        conn.close()
        if isinstance(exc, StoreError):
            raise
        raise StoreError(f"cannot open SQLite store {path!r}: {exc}") from exc
    return conn


def _create_schema(conn: _Connection, now: float) -> None:
    """Create the tables of a new file, or migrate one of version 1: one transaction either way
    (a failed migration leaves the file as it was)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _schema_version(conn)
        if version == "1":
            _migrate_from_1(conn, now)
        elif version is not None and version != str(SCHEMA_VERSION):
            raise StoreError(
                f"SQLite store has schema version {version}; this version reads {SCHEMA_VERSION}"
                " (and migrates 1)"
            )
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _schema_version(conn: _Connection) -> str | None:
    """The version a file says it has; None for a new file (no ``meta`` table or no version)."""
    exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    if conn.execute(exists).fetchone() is None:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return None if row is None else str(row[0])


def _migrate_from_1(conn: _Connection, now: float) -> None:
    if not math.isfinite(now):
        raise StoreError(f"cannot migrate the SQLite store: the clock says {now!r}")
    for statement in _MIGRATE_1:
        conn.execute(statement.format(now=repr(float(now))))


# --- jobs (run on the writer thread) ---------------------------------------------------------


def _merge_batch(
    conn: _Connection, memo: MergeMemo, jobs: list[_Job], written_at: float
) -> list[object]:
    """Merge the updates of several jobs with three statements in all; each job's result."""
    updates = [update for job in jobs for update in job.updates or ()]
    known = _select_shapes(conn, memo, {(u.request_id, u.address) for u in updates})
    states: dict[_Pair, tuple[object, ...]] = {}
    events: list[tuple[object, ...]] = []
    steps: list[tuple[DeliveryUpdate, Step, float, int]] = []
    for update in updates:
        pair = (update.request_id, update.address)
        stored = known.get(pair)
        step = memo.step(None if stored is None else stored[0], update)
        updated_at = update.received_at if stored is None or step.takes_time else stored[1]
        if step.changed:
            known[pair] = (step.shape, updated_at)
            states[pair] = _state_params(update, step.shape, updated_at, written_at)
        logged = 0  # this update's event: its place among the batch's events, from 1
        if step.event_shape is not None:
            events.append(_event_params(update, step.event_shape, updated_at))
            logged = len(events)
        steps.append((update, step, updated_at, logged))
    first = _write_batch(conn, list(states.values()), events)
    merged = [(u, step, at, first + n - 1 if n else 0) for u, step, at, n in steps]
    return _split(jobs, merged)


def _select_shapes(
    conn: _Connection, memo: MergeMemo, pairs: set[_Pair]
) -> dict[_Pair, tuple[StateShape, float]]:
    """The stored shape and ``updated_at`` of each pair that has a state."""
    known: dict[_Pair, tuple[StateShape, float]] = {}
    listed = list(pairs)
    for start in range(0, len(listed), _PAIRS_PER_SELECT):
        chunk = listed[start : start + _PAIRS_PER_SELECT]
        sql = _SELECT_SHAPES.format(pairs=", ".join(["(?, ?)"] * len(chunk)))
        for row in conn.execute(sql, [value for pair in chunk for value in pair]):
            known[row[0], row[1]] = (memo.shape(_shape_from_row(row[2:])), row[7])
    return known


def _write_batch(
    conn: _Connection, states: list[tuple[object, ...]], events: list[tuple[object, ...]]
) -> int:
    """Write the new states and log the events; the cursor of the first event (0: none)."""
    if states:
        conn.executemany(_UPSERT_STATE, states)
    if not events:
        return 0
    conn.executemany(_INSERT_EVENT, events)
    # AUTOINCREMENT under the write lock: the events took consecutive row ids, up to the last.
    last: int = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
    return last - len(events) + 1


def _split(jobs: list[_Job], merged: list[_Merged]) -> list[object]:
    """Each job's share of the merged updates: the events they logged."""
    results: list[object] = []
    start = 0
    for job in jobs:
        mine = merged[start : start + len(job.updates or ())]
        start += len(mine)
        results.append([event for m in mine if (event := _logged(m)) is not None])
    return results


def _state_params(
    update: DeliveryUpdate, shape: StateShape, updated_at: float, written_at: float
) -> tuple[object, ...]:
    status, parts, sms_parts, sender, conflict = shape
    return (update.request_id, update.address, str(status), parts, sms_parts, sender,
            int(conflict), updated_at, written_at)  # fmt: skip


def _event_params(update: DeliveryUpdate, shape: EventShape, at: float) -> tuple[object, ...]:
    status, previous, source, parts, sms_parts, conflict = shape
    previous_text = None if previous is None else str(previous)
    return (update.request_id, update.address, str(status), previous_text, str(source), parts,
            sms_parts, int(conflict), at)  # fmt: skip


def _logged(merged: _Merged) -> DeliveryEvent | None:
    update, step, at, cursor = merged
    if step.event_shape is None:
        return None
    # status, previous, source, parts_delivered, sms_parts, conflict
    return build_event(str(cursor), update.request_id, update.address, *step.event_shape, at)


def _claim_due(
    now: float, limit: int, lease: float, written_at: float, conn: _Connection
) -> list[PendingRequest]:
    rows = conn.execute(_SELECT_DUE, (now, now, limit)).fetchall()
    leases = [(now + lease, written_at, row[0]) for row in rows]
    conn.executemany(_LEASE, leases)
    return [PendingRequest(*row) for row in rows]


def _execute(sql: str, params: tuple[object, ...], conn: _Connection) -> None:
    conn.execute(sql, params)


def _select_one(sql: str, params: tuple[object, ...], conn: _Connection) -> Any:
    return conn.execute(sql, params).fetchone()


def _select_all(sql: str, params: tuple[object, ...], conn: _Connection) -> list[Any]:
    return conn.execute(sql, params).fetchall()


# --- rows <-> attrs --------------------------------------------------------------------------


def _shape_from_row(row: Sequence[Any]) -> StateShape:
    status, parts, sms_parts, sender, conflict, _ = row
    return (status, parts, sms_parts, sender, bool(conflict))  # the plain str MergeMemo keeps


def _state_from_row(row: Sequence[Any]) -> DeliveryState:
    request_id, address, status, parts, sms_parts, sender, conflict, updated_at = row
    return DeliveryState(
        request_id=request_id,
        address=address,
        status=DeliveryStatus.parse(status),
        parts_delivered=parts,
        sms_parts=sms_parts,
        sender=sender,
        conflict=bool(conflict),
        updated_at=updated_at,
    )


def _event_from_row(row: Sequence[Any]) -> DeliveryEvent:
    cursor, request_id, address, status, previous, source, parts, sms_parts, conflict, at = row
    return DeliveryEvent(
        cursor=str(cursor),
        request_id=request_id,
        address=address,
        status=DeliveryStatus.parse(status),
        previous=None if previous is None else DeliveryStatus.parse(previous),
        source=Source(source),
        parts_delivered=parts,
        sms_parts=sms_parts,
        conflict=bool(conflict),
        at=at,
    )
