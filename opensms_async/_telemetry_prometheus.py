"""``/metrics`` for Prometheus: ``create_receiver_app(metrics=True)``, ``receive --metrics-port``.

Needs ``opentelemetry-exporter-prometheus`` (the ``prometheus`` extra; it brings the OpenTelemetry
SDK and ``prometheus_client``), imported only when metrics are asked for: without it,
:func:`metrics_route` raises :class:`~opensms_async.MissingDependencyError` saying what to install.

Serving metrics is the one place where this package configures OpenTelemetry, because the user
asked it to: when no SDK meter provider is set yet, :func:`prometheus_reader` sets one whose
reader is a ``PrometheusMetricReader`` (which registers with ``prometheus_client``'s default
registry); when the application has set one, it is left alone, and ``/metrics`` shows what is
registered with ``prometheus_client`` (give that provider a ``PrometheusMetricReader`` too).

Each process exports its own counts: under ``uvicorn --workers N`` a scrape of the shared port
reaches one worker at random. Run one process per port and scrape each (``opensms receive
--metrics-port`` gives each its own), or push OTLP to a collector, which sums the workers.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from ._exceptions import MissingDependencyError
from ._telemetry import log_fields

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

__all__ = ["INSTALL_HINT", "metrics_app", "metrics_route", "prometheus_reader"]

logger = logging.getLogger("opensms_async.metrics")

INSTALL_HINT = "pip install 'opensms-async[prometheus]'"


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingDependencyError(
            f"serving /metrics needs opentelemetry-exporter-prometheus ({exc.name} is missing):"
            f" {INSTALL_HINT}"
        ) from exc


def prometheus_reader() -> bool:
    """Make sure OpenTelemetry's metrics reach ``prometheus_client``'s registry: set a global
    SDK meter provider with a ``PrometheusMetricReader`` unless one is set. True if it set it.

    Raises :class:`~opensms_async.MissingDependencyError` without the exporter.
    """
    exporter = _import("opentelemetry.exporter.prometheus")
    sdk_metrics = _import("opentelemetry.sdk.metrics")
    from opentelemetry import metrics

    from ._telemetry import _records_nothing

    if not _records_nothing(metrics.get_meter_provider()):
        return False  # the application configured its own: its readers decide
    metrics.set_meter_provider(
        sdk_metrics.MeterProvider(metric_readers=[exporter.PrometheusMetricReader()])
    )
    logger.info(
        "OpenTelemetry metrics: a meter provider exporting to Prometheus set (/metrics)",
        extra=log_fields("metrics", outcome="configured"),
    )
    return True


def _exposition(request: Request) -> Response:
    """``GET /metrics``: ``prometheus_client``'s registry in its text format."""
    from starlette.responses import Response

    client = _import("prometheus_client")
    return Response(client.generate_latest(client.REGISTRY), media_type=client.CONTENT_TYPE_LATEST)


def metrics_route(path: str = "/metrics") -> Route:
    """The route serving ``path``, after :func:`prometheus_reader` (raises
    :class:`~opensms_async.MissingDependencyError` without the exporter)."""
    from starlette.routing import Route

    prometheus_reader()

    async def endpoint(request: Request) -> Response:
        return _exposition(request)

    return Route(path, endpoint, methods=["GET"])


def metrics_app(path: str = "/metrics") -> Any:
    """A Starlette app serving only ``path``: what ``opensms receive --metrics-port`` runs."""
    from starlette.applications import Starlette

    return Starlette(routes=[metrics_route(path)])
