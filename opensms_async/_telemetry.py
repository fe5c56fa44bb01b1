"""Observability: OpenTelemetry spans and metrics, and the structured fields of log records.

``opentelemetry-api`` is optional (the ``otel`` extra). When it is importable, everything is
recorded through OpenTelemetry's global tracer and meter providers, instrumentation scope
``opensms_async``, as libraries do (elasticsearch-py, azure-core): this package never configures a
provider. With the API but no SDK configured, those providers are OpenTelemetry's no-op proxies
and a call costs a few no-op method calls; without the API nothing of it is imported and a call
costs building one :class:`Call`.

The names (spans, metrics, attributes) are a public contract (DESIGN.md, "Observability"). Metric
attributes take bounded values only (operations, status codes, error types): never a request id,
an address or a sender, whose values are unbounded and, for addresses and senders, personal data.
Spans carry the request id but no address, sender or message either.

What the rest of the package uses:

- :func:`client_calls` gives a client its :class:`Call` factory: one span and one duration
  measurement per logical call (retries included), and the call's log record.
- :func:`tracer` and :func:`instruments` give the tracker, the poller and the receiver their
  tracer and the instruments of the contract, created once per meter provider.
- :func:`current_traceparent` and :func:`link_from_traceparent`: the active span context as a
  W3C ``traceparent`` string (to store with a tracked request) and back, as a span link.
- :func:`log_fields` (the ``extra=`` of every log record) and :func:`mask_address`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import math
import os
import re
import time
import weakref
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Final, Protocol, Self
from urllib.parse import urlsplit

import attrs

from ._exceptions import APIStatusError

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the extra is not installed: no spans, no metrics, log fields still
    OTEL_API = False
else:
    OTEL_API = True

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, MeterProvider
    from opentelemetry.metrics import Observation as ObservationType
    from opentelemetry.trace import Link, Span, SpanContext, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

__all__ = [
    "CLIENT_DURATION_BUCKETS",
    "DELIVERY_DURATION_BUCKETS",
    "LOG_NUMBERS_ENV",
    "OPERATIONS",
    "RECHECK",
    "SCOPE",
    "Active",
    "Call",
    "CallFactory",
    "ClientTelemetry",
    "GaugeSource",
    "Gauges",
    "Guard",
    "Instruments",
    "Switch",
    "active",
    "client_calls",
    "context_from_traceparent",
    "current_traceparent",
    "error_type",
    "instruments",
    "link_from_traceparent",
    "log_fields",
    "mask_address",
    "mask_numbers",
    "tracer",
]

logger = logging.getLogger("opensms_async")

SCOPE = "opensms_async"
"""The instrumentation scope of every span and instrument."""

# --- names (DESIGN.md, "Observability (contract)") -------------------------------------------

SPAN_PREFIX = "opensms."
"""A client call's span is ``opensms.<operation>``, e.g. ``opensms.send_message``."""

# Metrics.
CLIENT_REQUEST_DURATION = "opensms.client.request.duration"
RECEIVER_CALLBACKS = "opensms.receiver.callbacks"
RECEIVER_INBOUND = "opensms.receiver.inbound"
"""Inbound-message callbacks received, by ``opensms.outcome`` (beside DESIGN.md's names)."""
DELIVERY_EVENTS = "opensms.delivery.events"
DELIVERY_DURATION = "opensms.delivery.duration"
RECONCILE_POLLS = "opensms.reconcile.polls"
INBOUND_MESSAGES = "opensms.inbound.messages"
DELIVERY_PENDING = "opensms.delivery.pending"
"""Observable gauge: recipients tracked in this process whose final state it has not learned."""
DELIVERY_POLL_RECOVERED = "opensms.delivery.poll_recovered"
"""Observable gauge (unit ``1``): finals learned by polling ÷ all finals, in this process."""

# Spans beside the client's.
CALLBACK_SPAN = "opensms.callback"
INBOUND_SPAN = "opensms.inbound"
RECONCILE_SPAN = "opensms.reconcile"

