"""Delivery callbacks of the simulator: planned (seeded) at send time, posted when due, each
recipient's in turn (the next once the one before was answered).

Like BICS, the simulator never retries a callback: a non-2xx answer, a timeout or a connection
error loses it, and is recorded as ``failed``. Drops, duplicates and jitter are decided when the
message is sent, from the message's own seeded random source, so a seeded run plans the same
callbacks every time (:attr:`Simulator.planned_callbacks`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Literal

import attrs
import httpx

from .._models import DeliveryStatus
from ._delivery import SentMessage, Transition, delivery_info
from ._wire import callback_body

__all__ = [
    "CallbackAttempt",
    "CallbackDispatcher",
    "CallbackRates",
    "CallbackTarget",
    "Outcome",
    "PlannedCallback",
    "plan_callbacks",
]

Outcome = Literal["acknowledged", "failed", "dropped", "skipped"]


@attrs.frozen
class CallbackRates:
    """How unreliable callbacks are: shares in [0, 1] and the maximum extra delay in seconds."""

    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    jitter: float = 0.0


@attrs.frozen
class PlannedCallback:
    """A callback decided at send time: posted ``delay`` seconds after the send (or, when the
    recipient's callback before it is answered later than that, right after), unless dropped.

    ``copy`` is 0 for the original and 1 for its duplicate.
    """

    request_id: str
    address: str
    status: DeliveryStatus
    parts_delivered: int
    delay: float
    copy: int = 0
    dropped: bool = False


@attrs.frozen
class CallbackAttempt:
    """What became of a planned callback.

    ``acknowledged``: the receiver answered 2xx. ``failed``: it answered otherwise, or the post
    failed (``error`` names the exception); it is lost. ``dropped``: never sent, on purpose.
    ``skipped``: no target (no subscription and no ``notifyURL``), or filtered by
    ``finalDelivery``.
    """

    planned: PlannedCallback
    outcome: Outcome
    url: str | None = None
    status_code: int | None = None
    error: str | None = None


def plan_callbacks(
    request_id: str,
    address: str,
    timeline: tuple[Transition, ...],
    rates: CallbackRates,
    rng: random.Random,
) -> list[PlannedCallback]:
    """One callback per transition, each possibly dropped, duplicated and delayed by jitter."""
    planned = []
    for step in timeline:
        # Always draw the same numbers, so that changing a rate never shifts the other draws.
        dropped = rng.random() < rates.drop_rate
        copies = 2 if rng.random() < rates.duplicate_rate and not dropped else 1
        for copy in range(copies):
            delay = step.at + rng.uniform(0.0, rates.jitter)
            planned.append(
                PlannedCallback(
                    request_id, address, step.status, step.parts_delivered, delay, copy, dropped
                )
            )
    return planned


@attrs.frozen
class CallbackTarget:
    """Where a message's callbacks go, with which token, and whether only final states."""

    url: str
    token: str | None = attrs.field(repr=False)
    final_only: bool = False


class CallbackDispatcher:
    """Plans, posts and records the delivery callbacks of sent messages.

    Owns the HTTP client and the timers of the callbacks not yet posted; opened and closed by the
    simulator app's lifespan. While closed, callbacks are planned but never posted. ``target``
    says, when a callback is due, where it goes (the subscription may have changed since).

    The callbacks of one recipient are posted one after the other, in the order of their planned
    times (the seeded jitter decides any reordering), each once its time has come and the one
    before it has been answered: so a seed gives the same order of arrival on a loaded machine
    as on an idle one. Recipients are posted concurrently.
    """

    def __init__(
        self, timeout: float, target: Callable[[SentMessage], CallbackTarget | None]
    ) -> None:
        self.planned: list[PlannedCallback] = []
        self.attempts: list[CallbackAttempt] = []
        self._timeout = timeout
        self._target = target
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._unfinished = 0

    @property
    def pending(self) -> int:
        """Callbacks scheduled and not yet finished."""
        return self._unfinished

    def count(self, outcome: Outcome) -> int:
        """Attempts that ended with ``outcome``."""
        return sum(attempt.outcome == outcome for attempt in self.attempts)

    async def open(self) -> None:
        """Create the HTTP client (``trust_env=False``: no proxy may intercept 127.0.0.1)."""
        self._client = httpx.AsyncClient(timeout=self._timeout, trust_env=False)

    async def aclose(self) -> None:
        """Cancel the callbacks still waiting and close the client."""
        client, self._client = self._client, None  # nothing is scheduled from now on
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._unfinished = 0
        if client is not None:
            await client.aclose()

    def plan(self, message: SentMessage, rates: CallbackRates, rng: random.Random) -> None:
        """Plan every callback of ``message`` and start its timers."""
        for address in message.addresses:
            timeline = message.timelines[address]
            planned = plan_callbacks(message.request_id, address, timeline, rates, rng)
            self.planned.extend(planned)
            self._schedule(message, sorted(planned, key=_planned_time))

    def _schedule(self, message: SentMessage, chain: list[PlannedCallback]) -> None:
        if self._client is None or not chain:
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._fire_in_order(self._client, message, chain, loop.time()))
        self._unfinished += len(chain)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fire_in_order(
        self,
        client: httpx.AsyncClient,
        message: SentMessage,
        chain: list[PlannedCallback],
        planned_at: float,
    ) -> None:
        """Post one recipient's callbacks in turn, each at its time or after the one before."""
        loop = asyncio.get_running_loop()
        for planned in chain:
            await asyncio.sleep(max(0.0, planned_at + planned.delay - loop.time()))
            try:
                await self._fire(client, message, planned)
            except Exception as exc:  # this one is lost (BICS never retries), not those after it
                self._record(planned, "failed", error=type(exc).__name__)
            finally:
                self._unfinished -= 1

    async def _fire(
        self, client: httpx.AsyncClient, message: SentMessage, planned: PlannedCallback
    ) -> None:
        target = self._target(message)
        if planned.dropped:
            self._record(planned, "dropped")
        elif target is None or (target.final_only and not planned.status.is_final):
            self._record(planned, "skipped")
        else:
            await self._post(client, message, planned, target)

    async def _post(
        self,
        client: httpx.AsyncClient,
        message: SentMessage,
        planned: PlannedCallback,
        target: CallbackTarget,
    ) -> None:
        info = delivery_info(
            planned.address, planned.status, planned.parts_delivered, message.callback_data
        )
        body = callback_body(
            resource_url=f"{message.resource_url}/deliveryInfos",
            parts=message.parts,
            info=info,
            security_token=target.token,
        )
        try:
            # One deadline for the whole post: a receiver that trickles its answer would hold up
            # the recipient's next callbacks (httpx's timeouts bound each read, not the answer).
            async with asyncio.timeout(self._timeout):
                response = await client.post(target.url, json=body)
        except (httpx.HTTPError, TimeoutError) as exc:
            self._record(planned, "failed", target.url, error=type(exc).__name__)
            return
        outcome: Outcome = "acknowledged" if response.is_success else "failed"
        self._record(planned, outcome, target.url, response.status_code)

    def _record(
        self,
        planned: PlannedCallback,
        outcome: Outcome,
        url: str | None = None,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        self.attempts.append(CallbackAttempt(planned, outcome, url, status, error))


def _planned_time(planned: PlannedCallback) -> float:
    return planned.delay
