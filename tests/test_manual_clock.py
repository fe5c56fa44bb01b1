"""``opensms_async.testing.ManualClock``: time that moves only when the test says."""

from __future__ import annotations

import asyncio

import pytest

from opensms_async import DeliveryInfoList, DeliveryTracker, SendResult
from opensms_async.testing import ManualClock


async def started(coro_task: asyncio.Task[None]) -> None:
    """Let ``coro_task`` run up to its first wait."""
    for _ in range(3):
        await asyncio.sleep(0)
    assert not coro_task.done()


async def test_a_sleep_returns_once_time_has_passed_it() -> None:
    """A sleep of 5 s is still waiting after 4.9 s of manual time and returns after 5."""
    clock = ManualClock(start=100.0)
    sleeper = asyncio.create_task(clock.sleep(5.0))
    await started(sleeper)
    clock.advance(4.9)
    await started(sleeper)
    clock.advance(0.1)
    await asyncio.wait_for(sleeper, 30)
    assert clock.time() == pytest.approx(105.0)


async def test_each_sleeper_wakes_at_its_own_time() -> None:
    """Of two sleepers, advancing past the first wakes only the first; next_wake names the
    other's time; sleeping() tells who still waits, by task name."""
    clock = ManualClock(start=0.0)
    short = asyncio.create_task(clock.sleep(1.0), name="short")
    long = asyncio.create_task(clock.sleep(10.0), name="long")
    await started(short)
    await started(long)
    assert clock.next_wake() == 1.0
    clock.advance(2.0)
    await asyncio.wait_for(short, 30)
    assert not long.done()
    assert clock.sleeping("long") and not clock.sleeping("short") and clock.sleeping()
    assert clock.next_wake() == 10.0
    clock.advance(8.0)
    await asyncio.wait_for(long, 30)
    assert not clock.sleeping() and clock.next_wake() is None
    assert clock.slept == [("short", 1.0), ("long", 10.0)]


async def test_a_zero_or_negative_sleep_returns_at_once() -> None:
    """sleep(0) and sleep(-1) return without the clock moving."""
    clock = ManualClock()
    async with asyncio.timeout(30):
        await clock.sleep(0)
        await clock.sleep(-1.0)
    assert clock.time() == 1_700_000_000.0


async def test_a_cancelled_sleep_is_forgotten() -> None:
    """Cancelling a sleeping task cancels its sleep, and the clock no longer counts it."""
    clock = ManualClock()
    sleeper = asyncio.create_task(clock.sleep(3.0))
    await started(sleeper)
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper
    assert not clock.sleeping() and clock.next_wake() is None


def test_time_never_goes_backwards() -> None:
    """advance() refuses a negative or NaN step, and the time stays where it was."""
    clock = ManualClock(start=10.0)
    for bad in (-0.5, float("nan")):
        with pytest.raises(ValueError, match="forwards"):
            clock.advance(bad)
    assert clock.time() == 10.0


POLLER = "opensms-reconciliation"
"""The name of the tracker's reconciliation task."""


async def poller_round(clock: ManualClock) -> None:
    """Wait until the poller has made its round and sleeps again (bounded)."""
    async with asyncio.timeout(30):
        await asyncio.sleep(0)
        while not clock.sleeping(POLLER):  # noqa: ASYNC110 - the poller's own task
            await asyncio.sleep(0.001)


class RecordingClient:
    """A client stand-in for the poller: records each poll, answers an empty delivery list."""

    def __init__(self) -> None:
        self.polled: list[str] = []

    async def get_delivery_infos(self, sender: str, request_id: str, **kw: object) -> object:
        """Record the poll."""
        self.polled.append(request_id)
        return DeliveryInfoList(delivery_infos=[])


async def test_a_tracker_on_a_manual_clock_polls_only_once_time_is_advanced() -> None:
    """A tracker given the clock does not reconcile a tracked send before ``reconcile_after``
    seconds of manual time have passed, and does once they have."""
    clock, client = ManualClock(), RecordingClient()
    sent = SendResult("req-1", "tel:+3212345", None, [], ("tel:+331",), "c")
    tracker = DeliveryTracker(
        client=client,  # type: ignore[arg-type]
        reconcile_after=60.0,
        clock=clock.time,
        sleep=clock.sleep,
    )
    async with tracker:
        await tracker.track(sent)
        await poller_round(clock)
        clock.advance(59.0)
        await poller_round(clock)
        assert client.polled == []
        clock.advance(2.0)
        await poller_round(clock)
        assert client.polled == ["req-1"]
