"""Spans and metrics of a send, its callbacks and a poll on the console, OpenTelemetry set up as
an application does.

    pip install 'opensms-async[otel]' opentelemetry-sdk
    python examples/otel_console.py

The SDK never configures OpenTelemetry: the application does, once, and every instrumented
library records through it. Here a console exporter prints one line per span and, at exit, one
line per metric data point; in production an OTLP exporter sends them to a collector. The
simulator answers the first send with a 503 (see ``http.request.resend_count``) and loses half
of its callbacks, which the tracker's poller recovers (``opensms.reconcile``, the source
``poll``, ``opensms.delivery.poll_recovered``); callback and poll spans link to the send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    HistogramDataPoint,
    MetricsData,
    NumberDataPoint,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from opensms_async import DeliveryTracker, OpenSMSClient, create_receiver_app
from opensms_async._server import serve
from opensms_async.testing import Fault, run_simulator

SENDER = "tel:+3212345678"
TOKEN = "console-example-token"
PATH = "/sms/callback"


def span_line(span: ReadableSpan) -> str:
    """One span as one line: name, kind, status, attributes, and its links (span ids)."""
    links = [f"{link.context.span_id:016x}" for link in span.links]
    ids = f"{span.context.span_id:016x}" if span.context is not None else "-"
    parent = f" parent={span.parent.span_id:016x}" if span.parent is not None else ""
    linked = f" links={links}" if links else ""
    attributes = dict(span.attributes or {})
    kind, status = span.kind.name, span.status.status_code.name
    return f"span {span.name} {kind} {status} id={ids}{parent}{linked} {attributes}\n"


def metric_lines(data: MetricsData) -> str:
    """Each metric data point as one line: name, attributes, value (count and sum of a
    histogram)."""
    lines = []
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attributes = dict(point.attributes or {})
                    if isinstance(point, HistogramDataPoint):
                        value = f"count={point.count} sum={point.sum:.3f} {metric.unit}"
                    elif isinstance(point, NumberDataPoint):
                        value = f"{point.value:g} {metric.unit}"
                    else:  # an exponential histogram: only if a view asks for one
                        value = f"count={point.count} sum={point.sum:.3f} {metric.unit}"
                    lines.append(f"metric {metric.name} {attributes} {value}")
    return "\n".join(lines) + "\n"


def configure_opentelemetry() -> MeterProvider:
    """Global tracer and meter providers printing to the console (the application's job)."""
    tracer_provider = TracerProvider()
    exporter = ConsoleSpanExporter(formatter=span_line)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(
        ConsoleMetricExporter(formatter=metric_lines), export_interval_millis=3_600_000
    )
    meter_provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(meter_provider)
    return meter_provider


async def main(to: Sequence[str] = ("+33612345678", "+33612345679")) -> None:
    """Send (retried once), receive the callbacks that arrive, poll for the lost ones."""
    async with run_simulator(seed=3, callback_drop_rate=0.5) as sim:
        sim.simulator.add_fault(Fault.respond(503, endpoint="send"))
        async with (
            OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client,
            DeliveryTracker("memory://", client=client, reconcile_after=0.5) as tracker,
        ):
            app = create_receiver_app(tracker, TOKEN, path=PATH, manage_tracker=False)
            async with serve(app) as receiver:
                sim.simulator.route_callbacks_to(receiver.url + PATH)
                await client.create_subscription("https://example.test/sms/callback", TOKEN)
                sent = await client.send_message(SENDER, list(to), "Hello")
                await tracker.track(sent)
                for address in sent.recipients:
                    await tracker.wait_for_final(sent.request_id, address, timeout=30)
                await sim.simulator.settle(10)


if __name__ == "__main__":
    meter_provider = configure_opentelemetry()
    asyncio.run(main())
    meter_provider.shutdown()  # exports the metrics a last time, on the way out
