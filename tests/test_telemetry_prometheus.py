"""``/metrics`` for Prometheus: ``create_receiver_app(metrics=True)`` and ``opensms receive
--metrics-port`` (issue 13). Each test runs in a process of its own: a Prometheus reader registers
with ``prometheus_client``'s process-wide registry, and the global meter provider is set once."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from cli_helpers import background, wait_for_text
from redis_server import free_port

pytestmark = pytest.mark.integration

TOKEN = "prometheus-token-77a1"

_SERVE = textwrap.dedent(
    """
    import asyncio, json, sys
    import httpx
    from opensms_async import DeliveryTracker, create_receiver_app
    from opensms_async._server import serve

    BLOCK = sys.argv[1] == "block"
    OWN = sys.argv[1] == "own"
    if BLOCK:
        import importlib.abc
        class Blocked(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.startswith("opentelemetry.exporter"):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, Blocked())
    if OWN:  # the application configured its own meter provider: left alone
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    BODY = {"deliveryInfoList": {
        "resourceURL": "https://x.example/outbound/tel%3A%2B3212345678/requests/r-1/deliveryInfos",
        "securityToken": "TOKEN",
        "deliveryInfo": [{"address": "tel:+33612345678", "deliveryStatus": "DeliveredToTerminal"}],
    }}

    async def main():
        async with DeliveryTracker("memory://") as tracker:
            try:
                app = create_receiver_app(tracker, "TOKEN", manage_tracker=False, metrics=True)
            except Exception as exc:
                return {"error": type(exc).__name__, "message": str(exc),
                        "is_import_error": isinstance(exc, ImportError)}
            async with serve(app) as server, httpx.AsyncClient() as http:
                posted = [
                    (await http.post(server.url + "/sms/callback", json=BODY)).status_code,
                    (await http.post(server.url + "/sms/callback", content=b"nope")).status_code,
                ]
                scraped = await http.get(server.url + "/metrics")
                result = {"posted": posted, "status": scraped.status_code,
                          "type": scraped.headers["content-type"], "text": scraped.text}
                if OWN:
                    data = reader.get_metrics_data()
                    result["own"] = sorted(
                        m.name for r in data.resource_metrics for s in r.scope_metrics
                        for m in s.metrics)
                return result

    print(json.dumps(asyncio.run(main())))
    """
).replace("TOKEN", TOKEN)


_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels`` (Prometheus's text
    format; OpenTelemetry adds its scope's labels), or None."""
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] != name:
            continue
        if labels.items() <= dict(_LABEL.findall(match["labels"])).items():
            return float(match["value"])
    return None


def serve_metrics(mode: str) -> dict[str, object]:
    """Run the receiver with ``metrics=True`` in a fresh process (``mode``: ``plain``,
    ``block`` the exporter, or ``own`` meter provider); what it saw."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _SERVE, mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_metrics_true_serves_the_callback_counts_for_prometheus() -> None:
    """With ``metrics=True`` and no meter provider configured, ``GET /metrics`` answers
    Prometheus's text format with the callbacks counted by outcome."""
    result = serve_metrics("plain")
    assert result["posted"] == [204, 400]
    assert result["status"] == 200
    assert str(result["type"]).startswith("text/plain")
    text = str(result["text"])
    callbacks = "opensms_receiver_callbacks_total"
    assert sample(text, callbacks, opensms_outcome="accepted", otel_scope_name="opensms_async") == 1
    assert sample(text, callbacks, opensms_outcome="malformed") == 1
    events = "opensms_delivery_events_total"
    assert (
        sample(text, events, opensms_source="callback", opensms_status="DeliveredToTerminal") == 1
    )
    assert sample(text, "opensms_delivery_pending") == 0
    assert "r-1" not in text and "612345678" not in text


def test_metrics_true_without_the_exporter_says_what_to_install() -> None:
    """Without ``opentelemetry-exporter-prometheus``, ``metrics=True`` raises
    ``MissingDependencyError`` (an ``ImportError`` too) naming the extra to install."""
    result = serve_metrics("block")
    assert result["error"] == "MissingDependencyError"
    assert result["is_import_error"] is True
    assert "pip install 'opensms-async[prometheus]'" in str(result["message"])


def test_metrics_true_leaves_the_applications_meter_provider_alone() -> None:
    """An application that set its own meter provider keeps it: the receiver's metrics reach
    its reader, and ``/metrics`` still answers (what ``prometheus_client`` has registered)."""
    result = serve_metrics("own")
    assert result["status"] == 200
    own = result["own"]
    assert isinstance(own, list | dict)
    assert "opensms.receiver.callbacks" in own
    assert "opensms_receiver_callbacks_total" not in str(result["text"])


def test_receive_metrics_port_serves_metrics_beside_the_receiver(tmp_path: Path) -> None:
    """``opensms receive --metrics-port`` serves ``/metrics`` on its own port, says where, and
    counts what the receiver answered."""
    port, metrics_port = free_port(), free_port()
    out, err = tmp_path / "out", tmp_path / "err"
    args = ["receive", "--port", str(port), "--metrics-port", str(metrics_port)]
    store = f"sqlite:///{tmp_path / 'opensms.db'}"  # not the default file in the checkout
    with background(*args, "--token", TOKEN, "--store", store, out=out, err=err) as process:
        text = wait_for_text(err, "metrics for Prometheus on", process, 30)
        assert f"http://127.0.0.1:{metrics_port}/metrics" in text
        with httpx.Client(timeout=10, trust_env=False) as http:
            answer = http.post(f"http://127.0.0.1:{port}/sms/callback", content=b"{")
            assert answer.status_code == 400
            scraped = http.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert scraped.status_code == 200
        found = sample(
            scraped.text, "opensms_receiver_callbacks_total", opensms_outcome="malformed"
        )
        assert found == 1
        process.terminate()
        assert process.wait(timeout=30) == 0
