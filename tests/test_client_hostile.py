"""The client against a hostile or broken API, over real sockets: a raw asyncio server
(``hostile_server``) sends chosen bytes: absurd ``Retry-After`` headers, and more below."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hostile_server import HostileServer, Reply, Request, hostile_server

from opensms_async import OpenSMSClient, RateLimiter, RateLimitError
from opensms_async._retry import parse_retry_after

pytestmark = pytest.mark.integration

KEY = "hostile-key-7f3a"


def client_for(server: HostileServer, **kwargs: Any) -> OpenSMSClient:
    """A client of the hostile server that never sleeps between retries."""

    async def no_sleep(delay: float) -> None:
        await asyncio.sleep(0)

    kwargs.setdefault("sleep", no_sleep)
    return OpenSMSClient(api_key=KEY, base_url=server.url, **kwargs)


# --- item 2: one long Retry-After never freezes the shared limiter ---------------------------


class FakeTime:
    """A monotonic clock and a sleep that only advances it, recording every wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        """The fake monotonic time."""
        return self.now

    async def sleep(self, delay: float) -> None:
        """Record ``delay`` and advance the clock by it."""
        self.waits.append(delay)
        self.now += delay


@pytest.mark.parametrize(
    "retry_after", ["86400", "1e999", "inf", "nan", "Fri, 31 Dec 9999 23:59:59 GMT"]
)
async def test_a_refused_retry_after_is_not_everyones_wait(retry_after: str) -> None:
    """After a 429 whose Retry-After the call refuses, the limiter holds others at most 60 s."""
    answers = iter([Reply(429, (("Retry-After", retry_after),))])

    def handler(request: Request) -> Reply:
        return next(answers, Reply(404))

    time = FakeTime()
    limiter = RateLimiter(requests_per_hour=1000, clock=time.clock, sleep=time.sleep)
    async with (
        hostile_server(handler) as server,
        client_for(server, limiter=limiter, max_retries=0) as client,
    ):
        with pytest.raises(RateLimitError):
            await client.get_subscription()
        assert 0 < limiter.paused_for <= 60.0
        assert await client.get_subscription() is None  # after the bounded pause
    assert time.waits and all(0 < wait <= 60.0 for wait in time.waits)
    assert len(server.requests) == 2


def test_parse_retry_after_is_always_finite() -> None:
    """Retry-After values that are no finite number of seconds read as no header."""
    for value in ("1e999", "inf", "-inf", "nan", "Infinity"):
        assert parse_retry_after(value, 0.0) is None
    assert parse_retry_after("7", 0.0) == 7.0
    assert parse_retry_after("-3", 0.0) == 0.0


def test_limiter_pauses_are_bounded() -> None:
    """RateLimiter.pause never holds callers past max_pause, whatever it is given."""
    time = FakeTime()
    limiter = RateLimiter(clock=time.clock, max_pause=30.0, default_pause=10.0)
    for seconds in (86400.0, float("inf"), float("nan"), None, -5.0):
        limiter.pause(seconds)
        assert 0.0 <= limiter.paused_for <= 30.0
    with pytest.raises(ValueError, match="max_pause"):
        RateLimiter(max_pause=float("inf"))
