"""Group commit of :class:`~opensms_async.stores.redis.RedisStore`'s ``apply_events``, with a
second batch in flight while Redis runs the first.

Each call waits in a queue; a batch takes what is queued when it starts (up to ``max_batch``
updates) and merges it in one script call. With one batch at a time, the calls that arrive while
Redis runs a batch and answers it wait for that answer, however long the round trip (a Redis on
another host), and the store's event loop may idle meanwhile. So up to :data:`IN_FLIGHT` batches
are in flight at once, each on its own pooled connection: the calls that arrive while one is in
flight are merged and sent without waiting for its answer. The price is smaller batches, so more
script calls per update (``bench/README.md``, "Tricks", has the figures).

Each batch hands its callers their events and its listeners the batch's events only once the
batch sent before it has handed out its own: listeners get the batches in the order they were
sent, which is the log's order unless Redis ran two of them the other way round (they arrived on
two connections). A run of the log that does not continue what the live buffer holds is read
back from the log (``_live.py``), as for another replica's events, so nothing is lost or shown
twice either way. Concurrent calls were never ordered among themselves; one call's updates stay
in one batch, in order, and a call made after another returned goes into a later batch.

One timer fails every call, in flight or queued behind a batch in flight, whose deadline passes:
no caller waits out a hung batch ahead of its own.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Final

import attrs

from .._exceptions import StoreError
from .._state import DeliveryEvent, DeliveryUpdate
from . import _redis_codec as codec
from ._common import Listeners, LogRun, log_run

__all__ = ["IN_FLIGHT", "Batches", "Call"]

IN_FLIGHT: Final = 2
"""Most batches sent to Redis before the oldest is answered (each holds a pooled connection)."""


@attrs.define
class Call:
    """One ``apply_events`` waiting for its turn in a batch."""

    updates: Sequence[DeliveryUpdate]
    fields: list[list[object]]
    """Each update encoded for the merge script."""
    future: asyncio.Future[list[DeliveryEvent]]
    """Done early when its caller stopped waiting (cancelled) or its deadline passed: then it is
    not sent if still queued."""
    deadline: float
    """Loop time when its caller gets the store's timeout error if Redis has not answered."""


@attrs.define(eq=False)
class _Batch:
    """One batch in flight: its calls, taken when its task starts."""

    out: asyncio.Future[None]
    """Done once the batch has handed out its answer (or never ran): the next may hand out its."""
    calls: list[Call] = attrs.field(factory=list)
    started: bool = False
    task: asyncio.Task[None] | None = None


