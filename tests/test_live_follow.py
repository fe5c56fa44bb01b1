"""``DeliveryTracker.events()`` and ``Inbox.messages()``, one loop (``_live.follow``): an iterator
made before ``open()`` or after ``aclose()`` says so when first read, not when made, and each
reads what its owner logged after the cursor it was given."""

from __future__ import annotations

import asyncio

import pytest

from opensms_async import DeliveryStatus, DeliveryTracker, DeliveryUpdate, Inbox
from opensms_async._reassembly import Part
from opensms_async.stores import MemoryStore
from opensms_async.stores.inbound import MemoryInboundStore

WAITING = DeliveryStatus.MESSAGE_WAITING

WAIT = 30.0
"""Upper bound on any wait in this file: a hang fails fast."""


def part(message_id: str) -> Part:
    """A one-part inbound message."""
    return Part(message_id, "+33612345670", "+32470000000", f"text {message_id}")


async def test_events_made_before_open_raises_when_read_not_when_made() -> None:
    """An events() iterator may be made before open(); reading it then says to open first."""
    tracker = DeliveryTracker(MemoryStore())
    events = tracker.events()  # made, not read: no error yet
    with pytest.raises(RuntimeError, match="is not open"):
        await asyncio.wait_for(anext(events), WAIT)


async def test_messages_made_after_close_raises_closed_when_read() -> None:
    """A messages() iterator made on a closed inbox says "closed" at its first read."""
    async with Inbox(MemoryInboundStore()) as inbox:
        pass
    messages = inbox.messages()
    with pytest.raises(RuntimeError, match="is closed"):
        await asyncio.wait_for(anext(messages), WAIT)


async def test_events_resume_after_the_cursor_given() -> None:
    """events(since=cursor) yields only what was logged after that cursor, then ends on close."""
    async with DeliveryTracker(MemoryStore()) as tracker:
        first = await tracker.ingest([DeliveryUpdate("r1", "tel:+331", WAITING)])
        await tracker.ingest([DeliveryUpdate("r2", "tel:+332", WAITING)])
        events = tracker.events(first[-1].cursor)
        event = await asyncio.wait_for(anext(events), WAIT)
        assert event.request_id == "r2"
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(events), WAIT)


async def test_messages_resume_after_the_cursor_given() -> None:
    """messages(since=cursor) yields only the messages logged after that cursor."""
    async with Inbox(MemoryInboundStore()) as inbox:
        first = await inbox.ingest_parts([part("m1")])
        await inbox.ingest_parts([part("m2")])
        messages = inbox.messages(first[-1].cursor)
        message = await asyncio.wait_for(anext(messages), WAIT)
        assert message.message_id == "m2"
