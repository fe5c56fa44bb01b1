"""``MemoryStore``: delivery states and events in this process's memory, no I/O, no threads.

Built to track millions of recipients in about 200 bytes each (``bench/bench_memory.py``):

* states live in one small dict per request id, ``address -> (address, shape, updated_at)``, where
  ``shape`` is an interned ``(status, parts_delivered, sms_parts, sender, conflict)`` tuple shared
  by every recipient in the same state; request ids and addresses are stored once and reused;
* the event log is columnar: four parallel lists (request id, address, interned event shape,
  time), so an event costs four references, and cursors are positions, never stored;
* attrs objects (:class:`DeliveryState`, :class:`DeliveryEvent`) are built only when read or
  returned.

Merging is memoised (:class:`MergeMemo`): what :func:`~opensms_async._state.merge` does depends
only on the stored shape and on the update's status, parts, sender and source, never on the pair
or the time, so each combination is merged once (through ``merge`` itself) and then replayed from
a dict. That keeps ``apply`` near the cost of building the objects it returns.

Everything runs on the event loop without awaiting inside ``apply``, which makes each call atomic.
"""

from __future__ import annotations

import asyncio
import heapq
from array import array
from collections.abc import Sequence
from types import TracebackType
from typing import Final, Self, TypeAlias, TypeVar

import attrs

from .._exceptions import StoreError
from .._models import Status
from .._state import (
    DeliveryEvent,
    DeliveryState,
    DeliveryUpdate,
    MergeOutcome,
    MergeResult,
    Source,
    merge,
)
from ._base import Applied, PendingRequest
from ._common import Wakeup, parse_cursor, parse_status

__all__ = ["DEFAULT_MAX_EVENTS", "MemoryStore", "MergeMemo"]

DEFAULT_MAX_EVENTS: Final = 1_000_000
"""Events retained by default (about 35 MB of log); past it the oldest are dropped first."""

_MAX_SHAPES: Final = 65_536
"""Interned shapes kept at most; past that (odd unknown statuses), tuples are simply not shared."""

# Shapes list fields in the order of DeliveryState's and DeliveryEvent's own (from status on), so
# that the attrs objects are built positionally: keywords cost a fifth more on the hot path.
_StateShape: TypeAlias = tuple[Status, int | None, int | None, str | None, bool]
_EventShape: TypeAlias = tuple[Status, Status | None, Source, int | None, int | None, bool]
_Row: TypeAlias = tuple[str, _StateShape, float]
_T = TypeVar("_T", bound=tuple[object, ...])
_Undo: TypeAlias = tuple["_Request", str, _Row | None]
_StepKey: TypeAlias = tuple[object, ...]
_Merged: TypeAlias = tuple[str, _Row, "_Step", int]
"""What merging one update did: its request id, its row afterwards, the step, the event cursor."""

# The probe pair and times of MergeMemo: merge must carry them through untouched.
_PROBE_REQUEST, _PROBE_ADDRESS = "\x00request", "\x00address"
_KEEP_TIME, _TAKE_TIME = -1.0, -2.0


class _Request:
    """The recipients of one request id: the canonical id string and a row per address."""

    __slots__ = ("request_id", "rows")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.rows: dict[str, _Row] = {}


class _Step:
    """What merging one kind of update into one stored shape does, for any pair at any time.

    ``shape`` is the state shape afterwards, ``event_shape`` the logged event's (None when the
    state does not advance); ``takes_time`` says whether ``updated_at`` becomes the update's
    ``received_at`` (an advance) or stays.
    """

    __slots__ = ("advanced", "changed", "event_shape", "outcome", "previous", "shape", "takes_time")

    def __init__(
        self,
        result: MergeResult,
        shape: _StateShape,
        event_shape: _EventShape | None,
        takes_time: bool,
    ) -> None:
        self.outcome: MergeOutcome = result.outcome
        self.previous: Status | None = result.previous
        self.advanced: bool = result.advanced
        self.changed: bool = result.changed
        self.shape = shape
        self.event_shape = event_shape
        self.takes_time = takes_time


