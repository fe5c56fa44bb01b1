"""The send's span context kept with the polling schedule (issue 13): every store gives the
``traceparent`` it was given back with the claimed request, so that a poller in another process
links its span to the send; SQLite files of earlier releases gain the column when opened."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from otel_helpers import Recorded, recording

from opensms_async import DeliveryTracker, OpenSMSClient
from opensms_async.stores import Store
from opensms_async.stores.memory import MemoryStore
from opensms_async.stores.redis import RedisStore
from opensms_async.stores.sqlite import SQLiteStore
from opensms_async.testing import run_simulator

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
OTHER = "00-11111111111111111111111111111111-2222222222222222-01"
SENDER = "tel:+3212345678"

STORE_KINDS = ["memory", "sqlite", pytest.param("redis", marks=pytest.mark.integration)]


@pytest.fixture
def otel() -> Iterator[Recorded]:
    """SDK providers recording in memory for this test, unset afterwards."""
    yield from recording()


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open store of each kind (Redis: on the session's emptied redis-server)."""
    kind = request.param
    instance: Store
    if kind == "memory":
        instance = MemoryStore()
    elif kind == "sqlite":
        instance = SQLiteStore(tmp_path / "store.db")
    else:
        instance = RedisStore(request.getfixturevalue("redis_url"))
    await instance.open()
    yield instance
    await instance.aclose()


async def test_a_claimed_request_carries_the_traceparent_it_was_scheduled_with(
    store: Store,
) -> None:
    """``schedule(traceparent=...)`` comes back on the claimed request; scheduling the same
    request again keeps the first one; a request scheduled without has None."""
    await store.schedule("traced", SENDER, tracked_at=1.0, poll_at=2.0, traceparent=TRACEPARENT)
    await store.schedule("traced", SENDER, tracked_at=1.0, poll_at=2.0, traceparent=OTHER)
    await store.schedule("plain", SENDER, tracked_at=1.0, poll_at=2.0)
    claimed = {p.request_id: p for p in await store.claim_due(10.0)}
    assert claimed["traced"].traceparent == TRACEPARENT
    assert claimed["plain"].traceparent is None
    await store.reschedule("traced", next_poll_at=20.0, attempts=1)
    [again] = await store.claim_due(30.0)
    assert (again.request_id, again.traceparent, again.attempts) == ("traced", TRACEPARENT, 1)


async def test_a_sqlite_file_of_an_earlier_release_gains_the_column(tmp_path: Path) -> None:
    """A file whose schedule has no ``traceparent`` column (an earlier release's) is opened,
    keeps its entries and records traceparents from then on."""
    path = tmp_path / "old.db"
    old = SQLiteStore(path)
    await old.open()
    await old.schedule("before", SENDER, tracked_at=1.0, poll_at=2.0)
    await old.aclose()
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE pending DROP COLUMN traceparent")
    reopened = SQLiteStore(path)
    await reopened.open()
    try:
        await reopened.schedule("after", SENDER, tracked_at=1.0, poll_at=2.0, traceparent=OTHER)
        claimed = {p.request_id: p.traceparent for p in await reopened.claim_due(10.0)}
    finally:
        await reopened.aclose()
    assert claimed == {"before": None, "after": OTHER}


async def test_a_poll_in_another_process_links_to_the_send(otel: Recorded, tmp_path: Path) -> None:
    """One tracker tracks a traced send and never polls; another, sharing the SQLite file and
    nothing else (as another process would), polls it: its ``opensms.reconcile`` span links
    to the ``opensms.send_message`` span of the first."""
    store_url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with run_simulator(seed=5) as sim:
        async with (
            OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client,
            DeliveryTracker(store_url, reconcile_after=0.2) as sender_side,
        ):
            sent = await client.send_message(SENDER, ["+33612345678"], "Hello")
            await sender_side.track(sent)
        async with (
            OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client,
            DeliveryTracker(store_url, client=client, reconcile_after=0.2) as poller_side,
        ):
            await poller_side.wait_for_final(sent.request_id, sent.recipients[0], timeout=30)
            async with asyncio.timeout(30):  # the span ends just after the poll that made it
                while not any(s.name == "opensms.reconcile" for s in otel.spans()):  # noqa: ASYNC110 - spans end in another task, no event
                    await asyncio.sleep(0.01)
    [send] = [s for s in otel.spans() if s.name == "opensms.send_message"]
    reconciles = [s for s in otel.spans() if s.name == "opensms.reconcile"]
    assert reconciles and send.context is not None
    for span in reconciles:
        linked = {(link.context.trace_id, link.context.span_id) for link in span.links}
        assert linked == {(send.context.trace_id, send.context.span_id)}


class _OldSignatureStore(MemoryStore):
    """A store of a user's own written before ``schedule`` took ``traceparent``."""

    async def schedule(  # type: ignore[override]
        self, request_id: str, sender: str, *, tracked_at: float, poll_at: float
    ) -> None:
        await super().schedule(request_id, sender, tracked_at=tracked_at, poll_at=poll_at)


async def test_a_store_without_the_traceparent_argument_works_while_nothing_traces() -> None:
    """Without tracing (no SDK, or the API absent), ``track()`` calls ``schedule`` exactly as
    before: a store of the user's own that predates the argument keeps working."""
    async with (
        run_simulator(seed=6) as sim,
        OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client,
        # Deliberately not the Store protocol of today: a store written before the argument.
        # With a client: a memory store's requests are scheduled only when someone polls them
        # (not before an hour here, so the test's own claim takes it).
        DeliveryTracker(
            _OldSignatureStore(),  # type: ignore[arg-type]
            client=client,
            reconcile_after=3600,
        ) as tracker,
    ):
        sent = await client.send_message(SENDER, ["+33612345678"], "Hello")
        assert sent.traceparent is None
        await tracker.track(sent)
        [pending] = await tracker.store.claim_due(1e12)
        assert (pending.request_id, pending.traceparent) == (sent.request_id, None)
