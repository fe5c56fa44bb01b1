"""One store URL for delivery and inbound: a tracker and an inbox share a SQLite file or a Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from opensms_async import (
    DeliveryStatus,
    DeliveryTracker,
    DeliveryUpdate,
    InboundSmsMessage,
    Inbox,
)


def url_for(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """One URL for both, with the delivery store's options (the inbound store accepts them)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'both.db'}?retention=3600&max_events=100"
    base = str(request.getfixturevalue("redis_url"))
    return base + "?retention=3600&max_events=100"


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_delivery_state_and_inbound_messages_coexist(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Both streams on one file or server, used at once and reopened: neither sees the other's."""
    url = url_for(kind, tmp_path, request)
    update = DeliveryUpdate("req-1", "tel:+33612345678", DeliveryStatus.DELIVERED_TO_TERMINAL)
    inbound = InboundSmsMessage(
        message_id="in-1", sender_address="32470000001", destination_address="32470000000",
        message="Yes please",
    )  # fmt: skip
    async with DeliveryTracker(url) as tracker, Inbox(url) as inbox:
        events, messages = await asyncio.gather(tracker.ingest([update]), inbox.ingest([inbound]))
        assert [e.status for e in events] == [DeliveryStatus.DELIVERED_TO_TERMINAL]
        assert [m.text for m in messages] == ["Yes please"]
    async with DeliveryTracker(url) as tracker, Inbox(url) as inbox:
        state = await tracker.get("req-1", "tel:+33612345678")
        assert state is not None and state.status == DeliveryStatus.DELIVERED_TO_TERMINAL
        assert await inbox.ingest([inbound]) == []  # still remembered
        assert [m.text for m in await inbox.store.read_messages(None)] == ["Yes please"]
        assert [e.request_id for e in await tracker.store.read_events(None)] == ["req-1"]
