"""What is particular to the SQLite store: reopening a file, group commit, failed commits and
updates, other processes' writes, WAL, and files it cannot open.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from pathlib import Path

import pytest
from store_helpers import (
    ADDR,
    REQ,
    SENDER,
    WAIT,
    S,
    read_all,
    up,
)

from opensms_async._exceptions import StoreError, StoreUnavailableError
from opensms_async.stores.sqlite import SQLiteStore

# --- SQLiteStore --------------------------------------------------------------------------------


async def test_sqlite_group_commit_batches_concurrent_applies(tmp_path: Path) -> None:
    """Many concurrent applies share commits: fewer transactions than callers, all committed."""
    async with SQLiteStore(tmp_path / "group.db") as store:
        assert store._writer is not None
        before = store._writer.batches
        calls = [
            store.apply_events([up(S.MESSAGE_WAITING, f"tel:+33{i:010d}")]) for i in range(300)
        ]
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*calls)
        assert store._writer.batches - before < 300
        assert len(await read_all(store)) == 300


async def test_sqlite_failed_commit_fails_every_caller_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When COMMIT fails, every caller of the batch gets StoreUnavailableError and nothing
    stays written; the store works again afterwards."""
    async with SQLiteStore(tmp_path / "fail.db") as store:
        writer = store._writer
        assert writer is not None

        def broken_commit(conn: sqlite3.Connection) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(writer, "_commit", broken_commit)
        calls = [
            store.apply_events([up(S.MESSAGE_WAITING, f"tel:+3360000000{i}")]) for i in range(5)
        ]
        async with asyncio.timeout(WAIT):
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(o, StoreUnavailableError) for o in outcomes)
        monkeypatch.undo()
        assert await store.get_request(REQ) == []
        assert await store.last_cursor() is None
        assert len(await store.apply_events([up(S.MESSAGE_WAITING)])) == 1


async def add_refusing_trigger(path: Path) -> None:
    """Create the schema, then a trigger that aborts any write of recipient tel:+999."""
    async with SQLiteStore(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse AFTER INSERT ON states WHEN NEW.address = 'tel:+999'"
            " BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    conn.close()


async def test_sqlite_failed_update_rolls_back_its_whole_call(tmp_path: Path) -> None:
    """If one update of a call fails, none of that call's updates or events stay written."""
    path = tmp_path / "refuse.db"
    await add_refusing_trigger(path)
    async with SQLiteStore(path) as store:
        with pytest.raises(StoreUnavailableError, match="refused"):
            await store.apply_events([up(S.MESSAGE_WAITING), up(S.MESSAGE_WAITING, "tel:+999")])
        assert await store.get(REQ, ADDR) is None
        assert await store.last_cursor() is None


async def test_sqlite_failed_caller_does_not_fail_its_batch(tmp_path: Path) -> None:
    """In one batch, a caller whose update fails is rolled back alone; the others commit."""
    path = tmp_path / "isolate.db"
    await add_refusing_trigger(path)
    async with SQLiteStore(path) as store:
        writer = store._writer
        assert writer is not None
        gate = threading.Event()
        blocker = asyncio.create_task(writer.call(lambda conn: gate.wait(WAIT)))
        await asyncio.sleep(0.05)  # the writer thread is now blocked inside the gate
        good = asyncio.create_task(store.apply_events([up(S.MESSAGE_WAITING)]))
        bad = asyncio.create_task(store.apply_events([up(S.MESSAGE_WAITING, "tel:+999")]))
        later = asyncio.create_task(store.apply_events([up(S.DELIVERED_TO_TERMINAL)]))
        await asyncio.sleep(0.05)
        before = writer.batches
        gate.set()
        async with asyncio.timeout(WAIT):
            results = await asyncio.gather(blocker, good, bad, later, return_exceptions=True)
        assert writer.batches == before + 1
        assert isinstance(results[2], StoreUnavailableError)
        state = await store.get(REQ, ADDR)
        assert state is not None and state.status == S.DELIVERED_TO_TERMINAL
        assert len(await read_all(store)) == 2


async def test_sqlite_one_big_batch_gives_every_caller_its_own_events(tmp_path: Path) -> None:
    """A batch of more rows than one statement inserts (they go in chunks): every caller gets
    the events it logged, with the cursors the log has, consecutive in queue order; an update
    that changes nothing logs nothing, and a pair written twice in the batch keeps its last."""
    async with SQLiteStore(tmp_path / "big.db") as store:
        writer = store._writer
        assert writer is not None
        gate = threading.Event()
        blocker = asyncio.create_task(writer.call(lambda conn: gate.wait(WAIT)))
        await asyncio.sleep(0.05)  # the writer thread is now blocked inside the gate
        calls = []
        for i in range(300):
            address = f"tel:+33{i:010d}"
            updates = [up(S.MESSAGE_WAITING, address)]
            if i % 3 == 0:  # the same pair again: an advance, in the same call
                updates.append(up(S.DELIVERED_TO_TERMINAL, address))
            if i % 5 == 0:  # and again, a step back: no event
                updates.append(up(S.MESSAGE_WAITING, address))
            calls.append(asyncio.create_task(store.apply_events(updates)))
        await asyncio.sleep(0.05)
        before = writer.batches
        gate.set()
        async with asyncio.timeout(WAIT):
            await blocker
            results = await asyncio.gather(*calls)
        assert writer.batches == before + 1
        returned = [event for events in results for event in events]
        assert len(returned) == 300 + 100
        assert returned == await read_all(store)
        assert [int(e.cursor) for e in returned] == list(range(1, 401))
        for i, events in enumerate(results):
            assert {e.address for e in events} == {f"tel:+33{i:010d}"}
            final = S.DELIVERED_TO_TERMINAL if i % 3 == 0 else S.MESSAGE_WAITING
            assert [e.status for e in events][-1] == final
            state = await store.get(REQ, f"tel:+33{i:010d}")
            assert state is not None and state.status == final


async def test_sqlite_absent_values_are_stored_as_null(tmp_path: Path) -> None:
    """What a state or an event does not have is SQL NULL in the file (the merge binds NaN for
    it, which SQLite stores as NULL), and reads back as None; present values stay as they are."""
    path = tmp_path / "null.db"
    async with SQLiteStore(path) as store:
        await store.apply_events([up(S.MESSAGE_WAITING)])
        await store.apply_events(
            [up(S.DELIVERED_TO_TERMINAL, "tel:+33600000001", parts=1, sms_parts=2, sender=SENDER)]
        )
        state = await store.get(REQ, ADDR)
        assert state is not None
        assert (state.parts_delivered, state.sms_parts, state.sender) == (None, None, None)
        events = await read_all(store)
        assert (events[0].previous, events[0].parts_delivered, events[0].sms_parts) == (
            None, None, None
        )  # fmt: skip
    with sqlite3.connect(path) as conn:
        states = conn.execute(
            "SELECT typeof(parts_delivered), typeof(sms_parts), typeof(sender) FROM states"
            " ORDER BY address"
        ).fetchall()
        logged = conn.execute(
            "SELECT typeof(previous), typeof(parts_delivered), typeof(sms_parts) FROM events"
            " ORDER BY cursor"
        ).fetchall()
        present = conn.execute(
            "SELECT parts_delivered, sms_parts, sender FROM states WHERE address = ?",
            ("tel:+33600000001",),
        ).fetchone()
    conn.close()
    assert states == [("integer", "integer", "text"), ("null", "null", "null")]
    assert logged == [("null", "null", "null"), ("null", "integer", "integer")]
    assert present == (1, 2, SENDER)


async def test_sqlite_reader_sees_another_connections_writes(tmp_path: Path) -> None:
    """A waiting reader re-checks the file and sees events another store (process) wrote."""
    path = tmp_path / "shared.db"
    async with SQLiteStore(path, poll_interval=0.05) as reader, SQLiteStore(path) as writer:
        waiting = asyncio.create_task(reader.read_events(None, timeout=WAIT))
        await asyncio.sleep(0.1)
        await writer.apply_events([up(S.MESSAGE_WAITING)])
        events = await asyncio.wait_for(waiting, WAIT / 2)  # short of the reader's own timeout
        assert [e.status for e in events] == [S.MESSAGE_WAITING]


async def test_sqlite_uses_wal(tmp_path: Path) -> None:
    """The file is in WAL mode and carries its schema version."""
    path = tmp_path / "wal.db"
    async with SQLiteStore(path, synchronous="full"):
        pass
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            "2",
        )
    conn.close()


