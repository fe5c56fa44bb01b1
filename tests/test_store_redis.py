"""What is particular to the Redis store, against a real ``redis-server``: replicas, connection
loss, durability of the server, script cache, group commit, consumer groups, the Lua merge
proven equal to the Python one, and a client of the user's.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path

import attrs
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_server import RedisServer, start_durable_redis_server, start_redis_server
from store_helpers import (
    ADDR,
    REQ,
    SENDER,
    WAIT,
    S,
    apply_concurrently,
    check_event_chains,
    expected_state,
    read_all,
    redis_client,
    scenario,
    summary,
    up,
)

from opensms_async._exceptions import StoreError, StoreUnavailableError
from opensms_async._models import DeliveryStatus, Status
from opensms_async._state import DeliveryEvent, DeliveryState, DeliveryUpdate, Source, merge
from opensms_async.stores.redis import RedisStore

# --- RedisStore ---------------------------------------------------------------------------------


@pytest.mark.integration
async def test_redis_replicas_see_each_others_states_and_events(redis_url: str) -> None:
    """Two stores on one server share states and the log; a waiting reader on one is woken by an
    apply on the other."""
    async with RedisStore(redis_url) as one, RedisStore(redis_url) as two:
        await one.apply_events([up(S.MESSAGE_WAITING, sender=SENDER)])
        reader = asyncio.create_task(one.read_events(await one.last_cursor(), timeout=WAIT))
        await asyncio.sleep(0.05)
        logged = await two.apply_events([up(S.DELIVERED_TO_TERMINAL)])
        assert await asyncio.wait_for(reader, WAIT) == logged
        state = await one.get(REQ, ADDR)
        assert state == await two.get(REQ, ADDR)
        assert state is not None and state.status is S.DELIVERED_TO_TERMINAL
        assert await read_all(one) == await read_all(two)
        assert [e.status for e in await read_all(one)] == [
            S.MESSAGE_WAITING,
            S.DELIVERED_TO_TERMINAL,
        ]


@pytest.mark.integration
async def test_redis_replicas_racing_on_one_pair_log_each_advance_once(redis_url: str) -> None:
    """Replicas applying the same updates at once log every advance exactly once."""
    rng = random.Random(7)
    pairs = scenario(rng)
    updates = [u for ups in pairs.values() for u in ups]
    stores = [RedisStore(redis_url) for _ in range(3)]
    for store in stores:
        await store.open()
    try:
        results = await asyncio.gather(
            *(apply_concurrently(s, list(updates), random.Random(i)) for i, s in enumerate(stores))
        )
        log = await read_all(stores[0])
        assert sorted(e.cursor for r in results for e in r) == sorted(e.cursor for e in log)
        for (request_id, address), ups in pairs.items():
            assert summary(await stores[1].get(request_id, address)) == summary(expected_state(ups))
        await check_event_chains(stores[2], log, pairs)
    finally:
        for store in stores:
            await store.aclose()


@pytest.mark.integration
async def test_redis_claim_due_leases_each_request_to_one_replica(redis_url: str) -> None:
    """Replicas claiming at the same moment never get the same request; a lease ends."""
    async with RedisStore(redis_url) as one, RedisStore(redis_url) as two:
        for i in range(40):
            await one.schedule(f"r{i:02d}", SENDER, tracked_at=0.0, poll_at=float(i))
        claims = await asyncio.gather(
            *(store.claim_due(100.0, limit=3, lease=50.0) for store in (one, two) * 10)
        )
        claimed = [p.request_id for claim in claims for p in claim]
        assert sorted(claimed) == [f"r{i:02d}" for i in range(40)]
        assert await two.claim_due(149.0) == []
        assert len(await two.claim_due(150.0, limit=100)) == 40


@pytest.mark.integration
async def test_redis_without_retention_sets_no_ttl(redis_url: str) -> None:
    """``retention=None`` keeps states for good."""
    async with RedisStore(redis_url, retention=None) as store:
        await store.apply_events([up(S.DELIVERED_TO_TERMINAL)])
        with redis_client(redis_url) as client:
            assert client.ttl(f"opensms:state:{REQ}") == -1


@pytest.mark.integration
async def test_redis_prefixes_isolate_stores(redis_url: str) -> None:
    """Stores with different prefixes on one database see nothing of each other."""
    async with RedisStore(redis_url, prefix="a") as a, RedisStore(redis_url, prefix="b") as b:
        await a.apply_events([up(S.MESSAGE_WAITING)])
        await a.schedule(REQ, SENDER, tracked_at=0.0, poll_at=0.0)
        assert await b.get(REQ, ADDR) is None
        assert await b.read_events(None) == [] and await b.last_cursor() is None
        assert await b.claim_due(10.0) == []
        with redis_client(redis_url) as client:
            # b wrote nothing but the marker of its key layout
            assert all(key.startswith("a:") or key == "b:layout" for key in client.scan_iter())


@pytest.mark.integration
async def test_redis_connection_loss_and_recovery(tmp_path: Path) -> None:
    """A stopped server gives StoreUnavailableError (no password in it); once it is back, the
    next call works again, its scripts reloaded."""
    server = start_redis_server(tmp_path / "redis", "--requirepass", "hunter2")
    url = f"redis://:hunter2@127.0.0.1:{server.port}/0"
    try:
        async with RedisStore(url) as store:
            assert "hunter2" not in repr(store)
            await store.apply_events([up(S.MESSAGE_WAITING)])
            server.stop()
            for call in (store.apply_events([up(S.DELIVERED_TO_NETWORK)]), store.get(REQ, ADDR)):
                with pytest.raises(StoreUnavailableError, match="unavailable") as info:
                    await asyncio.wait_for(call, WAIT)
                assert "hunter2" not in str(info.value)
            server.start()  # empty: no data, no scripts
            [event] = await store.apply_events([up(S.DELIVERED_TO_TERMINAL)])
            assert event.previous is None
    finally:
        server.stop()


@pytest.mark.integration
async def test_redis_open_fails_clearly(tmp_path: Path) -> None:
    """Nothing listening, or a wrong password, fails ``open`` with StoreUnavailableError."""
    server = start_redis_server(tmp_path / "redis", "--requirepass", "right")
    try:
        for url in (f"redis://:wrong@127.0.0.1:{server.port}/0", "redis://127.0.0.1:1/0"):
            store = RedisStore(url)
            with pytest.raises(StoreUnavailableError) as info:
                await store.open()
            assert "wrong" not in str(info.value)
            with pytest.raises(StoreError, match="not open"):
                await store.get(REQ, ADDR)
            await store.aclose()
    finally:
        server.stop()


@pytest.mark.integration
async def test_redis_durable_server_keeps_acknowledged_updates_across_a_crash(
    tmp_path: Path,
) -> None:
    """With ``appendfsync always``, states, events and the schedule survive a killed server."""
    server = start_durable_redis_server(tmp_path / "aof")
    try:
        async with RedisStore(server.url) as store:
            await store.apply_events(
                [up(S.MESSAGE_WAITING, sender=SENDER), up(S.DELIVERED_TO_TERMINAL)]
            )
            await store.schedule(REQ, SENDER, tracked_at=1.0, poll_at=2.0)
            states, events = await store.get_request(REQ), await read_all(store)
        server.kill()
        server.start()
        async with RedisStore(server.url) as store:
            assert await store.get_request(REQ) == states
            assert await read_all(store) == events
            [again] = await store.apply_events([up(S.MESSAGE_WAITING, "tel:+33600000002")])
            assert store.cursor_key(again.cursor) > store.cursor_key(events[-1].cursor)
            assert [p.request_id for p in await store.claim_due(2.0)] == [REQ]
    finally:
        server.stop()


@pytest.mark.integration
async def test_redis_script_cache_flushed(redis_url: str) -> None:
    """After SCRIPT FLUSH (as after a restart), the scripts are loaded again transparently."""
    async with RedisStore(redis_url) as store:
        await store.apply_events([up(S.MESSAGE_WAITING)])
        with redis_client(redis_url) as client:
            client.script_flush()
        assert len(await store.apply_events([up(S.DELIVERED_TO_NETWORK)])) == 1
        await store.schedule(REQ, SENDER, tracked_at=0.0, poll_at=0.0)


@pytest.mark.integration
async def test_redis_foreign_key_fails_the_batch_before_any_write(redis_url: str) -> None:
    """A key of the wrong type under the prefix fails the script before it writes anything."""
    with redis_client(redis_url) as client:
        client.set("opensms:state:taken", "not a hash")
    async with RedisStore(redis_url) as store:
        with pytest.raises(StoreError, match="WRONGTYPE"):
            await store.apply_events(
                [up(S.MESSAGE_WAITING), up(S.MESSAGE_WAITING, request_id="taken")]
            )
        assert await store.get(REQ, ADDR) is None
        assert await store.last_cursor() is None


@pytest.mark.integration
async def test_redis_concurrent_applies_share_script_calls(redis_url: str) -> None:
    """Concurrent applies are merged by fewer script calls than callers (group commit)."""
    async with RedisStore(redis_url) as store:
        with redis_client(redis_url) as client:
            client.config_resetstat()
            calls = [
                store.apply_events([up(S.MESSAGE_WAITING, f"tel:+33{i:010d}")]) for i in range(300)
            ]
            async with asyncio.timeout(WAIT):
                await asyncio.gather(*calls)
            stats = client.info("commandstats")
        scripts = sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "eval"))
        assert 1 <= scripts < 300
        assert len(await read_all(store)) == 300


@pytest.mark.integration
async def test_redis_stream_is_trimmed_approximately(redis_url: str) -> None:
    """The log keeps about ``max_events``; a trimmed cursor resumes at the oldest retained."""
    async with RedisStore(redis_url, max_events=10) as store:
        first = None
        for i in range(30):
            batch = [up(S.MESSAGE_WAITING, f"tel:+33{i:04d}{j:06d}") for j in range(20)]
            logged = await store.apply_events(batch)
            first = first or logged[0]
        assert first is not None
        with redis_client(redis_url) as client:
            assert 10 <= client.xlen("opensms:events") < 600
        retained = await store.read_events(None, limit=1000)
        assert retained[0].cursor != first.cursor
        assert await store.read_events(first.cursor, limit=1000) == retained


@pytest.mark.integration
async def test_redis_consumer_group_hands_each_event_to_one_consumer(redis_url: str) -> None:
    """A group splits the log between its consumers; acknowledged events are not seen again."""
    async with RedisStore(redis_url) as store:
        await store.apply_events([up(S.MESSAGE_WAITING, f"tel:+3360000000{i}") for i in range(6)])
        assert await store.create_group("workers") is True
        assert await store.create_group("workers") is False
        first = await store.read_group("workers", "a", count=4)
        second = await store.read_group("workers", "b", count=4)
        assert len(first) == 4 and len(second) == 2
        assert {e.cursor for e in first}.isdisjoint(e.cursor for e in second)
        assert await store.read_group("workers", "b") == []
        assert await store.ack("workers", *(e.cursor for e in first)) == 4
        assert await store.read_pending("workers", "a") == []
        assert await store.read_pending("workers", "b") == second


@pytest.mark.integration
async def test_redis_consumer_group_blocks_until_an_event(redis_url: str) -> None:
    """``read_group(block=...)`` waits for the next event another replica logs."""
    async with RedisStore(redis_url) as one, RedisStore(redis_url) as two:
        await one.create_group("live", start="$")
        reader = asyncio.create_task(one.read_group("live", "a", block=WAIT))
        await asyncio.sleep(0.05)
        logged = await two.apply_events([up(S.DELIVERED_TO_TERMINAL)])
        assert await asyncio.wait_for(reader, WAIT) == logged
        assert await one.read_group("live", "a", block=0.1) == []


@pytest.mark.integration
async def test_redis_claim_stale_takes_over_a_dead_consumers_events(redis_url: str) -> None:
    """Events a consumer never acknowledged go to another after ``min_idle``."""
    async with RedisStore(redis_url) as store:
        await store.create_group("workers")
        await store.apply_events([up(S.MESSAGE_WAITING, f"tel:+3360000000{i}") for i in range(3)])
        taken = await store.read_group("workers", "dead")
        assert await store.claim_stale("workers", "alive", min_idle=60.0) == []
        await asyncio.sleep(0.02)
        claimed = await store.claim_stale("workers", "alive", min_idle=0.01)
        assert claimed == taken
        assert await store.read_pending("workers", "dead") == []
        assert await store.read_pending("workers", "alive") == taken


@pytest.mark.integration
async def test_redis_consumer_group_errors(redis_url: str) -> None:
    """A missing group is a StoreError; malformed cursors are ValueErrors."""
    async with RedisStore(redis_url) as store:
        with pytest.raises(StoreError, match="NOGROUP"):
            await store.read_group("nobody", "a")
        with pytest.raises(ValueError, match="cursor"):
            await store.ack("workers", "7")
        with pytest.raises(ValueError, match="cursor"):
            await store.create_group("workers", start="later")


_hyp_updates = st.builds(
    DeliveryUpdate,
    request_id=st.sampled_from(["r1", "r2"]),
    address=st.sampled_from(["tel:+331", "tel:+332"]),
    status=st.sampled_from([*DeliveryStatus, "Zeta", "Alpha"]),
    source=st.sampled_from(Source),
    parts_delivered=st.none() | st.integers(0, 3),
    sms_parts=st.none() | st.integers(1, 3),
    sender=st.none() | st.sampled_from(["A", "B"]),
    received_at=st.floats(0, 2e9, allow_nan=False),
)


@pytest.mark.integration
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(_hyp_updates, min_size=1, max_size=6), min_size=1, max_size=8))
def test_redis_merge_script_equals_python_merge(
    redis_server: RedisServer, batches: list[list[DeliveryUpdate]]
) -> None:
    """Any batches applied through the Lua merge give the states (after every batch) and the
    events (each update's) of a fold of ``_state.merge``."""
    asyncio.run(check_against_python_merge(redis_server.url, batches))


def expected_event(state: DeliveryState, previous: Status | None, source: Source) -> DeliveryEvent:
    """The event an advance to ``state`` logs, without a cursor."""
    return DeliveryEvent(
        cursor="",
        request_id=state.request_id,
        address=state.address,
        status=state.status,
        previous=previous,
        source=source,
        parts_delivered=state.parts_delivered,
        sms_parts=state.sms_parts,
        conflict=state.conflict,
        at=state.updated_at,
    )


async def check_against_python_merge(url: str, batches: list[list[DeliveryUpdate]]) -> None:
    """Apply ``batches`` to a fresh prefix and compare with the pure merge, batch by batch."""
    prefix = f"hyp-{uuid.uuid4().hex}"
    states: dict[tuple[str, str], DeliveryState] = {}
    logged: list[DeliveryEvent] = []
    async with RedisStore(url, prefix=prefix) as store:
        for batch in batches:
            expected: list[DeliveryEvent] = []
            for update in batch:
                want = merge(states.get((update.request_id, update.address)), update)
                states[update.request_id, update.address] = want.state
                if want.advanced:
                    expected.append(expected_event(want.state, want.previous, update.source))
            got = await store.apply_events(batch)
            assert [attrs.evolve(e, cursor="") for e in got] == expected
            for (request_id, address), state in states.items():
                assert await store.get(request_id, address) == state
            logged += got
        assert await read_all(store) == logged
    with redis_client(url) as client:
        client.delete(*client.scan_iter(f"{prefix}:*"))


@pytest.mark.integration
async def test_redis_store_over_a_client_of_yours(redis_url: str) -> None:
    """A client passed in (decoding responses, even) is used as it is and left open."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with RedisStore(client, prefix="mine") as store:
            logged = await store.apply_events([up(S.DELIVERED_TO_TERMINAL, parts=1, sms_parts=1)])
            [state] = await store.get_request(REQ)
            assert (state.status, state.parts_delivered, state.sms_parts) == (
                S.DELIVERED_TO_TERMINAL,
                1,
                1,
            )
            assert await store.read_events(None, timeout=1.0) == logged
            await store.schedule(REQ, SENDER, tracked_at=0.0, poll_at=0.0)
            assert [p.request_id for p in await store.claim_due(1.0)] == [REQ]
            assert "127.0.0.1" in repr(store)
        assert await client.ping()
    finally:
        await client.aclose()
    with pytest.raises(TypeError, match="client"):
        RedisStore(None)  # type: ignore[arg-type]
