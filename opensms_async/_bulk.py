"""``send_many``: bulk sending with bounded concurrency, results as they complete."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator

import attrs

from ._exceptions import OpenSMSError
from ._models import SendResult

__all__ = ["BulkResult", "Message", "run_bulk"]


@attrs.frozen
class Message:
    """One message for ``send_many``: the arguments of ``send_message``."""

    sender: str
    to: str | tuple[str, ...]
    text: str
    sender_name: str | None = None
    client_correlator: str | None = None
    callback_data: str | None = None
    notify_url: str | None = None
    asynchronous: bool | None = None
    final_delivery: bool | None = None


@attrs.frozen
class BulkResult:
    """The outcome of one message of ``send_many``: ``result`` on success, else ``error``."""

    message: Message
    result: SendResult | None = None
    error: OpenSMSError | None = None

    @property
    def ok(self) -> bool:
        """True when the message was accepted by the API."""
        return self.error is None


async def run_bulk(
    send: Callable[[Message], Awaitable[SendResult]],
    messages: Iterable[Message],
    *,
    concurrency: int,
) -> AsyncIterator[BulkResult]:
    """Run ``send`` over ``messages`` with ``concurrency`` workers; yield results as they finish.

    The output queue holds at most ``concurrency`` results, so a slow consumer slows the senders
    instead of buffering everything. Leaving the loop early cancels the workers.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    source = iter(messages)
    results: asyncio.Queue[BulkResult | None] = asyncio.Queue(maxsize=concurrency)
    workers = [asyncio.create_task(_worker(send, source, results)) for _ in range(concurrency)]
    try:
        finished = 0
        while finished < len(workers):
            item = await results.get()
            if item is None:
                finished += 1
            else:
                yield item
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


async def _worker(
    send: Callable[[Message], Awaitable[SendResult]],
    source: Iterator[Message],
    results: asyncio.Queue[BulkResult | None],
) -> None:
    # Iterators are shared: each worker takes the next message when it is free.
    try:
        for message in source:
            try:
                result = BulkResult(message, result=await send(message))
            except OpenSMSError as exc:
                result = BulkResult(message, error=exc)
            await results.put(result)
    finally:
        await results.put(None)
