"""A manual clock for tests: time moves only when the test says, and sleeps wait for it.

Hand :meth:`ManualClock.time` and :meth:`ManualClock.sleep` to whatever takes a ``clock`` and a
``sleep`` (``DeliveryTracker``, ``OpenSMSClient``, the simulator's ``clock``): a 60-second wait then
costs no real time, and what happens before and after it is decided by the test, not by how
loaded the machine is.
"""

from __future__ import annotations

import asyncio

import attrs

__all__ = ["ManualClock"]


@attrs.frozen(eq=False)  # each sleep is itself: compared by identity
class _Sleeper:
    until: float
    task: str
    wake: asyncio.Future[None]


class ManualClock:
    """Time that moves only with :meth:`advance`; :meth:`sleep` returns once time has passed it.

    ``start`` is the time at first (by default an epoch time in 2023, as ``time.time`` gives).
    Use one clock in one event loop.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._sleepers: list[_Sleeper] = []
        self.slept: list[tuple[str, float]] = []
        """``(task name, seconds)`` of every sleep asked for, in order."""

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now!r}, sleepers={len(self._sleepers)})"

    def time(self) -> float:
        """The current time (seconds)."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by ``seconds`` (at once for 0 or less)."""
        task = asyncio.current_task()
        name = task.get_name() if task is not None else "?"
        self.slept.append((name, seconds))
        wake = asyncio.get_running_loop().create_future()
        sleeper = _Sleeper(self._now + max(seconds, 0.0), name, wake)
        self._sleepers.append(sleeper)
        self._wake_due()
        try:
            await wake
        finally:
            if sleeper in self._sleepers:  # cancelled while waiting
                self._sleepers.remove(sleeper)

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds`` (not backwards) and wake every sleeper now due."""
        if not seconds >= 0:
            raise ValueError(f"a clock only moves forwards, not by {seconds!r} s")
        self._now += seconds
        self._wake_due()

    def sleeping(self, task: str | None = None) -> bool:
        """True while some task (or the task named ``task``) waits in :meth:`sleep`."""
        return any(not s.wake.done() and (task is None or s.task == task) for s in self._sleepers)

    def next_wake(self) -> float | None:
        """The earliest time a waiting sleeper wants to wake at; None when none waits."""
        return min((s.until for s in self._sleepers if not s.wake.done()), default=None)

    def _wake_due(self) -> None:
        for sleeper in [s for s in self._sleepers if s.until <= self._now]:
            self._sleepers.remove(sleeper)
            if not sleeper.wake.done():
                sleeper.wake.set_result(None)
