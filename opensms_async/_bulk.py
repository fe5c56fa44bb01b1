"""``send_many``: bulk sending with bounded concurrency, results as they complete."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import attrs

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
    """The outcome of one message of ``send_many``: ``result`` on success, else ``error``.

    ``error`` is whatever the send raised: an :class:`OpenSMSError` for what the validation or the
    API refused (the usual case), or any other exception (a bug in an event hook, a closed
    client), reported here rather than lost. Cancellation is not an outcome: it propagates.
    """

    message: Message
    result: SendResult | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """True when the message was accepted by the API."""
        return self.error is None


class _Feed:
    """The messages, shared by the workers; after the iterable itself raised, it gives no more."""

    def __init__(self, messages: Iterable[Message]) -> None:
        self._messages = iter(messages)
        self.failure: Exception | None = None
        self._ended = False

    def next(self) -> Message | None:
        """The next message, or None once the iterable is exhausted or has raised."""
        if self._ended:
            return None
        try:
            return next(self._messages)
        except StopIteration:
            pass
        except Exception as exc:  # the caller's generator failed: raised once the rest is out
            self.failure = exc
        self._ended = True
        return None


async def run_bulk(
    send: Callable[[Message], Awaitable[SendResult]],
    messages: Iterable[Message],
    *,
    concurrency: int,
) -> AsyncIterator[BulkResult]:
    """Run ``send`` over ``messages`` with ``concurrency`` workers; yield results as they finish.

    Every message taken gets exactly one result. At most ``2 * concurrency`` messages are taken
    and not yet consumed, so a slow consumer slows the senders instead of buffering everything.
    If iterating ``messages`` raises, the results of the messages already taken are yielded, then
    that exception is raised. Leaving the loop early cancels the workers.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    feed = _Feed(messages)
    # Unbounded, so that a worker never blocks putting its end marker; `room` bounds it instead.
    results: asyncio.Queue[BulkResult | None] = asyncio.Queue()
    room = asyncio.Semaphore(2 * concurrency)
    workers = [asyncio.create_task(_worker(send, feed, results, room)) for _ in range(concurrency)]
    try:
        finished = 0
        while finished < len(workers):
            item = await results.get()
            if item is None:
                finished += 1
                continue
            room.release()
            yield item
        if feed.failure is not None:
            raise feed.failure
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


async def _worker(
    send: Callable[[Message], Awaitable[SendResult]],
    feed: _Feed,
    results: asyncio.Queue[BulkResult | None],
    room: asyncio.Semaphore,
) -> None:
    # Each worker takes the next message when it is free.
    try:
        while True:
            await room.acquire()
            message = feed.next()
            if message is None:
                room.release()
                return
            results.put_nowait(await _outcome(send, message))
    finally:
        results.put_nowait(None)


async def _outcome(
    send: Callable[[Message], Awaitable[SendResult]], message: Message
) -> BulkResult:
    try:
        return BulkResult(message, result=await send(message))
    except Exception as exc:  # every message gets its one result; cancellation is not one
        return BulkResult(message, error=exc)
