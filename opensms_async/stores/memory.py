"""``MemoryStore``: delivery states and events in this process's memory, no I/O, no threads.

Built to track millions of recipients in little memory (``bench/bench_memory.py``) and to merge
updates fast (``bench/bench_merge.py``):

* states live in one small dict per request id, ``address -> (address, shape, updated_at)``, where
  ``shape`` is an interned ``(status, parts_delivered, sms_parts, sender, conflict)`` tuple of plain
  values shared by every recipient in the same state (so the garbage collector stops tracking the
  rows); request ids and addresses are stored once and reused;
* the event log is columnar: four parallel lists (request id, address, interned event shape,
  time), so an event costs four references, and cursors are positions, never stored;
* the merge is replayed from a :class:`~opensms_async.stores._memo.MergeMemo` (each combination
  of stored shape and update merged once, by :func:`~opensms_async._state.merge` itself);
* attrs objects are built only when read or returned: ``apply_events`` builds one
  :class:`DeliveryEvent` per advance and nothing per update.

Everything runs on the event loop without awaiting inside ``apply_events``, which makes each call
atomic.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, TypeAlias

from .._lifecycle import OPEN
from .._state import DeliveryEvent, DeliveryState, DeliveryUpdate, EventDraft, build_event
from ._base import PendingRequest
from ._common import InProcessLog, Listeners, LogRun, Wakeup
from ._memo import EventShape, MergeMemo, StateShape, state_from_shape
from ._url_options import memory_options, positive_int

__all__ = ["DEFAULT_MAX_EVENTS", "MemoryStore"]

DEFAULT_MAX_EVENTS: Final = 1_000_000
"""Events retained by default; past it the oldest are dropped first."""

_Row: TypeAlias = tuple[str, StateShape, float]
"""A recipient's state: ``(address, shape, updated_at)``."""
_Rows: TypeAlias = dict[str, _Row]
"""The recipients of one request id: a row per address.

A dict of plain values, not an object holding one: the garbage collector of CPython 3.11 to
3.13 stops tracking such a dict in its next full collection (3.14 no longer does, gh-127010),
so a million requests of one recipient each are not a million objects that every later full
collection walks (a pause of the receiver as long as the store is big). An instance of a class
(``__slots__`` or not), or a tuple holding the dict, stays tracked for ever; the canonical id
strings live apart, in a dict of strings (never tracked).
"""


class _Pending:
    """A request on the polling schedule, with its lease."""

    __slots__ = ("attempts", "leased_until", "next_poll_at", "sender", "traceparent", "tracked_at")

    def __init__(
        self, sender: str, tracked_at: float, next_poll_at: float, traceparent: str | None
    ) -> None:
        self.sender = sender
        self.tracked_at = tracked_at
        self.next_poll_at = next_poll_at
        self.attempts = 0
        self.leased_until: float | None = None
        self.traceparent = traceparent


