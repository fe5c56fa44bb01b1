"""``SQLiteInboundStore``: the inbound log, the ids seen and the parts being joined, in SQLite.

The durable default for one process, on the standard library's :mod:`sqlite3`, in a file of its
own or in the delivery store's (tables ``inbound_*``, their own schema version in
``inbound_meta``). One writer thread owns the connection and commits in groups
(:mod:`.._sqlite_writer`): each ``receive`` is a job, every job queued meanwhile shares its
transaction, and each caller returns once it is committed.

A part is one job step: ``INSERT ... ON CONFLICT DO NOTHING`` of its id into ``inbound_seen``
says whether it is new (the primary key decides, so two writers can never both take it); a new
message of its own is appended to ``inbound_log``; a new part reads its group from
``inbound_groups``, takes the reassembly step of :mod:`opensms_async._reassembly` and writes the
group back (or deletes it, in the same transaction as the log append, once it is yielded).
``expire`` logs the groups whose window has ended and deletes, in bounded steps, the ids whose
retention has passed and the log entries past ``max_messages``. The ids have no index on their
time (it would cost every receive a second B-tree insert): each ``expire`` sweeps the next 500
ids in key order and deletes those whose time has come, so a pass over a million ids takes
2,000 calls (about half an hour of an inbox's once-a-second timer), and an id goes between its
``forget_at`` and one pass later: far inside a retention of days.

Schema version 1 (``SCHEMA_VERSION``); a file of another version is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Final, TypeAlias

from ..._exceptions import StoreError
from ..._inbound_message import (
    InboundMessage,
    decode,
    encode,
    encode_single,
    logged,
    logged_single,
)
from ..._lifecycle import OPEN
from ..._reassembly import Assembled, GroupKey, Part, PartGroup, add_part, expire, group_key
from .._common import Listeners, Wakeup, parse_cursor, read_start, read_waiting
from .._sqlite_writer import Writer, WriterOwner, connect_wal
from .._url_options import positive_int, sqlite_url
from ._base import Received

__all__ = ["DEFAULT_MAX_MESSAGES", "SCHEMA_VERSION", "SQLiteInboundStore"]

SCHEMA_VERSION: Final = 1
DEFAULT_MAX_MESSAGES: Final = 1_000_000
"""Messages the log keeps by default; past it the oldest are deleted first."""
_EXPIRE_BATCH: Final = 500
"""Most groups one expire() call closes, and ids it forgets (about a millisecond each)."""
_TRIM_BATCH: Final = 10_000
_SYNCHRONOUS: Final = {"NORMAL": "PRAGMA synchronous=NORMAL", "FULL": "PRAGMA synchronous=FULL"}
# The delivery store's URL options, accepted so that one URL may serve both; they are its own.
_DELIVERY_OPTIONS: Final = frozenset({"retention", "max_events"})

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS inbound_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
    " WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS inbound_seen (message_id TEXT PRIMARY KEY,"
    " forget_at REAL NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS inbound_groups (key TEXT PRIMARY KEY, opened_at REAL NOT NULL,"
    " parts TEXT NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS inbound_groups_opened ON inbound_groups (opened_at)",
    # AUTOINCREMENT: a cursor is never reused, even after the newest entries were deleted.
    "CREATE TABLE IF NOT EXISTS inbound_log (cursor INTEGER PRIMARY KEY AUTOINCREMENT,"
    " message TEXT NOT NULL)",
)
# Checked first (_KNOWN, under the write transaction's lock): the insert then never conflicts.
_KNOWN: Final = "SELECT message_id FROM inbound_seen WHERE message_id IN ({ids})"
_NEW_ID: Final = "INSERT INTO inbound_seen VALUES (?, ?)"
_LOG: Final = "INSERT INTO inbound_log (message) VALUES (?)"
_GROUP: Final = "SELECT opened_at, parts FROM inbound_groups WHERE key = ?"
_PUT_GROUP: Final = "INSERT OR REPLACE INTO inbound_groups VALUES (?, ?, ?)"
_DROP_GROUP: Final = "DELETE FROM inbound_groups WHERE key = ?"
_DUE_GROUPS: Final = """SELECT key, opened_at, parts FROM inbound_groups WHERE opened_at <= ?
    ORDER BY opened_at LIMIT ?"""
_SWEEP: Final = """SELECT max(message_id), count(*) FROM (SELECT message_id FROM inbound_seen
    WHERE message_id > ? ORDER BY message_id LIMIT ?)"""
_FORGET: Final = """DELETE FROM inbound_seen WHERE message_id > ? AND message_id <= ?
    AND forget_at <= ?"""
_READ: Final = "SELECT cursor, message FROM inbound_log WHERE cursor > ? ORDER BY cursor LIMIT ?"


class SQLiteInboundStore(WriterOwner):
    """An :class:`~opensms_async.stores.inbound.InboundStore` in one SQLite file (WAL mode).

    ``path`` is the database file (created when missing; its directory must exist), or
    ``":memory:"``. ``synchronous`` as for the delivery store: ``"NORMAL"`` (the default) keeps
    every returned ``receive`` through a crash of this process, ``"FULL"`` through power loss
    too. ``max_messages`` bounds the log (default :data:`DEFAULT_MAX_MESSAGES`); a reader whose
    cursor was trimmed resumes at the oldest retained message. ``poll_interval`` is how often a
    waiting ``read_messages`` re-checks the file for other processes' writes. Cursors are the log's
    decimal row ids; they keep increasing across reopenings and trimming.
    """

    shared: bool = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        max_messages: int = DEFAULT_MAX_MESSAGES,
        poll_interval: float = 0.5,
        max_batch: int = 1000,
    ) -> None:
        if not isinstance(synchronous, str) or synchronous.upper() not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}")
        if isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1:
            raise ValueError(f"max_messages must be an integer of at least 1, not {max_messages!r}")
        if poll_interval <= 0 or max_batch < 1:
            raise ValueError("poll_interval must be positive and max_batch at least 1")
        self.path = os.fspath(path)
        self.synchronous = synchronous.upper()
        self.max_messages = max_messages
        self._poll_interval = poll_interval
        self._max_batch = max_batch
        self._wakeup = Wakeup()
        self._listeners: Listeners[InboundMessage] = Listeners()
        self._sweep = _Sweep()  # the writer thread's alone

    @classmethod
    def from_url(cls, url: str) -> SQLiteInboundStore:
        """The store a ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or
        ``sqlite:///:memory:`` URL names, with options ``synchronous`` (NORMAL or FULL) and
        ``max_messages`` (the delivery store's ``retention`` and ``max_events`` are accepted and
        left to it); InvalidStoreURLError for anything else."""
        path, synchronous, given = sqlite_url(url, {"max_messages", *_DELIVERY_OPTIONS})
        max_messages = DEFAULT_MAX_MESSAGES
        if "max_messages" in given:
            max_messages = positive_int(url, "max_messages", given["max_messages"])
        return cls(path, synchronous=synchronous, max_messages=max_messages)

    def __repr__(self) -> str:
        return (
            f"SQLiteInboundStore({self.path!r}, synchronous={self.synchronous!r}, "
            f"max_messages={self.max_messages!r})"
        )

    def _make_writer(self, loop: asyncio.AbstractEventLoop) -> Writer:
        connect = partial(connect_wal, self.path, _SYNCHRONOUS[self.synchronous], _create_schema)
        return Writer(
            self.path, connect, loop, max_batch=self._max_batch, committed=self._committed
        )

    # --- receiving ---------------------------------------------------------------------------

    async def receive(
        self, parts: Sequence[Part], *, now: float, timeout: float, retention: float
    ) -> Received:
        """Dedupe, reassemble and log each part; returns once committed.

        Raises :class:`StoreUnavailableError` when nothing was recorded (rolled back). A
        cancelled call may still be committed.
        """
        writer = self._ready()
        if not parts:
            return Received([])
        received: Received = await writer.batched(
            _receive_many, (tuple(parts), now, timeout, now + retention)
        )
        return received

    async def expire(self, now: float, *, timeout: float) -> list[InboundMessage]:
        """Log the groups whose window has ended, forget old ids, trim the log (bounded)."""
        job = partial(_expire, now, timeout, self.max_messages, self._sweep)
        return await self._ready().call(job, "write")

    async def remembers(self, message_id: str) -> bool:
        """True while ``message_id`` is remembered."""
        sql = "SELECT 1 FROM inbound_seen WHERE message_id = ?"
        return await self._ready().call(partial(_exists, sql, (message_id,)))

    # --- the log -----------------------------------------------------------------------------

    async def read_messages(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> list[InboundMessage]:
        """Up to ``limit`` messages after cursor ``after`` (None: the oldest), oldest first;
        with ``timeout`` > 0, waits up to that long for one (re-checking the file every
        ``poll_interval`` for other processes' writes)."""
        query = partial(_rows, _READ, (read_start(after, limit), limit))
        rows = await read_waiting(
            lambda: self._ready().call(query), self._wakeup, timeout, self._poll_interval
        )
        return [decode(str(cursor), raw) for cursor, raw in rows]

    async def last_cursor(self) -> str | None:
        """The cursor of the newest logged message, or None for an empty log."""
        rows = await self._ready().call(partial(_rows, "SELECT max(cursor) FROM inbound_log", ()))
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    def cursor_key(self, cursor: str) -> tuple[int, int]:
        """``(n, 0)`` for cursor ``"n"``; ValueError for a malformed cursor."""
        return (parse_cursor(cursor), 0)

    @property
    def batches(self) -> int:
        """Write transactions committed so far (for tests of group commit)."""
        return 0 if self._writer is None else self._writer.batches

    def listen(self, listener: Callable[[Sequence[InboundMessage]], None]) -> Callable[[], None]:
        """Hand what the ``receive`` calls of each transaction logged to ``listener`` on the
        event loop once committed, in log order, whether or not their callers still wait (a
        cancelled call may be committed); returns the function that stops it. (What
        ``expire`` logs, it returns.)"""
        return self._listeners.add(listener)

    def _committed(self, results: Sequence[object]) -> None:
        """On the loop, once a write transaction committed, before its callers get their
        results: wake the waiting readers, hand what its ``receive`` calls logged on."""
        self._wakeup.fire()
        logged = [m for r in results if isinstance(r, Received) for m in r.messages]
        if logged:
            self._listeners.publish(logged)

    def _ready(self) -> Writer:
        writer = self._writer
        if self._state is not OPEN or writer is None:
            raise self._unusable()
        return writer


# --- jobs (run on the writer thread) ---------------------------------------------------------


_Call: TypeAlias = tuple[tuple[Part, ...], float, float, float]
"""One receive call: its parts, ``now``, the reassembly timeout and when its ids may go."""
_Logged: TypeAlias = "tuple[Part, float] | Assembled"
"""What a call logs: a part that came whole (and when), or what reassembly yielded."""
_IDS_PER_SELECT: Final = 500


def _receive_many(conn: sqlite3.Connection, calls: list[_Call]) -> list[Received]:
    """Dedupe, reassemble and log the parts of several receive calls, in order, with a few
    statements in all: one ``SELECT`` of the ids already seen (per 500), one per group touched,
    and an ``executemany`` each for the new ids, the groups and the log."""
    cursor = conn.cursor()
    known = _known(cursor, {part.message_id for parts, *_ in calls for part in parts})
    groups: dict[str, PartGroup | None] = {}
    new_ids: list[tuple[str, float]] = []
    rows: list[tuple[str]] = []
    shares: list[tuple[list[_Logged], int]] = []
    for parts, now, timeout, forget_at in calls:
        logged_here: list[_Logged] = []
        duplicates = 0
        for part in parts:
            if part.message_id in known:
                duplicates += 1
                continue
            known.add(part.message_id)
            new_ids.append((part.message_id, forget_at))
            gkey = group_key(part)
            if gkey is None:  # a message of its own: the common case, encoded directly
                rows.append((encode_single(part, now),))
                logged_here.append((part, now))
                continue
            key = _key_text(gkey)
            if key not in groups:
                groups[key] = _load_group(cursor, key, gkey)
            outcome = add_part(groups[key], part, now, timeout=timeout)
            groups[key] = outcome.group
            rows.extend((encode(message),) for message in outcome.messages)
            logged_here.extend(outcome.messages)
        shares.append((logged_here, duplicates))
    cursor.executemany(_NEW_ID, new_ids)
    _write_groups(cursor, groups)
    return _cursored(cursor, rows, shares)


def _known(cursor: sqlite3.Cursor, ids: set[str]) -> set[str]:
    """The ids among ``ids`` that are remembered."""
    listed, known = list(ids), set[str]()
    for start in range(0, len(listed), _IDS_PER_SELECT):
        chunk = listed[start : start + _IDS_PER_SELECT]
        sql = _KNOWN.format(ids=", ".join("?" * len(chunk)))
        known.update(row[0] for row in cursor.execute(sql, chunk))
    return known


def _load_group(cursor: sqlite3.Cursor, key: str, gkey: GroupKey) -> PartGroup | None:
    row = cursor.execute(_GROUP, (key,)).fetchone()
    return None if row is None else _group(gkey, row[0], row[1])


def _write_groups(cursor: sqlite3.Cursor, groups: dict[str, PartGroup | None]) -> None:
    """Store the groups a batch touched (deleting those that were yielded)."""
    kept = [_group_row(key, group) for key, group in groups.items() if group is not None]
    gone = [(key,) for key, group in groups.items() if group is None]
    if kept:
        cursor.executemany(_PUT_GROUP, kept)
    if gone:
        cursor.executemany(_DROP_GROUP, gone)


def _cursored(
    cursor: sqlite3.Cursor, rows: list[tuple[str]], shares: list[tuple[list[_Logged], int]]
) -> list[Received]:
    """Log ``rows`` and hand each call its messages under their cursors."""
    if not rows:
        return [Received([], duplicates) for _, duplicates in shares]
    cursor.executemany(_LOG, rows)
    # AUTOINCREMENT under the write lock: the rows took consecutive ids, up to the last.
    next_cursor = cursor.execute("SELECT last_insert_rowid()").fetchone()[0] - len(rows) + 1
    received = []
    for logged_here, duplicates in shares:
        messages = []
        for item in logged_here:
            if isinstance(item, tuple):
                messages.append(logged_single(item[0], item[1], str(next_cursor)))
            else:
                messages.append(logged(item, str(next_cursor)))
            next_cursor += 1
        received.append(Received(messages, duplicates))
    return received


class _Sweep:
    """Where the sweep of the ids seen is: the last id of the previous window ("" at the start
    of a pass). Used on the writer thread only."""

    __slots__ = ("after",)

    def __init__(self) -> None:
        self.after = ""

    def step(self, cursor: sqlite3.Cursor, now: float) -> None:
        """Delete the ids of the next window whose time has come, and move on."""
        last, count = cursor.execute(_SWEEP, (self.after, _EXPIRE_BATCH)).fetchone()
        if last is not None:
            cursor.execute(_FORGET, (self.after, last, now))
        self.after = last if count == _EXPIRE_BATCH else ""  # a short window ends the pass


def _expire(
    now: float, timeout: float, max_messages: int, sweep: _Sweep, conn: sqlite3.Connection
) -> list[InboundMessage]:
    cursor = conn.cursor()
    out: list[InboundMessage] = []
    for key, opened_at, parts in cursor.execute(
        _DUE_GROUPS, (now - timeout, _EXPIRE_BATCH)
    ).fetchall():
        gkey = _key_from_text(key)
        outcome = expire(_group(gkey, opened_at, parts), now, timeout=timeout)
        cursor.execute(_DROP_GROUP, (key,))
        out.extend(_log(cursor, message) for message in outcome.messages)
    sweep.step(cursor, now)
    _trim(cursor, max_messages)
    return out


def _trim(cursor: sqlite3.Cursor, max_messages: int) -> None:
    """Delete the oldest log entries past ``max_messages``, at most a batch of them."""
    first, last = cursor.execute("SELECT min(cursor), max(cursor) FROM inbound_log").fetchone()
    if last is None:
        return
    keep = last - max_messages + 1
    if first < keep:
        below = min(keep, first + _TRIM_BATCH)
        cursor.execute("DELETE FROM inbound_log WHERE cursor < ?", (below,))


def _log(cursor: sqlite3.Cursor, message: Assembled) -> InboundMessage:
    cursor.execute(_LOG, (encode(message),))
    return logged(message, str(cursor.lastrowid))


def _key_text(key: GroupKey) -> str:
    return json.dumps(key, ensure_ascii=False, separators=(",", ":"))


def _key_from_text(text: str) -> GroupKey:
    sender, destination, reference, total = json.loads(text)
    return (sender, destination, int(reference), int(total))


def _group(key: GroupKey, opened_at: float, parts: str) -> PartGroup:
    sender, destination, reference, total = key
    held = tuple(
        Part(mid, sender, destination, text, reference, number, total, source, date_time)
        for mid, text, number, source, date_time in json.loads(parts)
    )
    return PartGroup(key, held, opened_at)


def _group_row(key: str, group: PartGroup) -> tuple[str, float, str]:
    parts = [[p.message_id, p.text, p.number, p.source, p.date_time] for p in group.parts]
    return (key, group.opened_at, json.dumps(parts, ensure_ascii=False, separators=(",", ":")))


def _rows(sql: str, params: tuple[object, ...], conn: sqlite3.Connection) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def _exists(sql: str, params: tuple[object, ...], conn: sqlite3.Connection) -> bool:
    return conn.execute(sql, params).fetchone() is not None


# --- connection and schema -------------------------------------------------------------------


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'inbound_meta'"
        if conn.execute(exists).fetchone() is not None:
            row = conn.execute("SELECT value FROM inbound_meta WHERE key = 'schema_version'")
            version = row.fetchone()
            if version is not None and version[0] != str(SCHEMA_VERSION):
                raise StoreError(
                    f"SQLite inbound tables have schema version {version[0]}; this version"
                    f" reads {SCHEMA_VERSION}"
                )
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(
            "INSERT OR REPLACE INTO inbound_meta VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        raise
