"""``DeliveryTracker``: delivery states over a store, the event stream and reconciliation."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from ._addressing import normalize_address
from ._constants import RECEIPT_RETENTION, SHARED_STORE_RECHECK
from ._exceptions import InvalidUpdateError, StoreError
from ._lifecycle import Lifecycle
from ._live import LiveBuffer, follow
from ._models import DeliveryInfoList, SendResult
from ._poller import ReconciliationPoller
from ._state import DeliveryEvent, DeliveryState, DeliveryUpdate
from ._telemetry_delivery import DeliveryTelemetry, schedule_trace
from ._updates import updates_from_send
from .stores import Store, open_store

if TYPE_CHECKING:
    from ._client import OpenSMSClient

__all__ = ["DeliveryTracker"]

logger = logging.getLogger("opensms_async.tracker")


class DeliveryTracker(Lifecycle):
    """Tracks the delivery state of every recipient and streams state advances as events.

    ``store`` is a :class:`~opensms_async.stores.Store` or a URL (``memory://``,
    ``sqlite:///file.db``, ``redis://...``); the tracker opens and closes it. With a ``client``,
    requests still not final ``reconcile_after`` seconds after :meth:`track` are polled with
    ``get_delivery_infos`` (backing off per request, for up to the 7-day receipt retention), so a
    lost callback is recovered; a 429 pauses every poll for its ``Retry-After`` (1 s doubling
    without one, at most 60 s). Without a client, the tracker only receives (on a durable or
    shared store, :meth:`track` still schedules polls for a process that has a client).
    ``live_buffer`` bounds the events kept in memory for ``events()`` consumers that are behind
    (further behind, they read the store's log).

    Use it as ``async with DeliveryTracker(...) as tracker`` (or ``open()`` and ``aclose()``); a
    tracker opens once.
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
        self._live: LiveBuffer[DeliveryEvent] = LiveBuffer(
            self.store, self._read_log, live_buffer, consecutive=self.store.consecutive
        )
        self._waiters: dict[tuple[str, str], list[asyncio.Future[None]]] = {}
        self._telemetry = DeliveryTelemetry(retention=retention)
        self._poller = (
            ReconciliationPoller(
                self.store,
                self._fetch,
                self.ingest,
                reconcile_after=reconcile_after,
                max_interval=max_poll_interval,
                retention=retention,
                concurrency=poll_concurrency,
                clock=clock,
                sleep=sleep,
                rng=rng or random.Random(),
                telemetry=self._telemetry,
            )
            if client is not None
            else None
        )
        self._reconciled = self._poller is not None or self.store.durable or self.store.shared
        """Whether anyone can ever poll what track() schedules (see track)."""
        self._started = False
        """True once open() began: from then on aclose() closes the store."""
        self._closing = asyncio.Event()
        """Set by aclose(): ends the waits of events() at once (the state says it is closed)."""
        self._unlisten: Callable[[], None] = _nothing

    def __repr__(self) -> str:
        polling = self._poller is not None
        return f"DeliveryTracker(store={type(self.store).__name__}, polling={polling})"

    async def open(self) -> None:
        """Open the store and start the poller; a tracker opens once."""
        await super().open()

    async def _open(self) -> None:
        self._started = True
        await self.store.open()
        # The store hands over what it logged, whoever wrote it and whether or not they still
        # wait (a cancelled ingest, a poll): consumers and waiters hear of every event at once.
        self._unlisten = self.store.listen(self._logged)
        await self._live.start()
        if self._poller is not None:
            self._poller.start()

    async def aclose(self) -> None:
        """Stop the poller, end every ``events()`` iterator and close the store; idempotent."""
        await super().aclose()

    async def _aclose(self) -> None:
        if not self._started:
            return  # never opened: the store is not ours to close yet
        self._closing.set()
        self._live.wake()
        if self._poller is not None:
            await self._poller.stop()
        # Wake every wait_for_final: each sees the tracker closed and raises (never a
        # cancellation, which would end the caller's task as if someone had cancelled it).
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)
        self._waiters.clear()
        self._unlisten()
        await self.store.aclose()

    async def _fetch(self, sender: str, request_id: str) -> DeliveryInfoList:
        """One poll for the reconciliation poller, without the client's retries (the poller
        backs off itself)."""
        if self.client is None:  # pragma: no cover - the poller exists only with a client
            raise RuntimeError("a tracker without a client polls nothing")
        return await self.client.get_delivery_infos(sender, request_id, max_retries=0)

    # --- recording -----------------------------------------------------------------------

    async def track(self, sent: SendResult) -> list[DeliveryEvent]:
        """Record the recipients of a send with the states the send answered, and schedule the
        request's reconciliation when someone can poll it.

        Someone can when this tracker has a client (its poller polls the request
        ``reconcile_after`` seconds from now if still not final), or when the store is durable or
        shared (a later process, or another replica, with a client polls it). On a store that
        ends with this process and no client (the memory store, say), nothing is scheduled: only
        the send's states are recorded, and callbacks alone advance them.

        Returns the events this caused (a first sighting is one), oldest first. Raises
        ``InvalidUpdateError`` (and records nothing) when the send's states cannot be admitted.
        """
        self._check_usable()
        now = self._clock()
        updates = updates_from_send(sent, now)
        self._telemetry.track(sent, now)  # before the send's events are counted
        events = await self.ingest(updates)
        if self._reconciled:
            await self.store.schedule(
                sent.request_id,
                sent.sender,
                tracked_at=now,
                poll_at=now + self.reconcile_after,
                **schedule_trace(sent),  # the send's span context, for the poll's span
            )
        return events

    async def ingest(self, updates: Iterable[DeliveryUpdate]) -> list[DeliveryEvent]:
        """Merge updates (from callbacks, polls, sends or your code) and publish the events they
        cause.

        A :class:`DeliveryUpdate` is canonical from the moment it is built (``"+336..."``
        becomes ``"tel:+336..."``; an address that is not E.164, a status over 64 characters, a
        negative part count... raise ``InvalidUpdateError`` naming the field, so a batch holding
        one is never recorded); anything else than a ``DeliveryUpdate`` in ``updates`` raises
        ``InvalidUpdateError`` too, and nothing of the batch is recorded.

        Returns the events caused, oldest first, once the store has recorded them (an update that
        advances nothing causes none); raises ``StoreError`` when it could not record them.
        Updates to one pair apply in the order given. What the store recorded reaches
        ``events()`` consumers and ``wait_for_final`` even if this call is cancelled meanwhile.
        """
        self._check_usable()
        # type() first: ``list | tuple`` is a new union object at every call.
        batch = updates if type(updates) is list or isinstance(updates, tuple) else list(updates)
        if not batch:
            return []
        try:
            events = await self.store.apply_events(batch)
        except (AttributeError, TypeError) as exc:
            # Checked only when the store failed (it recorded nothing of the call): a check of
            # every update up front would be paid on the hot path.
            if all(isinstance(update, DeliveryUpdate) for update in batch):
                raise
            raise InvalidUpdateError("ingest takes DeliveryUpdate objects only", "update") from exc
        self._telemetry.ingested(batch, events)
        return events

    def _read_log(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> Awaitable[list[DeliveryEvent]]:
        """The store's ``read_events``, looked up at each call (a store wrapped after the
        tracker was made is read through its wrapper)."""
        return self.store.read_events(after, limit=limit, timeout=timeout)

    def _logged(self, events: Sequence[DeliveryEvent]) -> None:
        """The store's listener: what it recorded goes to the consumers and the waiters."""
        self._live.publish(events)
        self._wake_waiters(events)

    # --- reading -------------------------------------------------------------------------

    async def get(self, request_id: str, address: str) -> DeliveryState | None:
        """The state of one recipient (any accepted address form), or None if never seen."""
        self._check_usable()
        return await self.store.get(request_id, normalize_address(address))

    async def get_request(self, request_id: str) -> list[DeliveryState]:
        """The states of every recipient seen for a request."""
        self._check_usable()
        return await self.store.get_request(request_id)

    def events(self, since: str | None = None) -> AsyncIterator[DeliveryEvent]:
        """Every state advance after cursor ``since`` (None: the oldest retained), then live ones.

        Any number of consumers may iterate at once; each reads at its own pace (a consumer that
        falls behind reads from the store's log, never blocking the receiver or losing events).
        Save ``event.cursor`` to resume after a restart. Ends when the tracker closes. While the
        store is unavailable (Redis restarting, say) it waits and resumes after the last event
        it yielded, so nothing is skipped.
        """
        return follow(self, self._live, since, self._closing, logger=logger, name="events")

    async def wait_for_final(
        self, request_id: str, address: str, timeout: float | None = None
    ) -> DeliveryState:
        """Wait until the recipient reaches a final status and return its state.

        Waits for pairs not seen yet too; raises ``TimeoutError`` after ``timeout`` seconds, and
        ``RuntimeError`` ("This DeliveryTracker is closed.") when the tracker closes first, as
        any call on a closed tracker does. A caller cancelled meanwhile sees ``CancelledError``.
        """
        self._check_usable()
        key = (request_id, normalize_address(address))
        recheck = SHARED_STORE_RECHECK if self.store.shared else None
        async with asyncio.timeout(timeout) as deadline:
            while True:
                # Listed before the read: a final the store logs while the read runs (SQLite may
                # answer it from the very batch that commits the final) still wakes this waiter.
                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiters.setdefault(key, []).append(future)
                try:
                    state = await self._read_open(key)
                    if state is not None and state.is_final:
                        return state
                    self._check_usable()  # closed during the read: say so rather than wait
                    if deadline.expired():  # the read swallowed the timeout's cancellation
                        raise TimeoutError
                    # Re-read now and then: another replica may have recorded it. (asyncio.wait,
                    # not wait_for: on 3.11 wait_for may swallow the timeout's cancellation.)
                    await asyncio.wait([future], timeout=recheck)
                finally:
                    self._forget_waiter(key, future)

    async def _read_open(self, key: tuple[str, str]) -> DeliveryState | None:
        """The state of a pair, or the closed error if the tracker closes before or during."""
        self._check_usable()
        try:
            return await self.store.get(*key)
        except StoreError:
            self._check_usable()  # a store closed under the read says "closed", not "failed"
            raise

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


def _nothing() -> None:
    """What stops listening before the tracker listens."""