class _Schedule:
    """The polling schedule: requests by id, and two heaps that find the due ones in O(log n).

    ``ready`` holds ``(next_poll_at, request_id)`` of the requests not leased, ``leased`` holds
    ``(leased_until, request_id)`` of the leased ones, so that with a million pending and none
    due, :meth:`claim` looks at two heap tops and nothing else. A change pushes a new item and
    leaves the old one in its heap: an item counts only while it still matches its entry, and
    the heaps are rebuilt once stale items outnumber live ones (amortised O(1) per change).
    """

    __slots__ = ("entries", "leased", "ready")

    def __init__(self) -> None:
        self.entries: dict[str, _Pending] = {}
        self.ready: list[tuple[float, str]] = []
        self.leased: list[tuple[float, str]] = []

    def add(
        self,
        request_id: str,
        sender: str,
        tracked_at: float,
        poll_at: float,
        traceparent: str | None = None,
    ) -> None:
        """Schedule a request; an existing entry keeps its attempts, lease and traceparent."""
        entry = self.entries.get(request_id)
        if entry is None:
            self.entries[request_id] = _Pending(sender, tracked_at, poll_at, traceparent)
        else:
            entry.traceparent = entry.traceparent or traceparent
            entry.sender = sender
            entry.tracked_at = min(entry.tracked_at, tracked_at)
            entry.next_poll_at = poll_at
            if entry.leased_until is not None:
                return  # its lease item stays valid; when it expires, it is ready at poll_at
        heapq.heappush(self.ready, (poll_at, request_id))
        self._compact()

    def release(self, request_id: str, next_poll_at: float, attempts: int) -> None:
        """Set a request's next poll and attempts, and end its lease (no-op if gone)."""
        entry = self.entries.get(request_id)
        if entry is not None:
            entry.next_poll_at, entry.attempts, entry.leased_until = next_poll_at, attempts, None
            heapq.heappush(self.ready, (next_poll_at, request_id))
            self._compact()

    def remove(self, request_id: str) -> None:
        """Forget a request (its heap items go stale)."""
        self.entries.pop(request_id, None)

    def claim(self, now: float, limit: int, lease: float) -> list[tuple[str, _Pending]]:
        """Lease up to ``limit`` due requests, earliest ``next_poll_at`` first (ties by id)."""
        self._compact()
        self._expire_leases(now)
        claimed: list[tuple[str, _Pending]] = []
        ready, entries = self.ready, self.entries
        while ready and len(claimed) < limit and ready[0][0] <= now:
            at, request_id = heapq.heappop(ready)
            entry = entries.get(request_id)
            if entry is None or entry.leased_until is not None or entry.next_poll_at != at:
                continue  # stale: rescheduled, leased or unscheduled since
            entry.leased_until = now + lease
            heapq.heappush(self.leased, (entry.leased_until, request_id))
            claimed.append((request_id, entry))
        return claimed

    def _expire_leases(self, now: float) -> None:
        """Make the requests whose lease ran out ready again, at their ``next_poll_at``."""
        leased, entries = self.leased, self.entries
        while leased and leased[0][0] <= now:
            until, request_id = heapq.heappop(leased)
            entry = entries.get(request_id)
            if entry is not None and entry.leased_until == until:
                entry.leased_until = None
                heapq.heappush(self.ready, (entry.next_poll_at, request_id))

    def _compact(self) -> None:
        """Drop every stale item once they outnumber the entries: one item per entry is left,
        in the heap its lease says. Never called while a loop holds a heap."""
        if len(self.ready) + len(self.leased) <= 2 * len(self.entries) + 1024:
            return
        self.ready = [
            (e.next_poll_at, r) for r, e in self.entries.items() if e.leased_until is None
        ]
        self.leased = [
            (e.leased_until, r) for r, e in self.entries.items() if e.leased_until is not None
        ]
        heapq.heapify(self.ready)
        heapq.heapify(self.leased)