# Attributes: OpenTelemetry's HTTP semantic conventions, then this package's own.
HTTP_REQUEST_METHOD = "http.request.method"
HTTP_RESEND_COUNT = "http.request.resend_count"
HTTP_STATUS_CODE = "http.response.status_code"
URL_TEMPLATE = "url.template"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
OPERATION = "opensms.operation"
REQUEST_ID = "opensms.request_id"
STATUS = "opensms.status"
SOURCE = "opensms.source"
OUTCOME = "opensms.outcome"
COMPLETE = "opensms.complete"

# Log record fields (``extra=``) beside those above.
ATTEMPT = "opensms.attempt"
TRACE_ID = "opensms.trace_id"
SPAN_ID = "opensms.span_id"

OPERATIONS: Final[Mapping[str, tuple[str, str]]] = {
    "send_message": ("POST", "/outbound/{senderAddress}/requests"),
    "get_delivery_infos": ("GET", "/outbound/{senderAddress}/requests/{requestId}/deliveryInfos"),
    "create_subscription": ("POST", "/outbound/subscriptions"),
    "get_subscription": ("GET", "/outbound/subscriptions"),
    "delete_subscription": ("DELETE", "/outbound/subscriptions"),
    "create_inbound_subscription": ("POST", "/inbound/subscriptions"),
    "get_inbound_subscription": ("GET", "/inbound/subscriptions"),
    "delete_inbound_subscription": ("DELETE", "/inbound/subscriptions"),
    "get_inbound_messages": ("GET", "/inbound/registrations/{inboundNumber}/messages"),
    "report_conversion": ("POST", "/conversions"),
    "report_conversions": ("POST", "/conversionsinfos"),
    "fetch_token": ("POST", ""),  # the OAuth token endpoint: its URL is the whole template
}
"""Each client operation: its HTTP method and its path below the base URL, as BICS's OpenAPI
writes it (``url.template``, with the base URL's path in front)."""

CLIENT_DURATION_BUCKETS: Final = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip
"""Seconds. An API call over the internet takes 50 ms to a second; the top buckets hold calls
that waited out timeouts (30 s an attempt by default), a ``Retry-After`` (up to 60 s) or
several retries."""

DELIVERY_DURATION_BUCKETS: Final = (
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
    7200.0, 14400.0, 43200.0, 86400.0, 172800.0, 259200.0,
)  # fmt: skip
"""Seconds from ``track()`` to a final state: a handset answers in seconds; one that is off
is retried by the network for hours, up to a validity period of days (three at the top)."""


# --- tracer and instruments, once per provider -----------------------------------------------


def tracer() -> Tracer | None:
    """The tracer of scope ``opensms_async`` of the global provider (None without the API).

    Before an SDK is configured this is OpenTelemetry's proxy, which starts recording once one
    is: a client made at import time is traced all the same.
    """
    if not OTEL_API:
        return None
    return _tracer_of(otel_trace.get_tracer_provider())


@functools.lru_cache(maxsize=4)  # one entry per global provider: the proxy, then the SDK's
def _tracer_of(provider: TracerProvider) -> Tracer:
    return provider.get_tracer(SCOPE, _version())


@attrs.frozen
class Instruments:
    """Every instrument of the contract, on the global meter provider's ``opensms_async`` meter.

    Created once per provider: OpenTelemetry's proxy provider (in use until an SDK is
    configured) keeps every meter and instrument made on it, so making them per client would
    grow without bound in a process that makes many clients.
    """

    client_duration: Histogram
    """``opensms.client.request.duration`` (s): ``opensms.operation``, and
    ``http.response.status_code`` when answered, ``error.type`` when failed."""
    receiver_callbacks: Counter
    """``opensms.receiver.callbacks``: ``opensms.outcome``."""
    receiver_inbound: Counter
    """``opensms.receiver.inbound``: ``opensms.outcome``."""
    delivery_events: Counter
    """``opensms.delivery.events``: ``opensms.status``, ``opensms.source``."""
    delivery_duration: Histogram
    """``opensms.delivery.duration`` (s, ``track()`` to final): ``opensms.status``."""
    reconcile_polls: Counter
    """``opensms.reconcile.polls``."""
    inbound_messages: Counter
    """``opensms.inbound.messages``: ``opensms.source``, ``opensms.complete``."""