class MergeMemo:
    """:func:`~opensms_async._state.merge`, memoised on what it reads (SQLiteStore uses it too).

    Stored states are *shapes*, ``(status, parts_delivered, sms_parts, sender, conflict)``: what
    merge does to one depends only on the shape and the update's status, parts, sender and source,
    never on the pair or the times. Each combination is therefore merged once, by ``merge``
    itself on a stand-in pair, and replayed after that. Shapes are interned, so recipients in the
    same state share one tuple. Both tables are bounded: past the bound, nothing more is kept.
    """

    __slots__ = ("_shapes", "_steps")

    def __init__(self) -> None:
        self._shapes: dict[tuple[object, ...], tuple[object, ...]] = {}
        self._steps: dict[_StepKey, _Step] = {}

    def step(self, shape: _StateShape | None, update: DeliveryUpdate) -> _Step:
        """What merging ``update`` into a state of ``shape`` (None: never seen) does."""
        key = (shape, update.status, update.parts_delivered, update.sms_parts, update.sender,
               update.source)  # fmt: skip
        step = self._steps.get(key)
        if step is None:
            step = self._learn(shape, update)
            if len(self._steps) < _MAX_SHAPES:
                self._steps[key] = step
        return step

    def shape(self, shape: _StateShape) -> _StateShape:
        """The interned (shared) copy of a state shape."""
        return self._intern(shape)

    def _learn(self, shape: _StateShape | None, update: DeliveryUpdate) -> _Step:
        result = _probe(shape, update)
        state, previous = result.state, result.previous
        event_shape = None
        if result.advanced:
            event_shape = self._intern(
                (
                    parse_status(state.status),
                    None if previous is None else parse_status(previous),
                    update.source,
                    state.parts_delivered,
                    state.sms_parts,
                    state.conflict,
                )
            )
        state_shape = self._intern(
            (
                parse_status(state.status),
                state.parts_delivered,
                state.sms_parts,
                state.sender,
                state.conflict,
            )
        )
        return _Step(result, state_shape, event_shape, state.updated_at == _TAKE_TIME)

    def _intern(self, shape: _T) -> _T:
        if len(self._shapes) >= _MAX_SHAPES:
            return shape
        # A shape's fields are hashable and compare by value; the stored object is the same type.
        return self._shapes.setdefault(shape, shape)  # type: ignore[return-value]


def _probe(shape: _StateShape | None, update: DeliveryUpdate) -> MergeResult:
    """``merge`` itself on a stand-in pair, with times that show what it does with them."""
    current = None if shape is None else _state(_PROBE_REQUEST, (_PROBE_ADDRESS, shape, _KEEP_TIME))
    probe = attrs.evolve(
        update, request_id=_PROBE_REQUEST, address=_PROBE_ADDRESS, received_at=_TAKE_TIME
    )
    result = merge(current, probe)
    state = result.state
    if (state.request_id, state.address) != (_PROBE_REQUEST, _PROBE_ADDRESS) or (
        state.updated_at not in (_KEEP_TIME, _TAKE_TIME)
    ):
        # merge grew a dependency on the pair or the time: this memo would be wrong.
        raise RuntimeError("merge() no longer fits MergeMemo; update it")
    return result


class _Pending:
    """A request on the polling schedule, with its lease."""

    __slots__ = ("attempts", "leased_until", "next_poll_at", "sender", "tracked_at")

    def __init__(self, sender: str, tracked_at: float, next_poll_at: float) -> None:
        self.sender = sender
        self.tracked_at = tracked_at
        self.next_poll_at = next_poll_at
        self.attempts = 0
        self.leased_until: float | None = None

    def is_due(self, now: float) -> bool:
        return self.next_poll_at <= now and (self.leased_until is None or self.leased_until <= now)


