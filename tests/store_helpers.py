"""What the store test files share: the pair most tests use, an update builder, readers of the
log, and a scenario of concurrent, shuffled, duplicated updates with its expected outcome."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Sequence
from typing import Any

import redis

from opensms_async._models import DeliveryStatus, Status
from opensms_async._state import DeliveryEvent, DeliveryState, DeliveryUpdate, merge
from opensms_async.stores import Store

S = DeliveryStatus
REQ = "4c27e3a8-0f4d-4d2e-9a51-0d3c5e6f7a8b"
ADDR = "tel:+33612345678"
SENDER = "tel:+32123456"
WAIT = 30.0
"""Upper bound on any wait in the store tests: a hang fails fast instead of stalling the run."""


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
) -> list[DeliveryEvent]:
    """Apply shuffled updates as many concurrent calls of 1 to 8 updates each."""
    rng.shuffle(updates)
    chunks = []
    while updates:
        size = rng.randint(1, 8)
        chunks.append(updates[:size])
        updates = updates[size:]
    async with asyncio.timeout(WAIT):
        results = await asyncio.gather(*(store.apply_events(chunk) for chunk in chunks))
    return [event for result in results for event in result]


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


def redis_client(url: str) -> redis.Redis:
    """A synchronous client to look at what a RedisStore wrote."""
    return redis.Redis.from_url(url, decode_responses=True)