def instruments() -> Instruments | None:
    """The instruments of the global meter provider (None without the API)."""
    if not OTEL_API:
        return None
    return _instruments_of(otel_metrics.get_meter_provider())


@functools.lru_cache(maxsize=4)
def _instruments_of(provider: MeterProvider) -> Instruments:
    meter = provider.get_meter(SCOPE, _version())
    return Instruments(
        client_duration=meter.create_histogram(
            CLIENT_REQUEST_DURATION,
            unit="s",
            description="Duration of OpenSMS API calls, retries included.",
            explicit_bucket_boundaries_advisory=CLIENT_DURATION_BUCKETS,
        ),
        receiver_callbacks=meter.create_counter(
            RECEIVER_CALLBACKS, unit="{callback}", description="Callbacks received, by outcome."
        ),
        receiver_inbound=meter.create_counter(
            RECEIVER_INBOUND,
            unit="{callback}",
            description="Inbound-message callbacks received, by outcome.",
        ),
        delivery_events=meter.create_counter(
            DELIVERY_EVENTS, unit="{event}", description="Delivery states that advanced."
        ),
        delivery_duration=meter.create_histogram(
            DELIVERY_DURATION,
            unit="s",
            description="Time from tracking a recipient to its final delivery state.",
            explicit_bucket_boundaries_advisory=DELIVERY_DURATION_BUCKETS,
        ),
        reconcile_polls=meter.create_counter(
            RECONCILE_POLLS, unit="{poll}", description="Reconciliation polls of deliveryInfos."
        ),
        inbound_messages=meter.create_counter(
            INBOUND_MESSAGES, unit="{message}", description="Inbound messages yielded."
        ),
    )


@functools.cache
def _version() -> str:
    """The installed package's version (the instrumentation scope's), read once: not from the
    package itself, which imports this module (no import loops, tests/test_architecture.py)."""
    try:
        return importlib.metadata.version("opensms-async")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


# --- a call into OpenTelemetry never fails the SDK's own work -------------------------------


class Guard:
    """A ``with`` block around calls into OpenTelemetry: starting or ending a span, adding to an
    instrument. What one raises (a user's span processor or exporter: the SDK lets their
    ``on_start`` and ``on_end`` exceptions through) is logged at WARNING with its traceback and
    goes no further, so that telemetry never fails a record, an answer or a send. A
    ``BaseException`` (a cancellation) is not caught.

    Only around the recording path, past the :class:`Switch` check: nothing is paid while
    nothing records. Holds nothing that changes: one instance serves any number of blocks, at
    once or nested.
    """

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if not isinstance(exc, Exception):
            return False  # no exception, or a cancellation: as if there were no block
        self.ignore(exc)
        return True

    def ignore(self, exc: Exception) -> None:
        """Log ``exc`` as the block would (for an ``except`` clause on a hot path: a ``try``
        costs nothing until something raises, a ``with`` block two calls)."""
        logger.warning(
            "telemetry: %s raised %s; ignored (telemetry never fails the SDK's work)",
            self._what,
            type(exc).__qualname__,
            exc_info=exc,
            extra=log_fields("telemetry", outcome="ignored", error=type(exc).__qualname__),
        )


_CALL_START = Guard("starting a client call's span")
_CALL_END = Guard("ending a client call's span")
_CALL_RECORD = Guard("recording a client call's duration")


# --- whether anything records: checked once a second, not per callback -----------------------

RECHECK: Final = 1.0
"""Seconds between two looks at OpenTelemetry's global providers by one :class:`Switch`. Asking
for them costs microseconds while none is set (the API looks up environment variables each
time): too much for the receiver's hot path, where a :class:`Switch` costs a clock read."""