class Batches:
    """The queued and in-flight ``apply_events`` calls of one store.

    ``merge`` sends a batch's calls in one script call and returns Redis's answer (bounded by
    the last call's deadline); ``listeners`` get each batch's events, in the order the batches
    were sent; ``max_batch`` is the most updates a batch merges (one call is never split);
    ``late`` makes the error of a call whose deadline passed.
    """

    def __init__(
        self,
        merge: Callable[[list[Call]], Awaitable[Any]],
        listeners: Listeners[DeliveryEvent],
        max_batch: int,
        late: Callable[[], StoreError],
    ) -> None:
        self._merge = merge
        self._listeners = listeners
        self._max_batch = max_batch
        self._late = late
        self._queue: collections.deque[Call] = collections.deque()
        self._sending: collections.deque[_Batch] = collections.deque()
        """The batches in flight, oldest first (a batch whose task has not started: no calls)."""
        self._timer: asyncio.TimerHandle | None = None

    @property
    def writing(self) -> bool:
        """Whether a call is queued or a batch in flight."""
        return bool(self._queue or self._sending)

    def submit(self, call: Call) -> None:
        """Queue ``call``: a batch takes it on the loop's next turn, or once a batch in flight
        has handed out its answer. Its caller awaits ``call.future``."""
        self._queue.append(call)
        if self._may_start():
            self._start()
        elif self._sending and self._timer is None:  # every call before it has given up
            self._timer = asyncio.get_running_loop().call_at(call.deadline, self._expire)

    async def finish(self) -> None:
        """Wait until no call is queued or in flight (each batch ends by its last deadline)."""
        while running := [
            task for batch in self._sending if (task := batch.task) and not task.done()
        ]:
            await asyncio.wait(running)

    # --- one batch ---------------------------------------------------------------------------

    def _may_start(self) -> bool:
        """Whether a new batch may start: a slot is free, and no batch started has yet to take
        its calls (that one takes what comes)."""
        sending = self._sending
        return len(sending) < IN_FLIGHT and not (sending and not sending[-1].started)

    def _start_if_queued(self) -> None:
        """Start a batch if calls are queued (a batch taking none clears those given up)."""
        if self._queue and self._may_start():
            self._start()

    def _start(self) -> None:
        """Start a batch: its task takes the calls queued by the time it runs (at once, under
        an eager task factory: the batch is in ``_sending`` before its task starts)."""
        before = self._sending[-1] if self._sending else None
        batch = _Batch(asyncio.get_running_loop().create_future())
        self._sending.append(batch)
        batch.task = asyncio.create_task(self._send(batch, before))
        batch.task.add_done_callback(functools.partial(self._never_ran, batch))

    def _never_ran(self, batch: _Batch, task: asyncio.Task[None]) -> None:
        """Forget a batch whose task was cancelled before it ran (someone cancelled every task):
        its calls are still queued; the next batch takes those still waited for."""
        if batch.started:
            return
        self._sending.remove(batch)  # the newest: none starts before it has
        batch.out.set_result(None)
        while self._queue and self._queue[0].future.done():  # their callers were cancelled
            self._queue.popleft()
        self._start_if_queued()
        self._watch()

    async def _send(self, batch: _Batch, before: _Batch | None) -> None:
        """Merge the queued calls in one script call; hand out its answer once the batch sent
        before it has handed out its own; start the next if calls wait."""
        batch.started = True
        batch.calls = calls = self._take()
        self._watch()
        self._start_if_queued()  # more than max_batch was queued
        reply: Any = None
        failure: BaseException | None = None
        try:
            if calls:
                reply = await self._merge(calls)
        except BaseException as exc:
            failure = exc
        cancelled = await _after(before)
        try:
            self._sending.remove(batch)
            self._watch()
            if failure is not None:
                for call in calls:
                    _fail(call.future, failure)
            elif calls:
                self._listeners.publish(_settle(calls, reply))
        finally:
            batch.out.set_result(None)
        self._start_if_queued()
        if failure is not None and not isinstance(failure, Exception):
            raise failure
        if cancelled is not None:
            raise cancelled

    def _take(self) -> list[Call]:
        """The next batch: queued calls still waited for, up to ``max_batch`` updates (or one
        call, however big); empty when none is left."""
        calls: list[Call] = []
        size = 0
        while self._queue:
            call = self._queue[0]
            if call.future.done():  # its caller gave up: nobody waits for its answer
                self._queue.popleft()
                continue
            if calls and size + len(call.updates) > self._max_batch:
                break
            calls.append(self._queue.popleft())
            size += len(call.updates)
        return calls

    # --- deadlines ---------------------------------------------------------------------------

    def _watch(self) -> None:
        """Set the timer for the oldest deadline of a call in flight or queued behind one (no
        timer while no batch is in flight)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sending:
            self._expire()

    def _expire(self) -> None:
        """Fail the calls whose deadline passed (oldest first: deadlines follow the order of the
        calls), then wait for the next deadline."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for call in self._waiting():
            if call.future.done():
                continue
            if call.deadline > now:
                self._timer = loop.call_at(call.deadline, self._expire)
                return
            call.future.set_exception(self._late())
        self._timer = None

    def _waiting(self) -> Iterator[Call]:
        """The calls in flight, then those queued, oldest first."""
        in_flight = itertools.chain.from_iterable(batch.calls for batch in self._sending)
        return itertools.chain(in_flight, self._queue)


async def _after(before: _Batch | None) -> asyncio.CancelledError | None:
    """Wait until ``before`` (the batch sent before this one) has handed out its answer, even
    if this task is cancelled meanwhile (that batch ends by its last call's deadline): a batch
    Redis answered still hands out its answer, after the one before it. Returns the
    cancellation, if any, to raise once this batch's answer is out."""
    cancelled = None
    while before is not None and not before.out.done():
        try:
            await asyncio.wait((before.out,))
        except asyncio.CancelledError as exc:
            cancelled = exc
    return cancelled


def _settle(calls: list[Call], reply: Any) -> LogRun[DeliveryEvent]:
    """Hand each caller of a batch the events of its updates; all the batch's events, in log
    order (those of callers that gave up included), as the run of the log after the cursor the
    script answered with them, or none if the reply does not fit."""
    updates = [update for call in calls for update in call.updates]
    try:
        after, rows = reply
        if not (after is None or isinstance(after, str)):
            raise ValueError(f"the merge script answered a cursor that is not one: {after!r}")
        events = codec.events_from_rows(updates, rows)
        indexes = [index for index, *_ in rows] if events else []
    except (ValueError, TypeError, KeyError) as exc:
        error = StoreError(f"Redis answered the merge script unexpectedly ({exc})")
        for call in calls:
            _fail(call.future, error)
        return log_run((), None)
    start, taken = 0, 0
    for call in calls:
        stop = start + len(call.updates)
        first = taken
        while taken < len(events) and indexes[taken] <= stop:
            taken += 1
        if not call.future.done():
            call.future.set_result(events[first:taken])
        start = stop
    return log_run(events, after)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    """Fail one caller with its own copy of a store error (a bug is passed on as it is)."""
    if future.done():
        return
    if isinstance(exc, StoreError):
        copy = type(exc)(str(exc))
        copy.__cause__ = exc.__cause__
        future.set_exception(copy)
    elif isinstance(exc, Exception):
        future.set_exception(exc)
    else:
        future.set_exception(StoreError("the batch was cancelled before Redis answered"))
