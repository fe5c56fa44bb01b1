"""Observability of the inbox: what an :class:`~opensms_async.Inbox` and its poller record.

One :class:`InboxTelemetry` per inbox, handed to its poller; each makes one call per place, so
that the logic lives here. Names and attributes are the contract of DESIGN.md ("Observability"):

- ``opensms.inbound.messages`` (counter): every message the inbox logs (what ``messages()``
  yields: a whole message, or the parts of one whose reassembly window ended first), by
  ``opensms.source`` (``callback``, ``poll``) and ``opensms.complete`` (``True``, or ``False``
  for a message yielded without all its parts). A duplicate, or a part still waiting for the
  others, logs nothing and counts nothing; the receiver's ``opensms.inbound`` span and
  ``opensms.receiver.inbound`` counter say what became of each callback, duplicates included.
- ``opensms.inbound.poll`` (span, INTERNAL) per page the poller fetches, with
  ``opensms.outcome`` (``received``: something new; ``empty``: nothing new; ``rate_limited``;
  ``error``) and ``opensms.messages`` (the messages on the page). The client's
  ``opensms.get_inbound_messages`` span nests under it. No number: a span carries no address.

Nothing is computed while no OpenTelemetry SDK is configured: each call costs a
:class:`~opensms_async._telemetry.Switch` lookup (a clock read).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from ._telemetry import COMPLETE, ERROR_TYPE, OTEL_API, OUTCOME, SOURCE, Guard, Switch

if TYPE_CHECKING:
    from opentelemetry.trace import Span
    from opentelemetry.util.types import AttributeValue

    from ._inbound_message import InboundMessage

if OTEL_API:
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace

__all__ = [
    "EMPTY",
    "ERROR",
    "INBOUND_POLL_SPAN",
    "MESSAGES",
    "RATE_LIMITED",
    "RECEIVED",
    "InboxTelemetry",
    "PollSeen",
]

INBOUND_POLL_SPAN: Final = "opensms.inbound.poll"
MESSAGES: Final = "opensms.messages"
"""Span attribute: how many messages a polled page held."""
RECEIVED: Final = "received"
"""A polled page brought something new."""
EMPTY: Final = "empty"
"""A polled page brought nothing new (empty, or only duplicates)."""
RATE_LIMITED: Final = "rate_limited"
"""The fetch was answered 429."""
ERROR: Final = "error"
"""The fetch failed otherwise, or recording the page did."""

_COUNT = Guard("counting inbound messages")
_START = Guard("starting an inbound poll's span")
_END = Guard("ending an inbound poll's span")


class InboxTelemetry:
    """The telemetry of one inbox (see the module)."""

    __slots__ = ("_attributes", "_switch")

    def __init__(self) -> None:
        self._switch = Switch()
        self._attributes: dict[tuple[str, bool], dict[str, AttributeValue]] = {}

    def logged(self, messages: Sequence[InboundMessage]) -> None:
        """The inbox logged ``messages`` (received, or closed by the reassembly timer)."""
        active = self._switch.get()  # the hot path (every inbound callback): one call when idle
        if active is None or active.instruments is None:
            return
        counter = active.instruments.inbound_messages
        with _COUNT:  # messages logged are logged: a failing count must not undo that
            for message in messages:
                counter.add(1, self._attributes_of(message.source.value, message.complete))

    def _attributes_of(self, source: str, complete: bool) -> dict[str, AttributeValue]:
        # Built once per (source, complete): a handful of values, bounded by Source.
        key = (source, complete)
        found = self._attributes.get(key)
        if found is None:
            found = self._attributes[key] = {SOURCE: source, COMPLETE: complete}
        return found

    def poll(self) -> PollSeen | None:
        """The poller fetches a page: its span (current until :meth:`PollSeen.end`), or None
        while no SDK tracer provider records."""
        active = self._switch.get()
        if active is None or active.tracer is None:
            return None
        with _START:  # a span that failed to start: the poll runs without one
            return PollSeen(active.tracer.start_span(INBOUND_POLL_SPAN))
        return None


class PollSeen:
    """One page being fetched and recorded: its span, current until :meth:`end`."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._token = otel_context.attach(otel_trace.set_span_in_context(span))

    def end(self, outcome: str, messages: int | None = None, error: str | None = None) -> None:
        """The poll ended with ``outcome`` (of the module's values), having fetched a page of
        ``messages`` (None: no page), or failed with ``error`` (an exception's type name)."""
        span = self._span
        with _END:
            if span.is_recording():
                span.set_attribute(OUTCOME, outcome)
                if messages is not None:
                    span.set_attribute(MESSAGES, messages)
                if error is not None:
                    span.set_attribute(ERROR_TYPE, error)
                    span.set_status(otel_trace.StatusCode.ERROR, error)
        with _END:
            span.end()
        otel_context.detach(self._token)  # logs, never raises
