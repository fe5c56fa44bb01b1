"""The reconciliation poller: polls ``deliveryInfos`` for requests whose callbacks went missing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Final, TypeAlias

from ._constants import MAX_RETRY_AFTER
from ._exceptions import InvalidUpdateError, NotFoundError, OpenSMSError, RateLimitError
from ._models import DeliveryInfo, DeliveryInfoList, Source
from ._retry import RATE_LIMIT_PAUSE, RateLimitPause
from ._state import DeliveryUpdate
from ._telemetry import log_fields, mask_numbers
from ._telemetry_delivery import DeliveryTelemetry
from ._updates import updates_from_infos
from .stores import PendingRequest, Store

__all__ = [
    "MAX_RATE_LIMIT_PAUSE",
    "RATE_LIMIT_PAUSE",
    "Fetch",
    "Ingest",
    "ReconciliationPoller",
    "poll_delay",
]

Fetch: TypeAlias = Callable[[str, str], Awaitable[DeliveryInfoList]]
"""``fetch(sender, request_id)``: one poll of a request's delivery infos, without retries (the
client's ``get_delivery_infos`` with ``max_retries=0``); raises the client's errors."""
Ingest: TypeAlias = Callable[[list[DeliveryUpdate]], Awaitable[object]]
"""``ingest(updates)``: record what a poll answered (the tracker's ``ingest``)."""

logger = logging.getLogger("opensms_async.poller")

_CLAIM_BATCH = 64
_MAX_NOT_FOUND = 5
"""A request the API does not know after this many polls is given up (it may take a moment to
appear right after the send, so the first 404s are retried)."""
MAX_RATE_LIMIT_PAUSE: Final = MAX_RETRY_AFTER
"""The longest pause after a 429, whatever its ``Retry-After`` says (60 s, as long as the client
honours one): then a round of polls probes whether the quota is back."""


def poll_delay(attempts: int, base: float, maximum: float, rng: random.Random) -> float:
    """Seconds until the next poll of a request polled ``attempts`` times: exponential from
    ``base``, capped at ``maximum``, with ±20% jitter so that requests do not poll in lockstep."""
    delay = min(maximum, base * 2.0 ** min(attempts, 30))
    return delay * rng.uniform(0.8, 1.2)


class ReconciliationPoller:
    """Claims due requests from the store's schedule and polls them with ``fetch``, at most
    ``concurrency`` at a time, handing what each poll answers to ``ingest``.

    A 429 pauses every poll (:func:`~._retry.rate_limit_pause`): the polls then in flight finish,
    the other claimed requests are put back until the pause ends, and none is claimed meanwhile.
    The poller is handed what it needs (the tracker's store and ``ingest``, the client's fetch),
    so that it depends on neither the tracker nor the client.
    """

    def __init__(
        self,
        store: Store,
        fetch: Fetch,
        ingest: Ingest,
        *,
        reconcile_after: float,
        max_interval: float,
        retention: float,
        concurrency: int,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        rng: random.Random,
        telemetry: DeliveryTelemetry | None = None,
    ) -> None:
        self._store = store
        self._fetch = fetch
        self._ingest = ingest
        self._base = reconcile_after
        self._max_interval = max(max_interval, reconcile_after)
        self._retention = retention
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._tick = max(0.01, min(1.0, reconcile_after / 4))
        self._slots = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._pause = RateLimitPause()
        """Every poll's hold after a 429."""
        self.polls = 0
        """Requests polled so far (for tests and metrics)."""
        self._stopping = False
        self._telemetry = telemetry or DeliveryTelemetry(retention=retention)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="opensms-reconciliation")

    async def stop(self) -> None:
        self._stopping = True  # a cancel swallowed below (redis-py's wait_for on 3.11) ends it too
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            pause = self._pause.until - self._clock()
            if pause > 0:
                await self._sleep(pause)
                continue
            try:
                due = await self._store.claim_due(
                    self._clock(), limit=_CLAIM_BATCH, lease=self._lease()
                )
            except Exception as exc:  # the poller must outlive any one failure
                logger.warning(
                    "reconciliation: store unavailable (%s); retrying",
                    mask_numbers(str(exc)),
                    extra=log_fields("reconcile", outcome="retry", error=type(exc).__name__),
                )
                due = []
            if due:
                await asyncio.gather(*(self._guarded(request) for request in due))
            else:
                await self._sleep(self._tick)

    def _lease(self) -> float:
        # Long enough to cover one poll with the client's own retries.
        return max(60.0, self._base)

    async def _guarded(self, request: PendingRequest) -> None:
        async with self._slots:
            try:
                with self._telemetry.reconcile(request):  # its span: linked to the send
                    await self.poll(request)
            except OpenSMSError as exc:
                logger.warning(
                    "reconciliation of %s failed: %s",
                    request.request_id,
                    mask_numbers(str(exc)),
                    extra=_fields(request, "error", type(exc).__name__),
                )
                await self._reschedule_quietly(request)
            except Exception as exc:
                # A bug or an unexpected answer must not end reconciliation for everyone.
                logger.exception(
                    "reconciliation of %s failed",
                    request.request_id,
                    extra=_fields(request, "error", type(exc).__name__),
                )
                await self._reschedule_quietly(request)

    async def _reschedule_quietly(self, request: PendingRequest) -> None:
        # If even this fails, the lease expires and the request comes due again by itself.
        with contextlib.suppress(Exception):
            await self._later(request)

    async def poll(self, request: PendingRequest) -> None:
        """Poll one request, merge what it says, and schedule the next poll or stop."""
        store = self._store
        now = self._clock()
        states = await store.get_request(request.request_id)
        if states and all(state.is_final for state in states):
            await store.unschedule(request.request_id)
            return
        if now - request.tracked_at > self._retention:
            logger.info(
                "reconciliation: receipts of %s expired; giving up",
                request.request_id,
                extra=_fields(request, "expired"),
            )
            await store.unschedule(request.request_id)
            return
        if self._pause.until > now:  # another poll met a 429: this one would too
            await self._after_pause(request)
            return
        self.polls += 1
        self._telemetry.polled()
        try:
            infos = await self._fetch(request.sender, request.request_id)
        except RateLimitError as exc:
            self._rate_limited(exc.retry_after)
            await self._after_pause(request)
            return
        except NotFoundError:
            self._pause.streak = 0
            if request.attempts + 1 >= _MAX_NOT_FOUND:
                await store.unschedule(request.request_id)
            else:
                await self._later(request)
            return
        self._pause.streak = 0
        await self._ingest(self._updates(request, infos, now))
        states = await store.get_request(request.request_id)
        if states and all(state.is_final for state in states):
            await store.unschedule(request.request_id)
        else:
            await self._later(request)

    def _rate_limited(self, retry_after: float | None) -> None:
        """Hold every poll after a 429; the other answers of the same round extend, not escalate."""
        if self._pause.rate_limited(self._clock(), retry_after):  # a new pause
            logger.warning(
                "reconciliation: rate limited (429); polling paused",
                extra=log_fields("reconcile", http_status=429, outcome="paused"),
            )

    async def _after_pause(self, request: PendingRequest) -> None:
        # Not polled, so not an attempt: its own backoff stays where it was.
        await self._store.reschedule(
            request.request_id, next_poll_at=self._pause.until, attempts=request.attempts
        )

    async def _later(self, request: PendingRequest) -> None:
        delay = poll_delay(request.attempts, self._base, self._max_interval, self._rng)
        await self._store.reschedule(
            request.request_id, next_poll_at=self._clock() + delay, attempts=request.attempts + 1
        )

    def _updates(
        self, request: PendingRequest, infos: DeliveryInfoList, now: float
    ) -> list[DeliveryUpdate]:
        def skip(info: DeliveryInfo, exc: InvalidUpdateError) -> None:
            logger.warning(
                "reconciliation: skipping an entry of %s: %s",
                request.request_id,
                mask_numbers(str(exc)),
                extra=_fields(request, "skipped", type(exc).__name__),
            )

        return updates_from_infos(
            request.request_id,
            infos.delivery_infos,
            source=Source.POLL,
            sms_parts=infos.sms_parts,
            sender=request.sender,
            received_at=now,
            refused=skip,
        )


def _fields(request: PendingRequest, outcome: str, error: str | None = None) -> dict[str, object]:
    """The ``extra=`` of a record about the reconciliation of ``request``."""
    return log_fields(
        "reconcile",
        request_id=request.request_id,
        outcome=outcome,
        attempt=request.attempts + 1,
        error=error,
    )
