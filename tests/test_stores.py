"""One contract suite for every delivery store, then what is particular to each, then store URLs.

To run the contract against another backend, add its name to ``STORE_KINDS`` and build it in
``make_store``. The Redis param runs against a real ``redis-server`` started by a fixture; a
missing server fails loudly (``make test`` installs it) rather than skipping.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.abc
import itertools
import os
import random
import sqlite3
import sys
import threading
import time
import types
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_server import RedisServer, start_durable_redis_server, start_redis_server

from opensms_async._exceptions import InvalidStoreURLError, StoreError, StoreUnavailableError
from opensms_async._models import DeliveryStatus, Status
from opensms_async._state import (
    DeliveryEvent,
    DeliveryState,
    DeliveryUpdate,
    MergeOutcome,
    Source,
    merge,
)
from opensms_async.stores import Applied, Store, open_store
from opensms_async.stores.memory import DEFAULT_MAX_EVENTS, MemoryStore
from opensms_async.stores.redis import RedisStore
from opensms_async.stores.sqlite import SQLiteStore

S = DeliveryStatus
REQ = "4c27e3a8-0f4d-4d2e-9a51-0d3c5e6f7a8b"
ADDR = "tel:+33612345678"
SENDER = "tel:+32123456"
WAIT = 10.0
"""Upper bound on any wait in this file: a hang fails fast instead of stalling the run."""

STORE_KINDS = ["memory", "sqlite", pytest.param("redis", marks=pytest.mark.integration)]


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    """A fresh, unopened store of one kind (Redis: on the session's emptied redis-server)."""
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "store.db")
    if kind == "redis":
        return RedisStore(request.getfixturevalue("redis_url"))
    raise ValueError(kind)


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open store of each kind, closed after the test."""
    instance = make_store(request.param, tmp_path, request)
    await instance.open()
    yield instance
    await instance.aclose()


def up(
    status: Status,
    address: str = ADDR,
    *,
    request_id: str = REQ,
    parts: int | None = None,
    **kwargs: Any,
) -> DeliveryUpdate:
    """A delivery update, by default for the one pair most tests use."""
    return DeliveryUpdate(request_id, address, status, parts_delivered=parts, **kwargs)


async def read_all(store: Store, after: str | None = None) -> list[DeliveryEvent]:
    """Every retained event after ``after``, read in small pages."""
    events: list[DeliveryEvent] = []
    while page := await store.read_events(after, limit=7):
        events += page
        after = page[-1].cursor
    return events


def summary(state: DeliveryState | None) -> tuple[object, ...] | None:
    """The fields of a state that do not depend on the order updates arrived in."""
    if state is None:
        return None
    return (state.status, state.parts_delivered, state.conflict, state.sender, state.sms_parts)


# --- the contract: states ---------------------------------------------------------------------


async def test_store_implements_the_protocol(store: Store) -> None:
    """Each store is a ``Store``; only the Redis store is shared between processes."""
    assert isinstance(store, Store)
    assert store.shared is isinstance(store, RedisStore)


async def test_apply_then_get(store: Store) -> None:
    """An applied update is what ``get`` returns; an unseen pair is None."""
    [applied] = await store.apply([up(S.DELIVERED_TO_NETWORK, sender=SENDER, received_at=12.5)])
    state = await store.get(REQ, ADDR)
    assert state == applied.result.state
    assert state is not None and (state.status, state.sender, state.updated_at) == (
        S.DELIVERED_TO_NETWORK,
        SENDER,
        12.5,
    )
    assert await store.get(REQ, "tel:+33600000000") is None
    assert await store.get("other", ADDR) is None


async def test_apply_events_is_apply_without_results(store: Store) -> None:
    """``apply_events`` merges into the same states and log as ``apply``; returns what it logged."""
    chain = [S.DELIVERED_TO_NETWORK, S.DELIVERED_TO_NETWORK, S.MESSAGE_WAITING]
    chain.append(S.DELIVERY_IMPOSSIBLE)
    updates = [up(status, f"tel:+3361000000{i}") for status in chain for i in range(3)]
    applied = [a.event for a in await store.apply(updates[:6]) if a.event is not None]
    events = await store.apply_events(updates[6:])
    assert [e.status for e in events] == [S.DELIVERY_IMPOSSIBLE] * 3
    assert await read_all(store) == applied + events
    assert [summary(await store.get(REQ, f"tel:+3361000000{i}")) for i in range(3)] == [
        (S.DELIVERY_IMPOSSIBLE, None, False, None, None)
    ] * 3
    assert await store.apply_events([]) == []


async def test_apply_empty_batch(store: Store) -> None:
    """Applying nothing returns nothing and logs nothing."""
    assert await store.apply([]) == []
    assert await store.last_cursor() is None


async def test_statuses_round_trip(store: Store) -> None:
    """Known statuses come back as enum members (finals are final), unknown strings verbatim."""
    await store.apply([up(S.DELIVERED_TO_TERMINAL), up("BrandNewStatus", "tel:+33600000001")])
    delivered = await store.get(REQ, ADDR)
    unknown = await store.get(REQ, "tel:+33600000001")
    assert delivered is not None and delivered.status is S.DELIVERED_TO_TERMINAL
    assert delivered.is_final
    assert unknown is not None and unknown.status == "BrandNewStatus" and not unknown.is_final
    events = await read_all(store)
    assert [e.status for e in events] == [S.DELIVERED_TO_TERMINAL, "BrandNewStatus"]
    assert events[0].is_final


async def test_updates_of_one_call_apply_in_order(store: Store) -> None:
    """Results follow the order of the updates, and one pair's updates apply in that order."""
    applied = await store.apply(
        [up(S.MESSAGE_WAITING), up(S.DELIVERED_TO_TERMINAL), up(S.DELIVERED_TO_NETWORK)]
    )
    assert [a.result.outcome for a in applied] == [
        MergeOutcome.APPLIED,
        MergeOutcome.APPLIED,
        MergeOutcome.STALE,
    ]
    assert [a.result.previous for a in applied] == [
        None,
        S.MESSAGE_WAITING,
        S.DELIVERED_TO_TERMINAL,
    ]


