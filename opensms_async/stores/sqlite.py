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
stored states, then the new states and the events, many rows per ``INSERT``. A caller whose update
fails is rolled back alone, all its updates with it: should any job fail, the batch is rolled back
and run again with a savepoint per job, each job merged by the same batched merge, alone
(savepoints cost two statements per job, so the common, failure-free batch goes without). Each
caller thus returns only after its commit (the receiver may answer 2xx), while a burst of
callbacks shares one commit and a few statements. A failed ``COMMIT`` rolls the whole batch back
and fails every caller of that batch with :class:`StoreUnavailableError`: nothing is
half-written.

Retention (``retention``, ``max_events``: the Redis store's promises) runs on the same thread,
between batches and while it is idle, in small steps (:mod:`._sqlite_retention`).

Schema: version 2 (``SCHEMA_VERSION``). A file of version 1 is migrated when opened, in one
transaction; a file of any other version is refused.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Final, TypeAlias

from .._constants import RECEIPT_RETENTION
from .._exceptions import StoreError
from .._lifecycle import OPEN
from .._models import DeliveryStatus
from .._state import DeliveryEvent, DeliveryState, DeliveryUpdate, Source, build_event
from ._base import PendingRequest
from ._common import Listeners, Wakeup, parse_cursor, read_start, read_waiting
from ._memo import EventShape, MergeMemo, StateShape
from ._sqlite_retention import Retention
from ._sqlite_writer import Batch, Writer, WriterOwner, connect_wal, rollback
from ._url_options import positive_int, positive_seconds, sqlite_url

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
        written_at REAL NOT NULL, traceparent TEXT)""",
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
_UPSERT_STATES: Final = """INSERT OR REPLACE INTO states (request_id, address, status,
    parts_delivered, sms_parts, sender, conflict, updated_at, written_at) VALUES {rows}"""
_INSERT_EVENTS: Final = """INSERT INTO events (request_id, address, status, previous, source,
    parts_delivered, sms_parts, conflict, at) VALUES {rows}"""
# Many rows per statement, not executemany's one statement per row: each statement costs a
# reset, and each INSERT into events reads and rewrites its AUTOINCREMENT counter in
# sqlite_sequence. Rows go in chunks of a power of two (at most _MAX_ROWS), so that a few
# statements serve any batch and stay in the connection's statement cache; 64 rows of nine
# values stay under the 999 variables per statement of SQLite before 3.32.
_MAX_ROWS: Final = 64
_CHUNKS: Final = tuple(1 << k for k in range(_MAX_ROWS.bit_length() - 1, -1, -1))
# NULL, as the merge writes it: SQLite stores a bound NaN as NULL (tests/test_store_sqlite.py
# pins it), and sqlite3 binds a float as it is, while it looks a None up among its adapters
# first: on CPython 3.11, an AttributeError made and cleared per None.
_NULL: Final = math.nan
_SELECT_EVENTS: Final = """SELECT cursor, request_id, address, status, previous, source,
    parts_delivered, sms_parts, conflict, at FROM events WHERE cursor > ? ORDER BY cursor LIMIT ?"""
_SCHEDULE: Final = """INSERT INTO pending (request_id, sender, tracked_at, next_poll_at,
    written_at, traceparent) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET
    sender = excluded.sender, tracked_at = min(tracked_at, excluded.tracked_at),
    next_poll_at = excluded.next_poll_at, written_at = excluded.written_at,
    traceparent = coalesce(traceparent, excluded.traceparent)"""
_ADD_TRACEPARENT: Final = "ALTER TABLE pending ADD COLUMN traceparent TEXT"
"""The send's span context with a schedule entry (OpenTelemetry, issue 13): a nullable column
added to the files of earlier releases when opened, with no new schema version, since those
releases name the columns they read and write and so ignore it."""
_RESCHEDULE: Final = """UPDATE pending SET next_poll_at = ?, attempts = ?, leased_until = NULL,
    written_at = ? WHERE request_id = ?"""
_LEASE: Final = "UPDATE pending SET leased_until = ?, written_at = ? WHERE request_id = ?"
_SELECT_DUE: Final = """SELECT request_id, sender, tracked_at, next_poll_at, attempts, traceparent
    FROM pending
    WHERE next_poll_at <= ? AND (leased_until IS NULL OR leased_until <= ?)
    ORDER BY next_poll_at, request_id LIMIT ?"""

_Connection: TypeAlias = sqlite3.Connection
_Pair: TypeAlias = tuple[str, str]


class SQLiteStore(WriterOwner):
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
    _writer: _Writer | None

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

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """The store a ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or
        ``sqlite:///:memory:`` URL names, with options ``synchronous`` (NORMAL or FULL),
        ``retention`` (seconds) and ``max_events``; InvalidStoreURLError for anything else."""
        path, synchronous, given = sqlite_url(url, {"retention", "max_events"})
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

    def _make_writer(self, loop: asyncio.AbstractEventLoop) -> _Writer:
        retention = Retention(self.retention, self.max_events, self._clock)
        return _Writer(
            self.path, self.synchronous, loop, self._wakeup, self._listeners,
            self._max_batch, self._memo, retention, self._clock,
        )  # fmt: skip

    async def aclose(self) -> None:
        """Finish the queued work, close the file and stop the thread; idempotent."""
        await super().aclose()

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
        query = partial(_select_all, _SELECT_EVENTS, (read_start(after, limit), limit))
        rows = await read_waiting(
            lambda: self._ready().call(query), self._wakeup, timeout, self._poll_interval
        )
        return [_event_from_row(row) for row in rows]

    async def last_cursor(self) -> str | None:
        """The cursor of the newest logged event, or None for an empty log."""
        row = await self._ready().call(partial(_select_one, "SELECT max(cursor) FROM events", ()))
        return None if row is None or row[0] is None else str(row[0])

    def cursor_key(self, cursor: str) -> tuple[int, int]:
        """``(n, 0)`` for cursor ``"n"``; ValueError for a malformed cursor."""
        return (parse_cursor(cursor), 0)

    # --- polling schedule --------------------------------------------------------------------

    async def schedule(
        self,
        request_id: str,
        sender: str,
        *,
        tracked_at: float,
        poll_at: float,
        traceparent: str | None = None,
    ) -> None:
        """Add a request to the polling schedule (an existing entry keeps attempts, lease and
        traceparent)."""
        params = (request_id, sender, tracked_at, poll_at, self._clock(), traceparent)
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


class _Writer(Writer):
    """The writer thread of one store (:mod:`._sqlite_writer`): merges are batched jobs (one
    ``_merge_batch`` for the merges of a whole batch), schedule writes function jobs, and
    retention runs in small steps between batches and while idle."""

    misuse = "an SQLiteStore must be used from the event loop that opened it"

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
        super().__init__(
            path,
            lambda: _connect(path, synchronous, clock()),
            loop,
            max_batch=max_batch,
            committed=partial(_publish, wakeup, listeners),
            thread_name="opensms-sqlite-writer",
            # Merges touch states and events, the other writes only the polling schedule.
            commuting=True,
        )
        self._memo = memo  # the writer thread's alone
        self._retention = retention  # the writer thread's alone, like the memo
        self._clock = clock
        self._now = 0.0
        """When the current write transaction writes (the writer thread's alone)."""
        self._merger: Batch = self._merge  # one object: the writer groups jobs by it

    def merge(self, updates: tuple[DeliveryUpdate, ...]) -> asyncio.Future[Any]:
        """Merge ``updates`` in the next batch; the future of the events they logged."""
        return self.submit(self._merger, updates)

    def _merge(self, conn: _Connection, payloads: list[tuple[DeliveryUpdate, ...]]) -> list[Any]:
        return _merge_batch(conn, self._memo, payloads, self._now)

    def _wait(self) -> float:
        return self._retention.wait()

    def _idle(self, conn: _Connection) -> None:
        self._retention.step(conn)

    def _begin(self) -> None:
        self._now = self._clock()

    def _after_batch(self, conn: _Connection, results: list[Any]) -> None:
        if any(results):
            self._retention.logged()
        if self._retention.due_between_batches():  # the callers have their answers already
            self._retention.step(conn)


def _publish(
    wakeup: Wakeup, listeners: Listeners[DeliveryEvent], results: Sequence[list[DeliveryEvent]]
) -> None:
    """On the loop: hand what a batch logged to the listeners, in cursor order."""
    logged = [event for events in results for event in events]
    if logged:
        wakeup.fire()
        listeners.publish(logged)


# --- connection and schema -------------------------------------------------------------------


def _check_retention(retention: float | None, max_events: int) -> None:
    if retention is not None and not (math.isfinite(retention) and retention > 0):
        raise ValueError(f"retention must be a positive number of seconds or None: {retention!r}")
    if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
        raise ValueError(f"max_events must be an integer of at least 1, not {max_events!r}")


def _connect(path: str, synchronous: str, now: float) -> _Connection:
    """Open ``path`` in WAL mode with the schema ready (migrated at ``now`` if it was of
    version 1); StoreError when that is impossible."""
    return connect_wal(path, _SYNCHRONOUS[synchronous], partial(_create_schema, now=now))


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
        if "traceparent" not in _columns(conn, "pending"):
            conn.execute(_ADD_TRACEPARENT)
        conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def _columns(conn: _Connection, table: str) -> set[str]:
    """The column names of ``table`` (a name of ours, never user-given)."""
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


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
    conn: _Connection,
    memo: MergeMemo,
    jobs: list[tuple[DeliveryUpdate, ...]],
    written_at: float,
) -> list[object]:
    """Merge the updates of several jobs with a few statements in all; each job's result (the
    events its updates logged).

    The writer's hot path (``bench/diag_sqlite_merge.py``), hence written out in one piece with
    its lookups bound to locals, as the memory store's merge is.
    """
    known = _select_shapes(conn, memo, {(u.request_id, u.address) for job in jobs for u in job})
    known_steps, learn = memo.steps, memo.step
    states: dict[_Pair, tuple[object, ...]] = {}
    rows: list[tuple[object, ...]] = []
    """The events' rows, in log order."""
    logged: list[tuple[DeliveryUpdate, EventShape, float]] = []
    """The same events, as the events to build once their cursors are known."""
    ends: list[int] = []
    """Per job, how many events were logged up to its end."""
    for job in jobs:
        for update in job:
            pair = (update.request_id, update.address)
            stored = known.get(pair)
            shape = None if stored is None else stored[0]
            # MergeMemo.step(shape, update), its lookup inlined (a miss asks the memo).
            step = known_steps.get(
                (shape, update.status, update.parts_delivered, update.sms_parts, update.sender,
                 update.source)
            ) or learn(shape, update)  # fmt: skip
            at = update.received_at if stored is None or step.takes_time else stored[1]
            if step.changed:
                known[pair] = (step.shape, at)
                status, parts, sms_parts, sender, conflict = step.shape
                states[pair] = (
                    *pair, status, _NULL if parts is None else parts,
                    _NULL if sms_parts is None else sms_parts, _NULL if sender is None else sender,
                    int(conflict), at, written_at,
                )  # fmt: skip
            event_shape = step.event_shape
            if event_shape is not None:
                status, previous, source, parts, sms_parts, conflict = event_shape
                rows.append(
                    (*pair, str(status), _NULL if previous is None else str(previous),
                     str(source), _NULL if parts is None else parts,
                     _NULL if sms_parts is None else sms_parts, int(conflict), at)
                )  # fmt: skip
                logged.append((update, event_shape, at))
        ends.append(len(logged))
    cursor = _write_batch(conn, list(states.values()), rows)
    results: list[object] = []
    start = 0
    for end in ends:
        events: list[DeliveryEvent] = []
        for update, event_shape, at in logged[start:end]:
            # status, previous, source, parts_delivered, sms_parts, conflict
            events.append(
                build_event(f"{cursor}", update.request_id, update.address, *event_shape, at)
            )
            cursor += 1
        results.append(events)
        start = end
    return results


