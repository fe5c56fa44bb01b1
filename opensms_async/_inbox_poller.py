"""The inbound poller: fetches the inboxes of the inbox's numbers and records what they hold.

What it assumes of BICS, and why it is safe either way. BICS's OpenAPI calls the page's
``totalNumberOfPendingMessages`` "messages that can be retrieved, including the ones that are
currently being retrieved", the OMA API it follows lists an inbound registration's messages
as a queue, and nothing says a message is ever returned twice: the poller assumes a fetch
**consumes** what it returns. So a page is recorded before anything else happens, and a page
the store could not record is held in memory and recorded again (backing off) until it is: no
next fetch runs meanwhile, and only closing the inbox can abandon it, which is logged as an
error with the count of messages lost. Should a fetch not consume, every poll returns the oldest
messages again: dedupe (the same that callbacks pass) makes them nothing new, and a page that
brought nothing new counts as empty, so the poller backs off instead of fetching again at once.
(An inbox that never consumes shows only its oldest ``batch_size`` messages, hence the largest
page BICS allows, 200, by default: the inbound subscription is the durable path.)

Pacing, per number: after a page that brought something new, the next fetch follows at once if
BICS says more are pending, else after ``interval``; after an empty page (or an error), the wait
doubles, up to ``max_interval``. A 429 pauses every number (see
:func:`~opensms_async._retry.rate_limit_pause`), and the client's own limiter applies to every
fetch (the poller calls the client, without the client's retries: it backs off itself).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeAlias

from ._exceptions import OpenSMSError, RateLimitError, StoreError
from ._inbound import InboundSmsMessageList
from ._inbound_webhook import part_from_wire
from ._reassembly import Part
from ._retry import RateLimitPause
from ._telemetry import log_fields, mask_address, mask_numbers
from ._telemetry_inbound import EMPTY, ERROR, RATE_LIMITED, RECEIVED, InboxTelemetry
from .stores.inbound import Received

__all__ = ["Fetch", "InboundPoller", "Record"]

Fetch: TypeAlias = Callable[[str, int], Awaitable[InboundSmsMessageList]]
"""``fetch(number, batch_size)``: one page of a number's inbox, without retries."""
Record: TypeAlias = Callable[[Sequence[Part]], Awaitable[Received]]
"""``record(parts)``: dedupe, reassemble and log (the inbox's), raising StoreError on failure."""

logger = logging.getLogger("opensms_async.inbox")

_RECORD_BACKOFF: Final = 0.25
_MAX_RECORD_BACKOFF: Final = 5.0


