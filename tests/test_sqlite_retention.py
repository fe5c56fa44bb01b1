"""SQLiteStore retention: expired requests and the oldest events are deleted in the background,
in small steps, as the Redis store promises; files of schema version 1 are migrated on open."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from opensms_async import DeliveryStatus, DeliveryTracker, DeliveryUpdate
from opensms_async._exceptions import InvalidStoreURLError, StoreError
from opensms_async.stores import SQLiteStore, open_store
from opensms_async.stores._sqlite_retention import _WINDOW
from opensms_async.stores.sqlite import DEFAULT_MAX_EVENTS, DEFAULT_RETENTION, SCHEMA_VERSION

S = DeliveryStatus
SENDER = "tel:+3212345"
T0 = 1_700_000_000.0
WAIT = 30.0
"""Real seconds any background work here may take at most."""

V1_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE states (
        request_id TEXT NOT NULL, address TEXT NOT NULL, status TEXT NOT NULL,
        parts_delivered INTEGER, sms_parts INTEGER, sender TEXT,
        conflict INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL,
        PRIMARY KEY (request_id, address)) WITHOUT ROWID""",
    """CREATE TABLE events (
        cursor INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL,
        address TEXT NOT NULL, status TEXT NOT NULL, previous TEXT, source TEXT NOT NULL,
        parts_delivered INTEGER, sms_parts INTEGER, conflict INTEGER NOT NULL, at REAL NOT NULL)""",
    """CREATE TABLE pending (
        request_id TEXT PRIMARY KEY, sender TEXT NOT NULL, tracked_at REAL NOT NULL,
        next_poll_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, leased_until REAL)""",
    "CREATE INDEX pending_due ON pending (next_poll_at)",
    "INSERT INTO meta VALUES ('schema_version', '1')",
)
"""The schema of version 1, as opensms-async wrote it before retention."""


class Clock:
    """A store clock the test sets (read on the writer thread)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def up(request_id: str, address: str, status: S = S.MESSAGE_WAITING) -> DeliveryUpdate:
    """A callback update."""
    return DeliveryUpdate(request_id, address, status, sender=SENDER, received_at=T0)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> None:
    """Ask ``check`` every 20 ms until it is true; TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - state of another thread, no event to wait on
            await asyncio.sleep(0.02)


async def count_events(store: SQLiteStore) -> int:
    """Events retained (read through the store)."""
    return len(await store.read_events(None, limit=1_000_000))


