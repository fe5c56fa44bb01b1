"""The inbound store contract, one suite over every backend: memory, SQLite, a real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opensms_async import InboundMessage, StoreError
from opensms_async._reassembly import Part
from opensms_async.stores.inbound import (
    InboundStore,
    MemoryInboundStore,
    open_inbound_store,
)

T = 600.0
R = 4 * 86400.0
SENDER, DEST = "tel:+32470000001", "tel:+32470000000"

StoreFactory = Callable[[], InboundStore]


def single_part(message_id: str, text: str = "hi", sender: str = SENDER) -> Part:
    """A message that came whole."""
    return Part(message_id, sender, DEST, text)


def parts_of(texts: Sequence[str], prefix: str = "m", reference: int = 7) -> list[Part]:
    """The parts of one long message, numbered from 1, with ids ``<prefix>-<number>``."""
    return [
        Part(f"{prefix}-{n}", SENDER, DEST, text, reference, n, len(texts))
        for n, text in enumerate(texts, start=1)
    ]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test."""
    return str(request.param)


@pytest.fixture
def make_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> StoreFactory:
    """A factory of stores of the backend under test, all on one file or server."""
    if backend == "memory":
        return MemoryInboundStore
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'inbound.db'}"
    else:
        url = request.getfixturevalue("redis_url")
    return lambda: open_inbound_store(url)


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[InboundStore]:
    """An open store of the backend under test."""
    async with make_store() as opened:
        yield opened


async def receive(store: InboundStore, parts: Sequence[Part], now: float = 0.0) -> list[str]:
    """Receive parts; the texts of what was logged."""
    received = await store.receive(parts, now=now, timeout=T, retention=R)
    return [m.text for m in received.messages]


async def test_a_whole_message_is_logged_once(store: InboundStore) -> None:
    """A message is logged with a cursor; the same messageId again is a duplicate, logs nothing."""
    first = await store.receive([single_part("a", "hello")], now=10.0, timeout=T, retention=R)
    (message,) = first.messages
    assert isinstance(message, InboundMessage)
    assert (message.message_id, message.text, message.sender, message.destination) == (
        "a",
        "hello",
        SENDER,
        DEST,
    )
    assert (message.parts, message.total, message.complete, message.received_at) == (
        1,
        1,
        True,
        10.0,
    )
    assert message.source == "callback" and message.part_ids == ("a",)
    again = await store.receive([single_part("a", "hello")], now=11.0, timeout=T, retention=R)
    assert (again.messages, again.duplicates) == ([], 1)
    assert await store.read_messages(None) == [message]
    assert await store.last_cursor() == message.cursor
    assert await store.remembers("a") and not await store.remembers("b")


async def test_parts_are_held_then_joined_once(store: InboundStore) -> None:
    """Parts in any order are held until all came, then logged once as one message."""
    one, two, three = parts_of(["Hel", "lo ", "you"])
    assert await receive(store, [three], 1.0) == []
    assert await receive(store, [one, one], 2.0) == []  # a part twice in one call: once
    assert await store.read_messages(None) == []
    (message,) = (await store.receive([two, three], now=3.0, timeout=T, retention=R)).messages
    assert (message.message_id, message.text, message.parts, message.complete) == (
        "m-1",
        "Hello you",
        3,
        True,
    )
    assert message.part_ids == ("m-1", "m-2", "m-3") and message.received_at == 1.0
    assert await receive(store, [two], 4.0) == []
    assert [m.text for m in await store.read_messages(None)] == ["Hello you"]


async def test_duplicates_are_counted(store: InboundStore) -> None:
    """receive says how many parts were duplicates."""
    one, two = parts_of(["a", "b"])
    first = await store.receive([one, one, single_part("x")], now=0.0, timeout=T, retention=R)
    assert first.duplicates == 1
    second = await store.receive([one, two, single_part("x")], now=1.0, timeout=T, retention=R)
    assert (second.duplicates, [m.text for m in second.messages]) == (2, ["ab"])