async def test_events_only_on_advance(store: Store) -> None:
    """Duplicates and stale updates log nothing; each advance logs exactly one event."""
    applied = await store.apply(
        [
            up(S.MESSAGE_WAITING, source=Source.SEND),
            up(S.MESSAGE_WAITING),
            up(S.DELIVERED_TO_TERMINAL, received_at=5.0),
            up(S.DELIVERED_TO_NETWORK),
        ]
    )
    assert [a.event is not None for a in applied] == [True, False, True, False]
    events = await read_all(store)
    assert events == [a.event for a in applied if a.event is not None]
    assert [(e.status, e.previous, e.source) for e in events] == [
        (S.MESSAGE_WAITING, None, Source.SEND),
        (S.DELIVERED_TO_TERMINAL, S.MESSAGE_WAITING, Source.CALLBACK),
    ]
    assert (events[1].request_id, events[1].address, events[1].at) == (REQ, ADDR, 5.0)


async def test_change_without_advance_is_stored_without_event(store: Store) -> None:
    """A learned sender or a conflict flag is written to the state but logs no event."""
    await store.apply([up(S.DELIVERED_TO_TERMINAL)])
    [learned] = await store.apply([up(S.MESSAGE_WAITING, sender=SENDER, sms_parts=2)])
    [conflict] = await store.apply([up(S.DELIVERY_IMPOSSIBLE)])
    assert (learned.result.changed, learned.result.advanced, learned.event) == (True, False, None)
    assert (conflict.result.changed, conflict.result.advanced, conflict.event) == (
        True,
        False,
        None,
    )
    state = await store.get(REQ, ADDR)
    assert summary(state) == (S.DELIVERED_TO_TERMINAL, None, True, SENDER, 2)
    assert len(await read_all(store)) == 1


async def test_conflict_winner_logs_event_with_flag(store: Store) -> None:
    """A stronger final arriving second logs one event flagged as a conflict."""
    await store.apply([up(S.DELIVERY_IMPOSSIBLE)])
    [applied] = await store.apply([up(S.DELIVERED_TO_TERMINAL)])
    assert applied.event is not None
    assert (applied.event.status, applied.event.previous, applied.event.conflict) == (
        S.DELIVERED_TO_TERMINAL,
        S.DELIVERY_IMPOSSIBLE,
        True,
    )


async def test_multipart_parts_are_stored(store: Store) -> None:
    """Parts delivered and the part count are kept on states and events."""
    await store.apply([up(S.PARTIALLY_DELIVERED, parts=1, sms_parts=3)])
    await store.apply([up(S.PARTIALLY_DELIVERED, parts=2, sms_parts=3)])
    events = await read_all(store)
    assert [(e.parts_delivered, e.sms_parts) for e in events] == [(1, 3), (2, 3)]
    assert summary(await store.get(REQ, ADDR)) == (S.PARTIALLY_DELIVERED, 2, False, None, 3)


async def test_failing_update_rolls_back_its_whole_call(store: Store) -> None:
    """If one update of a call raises, none of that call's states or events stay written."""
    await store.apply([up(S.PARTIALLY_DELIVERED, parts=1)])
    last = await store.last_cursor()
    malformed = up(S.PARTIALLY_DELIVERED, parts="2")  # an int was due: merge cannot compare
    with pytest.raises(TypeError):
        await store.apply(
            [
                up(S.MESSAGE_WAITING, "tel:+33600000001"),
                up(S.DELIVERED_TO_NETWORK, "tel:+33600000002", request_id="new"),
                malformed,
            ]
        )
    assert await store.get(REQ, "tel:+33600000001") is None
    assert await store.get_request("new") == []
    assert summary(await store.get(REQ, ADDR)) == (S.PARTIALLY_DELIVERED, 1, False, None, None)
    assert await store.last_cursor() == last
    [applied] = await store.apply([up(S.MESSAGE_WAITING, "tel:+33600000001")])
    assert applied.event is not None