def make_v1_file(path: Path) -> None:
    """A file of schema version 1 with two states, three events and a schedule entry."""
    conn = sqlite3.connect(path)
    with conn:
        for statement in V1_SCHEMA:
            conn.execute(statement)
        conn.executemany(
            "INSERT INTO states VALUES (?, ?, ?, NULL, 1, ?, 0, ?)",
            [("req-old", "tel:+331", "DeliveredToTerminal", SENDER, 5.0),
             ("req-old", "tel:+332", "MessageWaiting", SENDER, 6.0)],
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO events (request_id, address, status, previous, source, parts_delivered,"
            " sms_parts, conflict, at) VALUES ('req-old', ?, ?, NULL, 'callback', NULL, 1, 0, ?)",
            [("tel:+331", "MessageWaiting", 4.0), ("tel:+331", "DeliveredToTerminal", 5.0),
             ("tel:+332", "MessageWaiting", 6.0)],
        )  # fmt: skip
        conn.execute("INSERT INTO pending VALUES ('req-old', ?, 1.0, 2.0, 0, NULL)", (SENDER,))
    conn.close()


def columns(path: Path, table: str) -> list[str]:
    """The column names of a table of the file."""
    conn = sqlite3.connect(path)
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def schema_version(path: Path) -> str:
    """The version the file's meta table says."""
    conn = sqlite3.connect(path)
    try:
        return str(
            conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        )
    finally:
        conn.close()


# --- states and the schedule expire --------------------------------------------------------------


async def test_states_expire_retention_after_their_requests_last_write(tmp_path: Path) -> None:
    """A request's states are deleted once ``retention`` has passed since its last write, all its
    recipients together; a request written since keeps every recipient until its own time."""
    clock = Clock()
    async with SQLiteStore(tmp_path / "r.db", retention=100.0, clock=clock) as store:
        await store.apply_events([up("req-a", "tel:+331"), up("req-a", "tel:+332")])
        await store.apply_events([up("req-b", "tel:+331"), up("req-b", "tel:+332")])
        clock.now = T0 + 60
        await store.apply_events(
            [up("req-b", "tel:+331", S.DELIVERED_TO_TERMINAL)]
        )  # req-b written
        events_before = await count_events(store)

        clock.now = T0 + 120  # req-a: 120 s since its last write; req-b: 60 s
        await eventually(lambda: _gone(store, "req-a"))
        assert [s.address for s in await store.get_request("req-b")] == ["tel:+331", "tel:+332"]
        assert await count_events(store) == events_before  # the log is trimmed by count only

        clock.now = T0 + 170
        await eventually(lambda: _gone(store, "req-b"))


async def _gone(store: SQLiteStore, request_id: str) -> bool:
    return await store.get_request(request_id) == []


async def test_a_sweep_deletes_exactly_the_expired_requests_of_every_size(tmp_path: Path) -> None:
    """Over 400 requests of 1 to 1,200 recipients (some bigger than a sweep window), expired or
    not at random, and one row of some expired-looking requests rewritten since, a pass deletes
    every recipient of exactly the requests whose newest write is older than the retention."""
    rng = random.Random(8)
    path = tmp_path / "mixed.db"
    async with SQLiteStore(path):
        pass
    rows, expected = [], {}
    for n in range(400):
        request_id = f"req-{rng.randrange(10**9):09d}-{n}"
        size = rng.choice([1, 2, 3, 10, 499, 500, 501, 1200])
        old = rng.random() < 0.6
        times = [T0 if old else T0 + 500] * size
        if old and rng.random() < 0.3:
            times[rng.randrange(size)] = T0 + 500  # one recipient written since: all stay
            old = False
        expected[request_id] = 0 if old else size
        rows += [(request_id, f"tel:+33{k:06d}", at) for k, at in enumerate(times)]
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO states VALUES (?, ?, 'DeliveredToNetwork', NULL, 1, NULL, 0, 0.0, ?)", rows
        )
    conn.close()
    clock = Clock(T0 + 550)  # retention 100: T0 expired, T0 + 500 not
    async with SQLiteStore(path, retention=100.0, clock=clock) as store:

        async def swept() -> bool:
            await store.get_request("probe")  # a job: the writer may step after it
            return sizes(path) == {rid: size for rid, size in expected.items() if size}

        await eventually(swept)


def sizes(path: Path) -> dict[str, int]:
    """Recipients per request in the file, read by another connection."""
    conn = sqlite3.connect(path)
    try:
        sql = "SELECT request_id, count(*) FROM states GROUP BY request_id"
        return dict(conn.execute(sql).fetchall())
    finally:
        conn.close()


async def test_schedule_entries_expire_retention_after_their_last_write(tmp_path: Path) -> None:
    """A polling-schedule entry untouched for ``retention`` is deleted (no poller would poll it:
    its receipts are gone); one the poller rewrote since stays."""
    clock = Clock()
    path = tmp_path / "p.db"
    async with SQLiteStore(path, retention=100.0, clock=clock) as store:
        await store.schedule("req-a", SENDER, tracked_at=T0, poll_at=T0 + 10)
        await store.schedule("req-b", SENDER, tracked_at=T0, poll_at=T0 + 10)
        clock.now = T0 + 60
        await store.reschedule("req-b", next_poll_at=T0 + 500, attempts=1)
        clock.now = T0 + 120

        async def only_b_left() -> bool:
            await store.get_request("req-a")  # a job: the writer may step after it
            return scheduled(path) == ["req-b"]  # read aside: a claim would be a write

        await eventually(only_b_left)
        assert [p.request_id for p in await store.claim_due(T0 + 1000)] == ["req-b"]


