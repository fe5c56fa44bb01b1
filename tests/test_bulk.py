"""``send_many`` against the bundled simulator, over real sockets: every message taken gets
exactly one result, whatever goes wrong with it; a failing ``messages`` iterable is reported after
the results of what was taken; leaving early never hangs; cancellation is not a result."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from opensms_async import (
    BulkResult,
    InvalidMessageError,
    Message,
    OpenSMSClient,
    SendResult,
)
from opensms_async._bulk import run_bulk
from opensms_async.testing import RunningSimulator, run_simulator

pytestmark = pytest.mark.integration

SENDER = "tel:+3212345678"


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    """A simulator in this event loop."""
    async with run_simulator(seed=11, step_delay=(0.01, 0.02)) as running:
        yield running


def client_for(sim: RunningSimulator, **kwargs: object) -> OpenSMSClient:
    """A client of the simulator."""
    return OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url, **kwargs)  # type: ignore[arg-type]


def messages(count: int, *, broken: frozenset[int] = frozenset()) -> list[Message]:
    """``count`` messages to distinct numbers; those in ``broken`` carry a lone surrogate."""
    return [
        Message(SENDER, f"+3361234{i:04d}", f"Hello {i}" + ("\udc80" if i in broken else ""))
        for i in range(count)
    ]


async def collect(results: AsyncIterator[BulkResult]) -> list[BulkResult]:
    """Every result, within a bound."""
    async with asyncio.timeout(20):
        return [result async for result in results]


async def test_every_message_gets_one_result(sim: RunningSimulator) -> None:
    """12 messages, two with a lone surrogate: 12 results, 10 sent, 2 ValidationErrors."""
    batch = messages(12, broken=frozenset({3, 8}))
    async with client_for(sim) as client:
        results = await collect(client.send_many(batch, concurrency=4))
    assert sorted(r.message.to for r in results) == sorted(m.to for m in batch)
    failed = {r.message.to: r.error for r in results if not r.ok}
    assert set(failed) == {batch[3].to, batch[8].to}
    assert all(isinstance(error, InvalidMessageError) for error in failed.values())
    assert sim.simulator.sends == 10


async def test_an_unexpected_exception_is_a_result_too(sim: RunningSimulator) -> None:
    """A send that raises something other than an OpenSMSError still yields its result."""

    async def broken_hook(request: httpx.Request) -> None:
        if b"Hello 5" in request.content:
            raise RuntimeError("a bug in a request hook")

    http = httpx.AsyncClient(event_hooks={"request": [broken_hook]})
    batch = messages(12)
    async with http, client_for(sim, http_client=http) as client:
        results = await collect(client.send_many(batch, concurrency=4))
    assert len(results) == 12
    [failed] = [r for r in results if not r.ok]
    assert failed.message == batch[5]
    assert isinstance(failed.error, RuntimeError)
    assert sim.simulator.sends == 11


async def test_a_failing_iterable_is_raised_after_the_results_taken(
    sim: RunningSimulator,
) -> None:
    """A generator that raises after 5 messages: their 5 results come out, then its error."""

    def generate() -> Iterator[Message]:
        yield from messages(5)
        raise LookupError("the message source broke")

    received: list[BulkResult] = []

    async def consume(client: OpenSMSClient) -> None:
        async with asyncio.timeout(20):
            async for result in client.send_many(generate(), concurrency=3):
                received.append(result)

    async with client_for(sim) as client:
        with pytest.raises(LookupError, match="source broke"):
            await consume(client)
    assert len(received) == 5 and all(r.ok for r in received)
    assert sim.simulator.sends == 5


async def test_something_not_a_message_is_a_validation_error(sim: RunningSimulator) -> None:
    """An item that is not a Message gets a result with InvalidMessageError."""
    batch: list[object] = [*messages(2), {"sender": SENDER, "to": "+331", "text": "x"}]
    async with client_for(sim) as client:
        results = await collect(client.send_many(batch, concurrency=2))  # type: ignore[arg-type]
    assert len(results) == 3
    [failed] = [r for r in results if not r.ok]
    assert isinstance(failed.error, InvalidMessageError)


async def test_leaving_early_with_a_slow_consumer_does_not_hang(sim: RunningSimulator) -> None:
    """Breaking out of send_many while sends are still finishing returns promptly."""
    async with client_for(sim) as client:
        results = client.send_many(messages(10), concurrency=1)
        async with asyncio.timeout(30):
            async for _ in results:
                await asyncio.sleep(0.2)  # slower than a send: the next result is waiting
                break
            await results.aclose()  # type: ignore[attr-defined]


async def test_cancellation_is_not_a_result() -> None:
    """Cancelling the consumer cancels the sends; no result carries a CancelledError."""
    started = asyncio.Event()

    async def never_answers(message: Message) -> SendResult:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    received: list[BulkResult] = []

    async def consume() -> None:
        async for result in run_bulk(never_answers, messages(4), concurrency=2):
            received.append(result)

    task = asyncio.create_task(consume())
    async with asyncio.timeout(30):
        await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert received == []