async def test_get_request(store: Store) -> None:
    """``get_request`` returns every recipient of one request, sorted by address, and no other."""
    await store.apply(
        [
            up(S.MESSAGE_WAITING, "tel:+33600000003"),
            up(S.MESSAGE_WAITING, "tel:+33600000001"),
            up(S.DELIVERED_TO_TERMINAL, "tel:+33600000002"),
            up(S.MESSAGE_WAITING, "tel:+33600000009", request_id="other"),
        ]
    )
    states = await store.get_request(REQ)
    assert [s.address for s in states] == [f"tel:+3360000000{i}" for i in (1, 2, 3)]
    assert states[1].status == S.DELIVERED_TO_TERMINAL
    assert await store.get_request("never-seen") == []


# --- the contract: the event log ---------------------------------------------------------------


async def test_cursors_increase_and_resume_exactly_after(store: Store) -> None:
    """Cursors strictly increase, and ``read_events(after=c)`` resumes right after ``c``."""
    assert await store.last_cursor() is None
    for i in range(6):
        await store.apply([up(S.MESSAGE_WAITING, f"tel:+3361000000{i}")])
    events = await store.read_events(None)
    keys = [store.cursor_key(e.cursor) for e in events]
    assert len(events) == 6 and keys == sorted(keys) and len(set(keys)) == 6
    for i, event in enumerate(events):
        assert await store.read_events(event.cursor) == events[i + 1 :]
    assert await store.read_events(None, limit=2) == events[:2]
    assert await store.read_events(events[1].cursor, limit=3) == events[2:5]
    assert await store.last_cursor() == events[-1].cursor


async def test_cursor_key_of_a_cursor(store: Store) -> None:
    """A store's own cursors parse to sortable keys."""
    [applied] = await store.apply([up(S.MESSAGE_WAITING)])
    assert applied.event is not None
    key = store.cursor_key(applied.event.cursor)
    assert isinstance(key, tuple) and len(key) == 2


@pytest.mark.parametrize("garbage", ["", "abc", "-1", " 7", "7 ", "+7", "1.5", "1_0", "٣", "0x1"])
async def test_malformed_cursor_raises_value_error(store: Store, garbage: str) -> None:
    """A cursor that is not a decimal integer is refused by ``cursor_key`` and ``read_events``."""
    with pytest.raises(ValueError, match="cursor"):
        store.cursor_key(garbage)
    with pytest.raises(ValueError, match="cursor"):
        await store.read_events(garbage)


async def test_read_events_waits_and_wakes_on_apply(store: Store) -> None:
    """A waiting reader is woken by a concurrent apply, long before its timeout."""
    await store.apply([up(S.MESSAGE_WAITING)])
    last = await store.last_cursor()
    reader = asyncio.create_task(store.read_events(last, timeout=WAIT))
    await asyncio.sleep(0.05)
    assert not reader.done()
    started = time.monotonic()
    await store.apply([up(S.DELIVERED_TO_TERMINAL)])
    events = await asyncio.wait_for(reader, WAIT)
    assert time.monotonic() - started < 1.0
    assert [e.status for e in events] == [S.DELIVERED_TO_TERMINAL]


async def test_read_events_ignores_updates_that_log_nothing(store: Store) -> None:
    """A duplicate does not end the wait; the next real advance does."""
    await store.apply([up(S.MESSAGE_WAITING)])
    last = await store.last_cursor()
    reader = asyncio.create_task(store.read_events(last, timeout=WAIT))
    await store.apply([up(S.MESSAGE_WAITING)])
    await asyncio.sleep(0.05)
    assert not reader.done()
    await store.apply([up(S.DELIVERED_TO_NETWORK)])
    assert [e.status for e in await asyncio.wait_for(reader, WAIT)] == [S.DELIVERED_TO_NETWORK]


async def test_read_events_times_out_empty(store: Store) -> None:
    """With nothing new, ``read_events`` waits about its timeout and returns an empty list."""
    started = time.monotonic()
    assert await store.read_events(None, timeout=0.2) == []
    assert 0.15 <= time.monotonic() - started < 2.0


async def test_read_events_without_timeout_does_not_wait(store: Store) -> None:
    """With the default timeout of 0, an empty log answers at once."""
    started = time.monotonic()
    assert await store.read_events(None) == []
    assert time.monotonic() - started < 0.5


async def test_read_events_rejects_bad_limit(store: Store) -> None:
    """A limit below 1 is a caller error."""
    with pytest.raises(ValueError, match="limit"):
        await store.read_events(None, limit=0)


# --- the contract: concurrency ------------------------------------------------------------------


def scenario(rng: random.Random) -> dict[tuple[str, str], list[DeliveryUpdate]]:
    """Per pair, a life of updates with duplicates (and for some, a contradicting final)."""
    life = [
        (S.MESSAGE_ACCEPTED, None),
        (S.MESSAGE_WAITING, None),
        (S.DELIVERED_TO_NETWORK, None),
        (S.PARTIALLY_DELIVERED, 1),
        (S.PARTIALLY_DELIVERED, 2),
        (S.DELIVERED_TO_TERMINAL, 3),
    ]
    pairs: dict[tuple[str, str], list[DeliveryUpdate]] = {}
    for r, n in itertools.product(range(4), range(25)):
        request_id, address = f"req-{r}", f"tel:+336{n:08d}"
        steps = life + rng.sample(life, 3)
        if n % 5 == 0:
            steps.append((S.DELIVERY_IMPOSSIBLE, None))
        pairs[request_id, address] = [
            up(status, address, request_id=request_id, parts=parts, sms_parts=3, sender=SENDER)
            for status, parts in steps
        ]
    return pairs


