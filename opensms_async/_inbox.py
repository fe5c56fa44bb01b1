"""``Inbox``: inbound SMS as a stream that yields each message once and whole."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Final

from ._addressing import normalize_inbound_number
from ._inbound import InboundSmsMessage, InboundSmsMessageList
from ._inbound_message import InboundMessage
from ._inbound_webhook import InboundPayloadError, part_from_wire
from ._inbox_poller import InboundPoller
from ._lifecycle import OPEN, Lifecycle
from ._live import LiveBuffer, follow
from ._reassembly import DEFAULT_REASSEMBLY_TIMEOUT, Part
from ._state import Source
from ._telemetry import log_fields, mask_numbers
from ._telemetry_inbound import InboxTelemetry
from .stores.inbound import InboundStore, Received, open_inbound_store

if TYPE_CHECKING:
    from ._client import OpenSMSClient

__all__ = ["DEFAULT_INBOUND_RETENTION", "Inbox"]

logger = logging.getLogger("opensms_async.inbox")

DEFAULT_INBOUND_RETENTION: Final = 4 * 24 * 3600.0
"""Seconds a ``messageId`` is remembered by default: a day more than BICS's 3 days of retries."""
BICS_RETRY_HORIZON: Final = 3 * 24 * 3600.0
"""BICS retries an inbound post for up to 3 days: a shorter retention lets a late retry through."""
_MAX_BATCH_SIZE: Final = 200


