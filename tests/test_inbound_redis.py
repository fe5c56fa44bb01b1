"""The Redis inbound store: its Lua twin of the reassembly rules, its keys, its failures."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_server import RedisServer, free_port

from opensms_async import InvalidStoreURLError, StoreError, StoreUnavailableError
from opensms_async._reassembly import Part
from opensms_async.stores.inbound import (
    InboundStore,
    MemoryInboundStore,
    RedisInboundStore,
    open_inbound_store,
)

pytestmark = pytest.mark.integration

T = 600.0
R = 4 * 86400.0
DEST = "tel:+32470000000"
SENDERS = ("tel:+32470000001", "tel:+32470000002")
TOTALS = (2, 3)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client of the test's (emptied) Redis."""
    connection = aioredis.Redis.from_url(redis_url)
    yield connection
    await connection.aclose()


Op = tuple[int, bool, int, int, int]
"""(seconds since the previous step, expire instead of a part, key, part number, id variant)."""


@st.composite
def histories(draw: st.DrawFn) -> list[Op]:
    """Parts of two keys arriving over a few windows, ids reused now and then, expiries between."""
    ops = []
    for _ in range(draw(st.integers(1, 25))):
        key = draw(st.integers(0, 1))
        ops.append(
            (
                draw(st.sampled_from([0, 1, 5, 100, 300, 599, 600, 601, 1200])),
                draw(st.booleans()) and draw(st.booleans()),  # an expiry a quarter of the time
                key,
                draw(st.integers(1, TOTALS[key])),
                draw(st.integers(0, 2)),
            )
        )
    return ops


def part_of(key: int, number: int, variant: int) -> Part:
    """A part of key ``key``: the same (key, number, variant) is the same messageId."""
    return Part(
        f"{key}-{number}-{variant}", SENDERS[key], DEST, f"<{key}{number}{variant}>",
        7, number, TOTALS[key],
    )  # fmt: skip


async def replay(store: InboundStore, ops: list[Op]) -> list[tuple[object, ...]]:
    """What a store logs for a history (integer times: no rounding at a window's edge)."""
    now = 1_700_000_000.0
    for delta, expiry, key, number, variant in ops:
        now += delta
        if expiry:
            await store.expire(now, timeout=T)
        else:
            await store.receive([part_of(key, number, variant)], now=now, timeout=T, retention=R)
    for _ in range(3):
        now += 2 * T
        await store.expire(now, timeout=T)
    return [
        (m.message_id, m.text, m.parts, m.total, m.complete, m.received_at, m.part_ids)
        for m in await store.read_messages(None, limit=1000)
    ]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=histories())
async def test_the_lua_step_logs_what_the_pure_rules_log(redis_url: str, ops: list[Op]) -> None:
    """Any history of parts and expiries: Redis logs exactly what the pure rules (memory) log."""
    async with MemoryInboundStore() as memory:
        expected = await replay(memory, ops)
    async with RedisInboundStore(redis_url, prefix=f"eq-{uuid.uuid4().hex}") as shared:
        assert await replay(shared, ops) == expected


async def test_no_key_has_a_ttl(redis_url: str, client: aioredis.Redis) -> None:
    """Ids, groups and the log carry no TTL: a volatile-* policy never evicts them."""
    async with RedisInboundStore.from_url(redis_url) as store:
        await store.receive(
            [Part("a", SENDERS[0], DEST, "x"), Part("b", SENDERS[0], DEST, "y", 1, 1, 2)],
            now=1.0, timeout=T, retention=R,
        )  # fmt: skip
    keys = sorted(k.decode() if isinstance(k, bytes) else k for k in await client.keys("*"))
    assert keys == [
        "opensms:inbound:groups",
        "opensms:inbound:log",
        "opensms:inbound:seen",
        "opensms:inbound:windows",
    ]
    for key in keys:
        assert await client.ttl(key) == -1


async def test_an_evicting_policy_is_refused(redis_url: str, client: aioredis.Redis) -> None:
    """allkeys-* may evict the ids dedupe needs: open() refuses it unless allowed."""
    await client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        refused = open_inbound_store(redis_url)
        with pytest.raises(StoreError, match="allow_eviction"):
            await refused.open()
        await refused.aclose()
        async with RedisInboundStore.from_url(redis_url + "?allow_eviction=true"):
            pass
    finally:
        await client.config_set("maxmemory-policy", "noeviction")


async def test_the_url_options_of_both_stores_are_taken() -> None:
    """One URL may configure a delivery and an inbound store; bad options are refused."""
    store = open_inbound_store(
        "redis://:s3cret@127.0.0.1:1/0?prefix=app&retention=60&max_events=9&max_messages=5"
        "&timeout=0.5&socket_connect_timeout=1"
    )
    assert isinstance(store, RedisInboundStore)
    assert (store.prefix, store.max_messages, store.timeout) == ("app", 5, 0.5)
    assert "s3cret" not in repr(store)
    for bad in (
        "redis://h/0?max_messages=0",
        "redis://h/0?nope=1",
        "redis://h/0?max_messages=1&max_messages=2",
    ):
        with pytest.raises(InvalidStoreURLError) as info:
            open_inbound_store(bad.replace("h/", ":pw@h/"))
        assert "pw" not in str(info.value)


async def test_redis_down_is_unavailable_and_says_no_secret() -> None:
    """No Redis answering: StoreUnavailableError at open, without the password."""
    store = open_inbound_store(f"redis://:hunter2@127.0.0.1:{free_port()}/0?timeout=0.5")
    with pytest.raises(StoreUnavailableError) as info:
        await store.open()
    await store.aclose()
    assert "hunter2" not in str(info.value)


async def test_a_stopped_redis_makes_receive_unavailable(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Redis stopped under an open store: receive raises StoreUnavailableError (a 503)."""
    from redis_server import start_redis_server

    server: RedisServer = start_redis_server(tmp_path_factory.mktemp("down"))
    try:
        async with RedisInboundStore.from_url(server.url + "?timeout=0.5") as store:
            await store.receive([Part("a", SENDERS[0], DEST, "x")], now=1.0, timeout=T, retention=R)
            server.stop()
            with pytest.raises(StoreUnavailableError):
                await store.receive(
                    [Part("b", SENDERS[0], DEST, "y")], now=2.0, timeout=T, retention=R
                )
    finally:
        server.stop()
