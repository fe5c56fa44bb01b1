"""OpenTelemetry SDK providers recording in memory, installed as the global ones for one test.

The SDK allows setting a global provider once per process; these helpers unset them afterwards
as OpenTelemetry's own test utilities do, so that the other test files run as a user without an
SDK would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import attrs
from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from opensms_async import _telemetry as telemetry

SCOPE = "opensms_async"


@attrs.frozen
class Recorded:
    """What the SDK providers of one test recorded."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider

    def spans(self) -> list[ReadableSpan]:
        """The finished spans of this package's scope, in the order they ended."""
        return [s for s in self.exporter.get_finished_spans() if scope_of(s) == SCOPE]

    def all_spans(self) -> list[ReadableSpan]:
        """Every finished span, the httpx instrumentation's too."""
        return list(self.exporter.get_finished_spans())

    def metrics(self) -> dict[str, Any]:
        """This package's metrics by name (cumulative since the test began)."""
        data = self.reader.get_metrics_data()
        found: dict[str, Any] = {}
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                if scope.scope.name == SCOPE:
                    found.update({metric.name: metric for metric in scope.metrics})
        return found

    def points(self, name: str = telemetry.CLIENT_REQUEST_DURATION) -> list[Any]:
        """The data points of this package's metric ``name``."""
        metric = self.metrics().get(name)
        return list(metric.data.data_points) if metric is not None else []


def scope_of(span: ReadableSpan) -> str | None:
    """The instrumentation scope's name of ``span``."""
    scope = span.instrumentation_scope
    return scope.name if scope is not None else None


def unset_global_providers() -> None:
    """Back to no SDK at all (what ``opentelemetry.test``'s reset helpers do)."""
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None
    metrics_internal._PROXY_METER_PROVIDER = metrics_internal._ProxyMeterProvider()


def install_sdk(sampler: Any = None, *, reset: bool = True) -> Recorded:
    """Fresh SDK tracer and meter providers, set as OpenTelemetry's global ones (``reset``:
    after unsetting whatever was there)."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    if reset:
        unset_global_providers()
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return Recorded(exporter, reader, tracer_provider)


def recording() -> Iterator[Recorded]:
    """The body of a test file's ``otel`` fixture: SDK providers recording in memory for one
    test, unset afterwards."""
    recorded = install_sdk()
    yield recorded
    unset_global_providers()


def named(recorded: Recorded, name: str) -> list[ReadableSpan]:
    """The finished spans of this package called ``name``."""
    return [span for span in recorded.spans() if span.name == name]


async def spans_ended(recorded: Recorded, name: str, count: int) -> list[ReadableSpan]:
    """The spans called ``name`` once at least ``count`` have ended (bounded wait)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):  # a hang guard, generous for a loaded machine
            while True:
                found = named(recorded, name)
                if len(found) >= count:
                    return found
                await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} {name} spans ended: {len(named(recorded, name))}")


def sums(recorded: Recorded, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
    """The data points of metric ``name`` by their attributes (a sum's value, a histogram's
    point, a gauge's value)."""
    found = {}
    for point in recorded.points(name):
        key = frozenset(dict(point.attributes or {}).items())
        found[key] = point if isinstance(point, HistogramDataPoint) else point.value
    return found


def attributes(**pairs: Any) -> frozenset[tuple[str, Any]]:
    """A metric point's attributes: ``attributes(opensms_outcome="accepted")``."""
    return frozenset((key.replace("_", ".", 1), value) for key, value in pairs.items())
