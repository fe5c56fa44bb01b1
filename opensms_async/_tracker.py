"""``DeliveryTracker``: delivery states over a store, the event stream and reconciliation."""

from __future__ import annotations

import asyncio
import bisect
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self

from ._addressing import normalize_address
from ._constants import RECEIPT_RETENTION
from ._exceptions import StoreUnavailableError
from ._models import DeliveryStatus, SendResult
from ._poller import ReconciliationPoller
from ._state import DeliveryEvent, DeliveryState, DeliveryUpdate, Source
from .stores import Applied, Store, open_store

if TYPE_CHECKING:
    from ._client import OpenSMSClient

__all__ = ["DeliveryTracker"]

logger = logging.getLogger("opensms_async.tracker")

_READ_BATCH = 512
_OUTAGE_BACKOFF = 0.25
_MAX_OUTAGE_BACKOFF = 5.0
_SHARED_WAIT = 1.0


class DeliveryTracker:
    """Tracks the delivery state of every recipient and streams state advances as events.

    ``store`` is a :class:`~opensms_async.stores.Store` or a URL (``memory://``,
    ``sqlite:///file.db``, ``redis://...``); the tracker opens and closes it. With a ``client``,
    requests still not final ``reconcile_after`` seconds after :meth:`track` are polled with
    ``get_delivery_infos`` (backing off per request, for up to the 7-day receipt retention), so a
    lost callback is recovered. Without one, the tracker only receives.

    Use it as ``async with DeliveryTracker(...) as tracker``.
    """

    def __init__(
        self,
        store: Store | str = "memory://",
        client: OpenSMSClient | None = None,
        reconcile_after: float = 60.0,
        *,
        max_poll_interval: float = 3600.0,
        retention: float = RECEIPT_RETENTION,
        poll_concurrency: int = 4,
        live_buffer: int = 65_536,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if reconcile_after <= 0:
            raise ValueError("reconcile_after must be positive")
        self.store = open_store(store) if isinstance(store, str) else store
        self.client = client
        self.reconcile_after = reconcile_after
        self._clock = clock
        self._live = _LiveBuffer(self.store, live_buffer)
        self._waiters: dict[tuple[str, str], list[asyncio.Future[None]]] = {}
        self._poller = (
            ReconciliationPoller(
                self,
                client,
                reconcile_after=reconcile_after,
                max_interval=max_poll_interval,
                retention=retention,
                concurrency=poll_concurrency,
                clock=clock,
                sleep=sleep,
                rng=rng or random.Random(),
            )
            if client is not None
            else None
        )
        self._opened = False
        self._closed = asyncio.Event()

    def __repr__(self) -> str:
        polling = self._poller is not None
        return f"DeliveryTracker(store={type(self.store).__name__}, polling={polling})"

    @property
    def is_open(self) -> bool:
        """True between opening and closing."""
        return self._opened and not self._closed.is_set()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open the store and start the poller; a tracker opens once."""
        if self._opened:
            raise RuntimeError("A DeliveryTracker can be opened once; create a new one instead.")
        self._opened = True
        await self.store.open()
        await self._live.start()
        if self._poller is not None:
            self._poller.start()

    async def aclose(self) -> None:
        """Stop the poller, end every ``events()`` iterator and close the store; idempotent."""
        if not self._opened or self._closed.is_set():
            return
        self._closed.set()
        self._live.wake()
        if self._poller is not None:
            await self._poller.stop()
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()
        self._waiters.clear()
        await self.store.close()

    # --- recording -----------------------------------------------------------------------

    async def track(self, sent: SendResult) -> list[Applied]:
        """Register the recipients of a send as pending, with the states the send answered."""
        self._check_open()
        now = self._clock()
        known = {normalize_address(info.address): info for info in sent.delivery_infos}
        updates = [
            DeliveryUpdate(
                request_id=sent.request_id,
                address=address,
                status=known[address].status
                if address in known
                else DeliveryStatus.MESSAGE_ACCEPTED,
                source=Source.SEND,
                parts_delivered=known[address].parts_delivered if address in known else None,
                sms_parts=sent.parts,
                sender=sent.sender,
                received_at=now,
            )
            for address in sent.recipients
        ]
        applied = await self.ingest(updates)
        await self.store.schedule(
            sent.request_id, sent.sender, tracked_at=now, poll_at=now + self.reconcile_after
        )
        return applied

    async def ingest(self, updates: Iterable[DeliveryUpdate]) -> list[Applied]:
        """Merge updates (from callbacks, polls or sends) and publish the events they cause.

        Returns once the store has recorded them; raises ``StoreError`` when it could not.
        """
        self._check_open()
        batch = list(updates)
        if not batch:
            return []
        applied = await self.store.apply(batch)
        self._publish([a.event for a in applied if a.event is not None])
        return applied

    async def _record(self, updates: Sequence[DeliveryUpdate]) -> None:
        """:meth:`ingest` for callers that need no results (the receiver): cheaper per update.

        Stores that offer ``apply_events`` (the in-process ones) merge and log without building
        a state and a result per update; others fall back to ``apply``.
        """
        self._check_open()
        if not updates:
            return
        apply_events = getattr(self.store, "apply_events", None)
        if apply_events is None:
            await self.ingest(updates)
            return
        events: list[DeliveryEvent] = await apply_events(updates)
        self._publish(events)

    def _publish(self, events: list[DeliveryEvent]) -> None:
        if events:
            self._live.publish(events)
            self._wake_waiters(events)

    # --- reading -------------------------------------------------------------------------

    async def get(self, request_id: str, address: str) -> DeliveryState | None:
        """The state of one recipient (any accepted address form), or None if never seen."""
        return await self.store.get(request_id, normalize_address(address))

    async def get_request(self, request_id: str) -> list[DeliveryState]:
        """The states of every recipient seen for a request."""
        return await self.store.get_request(request_id)

    async def events(self, since: str | None = None) -> AsyncIterator[DeliveryEvent]:
        """Every state advance after cursor ``since`` (None: the oldest retained), then live ones.

        Any number of consumers may iterate at once; each reads at its own pace (a consumer that
        falls behind reads from the store's log, never blocking the receiver or losing events).
        Save ``event.cursor`` to resume after a restart. Ends when the tracker closes. While the
        store is unavailable (Redis restarting, say) it waits and resumes after the last event
        it yielded, so nothing is skipped.
        """
        self._check_open()
        cursor, position = since, None
        outage = _OUTAGE_BACKOFF
        while not self._closed.is_set():
            changed = self._live.changed  # taken before reading, so no publish slips between
            try:
                batch, position = await self._live.read(cursor, position)
                if not batch:
                    await self._live.wait(changed, cursor)
                    continue
            except StoreUnavailableError as exc:
                logger.warning("events paused, store unavailable: %s", exc)
                await asyncio.sleep(outage)
                outage = min(outage * 2, _MAX_OUTAGE_BACKOFF)
                continue
            outage = _OUTAGE_BACKOFF
            for event in batch:
                yield event
            cursor = batch[-1].cursor

    async def wait_for_final(
        self, request_id: str, address: str, timeout: float | None = None
    ) -> DeliveryState:
        """Wait until the recipient reaches a final status and return its state.

        Waits for pairs not seen yet too; raises ``TimeoutError`` after ``timeout`` seconds.
        """
        self._check_open()
        key = (request_id, normalize_address(address))
        async with asyncio.timeout(timeout):
            while True:
                state = await self.store.get(*key)
                if state is not None and state.is_final:
                    return state
                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiters.setdefault(key, []).append(future)
                try:
                    # Re-read now and then: another replica may have recorded it.
                    await asyncio.wait_for(
                        asyncio.shield(future), _SHARED_WAIT if self.store.shared else None
                    )
                except TimeoutError:
                    pass
                finally:
                    self._forget_waiter(key, future)

    def _wake_waiters(self, events: Sequence[DeliveryEvent]) -> None:
        # A woken waiter re-reads the state from the store: the event only says "look again".
        if not self._waiters:
            return
        for event in events:
            if event.is_final:
                for future in self._waiters.pop((event.request_id, event.address), []):
                    if not future.done():
                        future.set_result(None)

    def _forget_waiter(self, key: tuple[str, str], future: asyncio.Future[None]) -> None:
        futures = self._waiters.get(key)
        if futures and future in futures:
            futures.remove(future)
            if not futures:
                del self._waiters[key]

    def _check_open(self) -> None:
        if not self._opened:
            raise RuntimeError("Open the tracker first: async with DeliveryTracker(...) as tracker")
        if self._closed.is_set():
            raise RuntimeError("This DeliveryTracker is closed.")


class _LiveBuffer:
    """The newest events of this process, so live consumers need not query the store.

    Holds up to ``size`` events after ``base`` (the cursor key just before the first one). A
    consumer whose cursor is older than ``base`` reads from the store's log instead. Stores shared
    between processes are always read from the store (other replicas append there too).

    A consumer reading here also gets a *position* (events published before its next one), which
    finds its place in O(1) next time: cursors are parsed only when a consumer arrives or falls
    out of the buffer, never once per event, since publishing is the hot path of the receiver.
    """

    def __init__(self, store: Store, size: int) -> None:
        self._store = store
        self._size = max(1, size)
        self._events: list[DeliveryEvent] = []
        self._dropped = 0
        """Events published and since dropped from the head: the position of ``_events[0]``."""
        self._base: tuple[int, int] | None = None
        self._ready = False
        self._generation = 0
        """Publishes (and closes) so far: a consumer notes it before reading, waits for more."""
        self._waiting: asyncio.Event | None = None

    async def start(self) -> None:
        last = await self._store.last_cursor()
        self._base = self._store.cursor_key(last) if last is not None else (-1, -1)
        self._ready = not self._store.shared

    def publish(self, events: list[DeliveryEvent]) -> None:
        if self._ready:
            self._events.extend(events)
            if len(self._events) > 2 * self._size:
                cut = len(self._events) - self._size
                self._base = self._key(self._events[cut - 1])
                del self._events[:cut]
                self._dropped += cut
        self.wake()

    def wake(self) -> None:
        # Nothing to allocate unless a consumer waits: publishing is the receiver's hot path.
        self._generation += 1
        if self._waiting is not None:
            self._waiting.set()
            self._waiting = None

    async def read(
        self, cursor: str | None, position: int | None
    ) -> tuple[list[DeliveryEvent], int | None]:
        """Events after ``cursor``, and the position after them (None when read from the store).

        ``position`` is what the previous read returned for ``cursor``, or None.
        """
        start = self._find(cursor, position)
        if start is None:
            return await self._store.read_events(cursor, limit=_READ_BATCH), None
        batch = self._events[start : start + _READ_BATCH]
        return batch, self._dropped + start + len(batch)

    def _find(self, cursor: str | None, position: int | None) -> int | None:
        """The index of the first event after ``cursor``, or None to read from the store."""
        if not self._ready or cursor is None or self._base is None:
            return None
        if position is not None:
            index = position - self._dropped
            if 0 < index <= len(self._events) and self._events[index - 1].cursor == cursor:
                return index
        key = self._store.cursor_key(cursor)
        if key < self._base:
            return None
        return bisect.bisect_right(self._events, key, key=self._key)

    def _key(self, event: DeliveryEvent) -> tuple[int, int]:
        return self._store.cursor_key(event.cursor)

    @property
    def changed(self) -> int:
        """A mark for :meth:`wait`, which returns at the first publish (or close) after it."""
        return self._generation

    async def wait(self, changed: int, cursor: str | None) -> None:
        if self._store.shared:
            # Another replica may append: block in the store (e.g. XREAD BLOCK), bounded.
            await self._store.read_events(cursor, limit=1, timeout=_SHARED_WAIT)
            return
        if self._generation != changed:
            return
        if self._waiting is None:
            self._waiting = asyncio.Event()
        await self._waiting.wait()
