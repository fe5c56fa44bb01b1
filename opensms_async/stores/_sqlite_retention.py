"""What an :class:`~opensms_async.stores.sqlite.SQLiteStore` forgets, and how, without stalling.

The promises are the Redis store's:

* a request's states go ``retention`` seconds after their last write (``states.written_at``, the
  store's clock when the writer wrote the row), every recipient of the request together;
* a polling-schedule entry goes ``retention`` after its last write (``pending.written_at``: the
  poller rewrites it at every poll, and gives up ``retention`` after the send; without a poller,
  BICS has dropped the receipts by then);
* the event log keeps the newest ``max_events`` events. Cursors keep increasing (AUTOINCREMENT
  never reuses one), and a reader whose cursor was trimmed resumes at the oldest retained event.

The writer thread runs this whenever it has nothing else to do, and between batches, one *step*
at a time: one short transaction that deletes at most about a thousand rows. Never one huge
``DELETE``: a caller waits at most about one step more than it would anyway, and under load
steps take at most half of the writer's time (after a step, batches run for at least as long
as it took before the next one).

Expired states are found by a *sweep*: a pass walks the states in primary-key order, a window
of rows per step, and deletes the requests whose newest write is older than the retention. A
pass starts at open and then every tenth of the retention (at most hourly), so a request goes
between ``retention`` and about ``1.1 * retention`` after its last write. The sweep costs nothing
on the write path (no index on the time; every update stays one row write), at the price of
reading each state once per pass.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import sqlite3
import time
from collections.abc import Callable
from typing import Final

from .._telemetry import log_fields

__all__ = ["Retention"]

logger = logging.getLogger("opensms_async.stores.sqlite")

_WINDOW: Final = 500
"""States read per sweep step (and deleted per step from a request bigger than that): a step
short enough not to hold up the batches waiting behind it."""
_CHUNK: Final = 1000
"""Schedule entries deleted per step; events too, plus those logged since the previous look at
the log (at most ``_MAX_EVENTS_STEP`` in all), so that trimming keeps up with any load."""
_MAX_EVENTS_STEP: Final = 10 * _CHUNK
_EVENTS_CHECK: Final = 0.05
"""Seconds between looks at the log's length while events are being logged (a look is two index
lookups, cheap at this pace, and what arrived in between is a small step)."""
_IDLE: Final = 1.0
"""The writer's longest wait for a job when retention has nothing to do."""
_RETRY: Final = 5.0
"""Seconds without a step after one failed (the file is locked by another process, say)."""
_MAX_PASS_INTERVAL: Final = 3600.0

# Statements are spelled out, as in sqlite.py: only numbers are bound, nothing becomes SQL.
_WINDOW_SQL: Final = """SELECT request_id, max(written_at), count(*) FROM (SELECT request_id,
    written_at FROM states WHERE request_id {op} ? ORDER BY request_id, address LIMIT ?)
    GROUP BY request_id ORDER BY request_id"""
_FIRST_WINDOW: Final = _WINDOW_SQL.format(op=">=")
_NEXT_WINDOW: Final = _WINDOW_SQL.format(op=">")
_NEWEST_WRITE: Final = "SELECT max(written_at) FROM states WHERE request_id = ?"
# A run of consecutive requests of one window: nothing else lies between them in the table.
_DELETE_REQUESTS: Final = "DELETE FROM states WHERE request_id >= ? AND request_id <= ?"
_DELETE_SOME_STATES: Final = """DELETE FROM states WHERE request_id = ? AND address IN (SELECT
    address FROM states WHERE request_id = ? AND written_at < ? ORDER BY address LIMIT ?)"""
_DELETE_PENDING: Final = """DELETE FROM pending WHERE request_id IN (SELECT request_id FROM
    pending WHERE written_at < ? ORDER BY written_at LIMIT ?)"""


