"""One thread that owns a SQLite connection and runs its jobs in batches (group commit).

The writer of both SQLite stores (the delivery store, ``stores/sqlite.py``, and the inbound one,
``stores/inbound/sqlite.py``), generic over what a job does: a job is a function of the
connection, or a payload for a *batch function* that runs the payloads of every job of a batch
together (so that their rows share statements: one ``SELECT ... IN``, one ``executemany``). The
thread takes everything queued (up to ``max_batch`` jobs), runs the reads, then runs every write
inside *one* transaction and commits once, and resolves every caller's future in one hop to the
event loop. A write job that raises has the batch rolled back and run again with a savepoint per
job, so that it fails alone (each batched job then runs through its batch function alone); a
failed ``COMMIT`` fails every job of the batch with :class:`StoreUnavailableError`, nothing
half-written. Each caller thus returns only after its commit, while a burst of callers shares one.

A store with work of its own between batches (the delivery store's retention) subclasses the
writer and overrides the hooks :meth:`Writer._wait`, :meth:`Writer._idle`,
:meth:`Writer._begin` and :meth:`Writer._after_batch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal, TypeAlias, TypeVar

from .._exceptions import StoreError, StoreUnavailableError
from ._common import StoreLifecycle, Wakeup

__all__ = ["Batch", "Committed", "Connect", "Writer", "WriterOwner", "connect_wal", "rollback"]

_T = TypeVar("_T")
_Kind: TypeAlias = Literal["read", "write", "stop"]
_Outcome: TypeAlias = tuple["asyncio.Future[Any] | None", BaseException | None, object]
Batch: TypeAlias = Callable[[sqlite3.Connection, list[Any]], list[Any]]
"""Runs the payloads of several jobs in order; one result per payload."""
Connect: TypeAlias = Callable[[], sqlite3.Connection]
"""Opens the connection, schema ready, in autocommit mode (run on the writer thread); raises
StoreError when it cannot."""
Committed: TypeAlias = Callable[[Sequence[Any]], None]
"""Called on the loop once a write transaction committed, before its callers get their results,
with the results of its batched jobs (in queue order): the store publishes what it wrote."""
_STOP: Final = "stop"


class _Job:
    __slots__ = ("batch", "fn", "future", "kind", "payload")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], object] | None,
        kind: _Kind,
        future: asyncio.Future[Any] | None,
        batch: Batch | None = None,
        payload: object = None,
    ) -> None:
        self.fn = fn
        self.kind = kind
        self.future = future
        self.batch = batch
        self.payload = payload

    def run(self, conn: sqlite3.Connection) -> object:
        if self.batch is not None:
            return self.batch(conn, [self.payload])[0]
        if self.fn is None:
            raise RuntimeError("a stop job has no function to run")
        return self.fn(conn)


class Writer:
    """The thread of one store; :meth:`start` it, then :meth:`call` jobs, then :meth:`stop`.

    ``thread_name`` names the thread (with the file's base name); ``committed`` lets the store
    publish and wake its readers. ``commuting``: the batched jobs and the function jobs of a
    batch touch different tables, so every payload of one batch function runs in one call,
    before the function jobs (else only consecutive jobs of one batch function share a call, and
    every job runs in queue order).
    """

    misuse: str = "a SQLite store must be used from the event loop that opened it"
    """The StoreError of a call from another event loop than the one that opened the store."""

    def __init__(
        self,
        path: str,
        connect: Connect,
        loop: asyncio.AbstractEventLoop,
        *,
        max_batch: int,
        committed: Committed,
        thread_name: str = "opensms-sqlite-inbound",
        commuting: bool = False,
    ) -> None:
        self._path = path
        self._connect = connect
        self._loop = loop
        self._max_batch = max_batch
        self._committed = committed
        self._thread_name = thread_name
        self._commuting = commuting
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.batches = 0
        """Write transactions committed so far (a test of group commit reads it)."""

    def start(self) -> asyncio.Future[None]:
        """Start the thread; the future resolves once the connection is open."""
        opened: asyncio.Future[None] = self._loop.create_future()
        name = f"{self._thread_name} {os.path.basename(self._path)}"
        threading.Thread(target=self._run, args=(opened,), name=name, daemon=True).start()
        return opened

    async def call(self, fn: Callable[[sqlite3.Connection], _T], kind: _Kind = "read") -> _T:
        """Run ``fn(connection)`` on the thread; "write" jobs run inside the batch transaction."""
        future: asyncio.Future[_T] = self._future()
        self._queue.put(_Job(fn, kind, future))
        return await future

    async def batched(self, batch: Batch, payload: object) -> Any:
        """Run ``payload`` in the next write transaction, through ``batch`` together with the
        payloads of every other job of the transaction that has the same batch function."""
        return await self.submit(batch, payload)

    def submit(self, batch: Batch, payload: object) -> asyncio.Future[Any]:
        """:meth:`batched`, the future of its result: a hot caller that awaits it directly
        saves a coroutine (its creation, and a step through it when the result comes)."""
        future: asyncio.Future[Any] = self._future()
        self._queue.put(_Job(None, "write", future, batch, payload))
        return future

    async def stop(self) -> None:
        """Run what is queued, close the connection and end the thread."""
        future: asyncio.Future[None] = self._loop.create_future()
        self._queue.put(_Job(None, "stop", future))
        await future

    def stop_nowait(self) -> None:
        """Ask the thread to stop without waiting (finaliser of an unclosed store)."""
        self._queue.put(_Job(None, "stop", None))

    def _future(self) -> asyncio.Future[Any]:
        if asyncio.get_running_loop() is not self._loop:
            raise StoreError(self.misuse)
        return self._loop.create_future()

    # --- hooks, on the thread ----------------------------------------------------------------

    def _wait(self) -> float | None:
        """Seconds to wait for a job before :meth:`_idle` runs (None: wait for one)."""
        return None

    def _idle(self, conn: sqlite3.Connection) -> None:
        """Runs when no job came within :meth:`_wait`."""

    def _begin(self) -> None:
        """Runs once per write transaction, before its jobs (a rerun with savepoints is the same
        transaction)."""

    def _after_batch(self, conn: sqlite3.Connection, results: list[Any]) -> None:
        """Runs after a batch was settled (not after the last one), with the results of its
        committed batched jobs."""

    def _commit(self, conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")

    # --- on the thread -----------------------------------------------------------------------

    def _run(self, opened: asyncio.Future[None]) -> None:
        try:
            conn = self._connect()
        except Exception as exc:
            error = exc if isinstance(exc, StoreError) else StoreError(f"cannot open: {exc!r}")
            self._settle([(opened, error, None)], None)
            return
        self._settle([(opened, None, None)], None)
        try:
            while self._serve_batch(conn):
                pass
        finally:
            conn.close()

    def _serve_batch(self, conn: sqlite3.Connection) -> bool:
        """Run one batch of queued jobs (when none came in time, :meth:`_idle`); False once a
        stop job was seen."""
        jobs = self._take(self._wait())
        if not jobs:
            self._idle(conn)
            return True
        outcomes = [self._read(conn, job) for job in jobs if job.kind == "read"]
        writes = [job for job in jobs if job.kind == "write"]
        results: list[Any] | None = None
        if writes:
            written, results = self._write(conn, writes)
            outcomes += written
        stops = [job for job in jobs if job.kind == _STOP]
        if stops:
            conn.close()  # before the stop is acknowledged: the file can be reopened at once
            outcomes += [(job.future, None, None) for job in stops]
        self._settle(outcomes, results)
        if stops:
            return False
        self._after_batch(conn, results or [])
        return True

    def _take(self, wait: float | None) -> list[_Job]:
        """The queued jobs, up to a batch; waits up to ``wait`` seconds for the first (none: [])."""
        try:
            if wait is None:
                first = self._queue.get()
            else:
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

    def _read(self, conn: sqlite3.Connection, job: _Job) -> _Outcome:
        try:
            return (job.future, None, job.run(conn))
        except sqlite3.Error as exc:
            error = StoreError(f"SQLite read failed: {exc}")
            error.__cause__ = exc
            return (job.future, error, None)
        except Exception as exc:  # a bug in the job: hand it to its caller, keep the thread
            return (job.future, exc, None)

    def _write(
        self, conn: sqlite3.Connection, jobs: list[_Job]
    ) -> tuple[list[_Outcome], list[Any] | None]:
        """One transaction for every write job: each job's outcome, and the results of the
        batched jobs that committed (None: the transaction did not); on a failed commit, every
        job fails."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._begin()
            outcomes = self._run_all(conn, jobs)
            self._commit(conn)
        except Exception as exc:
            rollback(conn)
            return [(job.future, _write_error(exc), None) for job in jobs], None
        self.batches += 1
        results = [
            value
            for job, (_, error, value) in zip(jobs, outcomes, strict=True)
            if error is None and job.batch is not None
        ]
        return outcomes, results

    def _run_all(self, conn: sqlite3.Connection, jobs: list[_Job]) -> list[_Outcome]:
        try:  # optimistic: no savepoints, batch functions over all their jobs at once
            return self._run_together(conn, jobs)
        except Exception:
            if len(jobs) == 1:  # alone in its transaction: it fails, rolled back with it
                raise
        conn.execute("ROLLBACK")
        conn.execute("BEGIN IMMEDIATE")
        return [self._write_one(conn, job) for job in jobs]

    def _run_together(self, conn: sqlite3.Connection, jobs: list[_Job]) -> list[_Outcome]:
        """Every job, the payloads of one batch function sharing a call: all of them first
        (``commuting``), or each run of consecutive ones, in queue order."""
        if self._commuting:
            return self._run_commuting(conn, jobs)
        outcomes: list[_Outcome] = []
        start = 0
        while start < len(jobs):
            batch = jobs[start].batch
            if batch is None:
                outcomes.append((jobs[start].future, None, jobs[start].run(conn)))
                start += 1
                continue
            stop = start
            while stop < len(jobs) and jobs[stop].batch is batch:
                stop += 1
            group = jobs[start:stop]
            results = batch(conn, [job.payload for job in group])
            outcomes += [(job.future, None, r) for job, r in zip(group, results, strict=True)]
            start = stop
        return outcomes

    def _run_commuting(self, conn: sqlite3.Connection, jobs: list[_Job]) -> list[_Outcome]:
        groups: dict[Batch, list[_Job]] = {}
        for job in jobs:
            if job.batch is not None:
                groups.setdefault(job.batch, []).append(job)
        results: dict[int, object] = {}
        for batch, group in groups.items():
            values = batch(conn, [job.payload for job in group])
            results.update(zip(map(id, group), values, strict=True))
        return [
            (job.future, None, results[id(job)] if job.batch is not None else job.run(conn))
            for job in jobs
        ]

    def _write_one(self, conn: sqlite3.Connection, job: _Job) -> _Outcome:
        # A savepoint per job: a job that fails is undone alone, the others still commit.
        conn.execute("SAVEPOINT job")
        try:
            value = job.run(conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO job")  # if this fails too, the whole batch fails
            conn.execute("RELEASE job")
            return (job.future, _write_error(exc), None)
        conn.execute("RELEASE job")
        return (job.future, None, value)

    def _settle(self, outcomes: list[_Outcome], results: list[Any] | None) -> None:
        # One hop to the loop per batch, not one per caller; batches arrive in commit order.
        committed = None if results is None else self._committed
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(_resolve, outcomes, committed, results)


def _resolve(
    outcomes: list[_Outcome], committed: Committed | None, results: list[Any] | None
) -> None:
    """On the loop: hand what a batch committed to the store (whether or not its callers still
    wait), then each caller its result (callers that gave up are skipped)."""
    if committed is not None and results is not None:
        committed(results)
    for future, error, value in outcomes:
        if future is None or future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class WriterOwner(StoreLifecycle):
    """A SQLite store's lifecycle around its :class:`Writer`: ``open()`` starts the thread once
    (made by :meth:`_make_writer`) and waits for its connection; ``aclose()`` wakes the waiting
    readers, lets the thread finish what is queued and stops it; a store dropped without
    ``aclose()`` still stops its thread."""

    _wakeup: Wakeup
    _writer: Writer | None = None
    _started: asyncio.Future[None] | None = None
    _finalizer: weakref.finalize[Any, Any] | None = None

    def _make_writer(self, loop: asyncio.AbstractEventLoop) -> Writer:
        """The store's writer thread, not started yet."""
        raise NotImplementedError

    async def _open(self) -> None:
        if self._started is None:
            self._writer = self._make_writer(asyncio.get_running_loop())
            self._started = self._writer.start()
            self._finalizer = weakref.finalize(self, self._writer.stop_nowait)
        await asyncio.shield(self._started)

    async def _aclose(self) -> None:
        self._wakeup.fire()
        if self._started is None or self._writer is None or self._finalizer is None:
            return
        self._finalizer.detach()
        with contextlib.suppress(StoreError):
            await asyncio.shield(self._started)
            await self._writer.stop()


def connect_wal(
    path: str, synchronous: str, create_schema: Callable[[sqlite3.Connection], None]
) -> sqlite3.Connection:
    """Open ``path`` in autocommit and WAL mode, ``synchronous`` (its PRAGMA) set, and run
    ``create_schema`` on it; StoreError when that is impossible (the connection then closed)."""
    try:
        # Autocommit mode: the writer begins and commits transactions itself.
        conn = sqlite3.connect(path, isolation_level=None, timeout=5.0, check_same_thread=True)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open SQLite store {path!r}: {exc}") from exc
    try:
        conn.execute("PRAGMA journal_mode=WAL").fetchone()
        conn.execute(synchronous)
        create_schema(conn)
    except (sqlite3.Error, OSError, StoreError) as exc:
        conn.close()
        if isinstance(exc, StoreError):
            raise
        raise StoreError(f"cannot open SQLite store {path!r}: {exc}") from exc
    return conn


def _write_error(exc: Exception) -> Exception:
    """What a writer whose transaction was rolled back gets: a bug stays itself."""
    if not isinstance(exc, sqlite3.Error):
        return exc
    error = StoreUnavailableError(f"SQLite write failed, nothing recorded: {exc}")
    error.__cause__ = exc
    return error


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if any; a failure to do so is ignored."""
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")