async def open_fails(path: Path | str) -> str:
    """Open a store that must fail; the StoreError's message."""
    store = SQLiteStore(path)
    with pytest.raises(StoreError) as info:
        await store.open()
    with pytest.raises(StoreError):
        await store.apply_events([up(S.MESSAGE_WAITING)])
    await store.aclose()
    return str(info.value)


async def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    """A file that is not a SQLite database gives a clear StoreError, not a sqlite3 error."""
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database, only text. " * 200)
    assert "not a database" in await open_fails(path)


async def test_sqlite_unopenable_paths(tmp_path: Path) -> None:
    """A missing directory or a directory in place of the file gives StoreError."""
    assert "cannot open" in await open_fails(tmp_path / "missing" / "x.db")
    assert "cannot open" in await open_fails(tmp_path)


def set_modes(path: Path, file_mode: int, dir_mode: int) -> None:
    """Set the permissions of a file and of its directory."""
    path.chmod(file_mode)
    path.parent.chmod(dir_mode)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
async def test_sqlite_read_only_file(tmp_path: Path) -> None:
    """A database file that cannot be written gives StoreError."""
    path = tmp_path / "ro.db"
    async with SQLiteStore(path):
        pass
    set_modes(path, 0o444, 0o555)
    try:
        await open_fails(path)
    finally:
        set_modes(path, 0o644, 0o755)


async def test_sqlite_other_schema_version(tmp_path: Path) -> None:
    """A file written by an incompatible schema version is refused."""
    path = tmp_path / "v9.db"
    async with SQLiteStore(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
    conn.close()
    assert "schema version 9" in await open_fails(path)


async def test_sqlite_must_be_opened(tmp_path: Path) -> None:
    """Using a store before ``open`` raises StoreError."""
    store = SQLiteStore(tmp_path / "unopened.db")
    with pytest.raises(StoreError, match="not open"):
        await store.get(REQ, ADDR)


def test_sqlite_refuses_unknown_synchronous(tmp_path: Path) -> None:
    """Only NORMAL and FULL durability are offered."""
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(tmp_path / "x.db", synchronous="OFF")


async def test_sqlite_job_errors_reach_the_caller_and_spare_the_thread(tmp_path: Path) -> None:
    """An exception inside a job is raised to its caller and the writer keeps serving."""
    async with SQLiteStore(tmp_path / "bug.db") as store:
        writer = store._writer
        assert writer is not None
        with pytest.raises(ZeroDivisionError):
            await writer.call(lambda conn: 1 / 0)
        with pytest.raises(StoreError, match="read failed"):
            await writer.call(lambda conn: conn.execute("SELECT * FROM nowhere"))
        assert await store.get(REQ, ADDR) is None