class GaugeSource(Protocol):
    """What the observable gauges read of each tracker's delivery telemetry."""

    @property
    def pending(self) -> int:
        """Recipients tracked in this process whose final state it has not learned yet."""
        ...

    @property
    def finals(self) -> int:
        """Recipients whose (first) final state this process learned."""
        ...

    @property
    def finals_by_poll(self) -> int:
        """Of :attr:`finals`, those learned by polling."""
        ...


class Gauges:
    """The two observable gauges of one meter provider, summing over every tracker that records
    through it (each joins with :meth:`join`; it leaves when it is garbage collected).

    ``opensms.delivery.pending`` ({recipient}) and ``opensms.delivery.poll_recovered`` (``1``:
    finals learned by polling ÷ all finals; observed once there is a final). Both without
    attributes: one value per process.
    """

    def __init__(self, meter: Meter) -> None:
        self._sources: weakref.WeakSet[GaugeSource] = weakref.WeakSet()
        meter.create_observable_gauge(
            DELIVERY_PENDING,
            callbacks=[self._pending],
            unit="{recipient}",
            description="Recipients tracked here whose final delivery state is not known yet.",
        )
        meter.create_observable_gauge(
            DELIVERY_POLL_RECOVERED,
            callbacks=[self._poll_recovered],
            unit="1",
            description="Share of final delivery states learned by polling, not by callback.",
        )

    def join(self, source: GaugeSource) -> None:
        """Count ``source`` in the gauges (idempotent)."""
        self._sources.add(source)

    def _pending(self, options: CallbackOptions) -> Iterable[ObservationType]:
        yield otel_metrics.Observation(sum(source.pending for source in list(self._sources)))

    def _poll_recovered(self, options: CallbackOptions) -> Iterable[ObservationType]:
        sources = list(self._sources)
        finals = sum(source.finals for source in sources)
        if finals:
            polled = sum(source.finals_by_poll for source in sources)
            yield otel_metrics.Observation(polled / finals)


@attrs.frozen(eq=False)
class Active:
    """What records right now: a tracer when an SDK tracer provider is set (None otherwise),
    the instruments and gauges when an SDK meter provider is."""

    tracer: Tracer | None
    instruments: Instruments | None
    gauges: Gauges | None


def active() -> Active | None:
    """What records now; None without the API or while neither global provider is an SDK's
    (OpenTelemetry's proxies and no-op providers record nothing), so that callers skip all work.

    Costs a few microseconds: hot paths ask through a :class:`Switch`.
    """
    if not OTEL_API:
        return None
    return _active_of(otel_trace.get_tracer_provider(), otel_metrics.get_meter_provider())


