"""Observability of the receiver: a span and a count per request (issue 13, part 2).

Each endpoint makes one call per request, :meth:`ReceiverTelemetry.start`, which answers None
(at the cost of a clock read) unless an OpenTelemetry SDK records; else a :class:`CallbackSeen`
whose span (kind SERVER) is current while the request is handled (the tracker links a delivery
callback's span to the sends it reports on, log records carry its ids), ended by
:meth:`CallbackSeen.end` with the answer. A delivery callback's span is ``opensms.callback``,
counted by ``opensms.receiver.callbacks``; an inbound message's is ``opensms.inbound``, counted
by ``opensms.receiver.inbound``. Both count by ``opensms.outcome``, one of the bounded values
below (:data:`DUPLICATE` for inbound messages only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from ._telemetry import (
    CALLBACK_SPAN,
    ERROR_TYPE,
    HTTP_REQUEST_METHOD,
    HTTP_STATUS_CODE,
    OTEL_API,
    OUTCOME,
    Active,
    Guard,
    Instruments,
    Switch,
)

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter
    from opentelemetry.trace import Span
    from opentelemetry.util.types import AttributeValue

if OTEL_API:
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace

__all__ = [
    "ACCEPTED",
    "DUPLICATE",
    "INVALID",
    "MALFORMED",
    "OUTCOMES",
    "TOO_LARGE",
    "UNAUTHORIZED",
    "UNAVAILABLE",
    "Answer",
    "CallbackSeen",
    "ReceiverTelemetry",
    "inbound_callbacks",
]

ACCEPTED: Final = "accepted"
"""Recorded (204)."""
UNAUTHORIZED: Final = "unauthorized"
"""The token is missing or wrong (401)."""
MALFORMED: Final = "malformed"
"""Not JSON, or the body ended early (400)."""
INVALID: Final = "invalid"
"""JSON, but not a delivery-info callback (422)."""
TOO_LARGE: Final = "too_large"
"""Over the body size limit (413)."""
UNAVAILABLE: Final = "unavailable"
"""Not recorded: the store failed or was too slow, or the server is stopping (503)."""
DUPLICATE: Final = "duplicate"
"""An inbound message recorded already (204): BICS posted it again."""
OUTCOMES: Final = (ACCEPTED, UNAUTHORIZED, MALFORMED, INVALID, TOO_LARGE, UNAVAILABLE, DUPLICATE)


class Answer(Protocol):
    """What the endpoint answers other than 204: its status and outcome."""

    @property
    def status(self) -> int:
        """The HTTP status."""
        ...

    @property
    def outcome(self) -> str:
        """One of :data:`OUTCOMES`."""
        ...


def _callbacks(instruments: Instruments) -> Counter:
    return instruments.receiver_callbacks


def inbound_callbacks(instruments: Instruments) -> Counter:
    """The counter of the inbound endpoint's requests (``opensms.receiver.inbound``)."""
    return instruments.receiver_inbound


class ReceiverTelemetry:
    """The telemetry of one endpoint: its span's name, and which counter counts its requests
    (the delivery callbacks' by default)."""

    __slots__ = ("_counter", "_span", "_switch")

    def __init__(
        self,
        span: str = CALLBACK_SPAN,
        counter: Callable[[Instruments], Counter] = _callbacks,
    ) -> None:
        self._switch = Switch()
        self._span = span
        self._counter = counter

    def start(self) -> CallbackSeen | None:
        """A request arrived: its span (made current) and count, or None if nothing records."""
        active = self._switch.get()
        if active is None:
            return None
        return CallbackSeen(active, self._span, self._counter)


_SPAN_ATTRIBUTES: Final[dict[str, AttributeValue]] = {HTTP_REQUEST_METHOD: "POST"}
_START = Guard("starting a receiver span")
_END = Guard("ending a receiver span")
_COUNT = Guard("counting a received callback")


class CallbackSeen:
    """One callback being handled: its span, current until :meth:`end`."""

    __slots__ = ("_active", "_counter", "_span", "_token")

    def __init__(
        self, active: Active, name: str, counter: Callable[[Instruments], Counter]
    ) -> None:
        self._active = active
        self._counter = counter
        self._span: Span | None = None
        self._token: object = None
        if active.tracer is not None:
            with _START:  # a span that failed to start: the request is handled without one
                span = active.tracer.start_span(
                    name, kind=otel_trace.SpanKind.SERVER, attributes=_SPAN_ATTRIBUTES
                )
                self._token = otel_context.attach(otel_trace.set_span_in_context(span))
                self._span = span

    def end(self, answer: Answer | None) -> None:
        """The request is answered: ``answer``, or 204 for None. Counts it, ends the span.
        Never raises: the answer is sent whatever a span processor or an instrument does."""
        outcome, status = (ACCEPTED, 204) if answer is None else (answer.outcome, answer.status)
        instruments = self._active.instruments
        if instruments is not None:
            with _COUNT:
                self._counter(instruments).add(1, {OUTCOME: outcome})
        span = self._span
        if span is None:
            return
        with _END:
            if span.is_recording():
                span.set_attribute(OUTCOME, outcome)
                span.set_attribute(HTTP_STATUS_CODE, status)
                if status >= 500:  # a server span's error (a 4xx is the sender's)
                    span.set_attribute(ERROR_TYPE, str(status))
                    span.set_status(otel_trace.StatusCode.ERROR, outcome)
        with _END:
            span.end()
        otel_context.detach(self._token)  # type: ignore[arg-type]  # logs, never raises
