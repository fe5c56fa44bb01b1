"""The reconciliation poller under a 429: the whole poller waits it out, boundedly.

A 429 is about the account (BICS's hourly quota), not about the one request that met it: every
other poll would meet it too. Real sockets (the simulator answers the polls); the poller runs on
a manual clock (``opensms_async.testing.ManualClock``), so a 5-second pause costs no real time
and the polls sent during it are counted exactly.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from opensms_async import DeliveryTracker, OpenSMSClient, SendResult
from opensms_async._limiter import RateLimiter
from opensms_async._poller import MAX_RATE_LIMIT_PAUSE, RATE_LIMIT_PAUSE, rate_limit_pause
from opensms_async.testing import Fault, ManualClock, RunningSimulator, run_simulator

pytestmark = pytest.mark.integration

SENDER = "tel:+3212345678"
PENDING = 300
RECONCILE_AFTER = 1.0
CONCURRENCY = 4
"""The tracker's default ``poll_concurrency``: polls in flight when the first 429 answers."""
WAIT = 30.0
"""Real seconds any wait here may take at most (300 polls on a loaded machine fit easily)."""
POLLER = "opensms-reconciliation"


def pauses(clock: ManualClock, name: str = POLLER) -> list[float]:
    """The sleeps ``name`` asked for that were not its idle tick (a pause after a 429)."""
    return [s for n, s in clock.slept if n == name and s > RECONCILE_AFTER / 4]


def pending_send(n: int) -> SendResult:
    """A tracked send of one recipient; the simulator never saw it (polls for it answer 404
    once the 429s stop, which is all these tests need: that the poll was sent)."""
    return SendResult(
        request_id=f"req-{n:04d}",
        sender=SENDER,
        resource_url=None,
        delivery_infos=[],
        recipients=(f"tel:+3361000{n:04d}",),
        client_correlator=f"c-{n}",
    )


def polls(sim: RunningSimulator) -> int:
    """deliveryInfos requests the simulator received."""
    return sum(r.endpoint == "poll" for r in sim.simulator.requests_log)


def polled_requests(sim: RunningSimulator) -> set[str]:
    """The request ids the simulator received a poll for."""
    return {r.path.split("/requests/")[1].split("/")[0] for r in sim.simulator.requests_log
            if r.endpoint == "poll"}  # fmt: skip


async def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Poll ``condition`` every 10 ms; TimeoutError after ``timeout`` real seconds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - state of other tasks, no event to wait on
            await asyncio.sleep(0.01)


async def settle(clock: ManualClock) -> None:
    """Wait until the poller has finished its round and sleeps (no poll in flight)."""
    await asyncio.sleep(0)
    await wait_until(lambda: clock.sleeping(POLLER))


@asynccontextmanager
async def polling(
    sim: RunningSimulator, clock: ManualClock, *, limiter: RateLimiter | None = None
) -> AsyncIterator[DeliveryTracker]:
    """A tracker on the manual clock polling the simulator, ``PENDING`` requests tracked."""
    async with (
        OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url, limiter=limiter) as client,
        DeliveryTracker(
            client=client,
            reconcile_after=RECONCILE_AFTER,
            poll_concurrency=CONCURRENCY,
            clock=clock.time,
            sleep=clock.sleep,
            rng=random.Random(1),
        ) as tracker,
    ):
        for n in range(PENDING):
            await tracker.track(pending_send(n))
        await settle(clock)
        assert polls(sim) == 0
        yield tracker


@pytest.mark.parametrize("with_limiter", [False, True], ids=["no-limiter", "limiter"])
async def test_a_429_pauses_every_poll_for_its_retry_after(with_limiter: bool) -> None:
    """300 requests due and every poll answered 429 with Retry-After: 5: only the polls already
    in flight go out, then none for 5 s; after it, one round in flight again; once the 429s
    stop, every request is polled. With or without a client limiter."""
    clock = ManualClock()
    limiter = RateLimiter(clock=clock.time, sleep=clock.sleep) if with_limiter else None
    async with run_simulator(seed=3) as sim, polling(sim, clock, limiter=limiter):
        sim.simulator.add_fault(Fault.respond(429, retry_after=5, endpoint="poll", times=None))
        clock.advance(RECONCILE_AFTER)  # all 300 due at once
        await settle(clock)
        first = polls(sim)
        assert 1 <= first <= CONCURRENCY, f"{first} polls went out despite the 429"
        assert pauses(clock) == pytest.approx([5.0])

        clock.advance(4.9)  # inside the pause: nothing is sent
        assert clock.sleeping(POLLER)  # still held by the pause: it cannot have woken
        await settle(clock)
        assert polls(sim) == first

        clock.advance(0.2)  # the pause is over: one round meets the 429 again
        await settle(clock)
        assert first < polls(sim) <= first + CONCURRENCY
        assert pauses(clock) == pytest.approx([5.0, 5.0])

        sim.simulator.clear_faults()
        clock.advance(5.1)
        await settle(clock)
        assert polled_requests(sim) == {pending_send(n).request_id for n in range(PENDING)}


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(1e9, MAX_RATE_LIMIT_PAUSE), (None, RATE_LIMIT_PAUSE)],
    ids=["huge", "missing"],
)
async def test_a_huge_or_missing_retry_after_pauses_for_a_bounded_time(
    retry_after: float | None, expected: float
) -> None:
    """A Retry-After of 10^9 s pauses the poller for the 60 s bound, not forever; a 429 without
    one pauses for 1 s, then twice as long at each further 429; polls resume after each."""
    clock = ManualClock()
    async with run_simulator(seed=4) as sim, polling(sim, clock):
        sim.simulator.add_fault(
            Fault.respond(429, retry_after=retry_after, endpoint="poll", times=None)
        )
        clock.advance(RECONCILE_AFTER)
        await settle(clock)
        assert pauses(clock) == pytest.approx([expected])
        first = polls(sim)
        assert first <= CONCURRENCY
        clock.advance(expected)
        await settle(clock)
        assert first < polls(sim) <= first + CONCURRENCY
        assert pauses(clock) == pytest.approx([expected, min(2 * expected, MAX_RATE_LIMIT_PAUSE)])


def test_rate_limit_pause_honours_retry_after_within_bounds() -> None:
    """The pause after a 429: Retry-After as given (never below the backoff of a streak of 429s),
    1 s doubling per consecutive 429 without one, and never more than 60 s."""
    assert rate_limit_pause(5.0, 1) == 5.0
    assert rate_limit_pause(5.0, 4) == 8.0  # four 429s in a row: the backoff has passed it
    assert rate_limit_pause(0.0, 1) == RATE_LIMIT_PAUSE  # "now" is no reason to hammer
    assert [rate_limit_pause(None, n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert rate_limit_pause(1e9, 1) == MAX_RATE_LIMIT_PAUSE
    assert rate_limit_pause(float("inf"), 1) == MAX_RATE_LIMIT_PAUSE
    assert rate_limit_pause(None, 10_000) == MAX_RATE_LIMIT_PAUSE
    assert rate_limit_pause(float("nan"), 2) == 2 * RATE_LIMIT_PAUSE