class InboundPoller:
    """Polls ``numbers`` (canonical, as the client's ``normalize_inbound_number`` writes them)
    with ``fetch`` and hands each page to ``record``; see the module for the pacing."""

    def __init__(
        self,
        fetch: Fetch,
        record: Record,
        numbers: Sequence[str],
        *,
        interval: float,
        max_interval: float,
        batch_size: int,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        telemetry: InboxTelemetry | None = None,
    ) -> None:
        self._fetch = fetch
        self._telemetry = telemetry or InboxTelemetry()
        self._record = record
        self._interval = interval
        self._max_interval = max(max_interval, interval)
        self._batch_size = batch_size
        self._clock = clock
        self._sleep = sleep
        self._due = dict.fromkeys(numbers, 0.0)
        """Clock time of each number's next fetch (0: at once)."""
        self._empty = dict.fromkeys(numbers, 0)
        """Fetches in a row that brought nothing new, per number."""
        self._pause = RateLimitPause()
        """Every number's hold after a 429."""
        self._task: asyncio.Task[None] | None = None
        self.fetches = 0
        """Pages fetched so far (for tests and metrics)."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="opensms-inbound-poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def next_fetch(self, number: str) -> float:
        """Clock time of the next fetch of ``number`` (at the end of a 429 pause at the
        earliest)."""
        return max(self._due[number], self._pause.until)

    async def _run(self) -> None:
        while True:
            number = min(self._due, key=self._due.__getitem__)
            wait = max(self._due[number], self._pause.until) - self._clock()
            if wait > 0:
                await self._sleep(wait)
                continue
            try:
                await self.poll(number)
            except Exception as exc:  # a bug or an unexpected answer must not end polling
                logger.exception(
                    "inbound poll of %s failed",
                    mask_address(number),
                    extra=log_fields("inbox.poll", outcome="error", error=type(exc).__name__),
                )
                self._later(number, empty=True)

    async def poll(self, number: str) -> None:
        """Fetch one page of ``number``'s inbox, record it, and plan the next fetch; its span
        (``opensms.inbound.poll``) says how it went, while an SDK records."""
        seen = self._telemetry.poll()
        if seen is None:
            await self._poll(number)
            return
        outcome, size, error = ERROR, None, None
        try:
            outcome, size, error = await self._poll(number)
        except BaseException as exc:
            error = type(exc).__name__
            raise
        finally:
            seen.end(outcome, size, error)

    async def _poll(self, number: str) -> tuple[str, int | None, str | None]:
        """:meth:`poll`; its outcome, the size of the page fetched (None: none) and the type of
        the error that ended it (None: none)."""
        self.fetches += 1
        try:
            page = await self._fetch(number, self._batch_size)
        except RateLimitError as exc:
            self._rate_limited(exc.retry_after)
            return RATE_LIMITED, None, type(exc).__name__
        except OpenSMSError as exc:
            logger.warning(
                "inbound poll of %s failed: %s",
                mask_address(number),
                mask_numbers(str(exc)),
                extra=log_fields("inbox.poll", outcome="error", error=type(exc).__name__),
            )
            self._later(number, empty=True)
            return ERROR, None, type(exc).__name__
        self._pause.streak = 0
        parts = self._parts(number, page)
        fresh = 0
        if parts:
            received = await self._record_until_stored(parts)
            fresh = len(parts) - received.duplicates
        more = (page.total_pending or 0) > len(page.messages)
        if fresh and more:
            self._due[number], self._empty[number] = self._clock(), 0
        else:
            self._later(number, empty=not fresh)
        return (RECEIVED if fresh else EMPTY), len(page.messages), None

    def _parts(self, number: str, page: InboundSmsMessageList) -> list[Part]:
        parts = []
        for message in page.messages:
            part = part_from_wire(message)
            if part is None:
                logger.error(
                    "inbound poll of %s: a message without a usable messageId cannot be"
                    " deduplicated; skipped",
                    mask_address(number),
                    extra=log_fields("inbox.poll", outcome="skipped"),
                )
                continue
            parts.append(part)
        return parts

    async def _record_until_stored(self, parts: list[Part]) -> Received:
        """Record a fetched page, again and again while the store fails: the fetch may have
        taken it off BICS's inbox, so this process holds the only copy."""
        backoff = _RECORD_BACKOFF
        try:
            while True:
                try:
                    return await self._record(parts)
                except StoreError as exc:
                    logger.warning(
                        "%d polled inbound messages not recorded yet (%s); retrying in %.2fs",
                        len(parts),
                        mask_numbers(str(exc)),
                        backoff,
                        extra=log_fields("inbox.poll", outcome="retry", error=type(exc).__name__),
                    )
                await self._sleep(backoff)
                backoff = min(backoff * 2, _MAX_RECORD_BACKOFF)
        except asyncio.CancelledError:
            logger.error(
                "%d polled inbound messages may not be recorded: the inbox closed while"
                " recording them (ids %s)",
                len(parts),
                ", ".join(part.message_id for part in parts),
                extra=log_fields("inbox.poll", outcome="abandoned", error="CancelledError"),
            )
            raise

    def _later(self, number: str, *, empty: bool) -> None:
        """The next fetch: ``interval`` from now, doubled for each empty fetch in a row after
        the first, up to ``max_interval``."""
        streak = self._empty[number] + 1 if empty else 0
        self._empty[number] = streak
        wait = self._interval * 2.0 ** min(max(streak - 1, 0), 30)
        self._due[number] = self._clock() + min(self._max_interval, wait)

    def _rate_limited(self, retry_after: float | None) -> None:
        if self._pause.rate_limited(self._clock(), retry_after):  # a new pause
            logger.warning(
                "inbound polling rate limited (429); every number paused",
                extra=log_fields("inbox.poll", http_status=429, outcome="paused"),
            )