def _select_shapes(
    conn: _Connection, memo: MergeMemo, pairs: set[_Pair]
) -> dict[_Pair, tuple[StateShape, float]]:
    """The stored shape and ``updated_at`` of each pair that has a state."""
    known: dict[_Pair, tuple[StateShape, float]] = {}
    shape = memo.shape
    listed = list(pairs)
    for start in range(0, len(listed), _PAIRS_PER_SELECT):
        chunk = listed[start : start + _PAIRS_PER_SELECT]
        rows = conn.execute(_pairs_sql(len(chunk)), [value for pair in chunk for value in pair])
        for request_id, address, status, parts, sms_parts, sender, conflict, updated_at in rows:
            # a StateShape: the plain str MergeMemo keeps, conflict a bool
            stored = shape((status, parts, sms_parts, sender, bool(conflict)))
            known[request_id, address] = (stored, updated_at)
    return known


@functools.cache
def _pairs_sql(size: int) -> str:
    return _SELECT_SHAPES.format(pairs=", ".join(["(?, ?)"] * size))


def _write_batch(
    conn: _Connection, states: list[tuple[object, ...]], events: list[tuple[object, ...]]
) -> int:
    """Write the new states and log the events; the cursor of the first event (0: none)."""
    if states:
        _insert_rows(conn, _UPSERT_STATES, states)
    if not events:
        return 0
    _insert_rows(conn, _INSERT_EVENTS, events)
    # AUTOINCREMENT under the write lock: the events took consecutive row ids, up to the last.
    last: int = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
    return last - len(events) + 1


def _insert_rows(conn: _Connection, sql: str, rows: list[tuple[object, ...]]) -> None:
    """Insert ``rows`` (of nine values) with ``sql`` (``VALUES {rows}``), a chunk a statement."""
    start = 0
    for size in _CHUNKS:
        while len(rows) - start >= size:
            chunk = rows[start : start + size]
            conn.execute(_rows_sql(sql, size), [value for row in chunk for value in row])
            start += size


@functools.cache
def _rows_sql(sql: str, size: int) -> str:
    return sql.format(rows=", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * size))


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
