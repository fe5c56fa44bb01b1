"""What an inbound store logged reaches ``messages()`` consumers even when the ``ingest`` that
logged it was cancelled: through the store's ``listen`` (memory, SQLite), or, for a store
without one, through the inbox's own recording task."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from inbound_helpers import wire
from stream_helpers import take

from opensms_async import Inbox
from opensms_async._inbound_message import InboundMessage
from opensms_async._reassembly import Part
from opensms_async.stores.inbound import (
    InboundStore,
    MemoryInboundStore,
    Received,
    SQLiteInboundStore,
)


def wait_for_commit(path: Path, rows: int) -> None:
    """Block (the event loop too, on purpose) until ``rows`` messages are committed to the
    inbound log of the file at ``path``, as another process would see them."""
    deadline = time.monotonic() + 30
    with sqlite3.connect(path) as conn:
        while time.monotonic() < deadline:
            (count,) = conn.execute("SELECT count(*) FROM inbound_log").fetchone()
            if count >= rows:
                return
            time.sleep(0.01)
    raise TimeoutError("the writer did not commit within 30 s")


async def test_sqlite_a_cancelled_ingest_that_committed_still_reaches_a_waiting_consumer(
    tmp_path: Path,
) -> None:
    """SQLite's writer commits, then the caller is cancelled before the loop hands it the
    result: a consumer already waiting in messages() gets the message at once, not at the next
    one."""
    path = tmp_path / "inbound.db"
    async with Inbox(store=SQLiteInboundStore(path)) as inbox:
        consumer = asyncio.ensure_future(take(inbox.messages(), 1))
        await asyncio.sleep(0.05)  # the consumer is caught up and waiting
        ingest = asyncio.ensure_future(inbox.ingest([wire("a", "hello")]))
        await asyncio.sleep(0)  # the receive is with the writer thread
        wait_for_commit(path, 1)  # committed; the loop has not seen the answer yet
        ingest.cancel()
        await asyncio.gather(ingest, return_exceptions=True)
        (message,) = await consumer  # a hang (TimeoutError after 30 s) without the publish
    assert message.text == "hello"
    assert ingest.cancelled()


async def test_the_memory_store_hands_what_receive_logged_to_its_listeners() -> None:
    """MemoryInboundStore.listen: every message a receive logged, before it returns, in log
    order; a duplicate logs (and hands on) nothing; the returned function stops it."""
    seen: list[list[str]] = []
    async with MemoryInboundStore() as store:
        stop = store.listen(lambda messages: seen.append([m.cursor for m in messages]))
        parts = [Part(i, "tel:+1", "tel:+2", i) for i in "ab"]
        received = await store.receive(parts, now=1.0, timeout=60.0, retention=3600.0)
        assert seen == [[m.cursor for m in received.messages]] == [["1", "2"]]
        await store.receive(parts[:1], now=2.0, timeout=60.0, retention=3600.0)  # a duplicate
        stop()
        await store.receive(
            [Part("c", "tel:+1", "tel:+2", "c")],
            now=3.0, timeout=60.0, retention=3600.0,
        )  # fmt: skip
    assert seen == [["1", "2"]]


class WithoutListen:
    """An inbound store of a user's own: the protocol's methods only (no ``listen``), over a
    memory store, whose answer reaches the caller only once ``answer`` is set, after it logged."""

    shared = False

    def __init__(self) -> None:
        self.inner = MemoryInboundStore()
        self.logged = asyncio.Event()
        self.answer = asyncio.Event()

    async def open(self) -> None:
        await self.inner.open()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def receive(
        self, parts: Sequence[Part], *, now: float, timeout: float, retention: float
    ) -> Received:
        received = await self.inner.receive(parts, now=now, timeout=timeout, retention=retention)
        self.logged.set()
        await self.answer.wait()
        return received

    async def expire(self, now: float, *, timeout: float) -> list[InboundMessage]:
        return await self.inner.expire(now, timeout=timeout)

    async def read_messages(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> list[InboundMessage]:
        return await self.inner.read_messages(after, limit=limit, timeout=timeout)

    async def last_cursor(self) -> str | None:
        return await self.inner.last_cursor()

    def cursor_key(self, cursor: str) -> tuple[int, int]:
        return self.inner.cursor_key(cursor)

    async def remembers(self, message_id: str) -> bool:
        return await self.inner.remembers(message_id)


async def test_a_store_without_listen_still_publishes_a_cancelled_ingest() -> None:
    """A custom store with no ``listen`` (it is not part of the protocol): the caller of
    ingest is cancelled after the store logged, and a waiting consumer still gets the
    message at once."""
    store = WithoutListen()
    assert isinstance(store, InboundStore)
    assert not hasattr(store, "listen")
    async with Inbox(store=store) as inbox:
        consumer = asyncio.ensure_future(take(inbox.messages(), 1))
        await asyncio.sleep(0)  # the consumer is caught up and waiting
        ingest = asyncio.ensure_future(inbox.ingest([wire("a", "hello")]))
        await store.logged.wait()
        ingest.cancel()
        await asyncio.gather(ingest, return_exceptions=True)
        store.answer.set()
        (message,) = await consumer  # a hang (TimeoutError after 30 s) without the task
    assert message.text == "hello"
    assert ingest.cancelled()