def expected_state(updates: Sequence[DeliveryUpdate]) -> DeliveryState:
    """The state a sequential merge of the updates ends in (any order gives the same summary)."""
    state: DeliveryState | None = None
    for update in updates:
        state = merge(state, update).state
    assert state is not None
    return state


async def apply_concurrently(
    store: Store, updates: list[DeliveryUpdate], rng: random.Random
) -> list[Applied]:
    """Apply shuffled updates as many concurrent calls of 1 to 8 updates each."""
    rng.shuffle(updates)
    chunks = []
    while updates:
        size = rng.randint(1, 8)
        chunks.append(updates[:size])
        updates = updates[size:]
    async with asyncio.timeout(WAIT):
        results = await asyncio.gather(*(store.apply(chunk) for chunk in chunks))
    return [applied for result in results for applied in result]


async def test_concurrent_applies_converge_and_log_each_advance_once(store: Store) -> None:
    """Concurrent shuffled, duplicated, out-of-order applies lose no update and log each advance
    exactly once, ending in the states of a sequential merge."""
    rng = random.Random(20240611)
    pairs = scenario(rng)
    applied = await apply_concurrently(store, [u for ups in pairs.values() for u in ups], rng)

    for (request_id, address), updates in pairs.items():
        assert summary(await store.get(request_id, address)) == summary(expected_state(updates))
    log = await read_all(store)
    assert [store.cursor_key(e.cursor) for e in log] == sorted(
        store.cursor_key(e.cursor) for e in log
    )
    logged = sorted((a.event for a in applied if a.event), key=lambda e: store.cursor_key(e.cursor))
    assert log == logged
    assert len(log) == sum(a.result.advanced for a in applied)
    await check_event_chains(store, log, pairs)


async def check_event_chains(
    store: Store, log: list[DeliveryEvent], pairs: dict[tuple[str, str], list[DeliveryUpdate]]
) -> None:
    """Per pair, each event starts where the previous one ended, and the last one is the state."""
    by_pair: dict[tuple[str, str], list[DeliveryEvent]] = {}
    for event in log:
        by_pair.setdefault((event.request_id, event.address), []).append(event)
    assert set(by_pair) == set(pairs)
    for (request_id, address), events in by_pair.items():
        previous = [None, *(e.status for e in events[:-1])]
        assert [e.previous for e in events] == previous
        state = await store.get(request_id, address)
        assert state is not None and events[-1].status == state.status


# --- the contract: the polling schedule ---------------------------------------------------------


async def test_claim_due_takes_only_due_requests_earliest_first(store: Store) -> None:
    """Only requests due at ``now`` are claimed, earliest first, at most ``limit``."""
    await store.schedule("late", SENDER, tracked_at=0.0, poll_at=300.0)
    await store.schedule("second", SENDER, tracked_at=0.0, poll_at=120.0)
    await store.schedule("first", "Acme", tracked_at=0.0, poll_at=60.0)
    assert await store.claim_due(59.0) == []
    claimed = await store.claim_due(200.0, limit=5)
    assert [(p.request_id, p.sender, p.next_poll_at, p.attempts) for p in claimed] == [
        ("first", "Acme", 60.0, 0),
        ("second", SENDER, 120.0, 0),
    ]


async def test_claim_due_respects_limit(store: Store) -> None:
    """No more than ``limit`` requests are claimed at once; the rest stay due."""
    for i in range(5):
        await store.schedule(f"r{i}", SENDER, tracked_at=0.0, poll_at=float(i))
    first = await store.claim_due(10.0, limit=2)
    rest = await store.claim_due(10.0, limit=10)
    assert [p.request_id for p in first] == ["r0", "r1"]
    assert [p.request_id for p in rest] == ["r2", "r3", "r4"]


async def test_claimed_request_is_leased(store: Store) -> None:
    """A claimed request is hidden for the lease, then due again if nobody rescheduled it."""
    await store.schedule(REQ, SENDER, tracked_at=0.0, poll_at=10.0)
    assert len(await store.claim_due(10.0, lease=30.0)) == 1
    assert await store.claim_due(39.0) == []
    assert [p.request_id for p in await store.claim_due(40.0)] == [REQ]


async def test_reschedule_releases_the_lease(store: Store) -> None:
    """Rescheduling sets the next poll and attempts and makes the request claimable then."""
    await store.schedule(REQ, SENDER, tracked_at=5.0, poll_at=10.0)
    await store.claim_due(10.0, lease=1000.0)
    await store.reschedule(REQ, next_poll_at=50.0, attempts=2)
    assert await store.claim_due(49.0) == []
    [again] = await store.claim_due(50.0)
    assert (again.tracked_at, again.next_poll_at, again.attempts) == (5.0, 50.0, 2)


async def test_schedule_again_keeps_attempts(store: Store) -> None:
    """Scheduling a known request moves its poll time but keeps its attempts and first track."""
    await store.schedule(REQ, SENDER, tracked_at=5.0, poll_at=10.0)
    await store.reschedule(REQ, next_poll_at=20.0, attempts=3)
    await store.schedule(REQ, SENDER, tracked_at=8.0, poll_at=15.0)
    [entry] = await store.claim_due(15.0)
    assert (entry.tracked_at, entry.next_poll_at, entry.attempts) == (5.0, 15.0, 3)


