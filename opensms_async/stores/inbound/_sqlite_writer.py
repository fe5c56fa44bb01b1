"""One thread that owns a SQLite connection and runs its jobs in batches (group commit).

The discipline of the delivery store's writer (``stores/sqlite.py``), written generic over what a
job does: a job is a function of the connection, or a payload for a *batch function* that runs
the payloads of every job of a batch together (so that their rows share statements: one
``SELECT ... IN``, one ``executemany``). The thread takes everything queued (up to ``max_batch``
jobs), runs the reads, then runs every write inside *one* transaction and commits once, and
resolves every caller's future in one hop to the event loop. A write job that raises
has the batch rolled back and run again with a savepoint per job, so that it fails alone; a
failed ``COMMIT`` fails every job of the batch with :class:`StoreUnavailableError`, nothing
half-written. Each caller thus returns only after its commit, while a burst of callers shares
one. (The delivery store's writer could be this one, with its merges as jobs.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Final, Literal, TypeAlias, TypeVar

from ..._exceptions import StoreError, StoreUnavailableError

__all__ = ["Connect", "Writer"]

_T = TypeVar("_T")
_Kind: TypeAlias = Literal["read", "write", "stop"]
_Outcome: TypeAlias = tuple["asyncio.Future[Any] | None", BaseException | None, object]
Batch: TypeAlias = Callable[[sqlite3.Connection, list[Any]], list[Any]]
"""Runs the payloads of several jobs in order; one result per payload."""
Connect: TypeAlias = Callable[[], sqlite3.Connection]
"""Opens the connection, schema ready, in autocommit mode (run on the writer thread); raises
StoreError when it cannot."""
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

    ``committed`` (called on the loop, after the futures of a batch that wrote are resolved)
    lets the store wake its readers.
    """

    def __init__(
        self,
        name: str,
        connect: Connect,
        loop: asyncio.AbstractEventLoop,
        *,
        max_batch: int,
        committed: Callable[[], None],
    ) -> None:
        self._name = name
        self._connect = connect
        self._loop = loop
        self._max_batch = max_batch
        self._committed = committed
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.batches = 0
        """Write transactions committed so far (a test of group commit reads it)."""

    def start(self) -> asyncio.Future[None]:
        """Start the thread; the future resolves once the connection is open."""
        opened: asyncio.Future[None] = self._loop.create_future()
        name = f"opensms-sqlite-inbound {os.path.basename(self._name)}"
        threading.Thread(target=self._run, args=(opened,), name=name, daemon=True).start()
        return opened

    async def call(self, fn: Callable[[sqlite3.Connection], _T], kind: _Kind = "read") -> _T:
        """Run ``fn(connection)`` on the thread; "write" jobs run inside the batch transaction."""
        if asyncio.get_running_loop() is not self._loop:
            raise StoreError("a SQLite store must be used from the event loop that opened it")
        future: asyncio.Future[_T] = self._loop.create_future()
        self._queue.put(_Job(fn, kind, future))
        return await future

    async def batched(self, batch: Batch, payload: object) -> Any:
        """Run ``payload`` in the next write transaction, through ``batch`` together with the
        payloads of every other job of the transaction that has the same batch function."""
        if asyncio.get_running_loop() is not self._loop:
            raise StoreError("a SQLite store must be used from the event loop that opened it")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._queue.put(_Job(None, "write", future, batch, payload))
        return await future

    async def stop(self) -> None:
        """Run what is queued, close the connection and end the thread."""
        future: asyncio.Future[None] = self._loop.create_future()
        self._queue.put(_Job(None, "stop", future))
        await future

    def stop_nowait(self) -> None:
        """Ask the thread to stop without waiting (finaliser of an unclosed store)."""
        self._queue.put(_Job(None, "stop", None))

    # --- on the thread -----------------------------------------------------------------------

    def _run(self, opened: asyncio.Future[None]) -> None:
        try:
            conn = self._connect()
        except Exception as exc:
            error = exc if isinstance(exc, StoreError) else StoreError(f"cannot open: {exc!r}")
            self._settle([(opened, error, None)], wrote=False)
            return
        self._settle([(opened, None, None)], wrote=False)
        try:
            while self._serve_batch(conn):
                pass
        finally:
            conn.close()

    def _serve_batch(self, conn: sqlite3.Connection) -> bool:
        jobs = self._take()
        outcomes = [self._read(conn, job) for job in jobs if job.kind == "read"]
        writes = [job for job in jobs if job.kind == "write"]
        wrote = False
        if writes:
            written, wrote = self._write(conn, writes)
            outcomes += written
        stops = [job for job in jobs if job.kind == _STOP]
        if stops:
            conn.close()  # before the stop is acknowledged: the file can be reopened at once
            outcomes += [(job.future, None, None) for job in stops]
        self._settle(outcomes, wrote)
        return not stops

    def _take(self) -> list[_Job]:
        jobs = [self._queue.get()]
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

    def _write(self, conn: sqlite3.Connection, jobs: list[_Job]) -> tuple[list[_Outcome], bool]:
        """One transaction for every write job; on a failed commit, every job fails."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes = self._run_all(conn, jobs)
            conn.execute("COMMIT")
        except Exception as exc:
            _rollback(conn)
            return [(job.future, _write_error(exc), None) for job in jobs], False
        self.batches += 1
        return outcomes, True

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
        """Every job in order, each run of consecutive jobs of one batch function in one call."""
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

    def _write_one(self, conn: sqlite3.Connection, job: _Job) -> _Outcome:
        conn.execute("SAVEPOINT job")
        try:
            value = job.run(conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO job")  # if this fails too, the whole batch fails
            conn.execute("RELEASE job")
            return (job.future, _write_error(exc), None)
        conn.execute("RELEASE job")
        return (job.future, None, value)

    def _settle(self, outcomes: list[_Outcome], wrote: bool) -> None:
        # One hop to the loop per batch, not one per caller.
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(_resolve, outcomes, self._committed if wrote else None)


def _resolve(outcomes: list[_Outcome], committed: Callable[[], None] | None) -> None:
    """On the loop: hand each caller its result (callers that gave up are skipped)."""
    for future, error, value in outcomes:
        if future is None or future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
    if committed is not None:
        committed()


def _write_error(exc: Exception) -> Exception:
    """What a writer whose transaction was rolled back gets: a bug stays itself."""
    if not isinstance(exc, sqlite3.Error):
        return exc
    error = StoreUnavailableError(f"SQLite write failed, nothing recorded: {exc}")
    error.__cause__ = exc
    return error


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")
