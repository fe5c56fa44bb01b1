"""The contract every delivery store keeps, one suite run over every store kind.

What it checks is what ``opensms_async.stores._base`` asks of a store: the merge, atomically per
call; an event per advance and none otherwise; durability as declared; the listeners; cursors in
the declared order; the polling schedule; the lifecycle. To run it on a new store, add its kind
to ``STORE_KINDS`` and build it in ``make_store``. The Redis kind runs against a real
``redis-server`` started by a fixture; a missing server fails loudly (``make test`` installs it)
rather than skipping.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
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
    scenario,
    summary,
    up,
)

from opensms_async._exceptions import StoreError
from opensms_async._state import DeliveryEvent, Source
from opensms_async.stores import Schedule, Store
from opensms_async.stores.memory import MemoryStore
from opensms_async.stores.redis import RedisStore
from opensms_async.stores.sqlite import SQLiteStore

STORE_KINDS = [
    "memory",
    "sqlite",
    "sqlite-memory",
    pytest.param("redis", marks=pytest.mark.integration),
]
"""Every store kind the contract runs on: a new store adds its name here and to ``make_store``."""


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    """A fresh, unopened store of one kind; called again in one test, a store on the same data
    where there is any to share (the same file, the same Redis database and prefix)."""
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "store.db")
    if kind == "sqlite-memory":
        return SQLiteStore(":memory:")
    if kind == "redis":
        return RedisStore(request.getfixturevalue("redis_url"))
    raise ValueError(kind)


@contextlib.asynccontextmanager
async def opened(store: Store) -> AsyncIterator[Store]:
    """``store`` open for the block, closed after it (the protocol does not promise ``async
    with``, only ``open`` and ``aclose``)."""
    await store.open()
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture(params=STORE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Each store kind in turn."""
    return str(request.param)