async def test_unschedule(store: Store) -> None:
    """An unscheduled request is never claimed; unscheduling or rescheduling an unknown one is a
    no-op."""
    await store.schedule(REQ, SENDER, tracked_at=0.0, poll_at=0.0)
    await store.unschedule(REQ)
    await store.unschedule("never-scheduled")
    await store.reschedule("never-scheduled", next_poll_at=0.0, attempts=1)
    assert await store.claim_due(100.0) == []


# --- the contract: lifecycle --------------------------------------------------------------------


@pytest.mark.parametrize("kind", STORE_KINDS)
async def test_open_and_close_are_idempotent(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Opening or closing twice is harmless; a closed store refuses work with StoreError."""
    store = make_store(kind, tmp_path, request)
    await store.open()
    await store.open()
    await store.aclose()
    await store.aclose()
    with pytest.raises(StoreError):
        await store.apply([up(S.MESSAGE_WAITING)])
    with pytest.raises(StoreError):
        await store.open()


@pytest.mark.parametrize("kind", STORE_KINDS)
async def test_close_wakes_a_waiting_reader(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Closing a store ends a reader's wait with StoreError instead of leaving it hanging."""
    store = make_store(kind, tmp_path, request)
    await store.open()
    reader = asyncio.create_task(store.read_events(None, timeout=WAIT))
    await asyncio.sleep(0.05)
    await store.aclose()
    with pytest.raises(StoreError):
        await asyncio.wait_for(reader, 2.0)


# --- MemoryStore --------------------------------------------------------------------------------


async def test_memory_retention_drops_the_oldest_events() -> None:
    """Past ``max_events`` the oldest events go; an old cursor resumes at the oldest retained."""
    async with MemoryStore(max_events=3) as store:
        for i in range(5):
            await store.apply([up(S.MESSAGE_WAITING, f"tel:+3361000000{i}")])
        retained = await store.read_events(None)
        assert [e.cursor for e in retained] == ["3", "4", "5"]
        assert await store.read_events("1") == retained
        assert await store.read_events("3") == retained[1:]
        assert await store.last_cursor() == "5"


async def test_memory_retention_stays_bounded() -> None:
    """A long run keeps the log within ``max_events`` plus its trimming slack."""
    async with MemoryStore(max_events=10) as store:
        for i in range(2000):
            await store.apply([up(S.MESSAGE_WAITING, f"tel:+33{i:010d}")])
        assert [e.cursor for e in await read_all(store)] == [str(n) for n in range(1991, 2001)]
        assert len(store._log.shapes) <= 10 + 64


async def test_memory_states_share_interned_shapes() -> None:
    """Recipients in the same state share one shape tuple and the request id string."""
    async with MemoryStore() as store:
        await store.apply(
            [up(S.MESSAGE_WAITING, f"tel:+3360000000{i}", sender=SENDER) for i in (1, 2)]
        )
        rows = list(store._requests[REQ].rows.values())
        assert rows[0][1] is rows[1][1]
        assert store._log.request_ids[0] is store._log.request_ids[1]


async def test_memory_states_are_invisible_to_the_garbage_collector() -> None:
    """A million tracked recipients must not make every full collection walk a million rows:
    the rows hold plain values only, so the collector stops tracking them."""
    async with MemoryStore() as store:
        gc.collect()
        before = len(gc.get_objects())
        for start in range(0, 5000, 100):
            await store.apply_events(
                [
                    up(status, f"tel:+33{i:010d}", sender=SENDER)
                    for i in range(start, start + 100)
                    for status in (S.MESSAGE_WAITING, S.DELIVERY_UNCERTAIN)
                ]
            )
        gc.collect()
        tracked = len(gc.get_objects()) - before
        assert tracked < 100, f"{tracked} objects tracked for 5,000 recipients of one request"
        assert (await store.get(REQ, "tel:+330000000001")) == DeliveryState(
            REQ, "tel:+330000000001", S.DELIVERY_UNCERTAIN, sender=SENDER, updated_at=0.0
        )


def test_memory_default_and_invalid_max_events() -> None:
    """The default retention is documented; a bound below 1 is refused."""
    assert MemoryStore().max_events == DEFAULT_MAX_EVENTS
    with pytest.raises(ValueError, match="max_events"):
        MemoryStore(max_events=0)


# --- SQLiteStore --------------------------------------------------------------------------------


async def test_sqlite_reopen_keeps_states_events_and_schedule(tmp_path: Path) -> None:
    """A new store on the same file finds the same states, events and schedule; cursors go on."""
    path = tmp_path / "keep.db"
    async with SQLiteStore(path) as first:
        await first.apply([up(S.MESSAGE_WAITING, sender=SENDER), up(S.DELIVERED_TO_TERMINAL)])
        await first.apply([up("Unheard", "tel:+33600000001", parts=1, sms_parts=2)])
        await first.schedule(REQ, SENDER, tracked_at=1.0, poll_at=2.0)
        states, events = await first.get_request(REQ), await read_all(first)
    async with SQLiteStore(path) as second:
        assert await second.get_request(REQ) == states
        assert await read_all(second) == events
        [again] = await second.apply([up(S.MESSAGE_WAITING, "tel:+33600000002")])
        assert again.event is not None
        assert second.cursor_key(again.event.cursor) > second.cursor_key(events[-1].cursor)
        assert [p.request_id for p in await second.claim_due(2.0)] == [REQ]


async def test_sqlite_group_commit_batches_concurrent_applies(tmp_path: Path) -> None:
    """Many concurrent applies share commits: fewer transactions than callers, all committed."""
    async with SQLiteStore(tmp_path / "group.db") as store:
        assert store._writer is not None
        before = store._writer.batches
        calls = [store.apply([up(S.MESSAGE_WAITING, f"tel:+33{i:010d}")]) for i in range(300)]
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
        calls = [store.apply([up(S.MESSAGE_WAITING, f"tel:+3360000000{i}")]) for i in range(5)]
        async with asyncio.timeout(WAIT):
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(o, StoreUnavailableError) for o in outcomes)
        monkeypatch.undo()
        assert await store.get_request(REQ) == []
        assert await store.last_cursor() is None
        [applied] = await store.apply([up(S.MESSAGE_WAITING)])
        assert applied.event is not None


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
            await store.apply([up(S.MESSAGE_WAITING), up(S.MESSAGE_WAITING, "tel:+999")])
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
        good = asyncio.create_task(store.apply([up(S.MESSAGE_WAITING)]))
        bad = asyncio.create_task(store.apply([up(S.MESSAGE_WAITING, "tel:+999")]))
        later = asyncio.create_task(store.apply([up(S.DELIVERED_TO_TERMINAL)]))
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