def scheduled(path: Path) -> list[str]:
    """The request ids on the file's polling schedule, read by another connection."""
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT request_id FROM pending ORDER BY 1")]
    finally:
        conn.close()


async def test_retention_none_keeps_states_but_still_trims_the_log(tmp_path: Path) -> None:
    """``retention=None`` never deletes states or schedule entries; ``max_events`` still holds."""
    clock = Clock()
    path = tmp_path / "forever.db"
    async with SQLiteStore(path, retention=None, max_events=3, clock=clock) as store:
        await store.apply_events([up("req-a", f"tel:+33{n}") for n in range(8)])
        await store.schedule("req-a", SENDER, tracked_at=T0, poll_at=T0)
        clock.now = T0 + 1e9
        await eventually(lambda: _count_is(store, 3))
        assert len(await store.get_request("req-a")) == 8
        assert len(await store.claim_due(T0)) == 1


async def _count_is(store: SQLiteStore, expected: int) -> bool:
    return await count_events(store) == expected


# --- the event log keeps the newest max_events ---------------------------------------------------


async def test_the_log_keeps_the_newest_max_events_and_cursors_keep_increasing(
    tmp_path: Path,
) -> None:
    """Past ``max_events`` the oldest events are deleted: exactly the newest ``max_events`` stay,
    and later events (also after reopening) take cursors above every one ever given."""
    path = tmp_path / "log.db"
    async with SQLiteStore(path, max_events=50) as store:
        for batch in range(12):
            await store.apply_events([up(f"req-{batch}", f"tel:+33{n}") for n in range(10)])
        await eventually(lambda: _count_is(store, 50))
        events = await store.read_events(None, limit=1000)
        assert [e.cursor for e in events] == [str(n) for n in range(71, 121)]
    async with SQLiteStore(path, max_events=50) as store:
        [event] = await store.apply_events([up("req-new", "tel:+339")])
        assert event.cursor == "121"
        assert await store.last_cursor() == "121"


async def test_a_reader_whose_cursor_was_trimmed_resumes_at_the_oldest_retained(
    tmp_path: Path,
) -> None:
    """A consumer resuming after a cursor the log no longer holds gets every retained event,
    from the oldest on, without error, from the store and from ``tracker.events(since=...)``."""
    store = SQLiteStore(tmp_path / "resume.db", max_events=20)
    async with DeliveryTracker(store=store) as tracker:
        for batch in range(6):
            await tracker.ingest([up(f"req-{batch}", f"tel:+33{n}") for n in range(10)])
        await eventually(lambda: _count_is(store, 20))
        from_store = await store.read_events("5", limit=100)
        assert [e.cursor for e in from_store] == [str(n) for n in range(41, 61)]
        seen = []
        async with asyncio.timeout(WAIT):
            async for event in tracker.events(since="5"):
                seen.append(event.cursor)
                if len(seen) == 20:
                    break
        assert seen == [str(n) for n in range(41, 61)]


# --- schema version 1 is migrated ----------------------------------------------------------------