@functools.lru_cache(maxsize=4)
def _active_of(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> Active | None:
    no_tracing = (otel_trace.ProxyTracerProvider, otel_trace.NoOpTracerProvider)
    tracing = not isinstance(tracer_provider, no_tracing)
    metering = not _records_nothing(meter_provider)
    if not (tracing or metering):
        return None
    return Active(
        tracer=_tracer_of(tracer_provider) if tracing else None,
        instruments=_instruments_of(meter_provider) if metering else None,
        gauges=_gauges_of(meter_provider) if metering else None,
    )


def _sdk_configured() -> bool:
    """Whether either global provider is an SDK's: :func:`active` without building anything."""
    if not OTEL_API:
        return False
    no_tracing = (otel_trace.ProxyTracerProvider, otel_trace.NoOpTracerProvider)
    if not isinstance(otel_trace.get_tracer_provider(), no_tracing):
        return True
    return not _records_nothing(otel_metrics.get_meter_provider())


def _records_nothing(provider: MeterProvider) -> bool:
    """True for the no-op provider and for OpenTelemetry's proxy (what ``get_meter_provider``
    answers until one is set), which has no public name: it is told by its module."""
    if isinstance(provider, NoOpMeterProvider):
        return True
    kind = type(provider)
    return kind.__module__ == "opentelemetry.metrics._internal" and kind.__name__.startswith(
        "_Proxy"
    )


@functools.lru_cache(maxsize=4)
def _gauges_of(provider: MeterProvider) -> Gauges:
    return Gauges(provider.get_meter(SCOPE, _version()))


class Switch:
    """:func:`active`, looked at again at most every :data:`RECHECK` seconds.

    One per instrumented object (a tracker, a receiver endpoint): configuring an SDK after it
    was made starts its recording within a second.
    """

    __slots__ = ("_active", "_next")

    def __init__(self) -> None:
        self._active: Active | None = None
        self._next = -math.inf

    def get(self) -> Active | None:
        """What records now (as of at most :data:`RECHECK` seconds ago)."""
        now = time.monotonic()
        if now >= self._next:
            self._active = active()
            self._next = now + RECHECK
        return self._active


# --- the span context of a tracked request, and a link back to it ----------------------------


def current_traceparent() -> str | None:
    """The active span's context as a W3C ``traceparent`` string, or None when there is none.

    Stored with a tracked request, it lets the spans of its callbacks and polls link back to
    the send (:func:`link_from_traceparent`), even in another process.
    """
    if not OTEL_API:
        return None
    context = otel_trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    flags = int(context.trace_flags) & 0xFF
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"


def link_from_traceparent(traceparent: str | None) -> Link | None:
    """A span link to the context ``traceparent`` names; None for None, garbage or no API."""
    context = context_from_traceparent(traceparent)
    return otel_trace.Link(context) if context is not None else None


def context_from_traceparent(traceparent: str | None) -> SpanContext | None:
    """The (remote) span context ``traceparent`` names; None for None, garbage or no API."""
    if not OTEL_API or not isinstance(traceparent, str):
        return None
    extracted = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    context = otel_trace.get_current_span(extracted).get_span_context()
    return context if context.is_valid else None


# --- log records -----------------------------------------------------------------------------


def log_fields(
    operation: str | None = None,
    *,
    request_id: str | None = None,
    http_status: int | None = None,
    status: str | None = None,
    outcome: str | None = None,
    attempt: int | None = None,
    error: str | None = None,
) -> dict[str, object]:
    """The ``extra=`` of a log record: the same keys on every record, None when unknown.

    Keys: ``opensms.operation``, ``opensms.request_id``, ``http.response.status_code`` (an
    int), ``opensms.status`` (a delivery status), ``opensms.outcome``, ``opensms.attempt``
    (from 1), ``error.type``, and ``opensms.trace_id`` / ``opensms.span_id`` (hex) while a
    span is active. Namespaced, so that no record factory's own fields (OpenTelemetry's
    ``otelTraceID``...) collide with them. Never give it a secret; an address only masked
    (:func:`mask_address`) at INFO and above.
    """
    trace_id = span_id = None
    if OTEL_API:
        context = otel_trace.get_current_span().get_span_context()
        if context.is_valid:
            trace_id, span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
    return {
        OPERATION: operation,
        REQUEST_ID: request_id,
        HTTP_STATUS_CODE: http_status,
        STATUS: status,
        OUTCOME: outcome,
        ATTEMPT: attempt,
        ERROR_TYPE: error,
        TRACE_ID: trace_id,
        SPAN_ID: span_id,
    }


LOG_NUMBERS_ENV: Final = "OPENSMS_LOG_NUMBERS"
"""Set to ``1`` to let records at INFO and above show phone numbers whole (they are masked by
:func:`mask_numbers` otherwise; DEBUG records are not masked)."""

_NUMBER = re.compile(r"\+?\d[\d ]{5,}\d")
"""A run of at least seven digits (spaces allowed inside, a ``+`` in front): what could be a
phone number in an error message (an address quoted by a validation error, say)."""


def mask_numbers(text: str) -> str:
    """``text`` with every digit run that could be a phone number masked as :func:`mask_address`
    does, unless ``OPENSMS_LOG_NUMBERS=1``: for what a record at INFO or above quotes of a
    message that is not ours (an exception's, a sender's)."""
    if os.environ.get(LOG_NUMBERS_ENV) == "1":
        return text
    return _NUMBER.sub(lambda match: mask_address(match.group().replace(" ", "")), text)


def mask_address(address: str) -> str:
    """``tel:+33612345678`` as ``tel:+33*******78``: what a record at INFO or above may show
    of a number, unless its user asked for numbers in logs."""
    head, plus, number = address.rpartition("+")
    if len(number) <= 4:
        return head + plus + "*" * len(number)
    return f"{head}{plus}{number[:2]}{'*' * (len(number) - 4)}{number[-2:]}"


def error_type(exc: BaseException, status: int | None) -> str:
    """``error.type`` of a failed call: the status code (as text) when the API answered with an
    error status, as OpenTelemetry's HTTP conventions say, else the exception's class name."""
    if status is not None and isinstance(exc, APIStatusError) and exc.status_code == status:
        return str(status)
    return type(exc).__qualname__


# --- one logical client call -----------------------------------------------------------------


class Call:
    """One logical client call, retries included: what its log records say of it.

    The client sets ``attempt`` (from 1) and ``status`` (of the API's last answer, None before
    it and after a connection error) as it goes, and ``request_id`` once known. Used as a
    ``with`` block around the call, this one only writes the call's DEBUG record at its end;
    :class:`TracedCall` also makes its span and measures its duration.
    """

    __slots__ = ("attempt", "operation", "request_id", "status")

    def __init__(self, operation: str, request_id: str | None = None) -> None:
        self.operation = operation
        self.request_id = request_id
        self.attempt = 0
        self.status: int | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            self._log(None if exc is None else error_type(exc, self.status))

    def fields(self, outcome: str | None = None, error: str | None = None) -> dict[str, object]:
        """The ``extra=`` of a log record about this call."""
        return log_fields(
            self.operation,
            request_id=self.request_id,
            http_status=self.status,
            outcome=outcome,
            attempt=self.attempt,
            error=error,
        )

    def _log(self, error: str | None) -> None:
        outcome = "ok" if error is None else "error"
        tries = f"{self.attempt} attempt{'s' if self.attempt != 1 else ''}"
        shown = f"request id {self.request_id}, " if self.request_id is not None else ""
        logger.debug(
            "%s %s (%s%s)",
            self.operation,
            "done" if error is None else f"failed: {error}",
            shown,
            tries,
            extra=self.fields(outcome, error),
        )


class ClientTelemetry:
    """The spans and the request-duration histogram of one client's calls to one server.

    ``url`` is the base URL of the operations (their ``url.template`` follows its path);
    ``server.address`` and ``server.port`` come from it.
    """

    __slots__ = ("_base_path", "_duration", "_next", "_recording", "_server", "_static", "_tracer")

    def __init__(self, url: str, tracer: Tracer, duration: Histogram) -> None:
        self._tracer = tracer
        self._duration = duration
        self._base_path, self._server = _server_attributes(url)
        self._static: dict[str, tuple[str, dict[str, AttributeValue]]] = {}
        self._recording = False
        self._next = -math.inf

    def call(self, operation: str, request_id: str | None = None) -> Call:
        """A :class:`TracedCall` of ``operation`` (a key of :data:`OPERATIONS`); a plain
        :class:`Call` while neither global provider is an SDK's (a no-op span and histogram
        would only cost the call), looked at again at most every :data:`RECHECK` seconds."""
        now = time.monotonic()
        if now >= self._next:
            self._recording = _sdk_configured()
            self._next = now + RECHECK
        if not self._recording:
            return Call(operation, request_id)
        return TracedCall(self, operation, request_id)

    def static(self, operation: str) -> tuple[str, dict[str, AttributeValue]]:
        """The span name and the attributes of ``operation`` known before it starts (built once:
        they never change, and the SDK copies what it is given)."""
        found = self._static.get(operation)
        if found is None:
            method, template = OPERATIONS[operation]
            attributes: dict[str, AttributeValue] = {
                HTTP_REQUEST_METHOD: method,
                URL_TEMPLATE: (self._base_path + template) or "/",
                **self._server,
            }
            found = self._static[operation] = (SPAN_PREFIX + operation, attributes)
        return found

    def start(self, operation: str) -> Span:
        """The started (not yet current) span of ``operation``."""
        name, attributes = self.static(operation)
        return self._tracer.start_span(name, kind=otel_trace.SpanKind.CLIENT, attributes=attributes)

    def record(self, seconds: float, attributes: dict[str, AttributeValue]) -> None:
        """One measurement of ``opensms.client.request.duration``."""
        self._duration.record(seconds, attributes)


class TracedCall(Call):
    """A :class:`Call` that is also a span (current while the call runs) and a measurement."""

    __slots__ = ("_owner", "_span", "_started", "_token")

    def __init__(
        self, owner: ClientTelemetry, operation: str, request_id: str | None = None
    ) -> None:
        super().__init__(operation, request_id)
        self._owner = owner

    def __enter__(self) -> Self:
        span: Span
        try:
            span = self._owner.start(self.operation)
            # No SDK: the span is the no-op one and making it current would change nothing.
            valid = span.get_span_context().is_valid
            token = otel_context.attach(otel_trace.set_span_in_context(span)) if valid else None
        except Exception as exc:  # a span that failed to start: the call goes on without one
            _CALL_START.ignore(exc)
            span, token = otel_trace.INVALID_SPAN, None
        self._span = span
        self._token = token
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        seconds = time.perf_counter() - self._started
        error = None if exc is None else error_type(exc, self.status)
        span = self._span
        # Nothing here may raise out of the call: its answer (a sent message) or its own error
        # is what the caller gets, whatever a span processor or an instrument does.
        try:
            if span.is_recording():
                self._describe(span, error)
            super().__exit__(exc_type, exc, tb)  # the log record, while the span is current
        except Exception as failed:
            _CALL_END.ignore(failed)
        try:
            span.end()
        except Exception as failed:
            _CALL_END.ignore(failed)
        if self._token is not None:
            otel_context.detach(self._token)  # logs, never raises
        try:
            self._owner.record(seconds, self._measured(error))
        except Exception as failed:
            _CALL_RECORD.ignore(failed)

    def _describe(self, span: Span, error: str | None) -> None:
        if self.status is not None:
            span.set_attribute(HTTP_STATUS_CODE, self.status)
        if self.attempt > 1:
            span.set_attribute(HTTP_RESEND_COUNT, self.attempt - 1)
        if self.request_id is not None:
            span.set_attribute(REQUEST_ID, self.request_id)
        if error is not None:
            span.set_attribute(ERROR_TYPE, error)
            # The type only: an error's message may quote an address or the sender.
            span.set_status(otel_trace.StatusCode.ERROR, error)

    def _measured(self, error: str | None) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {OPERATION: self.operation}
        if self.status is not None:
            attributes[HTTP_STATUS_CODE] = self.status
        if error is not None:
            attributes[ERROR_TYPE] = error
        return attributes


class CallFactory(Protocol):
    """What makes the :class:`Call` of each call: ``factory(operation, request_id=None)``."""

    def __call__(self, operation: str, request_id: str | None = None) -> Call:
        """The call of ``operation`` (a key of :data:`OPERATIONS`)."""
        ...


def client_calls(url: str) -> CallFactory:
    """The :class:`Call` factory of a client of ``url``: :class:`Call` itself without the API
    (nothing but the log record), else a :class:`ClientTelemetry`'s ``call``."""
    found_tracer, found = tracer(), instruments()
    if found_tracer is None or found is None:
        return Call
    return ClientTelemetry(url, found_tracer, found.client_duration).call


def _server_attributes(url: str) -> tuple[str, dict[str, AttributeValue]]:
    """The path of ``url`` (without its last slash) and its ``server.*`` attributes; none of
    them for a URL that does not parse (the request will fail on its own, with its error)."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return "", {}
    server: dict[str, AttributeValue] = {}
    if parts.hostname:
        server[SERVER_ADDRESS] = parts.hostname
    if port is not None:
        server[SERVER_PORT] = port
    return parts.path.rstrip("/"), server
