"""The contract of a delivery store: what the tracker and its poller use, and nothing more.

A store keeps the merged :class:`DeliveryState` per (request id, address), an append-only log of
:class:`DeliveryEvent` written only when a state advances, and the schedule of requests the
reconciliation poller still has to poll. Two protocols say so: :class:`Schedule` (four methods,
what the poller uses to claim and reschedule polls) and :class:`Store`, a ``Schedule`` plus the
states and the log (sixteen members in all: not small, but the tracker uses each one).

What a store must do (a new one, PostgreSQL say, or the stores of another feature built the same
way). ``tests/test_store_contract.py`` runs one suite over every store kind (a new store adds its
kind to ``STORE_KINDS`` there) and checks rules 1 to 6; ``tests/test_store_urls.py`` checks 7.

1. **Merge with** :func:`opensms_async._state.merge`, **atomically per call**: the updates of one
   ``apply_events`` call are merged in order, all recorded or none (a failing update undoes its
   call), and concurrent calls (and replicas) never lose one. A store that cannot run Python where
   it merges generates a twin of the merge from ``_state``'s tables and proves it equal: Redis runs
   a Lua twin (``_redis_scripts.py``), checked by
   ``tests/test_store_redis.py::test_redis_merge_script_equals_python_merge``. The in-process stores
   replay ``merge`` from a memo (``_memo.py``).
2. **Log only advances**: one event per state advance (``MergeResult.advanced``), none for a
   duplicate, a stale update or a change that does not advance (a learned sender, a conflict
   flag); every event's cursor is above every earlier one's, by :meth:`Store.cursor_key`.
3. **Durable before return**: when ``apply_events`` returns, what it merged is as durable as the
   store promises (the receiver then answers 2xx and BICS never retries), and ``durable`` says
   whether that outlives the process; when it recorded nothing it raises
   :class:`StoreUnavailableError` (the receiver answers 503).
4. **The listeners after the commit**: every event logged goes to the listeners registered with
   :meth:`Store.listen`, on the event loop, once recorded and before the call that logged it
   returns, in log order, whether or not that caller is still waiting (it may have been
   cancelled). A shared store may hand over its batches in the order it sent them, which is not
   the log's when the server ran two the other way round; each is then a ``LogRun`` whose
   ``after`` says where it sits (the live buffer reads the log for what does not continue). A
   store that cannot know whether a write landed (Redis whose answer never came) cannot tell
   its listeners either: a shared store's readers read its log, not its listeners.
5. **Cursors**: opaque strings, ordered by :meth:`Store.cursor_key`; declare ``consecutive`` True
   only when each event's key is the previous one's plus one in its first element (``(n, 0)``
   then ``(n + 1, 0)``), which lets the tracker's live buffer tell a gap from an unbroken run.
6. **Lifecycle**: :class:`opensms_async.stores._common.StoreLifecycle` (a ``Lifecycle`` with
   ``_open_twice`` and ``StoreError``): ``open`` twice is a no-op, ``aclose`` idempotent, use
   before ``open`` or after ``aclose`` raises StoreError.
7. **A URL**: a ``from_url`` class method, and a line in ``_url.BACKENDS`` (imported lazily).

Every method may raise :class:`StoreError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeAlias, runtime_checkable

import attrs

from .._state import DeliveryEvent, DeliveryState, DeliveryUpdate

__all__ = ["Listener", "PendingRequest", "Schedule", "Store"]

Listener: TypeAlias = Callable[[Sequence[DeliveryEvent]], None]
"""Called with each batch of events a store logged, oldest first; must not block or raise."""


@attrs.frozen
class PendingRequest:
    """A tracked request that the reconciliation poller may have to poll."""

    request_id: str
    sender: str
    tracked_at: float
    next_poll_at: float
    attempts: int = 0
    traceparent: str | None = None
    """The W3C ``traceparent`` of the send's span, when it was traced: the poller's span links to
    it, in whichever process the poll happens."""


@runtime_checkable
class Schedule(Protocol):
    """The requests still to poll, with leases so that one poller (or replica) takes each."""

    async def schedule(
        self,
        request_id: str,
        sender: str,
        *,
        tracked_at: float,
        poll_at: float,
        traceparent: str | None = None,
    ) -> None:
        """Add a request to the polling schedule (keeping an existing entry's attempts, and its
        ``traceparent`` if it has one). ``traceparent`` is given only while tracing is on; a
        store keeps it with the entry and gives it back in :meth:`claim_due`."""

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


@runtime_checkable
class Store(Schedule, Protocol):
    """Home of delivery states, the event log and the polling schedule (see the module)."""

    shared: bool
    """True when other processes may append events too: readers must read the store's log."""
    durable: bool
    """True when what it holds outlives this process (a later process may poll its schedule)."""
    consecutive: bool
    """True when each logged event's cursor key is the previous one's plus one (``(n, 0)``,
    ``(n + 1, 0)``): a gap then means events logged by someone else."""

    async def open(self) -> None:
        """Connect, create the schema; idempotent."""

    async def aclose(self) -> None:
        """Flush and release resources; idempotent."""

    async def apply_events(self, updates: Sequence[DeliveryUpdate]) -> list[DeliveryEvent]:
        """Merge each update atomically into its stored state and log an event per advance;
        returns the events logged, oldest first, once they are as durable as the store promises.

        Updates to one pair apply in the order given; listeners get the events too.
        """
        ...

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Hand every batch of events this store logs to ``listener``; returns the function that
        stops it."""
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