class Inbox(Lifecycle):
    """Inbound SMS, received by callback (the receiver's ``inbox=``) or polled, as one stream.

    ``store`` is an :class:`~opensms_async.stores.inbound.InboundStore` or a URL of the delivery
    stores' scheme (``memory://``, ``sqlite:///file.db``, ``redis://...``); the same file or
    server may hold a tracker's delivery state too (the inbox keeps tables and keys of its own).
    The inbox opens and closes it.

    **Once**: every ``messageId`` is remembered for ``retention`` seconds (default 4 days,
    longer than BICS's 3 days of retries); a part or message whose id is remembered, whether it
    came by callback, by polling or both, and whichever process sharing the store received it,
    changes nothing. **Whole**: parts of long messages are held in the store and joined (see
    :mod:`opensms_async._reassembly`); after ``reassembly_timeout`` seconds what came is yielded
    with ``complete=False``, and a later part is yielded too, never dropped. **Durable**: a
    message or part is recorded before :meth:`ingest` returns (so before the receiver answers
    2xx) and before :meth:`messages` yields it.

    With a ``client``, each of ``poll_numbers`` is fetched with ``get_inbound_messages`` every
    ``poll_interval`` seconds (doubling while it brings nothing new, up to ``max_poll_interval``;
    at once again while BICS says more are pending), ``poll_batch_size`` messages a page; a 429
    pauses every number for its ``Retry-After``, and the client's limiter applies. See
    :mod:`opensms_async._inbox_poller` for what polling assumes of BICS. ``live_buffer`` bounds
    the messages kept in memory for ``messages()`` consumers that are behind (further behind,
    they read the store's log). ``clock`` (Unix seconds) and ``sleep`` are injectable.

    Use it as ``async with Inbox(...) as inbox`` (or ``open()`` and ``aclose()``); an inbox opens
    once.
    """

    def __init__(
        self,
        store: InboundStore | str = "memory://",
        client: OpenSMSClient | None = None,
        poll_numbers: Iterable[str] = (),
        poll_interval: float = 30.0,
        reassembly_timeout: float = DEFAULT_REASSEMBLY_TIMEOUT,
        retention: float = DEFAULT_INBOUND_RETENTION,
        *,
        max_poll_interval: float = 300.0,
        poll_batch_size: int = _MAX_BATCH_SIZE,
        live_buffer: int = 65_536,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        for name, value in (
            ("poll_interval", poll_interval),
            ("max_poll_interval", max_poll_interval),
            ("reassembly_timeout", reassembly_timeout),
            ("retention", retention),
        ):
            _check_seconds(name, value)
        if isinstance(poll_batch_size, bool) or not isinstance(poll_batch_size, int):
            raise ValueError(f"poll_batch_size must be an integer, not {poll_batch_size!r}")
        if not 1 <= poll_batch_size <= _MAX_BATCH_SIZE:
            raise ValueError(f"poll_batch_size must be from 1 to 200, not {poll_batch_size!r}")
        numbers = list(dict.fromkeys(normalize_inbound_number(n) for n in _listed(poll_numbers)))
        if numbers and client is None:
            raise ValueError("poll_numbers need a client to poll them with")
        if retention <= BICS_RETRY_HORIZON:
            logger.warning(
                "Inbox retention of %gs is within BICS's 3 days of retries: a message retried"
                " after it is yielded again",
                retention,
                extra=log_fields("inbox.open", outcome="warning"),
            )
        self.store = open_inbound_store(store) if isinstance(store, str) else store
        self.client = client
        self.poll_numbers = tuple(numbers)
        self.reassembly_timeout = float(reassembly_timeout)
        self.retention = float(retention)
        self._clock = clock
        self._sleep = sleep
        # The in-process inbound stores number their log 1, 2, 3... (``cursor_key`` ``(n, 0)``);
        # a gap (a receive cancelled after the store logged) makes the buffer start over.
        self._live: LiveBuffer[InboundMessage] = LiveBuffer(
            self.store, self._read_log, live_buffer, consecutive=True
        )
        self._tick = min(1.0, max(0.01, self.reassembly_timeout / 10))
        self._telemetry = InboxTelemetry()
        self._poller = (
            InboundPoller(
                self._fetch,
                self._receive,
                numbers,
                interval=poll_interval,
                max_interval=max_poll_interval,
                batch_size=poll_batch_size,
                clock=clock,
                sleep=sleep,
                telemetry=self._telemetry,
            )
            if numbers
            else None
        )
        self._sweeper: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None
        """Set while the store hands what it logs to :meth:`_logged` (its ``listen``)."""
        self._started = False
        """True once open() began: from then on aclose() closes the store."""
        self._closing = asyncio.Event()

    def __repr__(self) -> str:
        return f"Inbox(store={type(self.store).__name__}, poll_numbers={len(self.poll_numbers)})"

    async def open(self) -> None:
        """Open the store, start the poller and the reassembly timer; an inbox opens once."""
        await super().open()

    async def _open(self) -> None:
        self._started = True
        await self.store.open()
        listen = getattr(self.store, "listen", None)  # not part of the protocol: optional
        if callable(listen):
            self._unlisten = listen(self._logged)
        await self._live.start()
        self._sweeper = asyncio.create_task(self._sweep(), name="opensms-inbox-reassembly")
        if self._poller is not None:
            self._poller.start()

    async def aclose(self) -> None:
        """Stop polling and the timer, end every ``messages()`` iterator, close the store;
        idempotent."""
        await super().aclose()

    async def _aclose(self) -> None:
        if not self._started:
            return  # never opened: the store is not ours to close yet
        self._closing.set()
        self._live.wake()
        if self._poller is not None:
            await self._poller.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if self._unlisten is not None:
            self._unlisten()
        await self.store.aclose()

    # --- recording -----------------------------------------------------------------------

    async def ingest(
        self, messages: Iterable[InboundSmsMessage], *, source: Source | str = Source.CALLBACK
    ) -> list[InboundMessage]:
        """Record inbound messages (the wire's, as a callback or a poll brings them).

        Returns the messages this logged, oldest first, once the store has recorded them (a
        duplicate or a part still waiting for others logs none); raises ``StoreError`` when it
        could not record them, and :class:`InboundPayloadError` (a ``ValueError``), before
        recording anything, for a message without a ``messageId``.
        """
        origin = Source(source)
        parts = []
        for message in messages:
            part = part_from_wire(message, source=origin.value)
            if part is None:
                raise InboundPayloadError("an inbound message without a usable messageId")
            parts.append(part)
        return await self.ingest_parts(parts)

    async def ingest_parts(self, parts: Sequence[Part]) -> list[InboundMessage]:
        """:meth:`ingest`, for parts already read from the wire (what the receiver calls)."""
        return (await self._receive(parts)).messages

    async def _receive(self, parts: Sequence[Part]) -> Received:
        if self._state is not OPEN:
            raise self._unusable()
        if not parts:
            return Received([])
        if self._unlisten is not None:  # the store publishes what it logged: see _logged
            return await self._store_receive(parts)
        # A store without ``listen``: its write and the publish are one task the caller only
        # waits for, so that a caller cancelled once the store wrote does not keep what was
        # logged from the live consumers until the next publish.
        recording = asyncio.ensure_future(self._record(parts))
        recording.add_done_callback(_retrieve)
        return await asyncio.shield(recording)

    def _store_receive(self, parts: Sequence[Part]) -> Awaitable[Received]:
        return self.store.receive(
            parts, now=self._clock(), timeout=self.reassembly_timeout, retention=self.retention
        )

    async def _record(self, parts: Sequence[Part]) -> Received:
        received = await self._store_receive(parts)
        if received.messages:
            self._logged(received.messages)
        return received

    def _logged(self, messages: Sequence[InboundMessage]) -> None:
        """What the store logged goes to the live consumers (and is counted): called by the
        store itself once recorded, whether or not the caller still waits (a caller cancelled
        once SQLite's writer committed), or, for a store without ``listen``, by
        :meth:`_record`, a task of its own the caller only waits for."""
        self._live.publish(messages)
        self._telemetry.logged(messages)

    def _read_log(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> Awaitable[list[InboundMessage]]:
        """The store's ``read_messages``, looked up at each call (a store wrapped after the
        inbox was made is read through its wrapper)."""
        return self.store.read_messages(after, limit=limit, timeout=timeout)

    async def _fetch(self, number: str, batch_size: int) -> InboundSmsMessageList:
        if self.client is None:  # pragma: no cover - the poller exists only with a client
            raise RuntimeError("an inbox without a client polls nothing")
        return await self.client.get_inbound_messages(number, batch_size, max_retries=0)

    async def _sweep(self) -> None:
        """Yield the groups whose window ended (every process sharing the store does it; each
        group is yielded once), and let the store forget old ids."""
        while True:
            try:
                expired = await self.store.expire(self._clock(), timeout=self.reassembly_timeout)
            except Exception as exc:  # the timer must outlive any one failure
                logger.warning(
                    "inbox: could not close expired groups (%s); retrying",
                    mask_numbers(str(exc)),
                    extra=log_fields("inbox.expire", outcome="retry", error=type(exc).__name__),
                )
            else:
                if expired:
                    self._logged(expired)
            # The loop's own sleep, not the injected one: that paces polls, this is a timer.
            await asyncio.sleep(self._tick)

    # --- reading -------------------------------------------------------------------------

    def messages(self, since: str | None = None) -> AsyncIterator[InboundMessage]:
        """Every message after cursor ``since`` (None: the oldest retained), then live ones.

        Any number of consumers may iterate at once, each at its own pace (one that falls
        behind reads the store's log, never blocking the receiver or losing a message); every
        inbox on a shared store sees every message once. Save ``message.cursor`` to resume after
        a restart. Ends when the inbox closes. While the store is unavailable it waits and
        resumes after the last message it yielded.
        """
        return follow(
            self,
            self._live,
            since,
            self._closing,
            logger=logger,
            name="messages",
            describe=mask_numbers,
        )


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds, not {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive, finite number of seconds, not {value!r}")


def _listed(numbers: Iterable[str]) -> list[str]:
    # A lone string is one number, not a sequence of one-character numbers.
    return [numbers] if isinstance(numbers, str) else list(numbers)


def _retrieve(task: asyncio.Future[Received]) -> None:
    """Mark a recording's outcome as seen: its caller may have stopped waiting for it."""
    if not task.cancelled():
        task.exception()
