"""A client-side limiter shared by every concurrent call: an hourly budget and a concurrency cap.

BICS counts requests per hour and answers 429 past the quota, without rate-limit headers. The
limiter keeps the timestamps of the last hour's requests (a sliding window, exact), caps requests
in flight, and after a 429 pauses everyone until the server's ``Retry-After`` (or a default), for
at most ``max_pause``: a wait one call refused (``Retry-After`` past the client's cap) must not
become every later call's wait.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from ._constants import MAX_RETRY_AFTER

__all__ = ["RateLimiter"]

_WINDOW = 3600.0


class RateLimiter:
    """Limits requests per hour and in flight; share one instance between clients to pool them.

    After a 429 every caller is held for the server's ``Retry-After`` (``default_pause`` when it
    gives none), never longer than ``max_pause`` (default: the client's own cap on
    ``Retry-After``, 60 s, or ``default_pause`` if that is longer). ``clock`` (monotonic seconds)
    and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        *,
        requests_per_hour: int | None = None,
        max_concurrency: int | None = None,
        default_pause: float = 60.0,
        max_pause: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if requests_per_hour is not None and requests_per_hour < 1:
            raise ValueError("requests_per_hour must be at least 1")
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if not 0.0 <= default_pause < math.inf:
            raise ValueError("default_pause must be a finite number of seconds, 0 or more")
        if max_pause is None:
            max_pause = max(MAX_RETRY_AFTER, default_pause)
        if not default_pause <= max_pause < math.inf:
            raise ValueError("max_pause must be finite and at least default_pause")
        self.requests_per_hour = requests_per_hour
        self.max_concurrency = max_concurrency
        self.default_pause = default_pause
        self.max_pause = max_pause
        self._clock = clock
        self._sleep = sleep
        self._sent: collections.deque[float] = collections.deque()
        self._semaphore = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"RateLimiter(requests_per_hour={self.requests_per_hour!r}, "
            f"max_concurrency={self.max_concurrency!r})"
        )

    @property
    def paused_for(self) -> float:
        """Seconds left in the pause that followed a 429 (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())

    def pause(self, seconds: float | None) -> None:
        """Hold every caller for ``seconds`` (the default pause when None) from now.

        The pause is bounded by ``max_pause`` (``inf`` too); ``nan`` counts as None.
        """
        if seconds is None or math.isnan(seconds):
            seconds = self.default_pause
        until = self._clock() + min(max(0.0, seconds), self.max_pause)
        self._paused_until = max(self._paused_until, until)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for the budget, the pause and a concurrency slot; hold the slot while in use."""
        if self._semaphore is None:
            await self._admit()
            yield
            return
        async with self._semaphore:
            await self._admit()
            yield

    async def _admit(self) -> None:
        # One waiter at a time takes the next budget slot, so callers are admitted in FIFO order.
        async with self._lock:
            while (wait := self._wait_time()) > 0:
                await self._sleep(wait)
            if self.requests_per_hour is not None:
                self._sent.append(self._clock())

    def _wait_time(self) -> float:
        now = self._clock()
        wait = self._paused_until - now
        if self.requests_per_hour is None:
            return wait
        while self._sent and self._sent[0] <= now - _WINDOW:
            self._sent.popleft()
        if len(self._sent) >= self.requests_per_hour:
            wait = max(wait, self._sent[0] + _WINDOW - now)
        return wait