class _EventLog:
    """An append-only, columnar event log that keeps the newest ``max_events`` events.

    Event ``n`` (cursors count from 1) sits at index ``n - base``. Dropped events are removed from
    the head in chunks (``slack``), so trimming costs O(1) amortised while reads already skip
    them: the retained window is always exactly the newest ``max_events``.
    """

    __slots__ = ("_at", "_slack", "addresses", "base", "max_events", "request_ids", "shapes")

    def __init__(self, max_events: int) -> None:
        self.max_events = max_events
        self._slack = max(64, max_events // 4)
        self.base = 1
        self.request_ids: list[str] = []
        self.addresses: list[str] = []
        self.shapes: list[_EventShape] = []
        self._at = array("d")

    @property
    def next_cursor(self) -> int:
        return self.base + len(self.shapes)

    @property
    def first_retained(self) -> int:
        return self.next_cursor - min(len(self.shapes), self.max_events)

    def append(self, request_id: str, address: str, shape: _EventShape, at: float) -> int:
        """Log one event; its cursor number."""
        cursor = self.base + len(self.shapes)  # next_cursor, without a property call
        self.request_ids.append(request_id)
        self.addresses.append(address)
        self.shapes.append(shape)
        self._at.append(at)
        if len(self.shapes) > self.max_events + self._slack:
            self._drop(len(self.shapes) - self.max_events)
        return cursor

    def _drop(self, count: int) -> None:
        del self.request_ids[:count], self.addresses[:count], self.shapes[:count]
        del self._at[:count]
        self.base += count

    def truncate(self, cursor: int) -> None:
        """Forget the events from ``cursor`` on (those of a failed ``apply``)."""
        count = min(self.next_cursor - cursor, len(self.shapes))
        if count > 0:
            del self.request_ids[-count:], self.addresses[-count:], self.shapes[-count:]
            del self._at[-count:]

    def read(self, after: int, limit: int) -> list[DeliveryEvent]:
        """Up to ``limit`` retained events with a cursor above ``after``, oldest first."""
        start = max(after + 1, self.first_retained) - self.base
        stop = min(start + limit, len(self.shapes))
        return [self.event(self.base + i) for i in range(start, stop)]

    def event(self, cursor: int) -> DeliveryEvent:
        """The event with cursor number ``cursor`` (which must be retained), as attrs."""
        i = cursor - self.base
        return _event(cursor, self.request_ids[i], self.addresses[i], self.shapes[i], self._at[i])


class MemoryStore:
    """A :class:`~opensms_async.stores.Store` in process memory, for tests and single processes.

    Nothing survives the process. ``max_events`` bounds the event log (default
    :data:`DEFAULT_MAX_EVENTS`): past it the oldest events are dropped, and a reader whose cursor
    is older than the retained log resumes from the oldest retained event. States and the polling
    schedule are not bounded; they go when the process does.

    Cursors are decimal strings counting from ``"1"``; they restart with every new store.
    """

    shared: bool = False

    def __init__(self, *, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be at least 1, not {max_events!r}")
        self._requests: dict[str, _Request] = {}
        self._log = _EventLog(max_events)
        self._memo = MergeMemo()  # per store, like its interned shapes: no module-level cache
        self._pending: dict[str, _Pending] = {}
        self._wakeup = Wakeup()
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryStore(max_events={self._log.max_events})"

    @property
    def max_events(self) -> int:
        """How many events the log retains."""
        return self._log.max_events

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Nothing to connect; refuses a closed store."""
        self._check_open()

    async def close(self) -> None:
        """Refuse further use (:class:`StoreError`) and wake waiting readers; idempotent."""
        self._closed = True
        self._wakeup.fire()

    # --- states ------------------------------------------------------------------------------

    async def apply(self, updates: Sequence[DeliveryUpdate]) -> list[Applied]:
        """Merge each update into its state and log an event per advance, atomically.

        No ``await`` happens inside, so concurrent calls cannot interleave; if an update raises
        (a malformed one), the updates of this call that were already applied are undone.
        """
        return [self._applied(merged) for merged in self._merge_all(updates)]

    async def apply_events(self, updates: Sequence[DeliveryUpdate]) -> list[DeliveryEvent]:
        """:meth:`apply`, returning only the events it logged (oldest first).

        The same merge and log, without building a state and a result per update: the
        receiver's path (``DeliveryTracker`` uses it when it needs no results).
        """
        if type(self).apply is not MemoryStore.apply:  # a subclass wraps apply: go through it
            return [a.event for a in await self.apply(updates) if a.event is not None]
        merged = self._merge_all(updates)
        return [event for m in merged if (event := _logged(m)) is not None]

    async def get(self, request_id: str, address: str) -> DeliveryState | None:
        """The state of one recipient, or None if the pair was never seen."""
        self._check_open()
        request = self._requests.get(request_id)
        row = None if request is None else request.rows.get(address)
        return None if request is None or row is None else _state(request.request_id, row)

    async def get_request(self, request_id: str) -> list[DeliveryState]:
        """The states of every recipient seen for a request, sorted by address."""
        self._check_open()
        request = self._requests.get(request_id)
        if request is None:
            return []
        return [_state(request.request_id, request.rows[a]) for a in sorted(request.rows)]

    def _merge_all(self, updates: Sequence[DeliveryUpdate]) -> list[_Merged]:
        """Merge and log every update, all or none (a failing update undoes its call)."""
        self._check_open()
        undo: list[_Undo] = []
        mark = self._log.next_cursor
        try:
            merged = [self._merge_one(update, undo) for update in updates]
        except BaseException:
            self._undo(undo, mark)
            raise
        if self._log.next_cursor != mark:
            self._wakeup.fire()
        return merged

    def _merge_one(self, update: DeliveryUpdate, undo: list[_Undo]) -> _Merged:
        request = self._requests.get(update.request_id)
        if request is None:
            request = self._requests[update.request_id] = _Request(update.request_id)
        stored = request.rows.get(update.address)
        step = self._memo.step(None if stored is None else stored[1], update)
        row = stored if stored is not None else (update.address, step.shape, update.received_at)
        if step.changed:
            updated_at = update.received_at if step.takes_time else row[2]
            row = (row[0], step.shape, updated_at)
            undo.append((request, row[0], stored))
            request.rows[row[0]] = row
        cursor = 0
        if step.event_shape is not None:
            cursor = self._log.append(request.request_id, row[0], step.event_shape, row[2])
        return request.request_id, row, step, cursor

    def _applied(self, merged: _Merged) -> Applied:
        request_id, row, step, _ = merged
        state = _state(request_id, row)
        result = MergeResult(state, step.outcome, step.previous, step.advanced, step.changed)
        return Applied(result, _logged(merged))

    def _undo(self, undo: list[_Undo], mark: int) -> None:
        """Put back the rows a failed ``apply`` changed and drop the events it logged."""
        for request, address, row in reversed(undo):
            if row is not None:
                request.rows[address] = row
                continue
            del request.rows[address]
            if not request.rows:
                del self._requests[request.request_id]
        self._log.truncate(mark)

    # --- events ------------------------------------------------------------------------------

    async def read_events(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> list[DeliveryEvent]:
        """Up to ``limit`` events after cursor ``after`` (None: the oldest retained), oldest first;
        with ``timeout`` > 0, waits up to that long for one when there is none."""
        start = 0 if after is None else parse_cursor(after)
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit!r}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._check_open()
            events = self._log.read(start, limit)
            remaining = deadline - loop.time()
            if events or remaining <= 0:
                return events
            await self._wakeup.wait(self._wakeup.generation, remaining)

    async def last_cursor(self) -> str | None:
        """The cursor of the newest logged event, or None for an empty log."""
        self._check_open()
        last = self._log.next_cursor - 1
        return str(last) if last >= self._log.first_retained else None

    def cursor_key(self, cursor: str) -> tuple[int, int]:
        """``(n, 0)`` for cursor ``"n"``; ValueError for a malformed cursor."""
        return (parse_cursor(cursor), 0)

    # --- polling schedule --------------------------------------------------------------------

    async def schedule(
        self, request_id: str, sender: str, *, tracked_at: float, poll_at: float
    ) -> None:
        """Add a request to the polling schedule (an existing entry keeps attempts and lease)."""
        self._check_open()
        entry = self._pending.get(request_id)
        if entry is None:
            self._pending[request_id] = _Pending(sender, tracked_at, poll_at)
            return
        entry.sender = sender
        entry.tracked_at = min(entry.tracked_at, tracked_at)
        entry.next_poll_at = poll_at

    async def claim_due(
        self, now: float, *, limit: int = 100, lease: float = 60.0
    ) -> list[PendingRequest]:
        """Lease up to ``limit`` due requests (earliest first) for ``lease`` seconds."""
        self._check_open()
        # A scan: the schedule holds requests, not recipients, so it stays small.
        due = [(e.next_poll_at, rid) for rid, e in self._pending.items() if e.is_due(now)]
        claimed = []
        for _, request_id in heapq.nsmallest(limit, due):
            entry = self._pending[request_id]
            entry.leased_until = now + lease
            claimed.append(_pending(request_id, entry))
        return claimed

    async def reschedule(self, request_id: str, *, next_poll_at: float, attempts: int) -> None:
        """Set a request's next poll time and attempts and release its lease (no-op if gone)."""
        self._check_open()
        entry = self._pending.get(request_id)
        if entry is not None:
            entry.next_poll_at, entry.attempts, entry.leased_until = next_poll_at, attempts, None

    async def unschedule(self, request_id: str) -> None:
        """Stop polling a request (no-op if it is not scheduled)."""
        self._check_open()
        self._pending.pop(request_id, None)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("this MemoryStore is closed")


def _state(request_id: str, row: _Row) -> DeliveryState:
    address, shape, updated_at = row
    # status, parts_delivered, sms_parts, sender, conflict
    return DeliveryState(request_id, address, *shape, updated_at)


def _event(
    cursor: int, request_id: str, address: str, shape: _EventShape, at: float
) -> DeliveryEvent:
    # status, previous, source, parts_delivered, sms_parts, conflict
    return DeliveryEvent(str(cursor), request_id, address, *shape, at)


def _logged(merged: _Merged) -> DeliveryEvent | None:
    """The event a merge logged, as attrs, or None."""
    request_id, (address, _, at), step, cursor = merged
    if step.event_shape is None:
        return None
    return _event(cursor, request_id, address, step.event_shape, at)


def _pending(request_id: str, entry: _Pending) -> PendingRequest:
    return PendingRequest(
        request_id=request_id,
        sender=entry.sender,
        tracked_at=entry.tracked_at,
        next_poll_at=entry.next_poll_at,
        attempts=entry.attempts,
    )