@pytest.fixture
async def store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open store of each kind, closed after the test."""
    instance = make_store(kind, tmp_path, request)
    await instance.open()
    yield instance
    await instance.aclose()


# --- the contract: states ---------------------------------------------------------------------


async def test_store_implements_the_protocol(store: Store) -> None:
    """Each store is a ``Store`` (and so a ``Schedule``) and declares what it is: only the Redis
    store is shared between processes; the memory store and a ``:memory:`` SQLite database are
    not durable; the in-process stores number their events one by one."""
    assert isinstance(store, Store) and isinstance(store, Schedule)
    assert store.shared is isinstance(store, RedisStore)
    in_memory = isinstance(store, MemoryStore) or getattr(store, "path", None) == ":memory:"
    assert store.durable is not in_memory
    assert store.consecutive is not isinstance(store, RedisStore)


async def test_apply_then_get(store: Store) -> None:
    """An applied update is what ``get`` returns, and its event says so; an unseen pair is None."""
    [event] = await store.apply_events(
        [up(S.DELIVERED_TO_NETWORK, sender=SENDER, received_at=12.5)]
    )
    assert (event.request_id, event.address, event.status, event.previous, event.at) == (
        REQ,
        ADDR,
        S.DELIVERED_TO_NETWORK,
        None,
        12.5,
    )
    state = await store.get(REQ, ADDR)
    assert state is not None and (state.status, state.sender, state.updated_at) == (
        S.DELIVERED_TO_NETWORK,
        SENDER,
        12.5,
    )
    assert await store.get(REQ, "tel:+33600000000") is None
    assert await store.get("other", ADDR) is None


async def test_apply_events_returns_what_it_logged(store: Store) -> None:
    """``apply_events`` returns exactly the events it appended to the log, oldest first."""
    chain = [S.DELIVERED_TO_NETWORK, S.DELIVERED_TO_NETWORK, S.MESSAGE_WAITING]
    chain.append(S.DELIVERY_IMPOSSIBLE)
    updates = [up(status, f"tel:+3361000000{i}") for status in chain for i in range(3)]
    first = await store.apply_events(updates[:6])
    assert [e.status for e in first] == [S.DELIVERED_TO_NETWORK] * 3
    events = await store.apply_events(updates[6:])
    assert [e.status for e in events] == [S.DELIVERY_IMPOSSIBLE] * 3
    assert await read_all(store) == first + events
    assert [summary(await store.get(REQ, f"tel:+3361000000{i}")) for i in range(3)] == [
        (S.DELIVERY_IMPOSSIBLE, None, False, None, None)
    ] * 3
    assert await store.apply_events([]) == []


async def test_apply_empty_batch(store: Store) -> None:
    """Applying nothing returns nothing and logs nothing."""
    assert await store.apply_events([]) == []
    assert await store.last_cursor() is None


async def test_statuses_round_trip(store: Store) -> None:
    """Known statuses come back as enum members (finals are final), unknown strings verbatim."""
    await store.apply_events(
        [up(S.DELIVERED_TO_TERMINAL), up("BrandNewStatus", "tel:+33600000001")]
    )
    delivered = await store.get(REQ, ADDR)
    unknown = await store.get(REQ, "tel:+33600000001")
    assert delivered is not None and delivered.status is S.DELIVERED_TO_TERMINAL
    assert delivered.is_final
    assert unknown is not None and unknown.status == "BrandNewStatus" and not unknown.is_final
    events = await read_all(store)
    assert [e.status for e in events] == [S.DELIVERED_TO_TERMINAL, "BrandNewStatus"]
    assert events[0].is_final


async def test_updates_of_one_call_apply_in_order(store: Store) -> None:
    """One pair's updates apply in the order given: each event starts where the last ended,
    and a lower status after a final one changes nothing."""
    events = await store.apply_events(
        [up(S.MESSAGE_WAITING), up(S.DELIVERED_TO_TERMINAL), up(S.DELIVERED_TO_NETWORK)]
    )
    assert [(e.status, e.previous) for e in events] == [
        (S.MESSAGE_WAITING, None),
        (S.DELIVERED_TO_TERMINAL, S.MESSAGE_WAITING),
    ]
    assert summary(await store.get(REQ, ADDR)) == (S.DELIVERED_TO_TERMINAL, None, False, None, None)


async def test_events_only_on_advance(store: Store) -> None:
    """Duplicates and stale updates log nothing; each advance logs exactly one event."""
    logged = await store.apply_events(
        [
            up(S.MESSAGE_WAITING, source=Source.SEND),
            up(S.MESSAGE_WAITING),
            up(S.DELIVERED_TO_TERMINAL, received_at=5.0),
            up(S.DELIVERED_TO_NETWORK),
        ]
    )
    events = await read_all(store)
    assert events == logged
    assert [(e.status, e.previous, e.source) for e in events] == [
        (S.MESSAGE_WAITING, None, Source.SEND),
        (S.DELIVERED_TO_TERMINAL, S.MESSAGE_WAITING, Source.CALLBACK),
    ]
    assert (events[1].request_id, events[1].address, events[1].at) == (REQ, ADDR, 5.0)


async def test_change_without_advance_is_stored_without_event(store: Store) -> None:
    """A learned sender or a conflict flag is written to the state but logs no event."""
    await store.apply_events([up(S.DELIVERED_TO_TERMINAL)])
    assert await store.apply_events([up(S.MESSAGE_WAITING, sender=SENDER, sms_parts=2)]) == []
    assert summary(await store.get(REQ, ADDR)) == (S.DELIVERED_TO_TERMINAL, None, False, SENDER, 2)
    assert await store.apply_events([up(S.DELIVERY_IMPOSSIBLE)]) == []
    state = await store.get(REQ, ADDR)
    assert summary(state) == (S.DELIVERED_TO_TERMINAL, None, True, SENDER, 2)
    assert len(await read_all(store)) == 1


async def test_conflict_winner_logs_event_with_flag(store: Store) -> None:
    """A stronger final arriving second logs one event flagged as a conflict."""
    await store.apply_events([up(S.DELIVERY_IMPOSSIBLE)])
    [event] = await store.apply_events([up(S.DELIVERED_TO_TERMINAL)])
    assert (event.status, event.previous, event.conflict) == (
        S.DELIVERED_TO_TERMINAL,
        S.DELIVERY_IMPOSSIBLE,
        True,
    )


async def test_multipart_parts_are_stored(store: Store) -> None:
    """Parts delivered and the part count are kept on states and events."""
    await store.apply_events([up(S.PARTIALLY_DELIVERED, parts=1, sms_parts=3)])
    await store.apply_events([up(S.PARTIALLY_DELIVERED, parts=2, sms_parts=3)])
    events = await read_all(store)
    assert [(e.parts_delivered, e.sms_parts) for e in events] == [(1, 3), (2, 3)]
    assert summary(await store.get(REQ, ADDR)) == (S.PARTIALLY_DELIVERED, 2, False, None, 3)


async def test_failing_update_rolls_back_its_whole_call(store: Store) -> None:
    """If one update of a call raises, none of that call's states or events stay written."""
    await store.apply_events([up(S.PARTIALLY_DELIVERED, parts=1)])
    last = await store.last_cursor()
    malformed = up(S.PARTIALLY_DELIVERED, parts=2)
    # Past the gate, as only a bug could: an int was due, and the merge cannot compare a str.
    object.__setattr__(malformed, "parts_delivered", "2")
    with pytest.raises((TypeError, ValueError)):
        await store.apply_events(
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
    assert len(await store.apply_events([up(S.MESSAGE_WAITING, "tel:+33600000001")])) == 1


async def test_get_request(store: Store) -> None:
    """``get_request`` returns every recipient of one request, sorted by address, and no other."""
    await store.apply_events(
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


async def test_a_durable_store_keeps_what_it_recorded(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """What a durable store answered for is there for the next store on the same data (the next
    process): states, events and the schedule; a store that is not durable starts empty."""
    async with opened(make_store(kind, tmp_path, request)) as first:
        await first.apply_events(
            [up(S.MESSAGE_WAITING, sender=SENDER), up(S.DELIVERED_TO_TERMINAL)]
        )
        await first.schedule(REQ, SENDER, tracked_at=1.0, poll_at=2.0)
        states, events = await first.get_request(REQ), await read_all(first)
    async with opened(make_store(kind, tmp_path, request)) as second:
        if not second.durable:
            assert await second.get_request(REQ) == [] and await read_all(second) == []
            assert await second.claim_due(2.0) == []
            return
        assert await second.get_request(REQ) == states
        assert await read_all(second) == events
        [again] = await second.apply_events([up(S.MESSAGE_WAITING, "tel:+33600000002")])
        assert second.cursor_key(again.cursor) > second.cursor_key(events[-1].cursor)
        assert [p.request_id for p in await second.claim_due(2.0)] == [REQ]


# --- the contract: the event log ---------------------------------------------------------------


async def test_cursors_increase_and_resume_exactly_after(store: Store) -> None:
    """Cursors strictly increase, and ``read_events(after=c)`` resumes right after ``c``."""
    assert await store.last_cursor() is None
    for i in range(6):
        await store.apply_events([up(S.MESSAGE_WAITING, f"tel:+3361000000{i}")])
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
    [event] = await store.apply_events([up(S.MESSAGE_WAITING)])
    key = store.cursor_key(event.cursor)
    assert isinstance(key, tuple) and len(key) == 2


async def test_consecutive_cursors_are_consecutive(store: Store) -> None:
    """A store that declares ``consecutive`` numbers its events one by one, across calls; any
    store's cursors strictly increase in its ``cursor_key`` order."""
    for i in range(3):
        await store.apply_events(
            [up(S.MESSAGE_WAITING, f"tel:+3361000000{i}{j}") for j in range(i)]
        )
    keys = [store.cursor_key(e.cursor) for e in await read_all(store)]
    assert len(keys) == 3 and keys == sorted(set(keys))
    if store.consecutive:
        assert keys == [(keys[0][0] + n, 0) for n in range(3)]


@pytest.mark.parametrize("garbage", ["", "abc", "-1", " 7", "7 ", "+7", "1.5", "1_0", "٣", "0x1"])
async def test_malformed_cursor_raises_value_error(store: Store, garbage: str) -> None:
    """A cursor that is not a decimal integer is refused by ``cursor_key`` and ``read_events``."""
    with pytest.raises(ValueError, match="cursor"):
        store.cursor_key(garbage)
    with pytest.raises(ValueError, match="cursor"):
        await store.read_events(garbage)


LONG_WAIT = 240.0
"""A reader's timeout (and SQLite's re-check interval) far beyond the ``WAIT`` a test allows it."""


async def test_read_events_waits_and_wakes_on_apply(store: Store) -> None:
    """A waiting reader is woken by a concurrent apply, long before its timeout."""
    if isinstance(store, SQLiteStore):
        store._poll_interval = LONG_WAIT  # no re-check of the file ends the wait: the wake-up must
    await store.apply_events([up(S.MESSAGE_WAITING)])
    last = await store.last_cursor()
    reader = asyncio.create_task(store.read_events(last, timeout=LONG_WAIT))
    await asyncio.sleep(0.05)
    assert not reader.done()
    await store.apply_events([up(S.DELIVERED_TO_TERMINAL)])
    # Not a speed bound (a loaded machine may take seconds): a reader the apply did not wake
    # sleeps its 240 s timeout, far past this guard.
    events = await asyncio.wait_for(reader, WAIT)
    assert [e.status for e in events] == [S.DELIVERED_TO_TERMINAL]


async def test_read_events_ignores_updates_that_log_nothing(store: Store) -> None:
    """A duplicate does not end the wait; the next real advance does."""
    await store.apply_events([up(S.MESSAGE_WAITING)])
    last = await store.last_cursor()
    reader = asyncio.create_task(store.read_events(last, timeout=WAIT))
    await store.apply_events([up(S.MESSAGE_WAITING)])
    await asyncio.sleep(0.05)
    assert not reader.done()
    await store.apply_events([up(S.DELIVERED_TO_NETWORK)])
    assert [e.status for e in await asyncio.wait_for(reader, WAIT)] == [S.DELIVERED_TO_NETWORK]


async def test_read_events_times_out_empty(store: Store) -> None:
    """With nothing new, ``read_events`` waits about its timeout and returns an empty list."""
    started = time.monotonic()
    async with asyncio.timeout(WAIT):  # a hang guard: how much longer a loaded machine takes varies
        assert await store.read_events(None, timeout=0.2) == []
    assert time.monotonic() - started >= 0.15


async def test_read_events_without_timeout_does_not_wait(store: Store) -> None:
    """With the default timeout of 0, an empty log answers at once."""
    # A read that waits with timeout 0 waits for the next event (Redis's BLOCK 0 is forever): with
    # none coming, the guard fails it. No speed bound: a loaded machine's round trip varies.
    async with asyncio.timeout(WAIT):
        assert await store.read_events(None) == []


async def test_read_events_rejects_bad_limit(store: Store) -> None:
    """A limit below 1 is a caller error."""
    with pytest.raises(ValueError, match="limit"):
        await store.read_events(None, limit=0)


# --- the contract: concurrency ------------------------------------------------------------------


async def test_concurrent_applies_converge_and_log_each_advance_once(store: Store) -> None:
    """Concurrent shuffled, duplicated, out-of-order applies lose no update and log each advance
    exactly once, ending in the states of a sequential merge."""
    rng = random.Random(20240611)
    pairs = scenario(rng)
    logged = await apply_concurrently(store, [u for ups in pairs.values() for u in ups], rng)

    for (request_id, address), updates in pairs.items():
        assert summary(await store.get(request_id, address)) == summary(expected_state(updates))
    log = await read_all(store)
    assert [store.cursor_key(e.cursor) for e in log] == sorted(
        store.cursor_key(e.cursor) for e in log
    )
    assert log == sorted(logged, key=lambda e: store.cursor_key(e.cursor))
    await check_event_chains(store, log, pairs)


# --- the contract: listeners ---------------------------------------------------------------------


async def test_listeners_get_every_logged_event_once_in_log_order(store: Store) -> None:
    """Every event a store logs goes to each listener once, in log order, before the call that
    logged it returns, whether or not that caller still waits (one is cancelled here); a
    listener that raises fails no write and stops no other listener; a removed one hears
    nothing more."""
    heard: list[DeliveryEvent] = []
    store.listen(heard.extend)

    def failing(events: Sequence[DeliveryEvent]) -> None:
        raise RuntimeError("a listener's bug")

    stop_failing = store.listen(failing)
    removed: list[DeliveryEvent] = []
    store.listen(removed.extend)()  # removed at once
    [first] = await store.apply_events([up(S.MESSAGE_WAITING)])
    assert heard == [first]
    given_up = asyncio.ensure_future(store.apply_events([up(S.DELIVERED_TO_NETWORK)]))
    await asyncio.sleep(0)  # under way (queued or sent), then its caller gives up
    given_up.cancel()
    rng = random.Random(7)
    pairs = scenario(rng)
    await apply_concurrently(store, [u for ups in pairs.values() for u in ups], rng)
    stop_failing()
    stop_failing()  # idempotent
    await store.apply_events([up(S.DELIVERED_TO_TERMINAL)])
    log = await read_all(store)
    assert heard == log
    assert removed == []


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
        await store.apply_events([up(S.MESSAGE_WAITING)])
    with pytest.raises(StoreError):
        await store.open()


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
        await asyncio.wait_for(reader, WAIT)