async def test_an_expired_group_is_logged_incomplete_and_a_late_part_too(
    store: InboundStore,
) -> None:
    """After the window, what came is logged incomplete; a part after that is logged on its own
    when its own window ends, never dropped."""
    one, two, three = parts_of(["Hel", "lo ", "you"])
    await receive(store, [three, one], 5.0)
    assert await store.expire(5.0 + T - 0.5, timeout=T) == []
    (partial,) = await store.expire(5.0 + T, timeout=T)
    assert (partial.text, partial.parts, partial.total, partial.complete) == ("Helyou", 2, 3, False)
    assert (partial.message_id, partial.received_at) == ("m-1", 5.0)
    assert await store.expire(5.0 + T + 1, timeout=T) == []  # logged once
    assert await receive(store, [two], 5.0 + T + 10) == []
    (late,) = await store.expire(5.0 + 2 * T + 10, timeout=T)
    assert (late.message_id, late.text, late.parts, late.complete) == ("m-2", "lo ", 1, False)
    texts = [m.text for m in await store.read_messages(None)]
    assert texts == ["Helyou", "lo "]


async def test_a_part_after_the_window_logs_the_old_group_first(store: InboundStore) -> None:
    """Without an expire call, the next part of the key after the window logs the old group."""
    one, two = parts_of(["a", "b"])
    await receive(store, [one], 0.0)
    assert await receive(store, [two], T + 1) == ["a"]
    (late,) = await store.expire(2 * T + 1, timeout=T)
    assert (late.text, late.complete) == ("b", False)


async def test_a_recycled_reference_starts_a_new_message(store: InboundStore) -> None:
    """Part 1 again under a new id within the window: the old group is logged, incomplete."""
    old = parts_of(["old-1", "old-2"], prefix="a")
    new = parts_of(["new-1", "new-2"], prefix="b")
    await receive(store, [old[0]], 0.0)
    assert await receive(store, [new[0]], 1.0) == ["old-1"]
    assert await receive(store, [new[1]], 2.0) == ["new-1new-2"]
    logged = await store.read_messages(None)
    assert [(m.message_id, m.complete) for m in logged] == [("a-1", False), ("b-1", True)]


async def test_parts_without_udh_fields_are_separate_messages(store: InboundStore) -> None:
    """Legacy parts (no UDH fields) and parts whose fields disagree are messages of their own."""
    legacy = [single_part("p1", "Hel"), single_part("p2", "lo")]
    odd = Part("p3", SENDER, DEST, "x", 7, 3, 2)  # part above total
    assert await receive(store, [*legacy, odd], 0.0) == ["Hel", "lo", "x"]


async def test_keys_keep_senders_destinations_and_references_apart(store: InboundStore) -> None:
    """Same reference from another sender, or another reference: never one message."""
    a = parts_of(["a1", "a2"], prefix="a")
    b = [Part(f"b-{n}", "tel:+32470000002", DEST, f"b{n}", 7, n, 2) for n in (1, 2)]
    c = parts_of(["c1", "c2"], prefix="c", reference=8)
    assert await receive(store, [a[0], b[1], c[0], a[1], b[0], c[1]], 0.0) == [
        "a1a2",
        "b1b2",
        "c1c2",
    ]


async def test_ids_are_forgotten_after_their_retention(store: InboundStore) -> None:
    """A messageId is remembered for the retention given with it, then forgotten."""
    await store.receive([single_part("a")], now=0.0, timeout=T, retention=100.0)
    await store.expire(50.0, timeout=T)
    assert await store.remembers("a")
    again = await store.receive([single_part("a")], now=60.0, timeout=T, retention=100.0)
    assert again.duplicates == 1
    for _ in range(3):  # forgetting is bounded work per call
        await store.expire(1000.0, timeout=T)
    assert not await store.remembers("a")
    assert await receive(store, [single_part("a", "again")], 1000.0) == ["again"]


async def test_forgetting_many_ids_takes_a_few_bounded_calls(store: InboundStore) -> None:
    """Thousands of ids past their retention are all forgotten within a few expire calls."""
    ids = [str(uuid.uuid4()) for _ in range(1200)]
    await store.receive([single_part(i) for i in ids], now=0.0, timeout=T, retention=10.0)
    kept = single_part("still-remembered")
    await store.receive([kept], now=50.0, timeout=T, retention=R)
    for _ in range(10):
        await store.expire(100.0, timeout=T)
    assert not any([await store.remembers(i) for i in ids[::97]])
    assert await store.remembers("still-remembered")


