"""Scale-out: several ``opensms receive`` processes on one Redis, and a Redis that goes away.

BICS posts each callback once, in any order, sometimes twice, to whichever replica its load
balancer picks. The claims under test: every recipient converges to its final state, every state
advance is logged once in the shared stream, every replica's ``tracker.events()`` (the JSON lines
``opensms receive`` prints) yields all of them, a consumer group hands each to exactly one worker,
and a receiver whose Redis is down answers 503 (BICS would drop a 2xx it could not keep) and
records again once Redis is back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from receiver_processes import TOKEN, ReceiverProcess, post_load, receiver_process
from redis_server import RedisServer, start_durable_redis_server

from opensms_async import DeliveryEvent, DeliveryStatus
from opensms_async._state import rank
from opensms_async.stores import RedisStore
from opensms_async.testing import delivery_callback_body

pytestmark = pytest.mark.integration

S = DeliveryStatus
REPLICAS = 3
RECIPIENTS = 150
PER_REQUEST = 10
COPIES = 2
"""Each callback is posted this many times (BICS may send one twice)."""
SMS_PARTS = 3
PRINT_TIMEOUT = 15.0
GROUP = "billing"


# --- the load: a status chain per recipient, shuffled, duplicated --------------------------


def pair(recipient: int) -> tuple[str, str]:
    """The (request id, address) of a numbered recipient."""
    return f"replica-{recipient // PER_REQUEST:03d}", f"tel:+3362{recipient:07d}"


def chain(recipient: int) -> list[tuple[DeliveryStatus, int]]:
    """The callbacks one recipient gets, in the order the network would send them."""
    final = (S.DELIVERY_IMPOSSIBLE, 2) if recipient % 5 == 0 else (S.DELIVERED_TO_TERMINAL, 3)
    partial = S.PARTIALLY_DELIVERED
    return [(S.DELIVERED_TO_NETWORK, 0), (partial, 1), (partial, 2), final]


def callback_body(recipient: int, status: DeliveryStatus, parts: int) -> bytes:
    """A BICS delivery-info callback for one recipient."""
    request_id, address = pair(recipient)
    body = delivery_callback_body(
        request_id, address, status, security_token=TOKEN, parts=SMS_PARTS,
        parts_delivered=parts or None,
    )  # fmt: skip
    return json.dumps(body).encode()


def shuffled_callbacks(seed: int) -> list[tuple[int, DeliveryStatus, int]]:
    """Every callback of every recipient, each ``COPIES`` times, in a seeded random order."""
    posts = [(r, status, parts) for r in range(RECIPIENTS) for status, parts in chain(r)] * COPIES
    random.Random(seed).shuffle(posts)
    return posts


def key(status: str, parts: int | None) -> tuple[int, int]:
    """How far a state is: its rank, then its parts delivered (the merge's order)."""
    return rank(DeliveryStatus.parse(status)), parts or 0


# --- reading back ----------------------------------------------------------------------------


async def all_events(store: RedisStore) -> list[DeliveryEvent]:
    """The whole event stream, oldest first (bounded: the load logs at most 600 events)."""
    events = await store.read_events(None, limit=10_000)
    assert len(events) < 10_000
    return events


def check_chains(events: list[DeliveryEvent]) -> int:
    """Assert each recipient's events advance strictly, chain by ``previous`` and end at its
    final; returns how many events repeat an earlier (pair, status, parts)."""
    seen = collections.Counter(
        (e.request_id, e.address, e.status, e.parts_delivered) for e in events
    )
    by_pair: dict[tuple[str, str], list[DeliveryEvent]] = collections.defaultdict(list)
    for event in events:
        by_pair[event.request_id, event.address].append(event)
    assert set(by_pair) == {pair(r) for r in range(RECIPIENTS)}
    for recipient in range(RECIPIENTS):
        mine = by_pair[pair(recipient)]
        keys = [key(e.status, e.parts_delivered) for e in mine]
        assert keys == sorted(set(keys)), f"{pair(recipient)} did not advance strictly: {mine}"
        assert [e.previous for e in mine] == [None, *(e.status for e in mine[:-1])]
        assert (mine[-1].status, mine[-1].parts_delivered) == chain(recipient)[-1]
        assert [e.is_final for e in mine].count(True) == 1
    return sum(count - 1 for count in seen.values())


async def consume_group(store: RedisStore, name: str, stop: asyncio.Event) -> list[str]:
    """One worker of the consumer group: read, acknowledge, until ``stop`` and nothing left."""
    cursors: list[str] = []
    for _ in range(2_000):  # bounded: each round blocks at most 0.2 s
        batch = await store.read_group(GROUP, name, count=50, block=0.2)
        if batch:
            assert await store.ack(GROUP, *(e.cursor for e in batch)) == len(batch)
            cursors += [e.cursor for e in batch]
        elif stop.is_set():
            return cursors
    raise AssertionError(f"consumer {name} did not finish")


# --- the tests -------------------------------------------------------------------------------


async def test_three_replicas_turn_shuffled_duplicated_callbacks_into_one_stream(
    redis_url: str, tmp_path: Path
) -> None:
    """Three receiver processes on one Redis, sent 1,200 shuffled and duplicated callbacks
    round-robin, acknowledge all, converge every recipient to its final state, log each advance
    once, each print every event, and a two-worker consumer group gets each event exactly once."""
    posts = shuffled_callbacks(seed=11)
    bodies = {i: callback_body(*post) for i, post in enumerate(posts)}
    workers = [RedisStore(redis_url), RedisStore(redis_url)]
    async with contextlib.AsyncExitStack() as stack:
        for store in workers:
            await stack.enter_async_context(store)
        assert await workers[0].create_group(GROUP, start="0")
        replicas: list[ReceiverProcess] = [
            await stack.enter_async_context(receiver_process(redis_url, tmp_path, name=f"r{n}"))
            for n in range(REPLICAS)
        ]
        stop = asyncio.Event()
        consumers = [
            asyncio.create_task(consume_group(store, f"worker-{n}", stop))
            for n, store in enumerate(workers)
        ]
        try:
            load = await post_load([r.callback_url for r in replicas], bodies)
        finally:
            stop.set()
        deliveries = await asyncio.gather(*consumers)

        events = await all_events(workers[0])
        cursors = [e.cursor for e in events]
        printed = [await r.wait_printed(len(events), PRINT_TIMEOUT) for r in replicas]
        states = {r: await workers[1].get(*pair(r)) for r in range(RECIPIENTS)}
        lost = [
            posts[i]
            for i in load.acked
            if (state := states[posts[i][0]]) is None
            or key(state.status, state.parts_delivered) < key(posts[i][1], posts[i][2])
        ]
        duplicates = check_chains(events)
        pending = [
            await store.read_pending(GROUP, f"worker-{n}") for n, store in enumerate(workers)
        ]
        print(
            f"\nreplicas: {REPLICAS}, callbacks sent {len(load.sent)} ({dict(load.by_url)}), "
            f"acknowledged {len(load.acked)}, answers {dict(load.codes)}, lost {len(lost)}, "
            f"events {len(events)}, duplicate events {duplicates}, printed per replica "
            f"{[len(p) for p in printed]}, group deliveries {[len(d) for d in deliveries]}"
        )

        assert len(load.sent) == len(bodies) == RECIPIENTS * 4 * COPIES
        assert load.codes == {204: len(bodies)} and load.failed == 0
        assert all(load.by_url[r.callback_url] > 0 for r in replicas)
        assert not lost and duplicates == 0
        for recipient, state in states.items():
            assert state is not None
            final, parts = chain(recipient)[-1]
            assert (state.status, state.parts_delivered, state.sms_parts) == (
                final,
                parts,
                SMS_PARTS,
            )
            assert not state.conflict
        for replica, lines in zip(replicas, printed, strict=True):
            assert [line["cursor"] for line in lines] == cursors, replica.stderr()
        delivered = [cursor for worker in deliveries for cursor in worker]
        assert sorted(delivered) == sorted(cursors)  # each event to exactly one worker
        assert pending == [[], []]


async def test_receiver_answers_503_while_redis_is_down_and_recovers(tmp_path: Path) -> None:
    """A receiver process whose redis-server is stopped answers 503 to every callback (never 2xx,
    never 500) and, once redis-server restarts on the same port, answers 204 again, stores the
    callbacks and prints their events."""
    redis: RedisServer = start_durable_redis_server(tmp_path / "redis")
    try:
        recipients = iter(range(RECIPIENTS))

        def batch(count: int) -> dict[int, bytes]:
            return {
                r: callback_body(r, S.DELIVERED_TO_TERMINAL, 3) for r in _take(recipients, count)
            }

        async with receiver_process(redis.url, tmp_path, name="receiver") as receiver:
            before, during, after = batch(20), batch(50), batch(20)
            up = await post_load(receiver.callback_url, before, concurrency=8)
            redis.stop()
            down = await post_load(receiver.callback_url, during, concurrency=8)
            redis.start()
            back = await post_load(receiver.callback_url, after, concurrency=8)
            printed = await receiver.wait_printed(len(before) + len(after), PRINT_TIMEOUT)
            print(
                f"\nredis down: before {dict(up.codes)}, during {dict(down.codes)}, "
                f"after restart {dict(back.codes)}, printed {len(printed)}"
            )
            assert up.codes == {204: len(before)}
            assert down.codes == {503: len(during)} and down.failed == 0
            assert back.codes == {204: len(after)}
            async with RedisStore(redis.url) as store:
                events = await all_events(store)
                states = [await store.get(*pair(r)) for r in [*before, *during, *after]]
            logged = sorted((e.request_id, e.address) for e in events)
            assert logged == sorted(pair(r) for r in [*before, *after])
            assert [s is not None for s in states] == [True] * 20 + [False] * 50 + [True] * 20
            assert [line["cursor"] for line in printed] == [e.cursor for e in events]
            assert await receiver.terminate() == 0, receiver.stderr()
    finally:
        redis.kill()


def _take(numbers: Any, count: int) -> list[int]:
    return [next(numbers) for _ in range(count)]