class _EventLog:
    """An append-only, columnar event log that keeps the newest ``max_events`` events.

    Event ``n`` (cursors count from 1) sits at index ``n - base``. Dropped events are removed from
    the head in chunks (``slack``), so trimming costs O(1) amortised while reads already skip
    them: the retained window is always exactly the newest ``max_events``.
    """

    __slots__ = ("_slack", "addresses", "base", "max_events", "request_ids", "shapes", "times")

    def __init__(self, max_events: int) -> None:
        self.max_events = max_events
        self._slack = max(64, max_events // 4)
        self.base = 1
        self.request_ids: list[str] = []
        self.addresses: list[str] = []
        self.shapes: list[EventShape] = []
        self.times = array("d")

    @property
    def next_cursor(self) -> int:
        return self.base + len(self.shapes)

    @property
    def first_retained(self) -> int:
        return self.next_cursor - min(len(self.shapes), self.max_events)

    def trim(self) -> None:
        """Drop the events past the newest ``max_events``, once enough have piled up.

        Writers append to the four columns (the same number to each), then call this.
        """
        count = len(self.shapes) - self.max_events
        if count > self._slack:
            del self.request_ids[:count], self.addresses[:count], self.shapes[:count]
            del self.times[:count]
            self.base += count

    def truncate(self, cursor: int) -> None:
        """Forget the events from ``cursor`` on (those of a failed merge)."""
        count = min(self.next_cursor - cursor, len(self.shapes))
        if count > 0:
            del self.request_ids[-count:], self.addresses[-count:], self.shapes[-count:]
            del self.times[-count:]

    def read(self, after: int, limit: int) -> list[DeliveryEvent]:
        """Up to ``limit`` retained events with a cursor above ``after``, oldest first."""
        start = max(after + 1, self.first_retained) - self.base
        stop = min(start + limit, len(self.shapes))
        return [self.event(self.base + i) for i in range(start, stop)]

    def event(self, cursor: int) -> DeliveryEvent:
        """The event with cursor number ``cursor`` (which must be retained), as attrs."""
        i = cursor - self.base
        # status, previous, source, parts_delivered, sms_parts, conflict
        return build_event(
            str(cursor), self.request_ids[i], self.addresses[i], *self.shapes[i], self.times[i]
        )


class MemoryStore(InProcessLog[DeliveryEvent]):
    """A :class:`~opensms_async.stores.Store` in process memory, for tests and single processes.

    Nothing survives the process. ``max_events`` bounds the event log (default
    :data:`DEFAULT_MAX_EVENTS`): past it the oldest events are dropped, and a reader whose cursor
    is older than the retained log resumes from the oldest retained event. States and the polling
    schedule are not bounded; they go when the process does.

    Cursors are decimal strings counting from ``"1"``; they restart with every new store. Use it
    as ``async with MemoryStore() as store`` (or ``open()`` and ``aclose()``), like every store.
    """

    shared: bool = False
    durable: bool = False
    consecutive: bool = True
    _log: _EventLog

    def __init__(self, *, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be at least 1, not {max_events!r}")
        self._requests: dict[str, _Rows] = {}
        self._ids: dict[str, str] = {}
        """Each request id to its canonical string (the one the log and the events share)."""
        self._log = _EventLog(max_events)
        self._memo = MergeMemo()  # per store, like its interned shapes: no module-level cache
        self._schedule = _Schedule()
        self._wakeup = Wakeup()
        self._listeners: Listeners[DeliveryEvent] = Listeners()

    @classmethod
    def from_url(cls, url: str) -> MemoryStore:
        """The store ``memory://`` names (option ``?max_events=N``); InvalidStoreURLError for
        anything else."""
        given = memory_options(url, {"max_events"})
        if "max_events" not in given:
            return cls()
        return cls(max_events=positive_int(url, "max_events", given["max_events"]))

    def __repr__(self) -> str:
        return f"MemoryStore(max_events={self._log.max_events})"

    @property
    def max_events(self) -> int:
        """How many events the log retains."""
        return self._log.max_events

    # --- states ------------------------------------------------------------------------------

    async def apply_events(self, updates: Sequence[DeliveryUpdate]) -> list[DeliveryEvent]:
        """Merge each update into its state and log an event per advance, atomically; the events
        logged, oldest first (listeners get them before this returns).

        No ``await`` happens inside, so concurrent calls cannot interleave; if an update raises
        (a malformed one), the updates of this call that were already applied are undone.
        """
        return self._merge_all(updates)

    def listen(self, listener: Callable[[Sequence[DeliveryEvent]], None]) -> Callable[[], None]:
        """Hand every batch of logged events to ``listener``, at once and in log order; returns
        the function that stops it."""
        return self._listeners.add(listener)

    async def get(self, request_id: str, address: str) -> DeliveryState | None:
        """The state of one recipient, or None if the pair was never seen."""
        self._check_usable()
        request = self._requests.get(request_id)
        row = None if request is None else request.get(address)
        return None if row is None else _state(self._ids[request_id], row)

    async def get_request(self, request_id: str) -> list[DeliveryState]:
        """The states of every recipient seen for a request, sorted by address."""
        self._check_usable()
        request = self._requests.get(request_id)
        if request is None:
            return []
        canonical = self._ids[request_id]
        return [_state(canonical, request[a]) for a in sorted(request)]

    def _merge_all(self, updates: Sequence[DeliveryUpdate]) -> list[DeliveryEvent]:
        """Merge and log every update, all or none (a failing update undoes its call), and
        publish the events logged; returns them.

        This loop is the in-process hot path (``bench/bench_merge.py``), hence written out in
        one piece with its lookups bound to locals.
        """
        if self._state is not OPEN:
            raise self._unusable()
        requests, ids, log, memo = self._requests, self._ids, self._log, self._memo
        known_steps, learn = memo.steps, memo.step
        log_request, log_address = log.request_ids.append, log.addresses.append
        log_shape, log_time = log.shapes.append, log.times.append
        draft = EventDraft
        mark = cursor = log.next_cursor
        undo: list[_Row | None] = []
        """The row each update found (None: none), in order: what a failure puts back."""
        events: LogRun[DeliveryEvent] = LogRun()
        try:
            for update in updates:
                request_id = update.request_id
                rows = requests.get(request_id)
                if rows is None:
                    rows = requests[request_id] = {}
                    ids[request_id] = request_id
                else:
                    request_id = ids[request_id]
                stored = rows.get(update.address)
                undo.append(stored)
                shape = None if stored is None else stored[1]
                # MergeMemo.step(shape, update), its lookup inlined (a miss asks the memo).
                step = known_steps.get(
                    (shape, update.status, update.parts_delivered, update.sms_parts,
                     update.sender, update.source)
                ) or learn(shape, update)  # fmt: skip
                if stored is None:
                    row = (update.address, step.shape, update.received_at)
                elif step.changed:
                    at = update.received_at if step.takes_time else stored[2]
                    row = (stored[0], step.shape, at)
                else:
                    row = stored
                if row is not stored:
                    rows[row[0]] = row
                event_shape = step.event_shape
                if event_shape is not None:
                    address, at = row[0], row[2]
                    log_request(request_id)
                    log_address(address)
                    log_shape(event_shape)
                    log_time(at)
                    # build_event(...), written out (a call of ten arguments less per event):
                    # a draft of DeliveryEvent's layout, filled, then made a DeliveryEvent.
                    event = draft()
                    event.cursor = f"{cursor}"
                    event.request_id = request_id
                    event.address = address
                    (event.status, event.previous, event.source, event.parts_delivered,
                     event.sms_parts, event.conflict) = event_shape  # fmt: skip
                    event.at = at
                    event.__class__ = DeliveryEvent  # type: ignore[assignment]
                    events.append(event)  # type: ignore[arg-type]
                    cursor += 1
        except BaseException:
            self._undo(updates, undo, mark)
            raise
        if events:
            # The cursor just before this run (cursors count from 1: none before the first):
            # the live buffer appends a run that continues what it holds without parsing one.
            events.after = f"{mark - 1}" if mark > 1 else None
            log.trim()
            self._wakeup.fire()
            self._listeners.publish(events)
        return events

    def _undo(self, updates: Sequence[DeliveryUpdate], undo: list[_Row | None], mark: int) -> None:
        """Put back the rows a failed merge changed and drop the events it logged.

        ``undo[i]`` is the row ``updates[i]`` found; undone newest first, so a pair updated twice
        in the call gets its first row back. A row an update inserted is keyed by its address.
        """
        requests = self._requests
        for i in reversed(range(len(undo))):
            update, row = updates[i], undo[i]
            request_id = update.request_id
            rows = requests.get(request_id)
            if rows is None:
                continue  # the update failed before its request was entered
            if row is not None:
                rows[row[0]] = row
                continue
            rows.pop(update.address, None)  # None: it failed before its row was entered
            if not rows:
                del requests[request_id]
                del self._ids[request_id]
        self._log.truncate(mark)

    # --- events ------------------------------------------------------------------------------

    def read_events(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> Coroutine[Any, Any, list[DeliveryEvent]]:
        """Up to ``limit`` events after cursor ``after`` (None: the oldest retained), oldest first;
        with ``timeout`` > 0, waits up to that long for one when there is none."""
        return self._read_log(after, limit, timeout)

    # --- polling schedule --------------------------------------------------------------------

    async def schedule(
        self,
        request_id: str,
        sender: str,
        *,
        tracked_at: float,
        poll_at: float,
        traceparent: str | None = None,
    ) -> None:
        """Add a request to the polling schedule (an existing entry keeps attempts and lease)."""
        self._check_usable()
        _check_time(poll_at)
        self._schedule.add(request_id, sender, tracked_at, poll_at, traceparent)

    async def claim_due(
        self, now: float, *, limit: int = 100, lease: float = 60.0
    ) -> list[PendingRequest]:
        """Lease up to ``limit`` due requests (earliest first) for ``lease`` seconds.

        Costs O(log n) per request taken, and nothing more when none is due.
        """
        self._check_usable()
        return [_pending(rid, entry) for rid, entry in self._schedule.claim(now, limit, lease)]

    async def reschedule(self, request_id: str, *, next_poll_at: float, attempts: int) -> None:
        """Set a request's next poll time and attempts and release its lease (no-op if gone)."""
        self._check_usable()
        _check_time(next_poll_at)
        self._schedule.release(request_id, next_poll_at, attempts)

    async def unschedule(self, request_id: str) -> None:
        """Stop polling a request (no-op if it is not scheduled)."""
        self._check_usable()
        self._schedule.remove(request_id)


def _state(request_id: str, row: _Row) -> DeliveryState:
    address, shape, updated_at = row
    return state_from_shape(request_id, address, shape, updated_at)


def _check_time(at: float) -> None:
    # NaN compares false with everything: in a heap it would hide the requests around it.
    if at != at:
        raise ValueError("a poll time must be a number, not NaN")


def _pending(request_id: str, entry: _Pending) -> PendingRequest:
    return PendingRequest(
        request_id=request_id,
        sender=entry.sender,
        tracked_at=entry.tracked_at,
        next_poll_at=entry.next_poll_at,
        attempts=entry.attempts,
        traceparent=entry.traceparent,
    )