async def test_sqlite_reader_sees_another_connections_writes(tmp_path: Path) -> None:
    """A waiting reader re-checks the file and sees events another store (process) wrote."""
    path = tmp_path / "shared.db"
    async with SQLiteStore(path, poll_interval=0.05) as reader, SQLiteStore(path) as writer:
        waiting = asyncio.create_task(reader.read_events(None, timeout=WAIT))
        await asyncio.sleep(0.1)
        await writer.apply([up(S.MESSAGE_WAITING)])
        events = await asyncio.wait_for(waiting, 2.0)
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


async def test_sqlite_in_memory_database() -> None:
    """``:memory:`` gives a private, working database."""
    async with SQLiteStore(":memory:") as store:
        await store.apply([up(S.MESSAGE_WAITING)])
        assert (await store.get(REQ, ADDR)) is not None


async def open_fails(path: Path | str) -> str:
    """Open a store that must fail; the StoreError's message."""
    store = SQLiteStore(path)
    with pytest.raises(StoreError) as info:
        await store.open()
    with pytest.raises(StoreError):
        await store.apply([up(S.MESSAGE_WAITING)])
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


# --- open_store ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "attributes"),
    [
        ("memory://", MemoryStore, {"max_events": DEFAULT_MAX_EVENTS}),
        ("MEMORY://", MemoryStore, {}),
        ("memory://?max_events=500", MemoryStore, {"max_events": 500}),
        ("sqlite:///opensms.db", SQLiteStore, {"path": "opensms.db", "synchronous": "NORMAL"}),
        ("sqlite:///data/o%20s.db", SQLiteStore, {"path": "data/o s.db"}),
        ("sqlite:////var/lib/opensms.db", SQLiteStore, {"path": "/var/lib/opensms.db"}),
        ("sqlite:///:memory:", SQLiteStore, {"path": ":memory:"}),
        ("sqlite:///x.db?synchronous=full", SQLiteStore, {"synchronous": "FULL"}),
    ],
)
def test_open_store_urls(url: str, kind: type, attributes: dict[str, object]) -> None:
    """Each supported URL gives the right, unopened store with its options."""
    store = open_store(url)
    assert isinstance(store, kind)
    for name, value in attributes.items():
        assert getattr(store, name) == value


@pytest.mark.parametrize(
    "url",
    [
        "",
        "opensms.db",
        "memory",
        "ftp://host/x",
        "memory://somewhere",
        "memory://?max_events=0",
        "memory://?max_events=ten",
        "memory://?max_events=1&max_events=2",
        "memory://?colour=blue",
        "memory://?=x",
        "sqlite://",
        "sqlite:///",
        "sqlite:///data/",
        "sqlite://host/x.db",
        "sqlite:///x.db?synchronous=OFF",
        "sqlite:///x.db?journal=delete",
        "sqlite://[::1/x.db",
    ],
)
def test_open_store_rejects_bad_urls(url: str) -> None:
    """Malformed or unknown URLs raise InvalidStoreURLError (a ValueError)."""
    with pytest.raises(InvalidStoreURLError):
        open_store(url)


def test_open_store_rejects_non_strings() -> None:
    """A store URL must be a string."""
    with pytest.raises(InvalidStoreURLError):
        open_store(Path("x.db"))  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://:pw@cache.example:6380/1"])