async def test_a_version_1_file_is_migrated_on_open_and_keeps_everything(tmp_path: Path) -> None:
    """Opening a file of schema version 1 migrates it to the current version (never refused):
    its states, events and schedule are all there, cursors go on after its last event, and its
    rows count as written at the migration (so none expires sooner than ``retention`` after)."""
    path = tmp_path / "v1.db"
    make_v1_file(path)
    clock = Clock()
    async with SQLiteStore(path, retention=100.0, clock=clock) as store:
        assert schema_version(path) == str(SCHEMA_VERSION) == "2"
        assert "written_at" in columns(path, "states")
        assert "written_at" in columns(path, "pending")
        states = await store.get_request("req-old")
        assert [(s.address, s.status, s.updated_at) for s in states] == [
            ("tel:+331", S.DELIVERED_TO_TERMINAL, 5.0),
            ("tel:+332", S.MESSAGE_WAITING, 6.0),
        ]
        events = await store.read_events(None)
        assert [e.cursor for e in events] == ["1", "2", "3"]
        [event] = await store.apply_events([up("req-new", "tel:+339")])
        assert event.cursor == "4"
        [due] = await store.claim_due(2.0, lease=0.0)
        assert (due.request_id, due.tracked_at) == ("req-old", 1.0)

        clock.now = T0 + 90  # within the retention after the migration: kept
        await store.apply_events([up("req-probe", "tel:+338")])  # a batch, so a step may run
        assert len(await store.get_request("req-old")) == 2
        clock.now = T0 + 150
        await eventually(lambda: _gone(store, "req-old"))
    async with SQLiteStore(path, clock=clock) as store:  # a migrated file opens as it is
        assert schema_version(path) == "2"
        assert await store.get_request("req-probe") != []  # written at T0 + 90


async def test_a_failed_migration_leaves_the_version_1_file_as_it_was(tmp_path: Path) -> None:
    """A migration that fails half-way (here: a table already holds the name of the new index)
    is rolled back whole: a clear StoreError, and the file is still a complete version 1."""
    path = tmp_path / "v1-blocked.db"
    make_v1_file(path)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE pending_written (x)")
    conn.close()
    store = SQLiteStore(path)
    with pytest.raises(StoreError, match="pending_written"):
        await store.open()
    await store.aclose()
    assert schema_version(path) == "1"
    assert "written_at" not in columns(path, "states")
    assert "written_at" not in columns(path, "pending")


async def test_a_file_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    """A file of a version this code does not know (a newer release wrote it) is refused, not
    migrated or damaged."""
    path = tmp_path / "v3.db"
    async with SQLiteStore(path):
        pass
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.close()
    store = SQLiteStore(path)
    with pytest.raises(StoreError, match="schema version 3"):
        await store.open()
    await store.aclose()
    assert schema_version(path) == "3"


# --- a big purge does not stall callbacks ---------------------------------------------------------

EXPIRED_ROWS = 200_000


def add_expired_states(path: Path, rows: int, written_at: float) -> None:
    """``rows`` states (two recipients per request) last written at ``written_at``."""
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO states VALUES (?, ?, 'DeliveredToTerminal', NULL, 1, ?, 0, 0.0, ?)",
            ((f"old-{n // 2:07d}", f"tel:+3360{n:07d}", SENDER, written_at) for n in range(rows)),
        )
    conn.close()


def count_rows(path: Path, prefix: str) -> int:
    """States of requests whose id starts with ``prefix``, read by another connection."""
    conn = sqlite3.connect(path)
    try:
        sql = "SELECT count(*) FROM states WHERE request_id >= ? AND request_id < ?"
        return int(conn.execute(sql, (prefix, prefix + "\uffff")).fetchone()[0])
    finally:
        conn.close()


async def test_a_big_purge_runs_in_small_steps_between_batches(tmp_path: Path) -> None:
    """200,000 expired states are deleted in hundreds of small steps while applies go on: the
    first apply returns while most of them are still there (it waited for no big DELETE),
    and applies keep returning promptly until the purge is done (a very generous bound)."""
    path = tmp_path / "big.db"
    async with SQLiteStore(path):
        pass
    add_expired_states(path, EXPIRED_ROWS, written_at=T0)
    clock = Clock(T0 + 1000)
    latencies = []
    async with SQLiteStore(path, retention=100.0, clock=clock) as store:
        started = time.perf_counter()
        await store.apply_events([up("req-live", "tel:+330")])
        latencies.append(time.perf_counter() - started)
        # Steps go on while the writer is idle (between the open and the apply, and before the
        # count), so how many ran depends on the machine's load; what does not is that each
        # deleted at most a window of states (a single DELETE would have taken them all at once).
        left = count_rows(path, "old-")
        writer = store._writer
        assert writer is not None
        assert EXPIRED_ROWS - left <= (writer._retention.steps + 1) * _WINDOW  # +1: mid-commit
        assert left > EXPIRED_ROWS // 2  # far from done: the apply waited for no purge
        async with asyncio.timeout(60):
            for n in range(1, 100_000):
                started = time.perf_counter()
                await store.apply_events([up("req-live", f"tel:+33{n}")])
                latencies.append(time.perf_counter() - started)
                if count_rows(path, "old-") == 0:
                    break
        steps = writer._retention.steps
    assert count_rows(path, "old-") == 0
    assert count_rows(path, "req-live") == len(latencies)
    assert steps >= EXPIRED_ROWS // 1000  # a window of states per step
    latencies.sort()
    worst = latencies[-1]
    assert worst < 5.0, f"an apply waited {worst:.2f} s during the purge"


