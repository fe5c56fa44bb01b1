"""Observability of delivery tracking: what a tracker and its poller record (issue 13, part 2).

One :class:`DeliveryTelemetry` per tracker, handed to its poller; the tracker and the poller each
make one call into it per place (``track``, ``ingested``; ``reconcile``, ``polled``), so that the
logic lives here. Names and attributes are the contract of DESIGN.md ("Observability"):

- ``opensms.delivery.events`` (counter): every state advance, by ``opensms.status`` and
  ``opensms.source`` (send, callback, poll); a status the SDK does not know counts as ``other``,
  so that a sender making up statuses cannot grow the metric.
- ``opensms.delivery.duration`` (histogram, s): ``track()`` to the first final state, by
  ``opensms.status``, for the requests whose tracking time this process knows (tracked here, or
  claimed here by the poller, whose schedule entry has it).
- ``opensms.reconcile`` (span) per request the poller takes up, linked to the send's span;
  ``opensms.reconcile.polls`` (counter) per poll sent to the API.
- The gauges ``opensms.delivery.pending`` and ``opensms.delivery.poll_recovered`` read the counts
  kept here (:class:`~opensms_async._telemetry.Gauges`).
- A callback's span (``opensms.callback``, made by the receiver) gets a link to the send of each
  request it reports on, and its ``opensms.request_id``.

The send's span context comes with the :class:`~opensms_async.SendResult` (its ``traceparent``).
The store keeps it with the request's schedule entry (``PendingRequest.traceparent``), so that a
poller in another process sharing the store links to the send too, and is adopted here when it
claims the request. It is also kept here, in process, with the request's tracking time, for
``retention`` (late and duplicate callbacks still link to the send) or until
:data:`KEPT_REQUESTS` newer requests push it out. Nothing is kept and nothing is computed
while no OpenTelemetry SDK is configured.

A callback that beats ``track()`` (BICS may post the first one before the send's answer is
handled) finds nothing kept yet: its span has no link, a final it brings is not timed, and its
recipient is never counted as pending (pending counts recipients first seen by their send).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final, TypedDict

from ._models import DeliveryStatus, is_final
from ._state import DeliveryEvent, DeliveryUpdate, Source
from ._telemetry import (
    ATTEMPT,
    OTEL_API,
    RECONCILE_SPAN,
    REQUEST_ID,
    SOURCE,
    STATUS,
    Active,
    Guard,
    Switch,
    context_from_traceparent,
)

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext
    from opentelemetry.util.types import AttributeValue

    from ._models import SendResult, Status
    from .stores import PendingRequest

if OTEL_API:
    from opentelemetry import trace as otel_trace

__all__ = [
    "KEPT_REQUESTS",
    "OTHER_STATUS",
    "DeliveryTelemetry",
    "ScheduleTrace",
    "schedule_trace",
    "status_attribute",
]

KEPT_REQUESTS: Final = 100_000
"""Requests whose tracking time and send span this process keeps at most (the oldest go first):
359 bytes each (measured with tracemalloc), 36 MB at the limit, and only while an SDK records."""
OTHER_STATUS: Final = "other"
"""``opensms.status`` of a status the SDK does not know."""

_STATUSES: Final[dict[str, str]] = {status.value: status.value for status in DeliveryStatus}
_TRACK = Guard("keeping a tracked send's span")
_INGESTED = Guard("counting delivery events")
_RECONCILE_START = Guard("starting a reconciliation span")
_RECONCILE_END = Guard("ending a reconciliation span")
_POLLED = Guard("counting a reconciliation poll")


class ScheduleTrace(TypedDict, total=False):
    """The keyword arguments :func:`schedule_trace` adds to ``store.schedule``."""

    traceparent: str


def schedule_trace(sent: SendResult) -> ScheduleTrace:
    """``store.schedule(..., **schedule_trace(sent))``: the send's ``traceparent`` when it was
    traced, so that the store keeps it for a poll in any process; nothing otherwise, so that a
    store of the user's own that predates the argument works as before while nothing traces."""
    if sent.traceparent is None:
        return {}
    return {"traceparent": sent.traceparent}


