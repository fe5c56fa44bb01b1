"""The live buffer of an in-process log keeps a ``LogRun`` that says it continues what it holds
as it is, with no cursor parsed (the memory store hands one over per write), and still starts
over at a gap, which a reader behind it reads from the store: nothing skipped, nothing twice."""

from __future__ import annotations

from dataclasses import dataclass

from opensms_async._live import LiveBuffer
from opensms_async.stores._common import LogRun, log_run


@dataclass(frozen=True)
class Item:
    cursor: str


class Log:
    """An in-process log (cursors "1", "2"...) that counts its cursor parses."""

    shared = False

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.parsed = 0

    def cursor_key(self, cursor: str) -> tuple[int, int]:
        self.parsed += 1
        return (int(cursor), 0)

    async def last_cursor(self) -> str | None:
        return self.items[-1].cursor if self.items else None

    async def read(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> list[Item]:
        start = 0 if after is None else int(after)
        return [item for item in self.items if int(item.cursor) > start][:limit]

    def append(self, *cursors: str) -> LogRun[Item]:
        """Log items (as someone else would: nothing published); the run they make."""
        after = self.items[-1].cursor if self.items else None
        run = log_run((Item(c) for c in cursors), after)
        self.items.extend(run)
        return run


async def opened(log: Log) -> LiveBuffer[Item]:
    buffer = LiveBuffer(log, log.read, 100, consecutive=True)
    await buffer.start()
    return buffer


def cursors(items: list[Item]) -> list[str]:
    return [item.cursor for item in items]


async def test_a_run_that_continues_the_buffer_is_kept_with_no_cursor_parsed() -> None:
    log = Log()
    buffer = await opened(log)
    reader = buffer.attach()
    buffer.publish(log.append("1"))
    assert cursors(await reader.next(None)) == ["1"]
    parsed = log.parsed
    buffer.publish(log.append("2", "3"))
    buffer.publish(log.append("4"))
    assert log.parsed == parsed  # three items kept, no cursor parsed
    assert cursors(await reader.next("1")) == ["2", "3", "4"]
    # The same items as a plain list (a store that says nothing of where they sit) are checked.
    buffer.publish(list(log.append("5")))
    assert log.parsed > parsed
    assert cursors(await reader.next("4")) == ["5"]


async def test_a_run_after_items_logged_by_someone_else_starts_the_buffer_over() -> None:
    """A run whose ``after`` is not the newest item held (another writer logged in between)
    does not continue the buffer: the reader reads the items it missed from the store, then
    takes the next runs from the buffer again."""
    log = Log()
    buffer = await opened(log)
    reader = buffer.attach()
    buffer.publish(log.append("1", "2", "3"))
    assert cursors(await reader.next(None)) == ["1", "2", "3"]
    log.append("4", "5")  # someone else's, never published here
    buffer.publish(log.append("6"))
    assert cursors(await reader.next("3")) == ["4", "5", "6"]
    buffer.publish(log.append("7"))
    assert cursors(await reader.next("6")) == ["7"]
    assert log.items == [Item(str(n)) for n in range(1, 8)]


async def test_a_run_after_the_items_a_reader_dropped_still_continues_the_buffer() -> None:
    """Once every reader has taken what the buffer held from it (it then keeps none), a run
    after the newest item dropped continues it with no cursor parsed: the reader gets it from
    the buffer, with no read of the store."""
    log = Log()
    buffer = await opened(log)
    reader = buffer.attach()
    buffer.publish(log.append("1", "2"))
    assert cursors(await reader.next(None)) == ["1", "2"]  # read from the store
    buffer.publish(log.append("3"))
    assert cursors(await reader.next("2")) == ["3"]  # from the buffer, which drops 1 to 3
    reads = 0
    read = log.read

    async def counted(after: str | None, *, limit: int = 1000, timeout: float = 0.0) -> list[Item]:
        nonlocal reads
        reads += 1
        return await read(after, limit=limit, timeout=timeout)

    buffer._read = counted
    parsed = log.parsed
    buffer.publish(log.append("4"))
    assert log.parsed == parsed
    assert cursors(await reader.next("3")) == ["4"]
    assert reads == 0