def test_open_store_hands_redis_urls_to_the_redis_store(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis:// and rediss:// go whole to ``RedisStore.from_url`` of the lazily imported module."""
    seen: list[str] = []

    class FakeRedisStore:
        @classmethod
        def from_url(cls, given: str) -> str:
            seen.append(given)
            return "a redis store"

    fake = types.ModuleType("opensms_async.stores.redis")
    fake.RedisStore = FakeRedisStore  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "opensms_async.stores.redis", fake)
    assert open_store(url) == "a redis store"
    assert seen == [url]


def test_open_store_redis_module_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the Redis store module, a redis:// URL is refused clearly, password hidden."""
    monkeypatch.setitem(sys.modules, "opensms_async.stores.redis", None)
    with pytest.raises(InvalidStoreURLError, match="RedisStore") as info:
        open_store("redis://:hunter2@localhost/0")
    assert "hunter2" not in str(info.value)


class _NoRedisPackage(importlib.abc.MetaPathFinder):
    """An import hook under which the store module fails to import ``redis``."""

    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name == "opensms_async.stores.redis":
            raise ModuleNotFoundError("No module named 'redis'", name="redis")


def test_open_store_redis_package_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the redis package, a redis:// URL says to install the extra."""
    monkeypatch.delitem(sys.modules, "opensms_async.stores.redis", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoRedisPackage(), *sys.meta_path])
    with pytest.raises(InvalidStoreURLError, match=r"opensms-async\[redis\]"):
        open_store("rediss://localhost/0")


# --- RedisStore ---------------------------------------------------------------------------------


def redis_client(url: str) -> redis.Redis:
    """A synchronous client to look at what a RedisStore wrote."""
    return redis.Redis.from_url(url, decode_responses=True)


@pytest.mark.integration
async def test_redis_replicas_see_each_others_states_and_events(redis_url: str) -> None:
    """Two stores on one server share states and the log; a waiting reader on one is woken by an
    apply on the other."""
    async with RedisStore(redis_url) as one, RedisStore(redis_url) as two:
        await one.apply([up(S.MESSAGE_WAITING, sender=SENDER)])
        reader = asyncio.create_task(one.read_events(await one.last_cursor(), timeout=WAIT))
        await asyncio.sleep(0.05)
        [applied] = await two.apply([up(S.DELIVERED_TO_TERMINAL)])
        assert await asyncio.wait_for(reader, WAIT) == [applied.event]
        assert await one.get(REQ, ADDR) == await two.get(REQ, ADDR) == applied.result.state
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
        assert sorted(e.cursor for r in results for a in r if (e := a.event)) == sorted(
            e.cursor for e in log
        )
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
        await store.apply([up(S.DELIVERED_TO_TERMINAL)])
        with redis_client(redis_url) as client:
            assert client.ttl(f"opensms:state:{REQ}") == -1


@pytest.mark.integration
async def test_redis_prefixes_isolate_stores(redis_url: str) -> None:
    """Stores with different prefixes on one database see nothing of each other."""
    async with RedisStore(redis_url, prefix="a") as a, RedisStore(redis_url, prefix="b") as b:
        await a.apply([up(S.MESSAGE_WAITING)])
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
            await store.apply([up(S.MESSAGE_WAITING)])
            server.stop()
            for call in (store.apply([up(S.DELIVERED_TO_NETWORK)]), store.get(REQ, ADDR)):
                with pytest.raises(StoreUnavailableError, match="unavailable") as info:
                    await asyncio.wait_for(call, WAIT)
                assert "hunter2" not in str(info.value)
            server.start()  # empty: no data, no scripts
            [applied] = await store.apply([up(S.DELIVERED_TO_TERMINAL)])
            assert applied.event is not None and applied.event.previous is None
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
            await store.apply([up(S.MESSAGE_WAITING, sender=SENDER), up(S.DELIVERED_TO_TERMINAL)])
            await store.schedule(REQ, SENDER, tracked_at=1.0, poll_at=2.0)
            states, events = await store.get_request(REQ), await read_all(store)
        server.kill()
        server.start()
        async with RedisStore(server.url) as store:
            assert await store.get_request(REQ) == states
            assert await read_all(store) == events
            [again] = await store.apply([up(S.MESSAGE_WAITING, "tel:+33600000002")])
            assert again.event is not None
            assert store.cursor_key(again.event.cursor) > store.cursor_key(events[-1].cursor)
            assert [p.request_id for p in await store.claim_due(2.0)] == [REQ]
    finally:
        server.stop()


@pytest.mark.integration
async def test_redis_script_cache_flushed(redis_url: str) -> None:
    """After SCRIPT FLUSH (as after a restart), the scripts are loaded again transparently."""
    async with RedisStore(redis_url) as store:
        await store.apply([up(S.MESSAGE_WAITING)])
        with redis_client(redis_url) as client:
            client.script_flush()
        [applied] = await store.apply([up(S.DELIVERED_TO_NETWORK)])
        assert applied.event is not None
        await store.schedule(REQ, SENDER, tracked_at=0.0, poll_at=0.0)


@pytest.mark.integration
async def test_redis_foreign_key_fails_the_batch_before_any_write(redis_url: str) -> None:
    """A key of the wrong type under the prefix fails the script before it writes anything."""
    with redis_client(redis_url) as client:
        client.set("opensms:state:taken", "not a hash")
    async with RedisStore(redis_url) as store:
        with pytest.raises(StoreError, match="WRONGTYPE"):
            await store.apply([up(S.MESSAGE_WAITING), up(S.MESSAGE_WAITING, request_id="taken")])
        assert await store.get(REQ, ADDR) is None
        assert await store.last_cursor() is None