class Retention:
    """The retention of one store's file, stepped by its writer thread (and used only there).

    ``retention`` None keeps states and the schedule for ever (the event log is still trimmed);
    ``clock`` is the store's (Unix seconds), ``monotonic`` paces the looks at the log.
    """

    def __init__(
        self,
        retention: float | None,
        max_events: int,
        clock: Callable[[], float],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._retention = retention
        self._max_events = max_events
        self._clock = clock
        self._monotonic = monotonic
        self._pass_interval = (
            math.inf if retention is None else max(1.0, min(_MAX_PASS_INTERVAL, retention / 10))
        )
        self._next_pass = -math.inf if retention is not None else math.inf  # a pass at open
        self._position: str | None = None
        """The last request a running pass is done with ("" before its first window); None
        while no pass runs."""
        self._doomed: str | None = None
        """An expired request bigger than a window, being deleted a window at a time."""
        self._pending_backlog = False
        self._events_dirty = True  # look at the log once at open
        self._events_backlog = False
        self._events_checked = -math.inf
        self._last_cursor: int | None = None
        self._paused_until = -math.inf
        self._resume_at = -math.inf
        """Monotonic time before which no step runs between batches (half the writer's time)."""
        self.steps = 0
        """Steps committed so far (for tests)."""

    def logged(self) -> None:
        """Events were logged: look at the log's length soon."""
        self._events_dirty = True

    def wait(self) -> float:
        """How long the writer may wait for a job before a step is due (0: one is due now)."""
        return 0.0 if self.due() else _IDLE

    def due_between_batches(self) -> bool:
        """True when a step has work to do and its share of a busy writer's time allows one."""
        return self._monotonic() >= self._resume_at and self.due()

    def due(self) -> bool:
        """True when a step has work to do now."""
        mono = self._monotonic()
        if mono < self._paused_until:
            return False
        if self._events_due(mono) or self._pending_backlog or self._sweeping:
            return True
        try:
            return self._clock() >= self._next_pass
        except Exception:  # a broken clock must not end the writer thread; step() reports it
            return True

    def step(self, conn: sqlite3.Connection) -> None:
        """One bounded step in its own transaction; a failure is logged and retried later."""
        started = self._monotonic()
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._step(conn)
            conn.execute("COMMIT")
        except Exception as exc:  # the writer thread must outlive any failure of retention
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                logger.warning(
                    "SQLite retention step failed (%s); retrying in %.0fs",
                    exc,
                    _RETRY,
                    extra=log_fields("store.retention", outcome="retry", error=type(exc).__name__),
                )
            else:
                logger.exception(
                    "SQLite retention step failed; retrying in %.0fs",
                    _RETRY,
                    extra=log_fields("store.retention", outcome="retry", error=type(exc).__name__),
                )
            self._forget_progress()
            return
        self.steps += 1
        ended = self._monotonic()
        self._resume_at = ended + (ended - started)

    @property
    def _sweeping(self) -> bool:
        return self._position is not None or self._doomed is not None

    def _events_due(self, mono: float) -> bool:
        return self._events_backlog or (
            self._events_dirty and mono >= self._events_checked + _EVENTS_CHECK
        )

    def _step(self, conn: sqlite3.Connection) -> None:
        mono, now = self._monotonic(), self._clock()
        if self._events_due(mono):
            self._events_dirty, self._events_checked = False, mono
            self._events_backlog = self._trim_events(conn)
        if self._retention is None:
            return
        cutoff = now - self._retention
        if not self._sweeping and now >= self._next_pass:
            self._position = ""
        if self._sweeping:
            self._sweep(conn, cutoff, now)
            self._pending_backlog = True  # every step of a pass looks at the schedule too
        if self._pending_backlog:
            deleted = conn.execute(_DELETE_PENDING, (cutoff, _CHUNK)).rowcount
            self._pending_backlog = deleted >= _CHUNK

    def _trim_events(self, conn: sqlite3.Connection) -> bool:
        """Delete the oldest events past ``max_events``, a chunk (plus what arrived since the
        previous step, so that trimming keeps up under load); True while more remain."""
        last: int | None = conn.execute("SELECT max(cursor) FROM events").fetchone()[0]
        if last is None:
            return False
        first: int = conn.execute("SELECT min(cursor) FROM events").fetchone()[0]
        arrived = 0 if self._last_cursor is None else max(0, last - self._last_cursor)
        self._last_cursor = last
        keep = last - self._max_events + 1  # the oldest cursor retained
        if first >= keep:
            return False
        below = min(keep, first + min(_CHUNK + arrived, _MAX_EVENTS_STEP))
        conn.execute("DELETE FROM events WHERE cursor < ?", (below,))
        return below < keep

    def _sweep(self, conn: sqlite3.Connection, cutoff: float, now: float) -> None:
        """One window of the pass: delete its requests written last before ``cutoff``."""
        if self._doomed is not None:
            doomed = self._doomed
            params = (doomed, doomed, cutoff, _WINDOW)
            if conn.execute(_DELETE_SOME_STATES, params).rowcount < _WINDOW:
                self._position, self._doomed = doomed, None
            return
        position = self._position or ""
        sql = _FIRST_WINDOW if self._position == "" else _NEXT_WINDOW
        groups = conn.execute(sql, (position, _WINDOW)).fetchall()
        if sum(count for _, _, count in groups) < _WINDOW:  # the last window of the pass
            self._delete_expired(conn, groups, cutoff)
            self._position, self._next_pass = None, now + self._pass_interval
        elif len(groups) == 1:  # one request fills the window: look at all of it
            self._big_request(conn, groups[0][0], cutoff)
        else:  # the window's last request may go on past it: the next window starts there
            complete = groups[:-1]
            self._delete_expired(conn, complete, cutoff)
            self._position = complete[-1][0]

    def _delete_expired(
        self, conn: sqlite3.Connection, groups: list[tuple[str, float, int]], cutoff: float
    ) -> None:
        """Delete the expired requests among a window's complete ones, one range per run."""
        runs = []
        for expired, run in itertools.groupby(groups, key=lambda group: group[1] < cutoff):
            if expired:
                ids = [request_id for request_id, _, _ in run]
                runs.append((ids[0], ids[-1]))
        if runs:
            conn.executemany(_DELETE_REQUESTS, runs)

    def _big_request(self, conn: sqlite3.Connection, request_id: str, cutoff: float) -> None:
        newest = conn.execute(_NEWEST_WRITE, (request_id,)).fetchone()[0]
        if newest is not None and newest < cutoff:
            self._doomed = request_id  # deleted a window at a time by the next steps
        else:
            self._position = request_id

    def _forget_progress(self) -> None:
        """After a failed step: pause, then start over (every step is safe to repeat)."""
        self._paused_until = self._monotonic() + _RETRY
        self._position = self._doomed = None
        self._next_pass = -math.inf if self._retention is not None else math.inf
        self._events_dirty, self._pending_backlog = True, self._retention is not None
