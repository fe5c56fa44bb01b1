"""The one small interface every delivery store implements.

A store keeps the merged :class:`DeliveryState` per (request id, address), an append-only log of
:class:`DeliveryEvent` written only when a state advances, and the schedule of requests the
reconciliation poller still has to poll. Stores call :func:`opensms_async._state.merge`; they
never re-implement it. Every method may raise :class:`StoreError`; ``apply`` and
``apply_events`` raise :class:`StoreUnavailableError` when they recorded nothing, so the receiver
can answer 503.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs

from .._state import DeliveryEvent, DeliveryState, DeliveryUpdate, MergeResult

__all__ = ["Applied", "PendingRequest", "Store"]


@attrs.frozen
class Applied:
    """What :meth:`Store.apply` did with one update: the merge, and the event it logged if any."""

    result: MergeResult
    event: DeliveryEvent | None


@attrs.frozen
class PendingRequest:
    """A tracked request that the reconciliation poller may have to poll."""

    request_id: str
    sender: str
    tracked_at: float
    next_poll_at: float
    attempts: int = 0


@runtime_checkable
class Store(Protocol):
    """Durable (or not) home of delivery states, the event log and the polling schedule."""

    shared: bool
    """True when other processes may append events too (events must be read from the store)."""

    async def open(self) -> None:
        """Connect, create the schema; idempotent."""

    async def aclose(self) -> None:
        """Flush and release resources; idempotent."""

    async def apply(self, updates: Sequence[DeliveryUpdate]) -> list[Applied]:
        """Merge each update atomically into its stored state and log an event per advance.

        When this returns, the result is as durable as the store promises (SQLite: committed).
        Results come back in the order of ``updates``; updates to one pair apply in that order.
        """
        ...

    async def apply_events(self, updates: Sequence[DeliveryUpdate]) -> list[DeliveryEvent]:
        """:meth:`apply`, returning only the events it logged, oldest first.

        The same merge, log and durability; what :class:`DeliveryTracker` writes through, so a
        store may make it cheaper than ``apply`` by building no result per update.
        """
        ...

    async def get(self, request_id: str, address: str) -> DeliveryState | None:
        """The state of one recipient, or None if the pair was never seen."""
        ...

    async def get_request(self, request_id: str) -> list[DeliveryState]:
        """The states of every recipient seen for a request (empty when none)."""
        ...

    async def read_events(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> list[DeliveryEvent]:
        """Up to ``limit`` events after cursor ``after`` (None: from the oldest retained), oldest
        first. With ``timeout`` > 0, waits up to that many seconds for one when there is none."""
        ...

    async def last_cursor(self) -> str | None:
        """The cursor of the newest logged event, or None for an empty log."""
        ...

    def cursor_key(self, cursor: str) -> tuple[int, int]:
        """A sortable key for a cursor of this store; raises ValueError for a malformed one."""
        ...

    async def schedule(
        self, request_id: str, sender: str, *, tracked_at: float, poll_at: float
    ) -> None:
        """Add a request to the polling schedule (keeping an existing entry's attempts)."""

    async def claim_due(
        self, now: float, *, limit: int = 100, lease: float = 60.0
    ) -> list[PendingRequest]:
        """Take up to ``limit`` scheduled requests due at ``now``; hide them for ``lease`` seconds
        so that no other poller (or replica) takes them meanwhile."""
        ...

    async def reschedule(self, request_id: str, *, next_poll_at: float, attempts: int) -> None:
        """Set a claimed request's next poll time and attempt count (releasing the lease)."""

    async def unschedule(self, request_id: str) -> None:
        """Stop polling a request: every recipient is final, or its receipts have expired."""