def status_attribute(status: Status) -> str:
    """``opensms.status`` of ``status``: its name when known, else :data:`OTHER_STATUS`."""
    return _STATUSES.get(status, OTHER_STATUS)


class _Tracked:
    """What this process knows of one tracked request."""

    __slots__ = ("context", "open", "tracked_at")

    def __init__(self, tracked_at: float, context: SpanContext | None, open: int | None) -> None:
        self.tracked_at = tracked_at
        self.context = context
        """The send's span context, to link to (None when the send was not traced)."""
        self.open = open
        """Recipients not final yet; None when unknown (a request tracked in another process):
        then it is not counted as pending either."""


class DeliveryTelemetry:
    """The delivery telemetry of one tracker (see the module).

    ``retention``: seconds after which a tracked request is forgotten even if not final (the
    receipts' retention: nothing arrives after it).
    """

    __slots__ = (
        "__weakref__",
        "_attributes",
        "_gauges",
        "_limit",
        "_retention",
        "_switch",
        "_tracked",
        "finals",
        "finals_by_poll",
        "pending",
    )

    def __init__(self, *, retention: float, limit: int = KEPT_REQUESTS) -> None:
        self._switch = Switch()
        self._retention = retention
        self._limit = limit
        self._tracked: dict[str, _Tracked] = {}  # in the order tracked: the oldest first
        self._attributes: dict[tuple[Status, Source], dict[str, AttributeValue]] = {}
        self._gauges: object = None
        self.pending = 0
        """Recipients tracked here whose final state this process has not learned yet."""
        self.finals = 0
        """Recipients whose first final state this process learned (by any source)."""
        self.finals_by_poll = 0
        """Of :attr:`finals`, those learned by polling: callbacks BICS did not deliver."""

    def _active(self) -> Active | None:
        active = self._switch.get()
        if active is not None:
            self._join(active)
        return active

    def _join(self, active: Active) -> None:
        """Be counted by the gauges of the meter provider that records now."""
        if active.gauges is not None and self._gauges is not active.gauges:
            active.gauges.join(self)
            self._gauges = active.gauges

    # --- the tracker ---------------------------------------------------------------------

    def track(self, sent: SendResult, now: float) -> None:
        """``tracker.track(sent)`` at ``now``, before its states are recorded: keep the send's
        span context and tracking time. Its recipients count as pending as the send's events
        are counted: one whose final state came before (a callback may beat the send's answer)
        has none, and is neither pending nor timed."""
        if self._active() is None or sent.request_id in self._tracked:
            return
        with _TRACK:  # the send is tracked (and scheduled) whatever this does
            self._forget_old(now)
            context = context_from_traceparent(sent.traceparent)
            self._tracked[sent.request_id] = _Tracked(now, context, 0)

    def ingested(self, updates: Sequence[DeliveryUpdate], events: Sequence[DeliveryEvent]) -> None:
        """``tracker.ingest(updates)`` recorded ``events``: count them, measure the finals, and
        link the current span (a callback's) to the sends the callback reports on."""
        active = self._switch.get()  # the hot path (every callback): one call when idle
        if active is None:
            return
        with _INGESTED:  # the events are recorded: a failing count must not fail the caller
            self._join(active)
            if active.tracer is not None and updates and updates[0].source is Source.CALLBACK:
                self._link_callback(updates)
            if events:
                self._count(active, events)

    def _count(self, active: Active, events: Sequence[DeliveryEvent]) -> None:
        instruments = active.instruments
        for event in events:
            if instruments is not None:
                instruments.delivery_events.add(1, self._attributes_of(event.status, event.source))
            if event.source is Source.SEND and not event.is_final:
                self._opened(event.request_id)
                continue
            previous = event.previous
            if not event.is_final or (previous is not None and is_final(previous)):
                continue  # not the first final of this recipient (a conflict's is not)
            self.finals += 1
            if event.source is Source.POLL:
                self.finals_by_poll += 1
            tracked = self._tracked.get(event.request_id)
            if tracked is None:
                continue
            if instruments is not None:
                seconds = max(0.0, event.at - tracked.tracked_at)
                instruments.delivery_duration.record(
                    seconds, {STATUS: status_attribute(event.status)}
                )
            if tracked.open:  # kept after the last final: late callbacks still link to the send
                tracked.open -= 1
                self.pending -= 1

    def _opened(self, request_id: str) -> None:
        """A recipient of a request tracked here is pending (first seen by its send)."""
        tracked = self._tracked.get(request_id)
        if tracked is not None and tracked.open is not None:
            tracked.open += 1
            self.pending += 1

    def _attributes_of(self, status: Status, source: Source) -> dict[str, AttributeValue]:
        # Built once per (status, source): bounded, since unknown statuses share "other".
        key = (status, source)
        found = self._attributes.get(key)
        if found is None:
            if len(self._attributes) > 64:  # many unknown statuses: each maps to "other"
                self._attributes.clear()
            found = {STATUS: status_attribute(status), SOURCE: source.value}
            self._attributes[key] = found
        return found

    def _link_callback(self, updates: Sequence[DeliveryUpdate]) -> None:
        span = otel_trace.get_current_span()
        if not span.is_recording():
            return
        seen: set[str] = set()
        for update in updates:
            request_id = update.request_id
            if request_id in seen:
                continue
            seen.add(request_id)
            tracked = self._tracked.get(request_id)
            if tracked is not None and tracked.context is not None:
                span.add_link(tracked.context)
        if len(seen) == 1:
            span.set_attribute(REQUEST_ID, next(iter(seen)))

    def _forget_old(self, now: float | None) -> None:
        """Make room for one more request: forget the oldest beyond the limit, and (given the
        time ``now``) those tracked longer than ``retention`` ago."""
        tracked = self._tracked
        while tracked:
            oldest_id = next(iter(tracked))
            oldest = tracked[oldest_id]
            young = now is None or now - oldest.tracked_at <= self._retention
            if len(tracked) < self._limit and young:
                return
            del tracked[oldest_id]
            if oldest.open:
                self.pending -= oldest.open

    # --- the poller ----------------------------------------------------------------------

    @contextlib.contextmanager
    def reconcile(self, request: PendingRequest) -> Iterator[None]:
        """The span of the poller's work on one claimed ``request`` (``opensms.reconcile``),
        linked to the send's span when this process knows it; an error escaping it is recorded
        on it. A request tracked in another process is adopted: its finals get a duration."""
        active = self._active()
        if active is None:
            yield
            return
        tracked = self._adopt(request)
        if active.tracer is None:
            yield
            return
        links = [otel_trace.Link(tracked.context)] if tracked.context is not None else None
        attributes: dict[str, AttributeValue] = {
            REQUEST_ID: request.request_id,
            ATTEMPT: request.attempts + 1,
        }
        span = None
        with _RECONCILE_START:  # a span that failed to start: the poll runs without one
            kind = otel_trace.SpanKind.INTERNAL
            span = active.tracer.start_span(
                RECONCILE_SPAN, kind=kind, links=links, attributes=attributes
            )
        if span is None:
            yield
            return
        try:
            # Current while the poll runs; an error escaping it is recorded on it (what
            # start_as_current_span does, with the span's end guarded on top).
            with otel_trace.use_span(span, record_exception=True, set_status_on_exception=True):
                yield
        finally:
            with _RECONCILE_END:
                span.end()

    def polled(self) -> None:
        """The poller sent one poll to the API (``opensms.reconcile.polls``)."""
        active = self._active()
        if active is not None and active.instruments is not None:
            with _POLLED:
                active.instruments.reconcile_polls.add(1)

    def _adopt(self, request: PendingRequest) -> _Tracked:
        """What is kept of a claimed request: a request tracked in another process is kept from
        its schedule entry (its tracking time, its send's span context if the store kept it)."""
        tracked = self._tracked.get(request.request_id)
        if tracked is None:
            self._forget_old(None)
            context = context_from_traceparent(request.traceparent)
            tracked = _Tracked(request.tracked_at, context, None)
            self._tracked[request.request_id] = tracked
        return tracked