async def test_a_failing_step_is_logged_and_retried_and_the_store_keeps_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """When a retention step fails (here a trigger refuses to delete events), the store logs it
    and goes on answering applies and reads; the step is retried later and succeeds once the
    cause is gone."""
    path = tmp_path / "refuse.db"
    async with SQLiteStore(path):
        pass
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "CREATE TRIGGER keep BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'kept'); END"
        )
    conn.close()
    async with SQLiteStore(path, max_events=5) as store:
        for n in range(4):
            await store.apply_events([up(f"req-{n}", f"tel:+33{k}") for k in range(5)])
        await eventually(lambda: _logged(caplog, "retention step failed"))
        assert await count_events(store) == 20  # nothing deleted, nothing broken
        assert len(await store.apply_events([up("req-more", "tel:+339")])) == 1
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("DROP TRIGGER keep")
        conn.close()
        await eventually(lambda: _count_is(store, 5))


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


# --- options -------------------------------------------------------------------------------------


def test_retention_options_from_the_url_and_the_constructor(tmp_path: Path) -> None:
    """``?retention=SECONDS&max_events=N`` set the store's retention; the defaults are the Redis
    store's (7 days, 1,000,000 events)."""
    store = open_store(f"sqlite:///{tmp_path / 'o.db'}?retention=3600&max_events=10")
    assert isinstance(store, SQLiteStore)
    assert (store.retention, store.max_events) == (3600.0, 10)
    plain = open_store(f"sqlite:///{tmp_path / 'o.db'}")
    assert isinstance(plain, SQLiteStore)
    assert (plain.retention, plain.max_events) == (DEFAULT_RETENTION, DEFAULT_MAX_EVENTS)
    assert (DEFAULT_RETENTION, DEFAULT_MAX_EVENTS) == (7 * 24 * 3600.0, 1_000_000)
    assert "retention=3600.0" in repr(store)


@pytest.mark.parametrize(
    "query",
    ["retention=0", "retention=-5", "retention=nan", "retention=inf", "retention=soon",
     "retention=", "max_events=0", "max_events=1.5", "max_events=-1", "max_events=many",
     "retention=10&retention=20"],
)  # fmt: skip
def test_bad_retention_options_in_the_url_are_refused(tmp_path: Path, query: str) -> None:
    """A retention that is not a positive number of seconds, or a max_events that is not a
    positive integer, is an InvalidStoreURLError naming the option."""
    with pytest.raises(InvalidStoreURLError, match=query.split("=")[0]):
        open_store(f"sqlite:///{tmp_path / 'o.db'}?{query}")


@pytest.mark.parametrize(
    "kwargs",
    [{"retention": 0.0}, {"retention": -1.0}, {"retention": float("nan")},
     {"retention": float("inf")}, {"max_events": 0}, {"max_events": True}],
)  # fmt: skip
def test_bad_retention_arguments_are_refused(tmp_path: Path, kwargs: dict[str, object]) -> None:
    """The constructor refuses the same values with ValueError."""
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        SQLiteStore(tmp_path / "o.db", **kwargs)  # type: ignore[arg-type]