@pytest.mark.integration
async def test_redis_concurrent_applies_share_script_calls(redis_url: str) -> None:
    """Concurrent applies are merged by fewer script calls than callers (group commit)."""
    async with RedisStore(redis_url) as store:
        with redis_client(redis_url) as client:
            client.config_resetstat()
            calls = [store.apply([up(S.MESSAGE_WAITING, f"tel:+33{i:010d}")]) for i in range(300)]
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
            applied = await store.apply(batch)
            first = first or applied[0].event
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
        await store.apply([up(S.MESSAGE_WAITING, f"tel:+3360000000{i}") for i in range(6)])
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
        [applied] = await two.apply([up(S.DELIVERED_TO_TERMINAL)])
        assert await asyncio.wait_for(reader, WAIT) == [applied.event]
        assert await one.read_group("live", "a", block=0.1) == []


@pytest.mark.integration
async def test_redis_claim_stale_takes_over_a_dead_consumers_events(redis_url: str) -> None:
    """Events a consumer never acknowledged go to another after ``min_idle``."""
    async with RedisStore(redis_url) as store:
        await store.create_group("workers")
        await store.apply([up(S.MESSAGE_WAITING, f"tel:+3360000000{i}") for i in range(3)])
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


@pytest.mark.parametrize(
    ("url", "attributes"),
    [
        ("redis://localhost:6379/0", {"prefix": "opensms", "retention": 604800.0}),
        ("rediss://:pw@cache.example:6380/1?prefix=sms", {"prefix": "sms"}),
        ("redis://h?retention=60&max_events=5", {"retention": 60.0, "max_events": 5}),
        ("redis://h/2?socket_timeout=1.5&prefix=x", {"prefix": "x"}),
    ],
)
def test_redis_url_options(url: str, attributes: dict[str, object]) -> None:
    """``open_store`` gives a RedisStore with the URL's options (nothing connects yet)."""
    store = open_store(url)
    assert isinstance(store, RedisStore)
    for name, value in attributes.items():
        assert getattr(store, name) == value


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@h/0?colour=blue",
        "redis://:hunter2@h/0?retention=0",
        "redis://:hunter2@h/0?retention=soon",
        "redis://:hunter2@h/0?max_events=0",
        "redis://:hunter2@h/0?prefix=",
        "redis://:hunter2@h/0?prefix=a&prefix=b",
        "redis://:hunter2@h/zero",
        "redis://:hunter2@h/0/1",
        "redis://:hunter2@h:99999/0",
        "redis://:hunter2@h/0?socket_timeout=never",
    ],
)
def test_redis_bad_urls(url: str) -> None:
    """Malformed Redis URLs and unknown options are refused without showing the password."""
    with pytest.raises(InvalidStoreURLError) as info:
        open_store(url)
    assert "hunter2" not in str(info.value)


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
    """Any batches applied through the Lua merge give the results, states and events of a fold
    of ``_state.merge``."""
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
    """Apply ``batches`` to a fresh prefix and compare with the pure merge, update by update."""
    prefix = f"hyp-{uuid.uuid4().hex}"
    states: dict[tuple[str, str], DeliveryState] = {}
    logged: list[DeliveryEvent] = []
    expected: list[DeliveryEvent] = []
    async with RedisStore(url, prefix=prefix) as store:
        for batch in batches:
            for update, got in zip(batch, await store.apply(batch), strict=True):
                before = states.get((update.request_id, update.address))
                want = merge(before, update)
                assert got.result.state == want.state
                assert (got.result.outcome, got.result.previous, got.result.advanced) == (
                    want.outcome,
                    want.previous,
                    want.advanced,
                )
                assert got.result.changed == want.changed
                states[update.request_id, update.address] = want.state
                if want.advanced:
                    expected.append(expected_event(want.state, want.previous, update.source))
                logged += [got.event] if got.event is not None else []
        for (request_id, address), state in states.items():
            assert await store.get(request_id, address) == state
        assert await read_all(store) == logged
        assert [attrs.evolve(e, cursor="") for e in logged] == expected
    with redis_client(url) as client:
        client.delete(*client.scan_iter(f"{prefix}:*"))


@pytest.mark.integration
async def test_redis_store_over_a_client_of_yours(redis_url: str) -> None:
    """A client passed in (decoding responses, even) is used as it is and left open."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with RedisStore(client, prefix="mine") as store:
            [applied] = await store.apply([up(S.DELIVERED_TO_TERMINAL, parts=1, sms_parts=1)])
            assert await store.get_request(REQ) == [applied.result.state]
            assert await store.read_events(None, timeout=1.0) == [applied.event]
            await store.schedule(REQ, SENDER, tracked_at=0.0, poll_at=0.0)
            assert [p.request_id for p in await store.claim_due(1.0)] == [REQ]
            assert "127.0.0.1" in repr(store)
        assert await client.ping()
    finally:
        await client.aclose()
    with pytest.raises(TypeError, match="client"):
        RedisStore(None)  # type: ignore[arg-type]