async def test_the_log_is_read_after_a_cursor(store: InboundStore) -> None:
    """Cursors increase; reading after one gives what came later, in order, up to a limit."""
    for n in range(5):
        await receive(store, [single_part(f"id-{n}", f"t{n}")], float(n))
    logged = await store.read_messages(None)
    assert [m.text for m in logged] == [f"t{n}" for n in range(5)]
    keys = [store.cursor_key(m.cursor) for m in logged]
    assert keys == sorted(keys) and len(set(keys)) == 5
    after = await store.read_messages(logged[1].cursor, limit=2)
    assert [m.text for m in after] == ["t2", "t3"]
    assert await store.read_messages(logged[-1].cursor) == []
    with pytest.raises(ValueError, match="cursor"):
        store.cursor_key("not a cursor")


async def test_a_waiting_read_gets_the_next_message(store: InboundStore) -> None:
    """read_messages with a timeout waits for the next message logged."""
    reader = asyncio.create_task(store.read_messages(None, timeout=300.0))
    await asyncio.sleep(0.05)
    await receive(store, [single_part("a", "late")])
    assert [m.text for m in await asyncio.wait_for(reader, 30.0)] == ["late"]
    assert await store.read_messages(None, timeout=0.05) != []


async def test_concurrent_duplicates_are_logged_once(store: InboundStore) -> None:
    """The same message and parts received by many callers at once: each logged once."""
    one, two = parts_of(["a", "b"])
    calls = [receive(store, [single_part("x", "whole")]) for _ in range(10)]
    calls += [receive(store, [one]) for _ in range(5)] + [receive(store, [two]) for _ in range(5)]
    await asyncio.gather(*calls)
    assert sorted(m.text for m in await store.read_messages(None)) == ["ab", "whole"]


async def test_text_survives_as_given(store: InboundStore) -> None:
    """Any Unicode text, ids and dateTime come back as received."""
    text = 'é€ 😀 "quotes" \\ back\nnew line'
    part = Part("ü-1", "ALPHA", DEST, text, source="poll", date_time="2021-11-24T09:13:40.639")
    (message,) = (await store.receive([part], now=1.5, timeout=T, retention=R)).messages
    (read,) = await store.read_messages(None)
    assert read == message
    assert (read.text, read.sender, read.source, read.date_time) == (
        text,
        "ALPHA",
        "poll",
        "2021-11-24T09:13:40.639",
    )


async def test_a_store_not_open_refuses_use(make_store: StoreFactory) -> None:
    """Before open and after close, every call raises StoreError."""
    store = make_store()
    with pytest.raises(StoreError, match="not open"):
        await store.receive([single_part("a")], now=0.0, timeout=T, retention=R)
    await store.open()
    await store.open()  # a store opens twice: an inbox may open one the user opened
    await store.aclose()
    await store.aclose()
    with pytest.raises(StoreError, match="closed"):
        await store.read_messages(None)


async def test_what_was_received_survives_reopening(make_store: StoreFactory, backend: str) -> None:
    """A durable store keeps held parts, ids and log across a restart."""
    if backend == "memory":
        pytest.skip("nothing survives a memory store")
    one, two = parts_of(["a", "b"])
    async with make_store() as first:
        await receive(first, [one, single_part("x")], 0.0)
    async with make_store() as second:
        assert await receive(second, [single_part("x")], 1.0) == []
        assert await receive(second, [two], 2.0) == ["ab"]
        assert [m.text for m in await second.read_messages(None)] == ["hi", "ab"]


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[list[str], list[int]]:
    """The texts of a long message, and the order its parts come in (indexes, some twice)."""
    texts = draw(st.lists(st.text(min_size=1, max_size=5), min_size=2, max_size=6))
    indexes = list(range(len(texts)))
    dups = draw(st.lists(st.sampled_from(indexes), max_size=4))
    return texts, list(draw(st.permutations([*indexes, *dups])))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=arrivals())
async def test_any_order_with_duplicates_logs_one_whole_message(
    store: InboundStore, case: tuple[list[str], list[int]]
) -> None:
    """Parts in any order, some twice, each in its own call: exactly one message, right text."""
    texts, order = case
    parts = parts_of(texts, prefix=uuid.uuid4().hex)  # ids never seen by this store
    before = await store.last_cursor()
    for index, number in enumerate(order):
        await receive(store, [parts[number]], float(index))
    logged = await store.read_messages(before)
    assert [(m.text, m.complete, m.parts) for m in logged] == [("".join(texts), True, len(texts))]
