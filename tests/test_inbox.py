"""``Inbox``: ingest, the messages() stream, the reassembly timer and its settings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from stream_helpers import take

from opensms_async import (
    InboundSmsMessage,
    Inbox,
    OpenSMSClient,
    StoreError,
    ValidationError,
)
from opensms_async.stores.inbound import MemoryInboundStore

SENDER, DEST = "32470000001", "32470000000"


def wire(message_id: str, text: str = "hi", **udh: int) -> InboundSmsMessage:
    """An inbound message as BICS posts it (bare digits for the addresses)."""
    return InboundSmsMessage(
        message_id=message_id,
        sender_address=SENDER,
        destination_address=DEST,
        message=text,
        date_time="2021-11-24T09:13:40.639",
        udh_message_id=udh.get("ref"),
        concat_part=udh.get("part"),
        concat_total=udh.get("total"),
    )


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_ingested_messages_are_yielded_once_with_canonical_addresses() -> None:
    """A message and its duplicate: one message, addresses as tel:+<digits>."""
    async with Inbox() as inbox:
        logged = await inbox.ingest([wire("a", "hello"), wire("a", "hello")])
        (message,) = await take(inbox.messages(), 1)
    assert logged == [message]
    assert (message.sender, message.destination, message.text) == (
        "tel:+32470000001",
        "tel:+32470000000",
        "hello",
    )
    assert (message.source, message.date_time) == ("callback", "2021-11-24T09:13:40.639")


async def test_parts_come_out_joined_whatever_their_order() -> None:
    """The parts of a long message, shuffled, some twice: one message, the whole text."""
    parts = [wire(f"p{n}", t, ref=9, part=n, total=3) for n, t in ((3, "c"), (1, "a"), (2, "b"))]
    async with Inbox() as inbox:
        assert await inbox.ingest(parts[:2]) == []
        await inbox.ingest([parts[0], parts[2]])
        (message,) = await take(inbox.messages(), 1)
    assert (message.message_id, message.text, message.parts, message.complete) == (
        "p1",
        "abc",
        3,
        True,
    )


async def test_polled_source_is_kept() -> None:
    """ingest(source="poll") marks what it logs as polled."""
    async with Inbox() as inbox:
        (message,) = await inbox.ingest([wire("a")], source="poll")
    assert message.source == "poll"


async def test_a_message_without_message_id_is_refused_before_recording() -> None:
    """No messageId: ValidationError, and nothing of the call is recorded."""
    async with Inbox() as inbox:
        with pytest.raises(ValidationError, match="messageId"):
            await inbox.ingest([wire("a"), InboundSmsMessage(message="no id")])
        assert await inbox.store.read_messages(None) == []


async def test_every_consumer_sees_every_message_and_resumes_after_a_cursor() -> None:
    """Consumers read at their own pace; since=<cursor> resumes right after it."""
    async with Inbox() as inbox:
        first, second = inbox.messages(), inbox.messages()
        for n in range(5):
            await inbox.ingest([wire(f"id-{n}", f"t{n}")])
        seen_first = await take(first, 5)
        seen_second = await take(second, 5)
        resumed = await take(inbox.messages(since=seen_first[1].cursor), 3)
    expected = [f"t{n}" for n in range(5)]
    assert [m.text for m in seen_first] == [m.text for m in seen_second] == expected
    assert [m.text for m in resumed] == ["t2", "t3", "t4"]


async def test_a_consumer_far_behind_reads_the_store_and_misses_nothing() -> None:
    """A tiny live buffer: a consumer that falls behind gets every message from the log."""
    async with Inbox(live_buffer=2) as inbox:
        stream = inbox.messages()
        await inbox.ingest([wire("warm", "w")])
        assert [m.text for m in await take(stream, 1)] == ["w"]
        for n in range(50):
            await inbox.ingest([wire(f"id-{n}", f"t{n}")])
        caught_up = await take(stream, 50)
    assert [m.text for m in caught_up] == [f"t{n}" for n in range(50)]


async def test_messages_resume_after_a_restart_on_a_durable_store(tmp_path: Path) -> None:
    """A cursor saved before a restart resumes on a new inbox over the same SQLite file."""
    url = f"sqlite:///{tmp_path / 'in.db'}"
    async with Inbox(url) as inbox:
        await inbox.ingest([wire("a", "one"), wire("b", "two")])
        (first,) = await take(inbox.messages(), 1)
    async with Inbox(url) as inbox:
        await inbox.ingest([wire("b", "two"), wire("c", "three")])
        rest = await take(inbox.messages(since=first.cursor), 2)
    assert [m.text for m in rest] == ["two", "three"]


async def test_the_timer_yields_an_incomplete_message_after_the_timeout() -> None:
    """The reassembly timer logs what came of a message once its window ends."""
    clock = Clock()
    async with Inbox(reassembly_timeout=60.0, clock=clock) as inbox:
        stream = inbox.messages()
        await inbox.ingest([wire("p1", "Hel", ref=1, part=1, total=2)])
        clock.now += 61.0
        (message,) = await take(stream, 1)
    assert (message.text, message.complete, message.parts, message.total) == ("Hel", False, 1, 2)


async def test_closing_ends_every_iterator() -> None:
    """An iterator waiting for the next message ends when the inbox closes."""
    inbox = Inbox()
    await inbox.open()
    stream = inbox.messages()
    waiting = asyncio.ensure_future(take(stream, 1))
    await asyncio.sleep(0.05)
    await inbox.aclose()
    assert await asyncio.wait_for(waiting, 30) == []
    with pytest.raises(RuntimeError, match="closed"):
        await inbox.ingest([wire("a")])


async def test_an_inbox_closes_its_store_and_opens_once() -> None:
    """The inbox opens and closes the store it was given; it cannot be opened again."""
    store = MemoryInboundStore()
    inbox = Inbox(store)
    async with inbox:
        assert store.is_open
    assert not store.is_open
    with pytest.raises(RuntimeError, match="closed"):
        await inbox.open()
    with pytest.raises(StoreError):
        await store.read_messages(None)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"poll_interval": 0}, "poll_interval"),
        ({"reassembly_timeout": float("inf")}, "reassembly_timeout"),
        ({"retention": -1}, "retention"),
        ({"poll_batch_size": 201}, "poll_batch_size"),
        ({"poll_numbers": ["+32470000000"]}, "client"),
        ({"store": "postgres://x"}, "unknown store URL"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], match: str) -> None:
    """Settings that cannot work raise ValueError at once."""
    with pytest.raises(ValueError, match=match):
        Inbox(**kwargs)  # type: ignore[arg-type]


def test_poll_numbers_are_normalised_and_a_bad_one_refused() -> None:
    """Numbers to poll are written as the client writes them; a name is no number."""
    client = OpenSMSClient(api_key="k", base_url="https://api.example/sms/v3")
    inbox = Inbox(client=client, poll_numbers=["+32470000000", "tel:+32470000000", "1234"])
    assert inbox.poll_numbers == ("tel:+32470000000", "tel:1234")
    with pytest.raises(ValueError, match="inbound number"):
        Inbox(client=client, poll_numbers=["ACME"])


def test_a_retention_within_bics_retries_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """A retention of 3 days or less lets a late BICS retry through: a WARNING says so."""
    with caplog.at_level("WARNING", logger="opensms_async.inbox"):
        Inbox(retention=3600.0)
        Inbox()
    assert len(caplog.records) == 1 and "3 days" in caplog.messages[0]
