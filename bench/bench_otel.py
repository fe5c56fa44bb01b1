"""What OpenTelemetry's API costs with no SDK configured: the client and the receiver, each run
with the API importable and not, in one run, interleaved.

Two variants of each: ``api`` has ``opentelemetry-api`` importable and no SDK configured (a
user who installed the otel extra, or got the API from another package, and configured
nothing), ``none`` has it refused at import (``_without_otel.py``: a user without the extra).
Target (PERFORMANCE.md): ``api`` within 2% of ``none``. A third client variant, ``sdk``
(diagnosis), configures an SDK that records every span and measurement (spans batched to an
exporter that drops them): what the instrumentation costs once it is on.

- Client: a fresh load process per round and variant, pinned to CPU 1, calls
  ``send_message`` through an ``OpenSMSClient`` with its defaults at 1 and 64 callers against
  the fake API (``_fake_api.py``, CPU 0), as ``bench_client.py`` does; each process reports
  whether OpenTelemetry was loaded, so a variant is what it says.
- Client, paired in one process (API importable, no SDK): two clients alternate batches of
  sequential sends, one recording through OpenTelemetry's no-op proxies as the API makes it do,
  the other through the plain :class:`~opensms_async._telemetry.Call` it uses without the API:
  the only per-call difference between the two, in CPU µs per send, free of the drift between
  processes that dominates the figures above on a shared machine.
- Receiver: the receiver over the memory store in a fresh uvicorn process (CPU 0) per round and
  variant, loaded by wrk (CPU 1) with ``bench_receiver.py``'s callbacks; its server CPU time per
  callback is reported too (steadier than callbacks/s on a shared machine).
- Receiver, paired in one process: a receiver's ASGI endpoint (memory store, no sockets) takes
  alternate batches of callbacks with its telemetry hooks as shipped and with hooks that do
  nothing: the whole cost of the hooks in CPU µs per callback. Without the API the hooks run the
  same code (they find nothing recording), so this bounds the API's cost from above.

The order of the variants alternates from round to round, and the figure is the median of each
round's own ratio ``api / none`` (two runs seconds apart), because absolute rates drift here.

    .venv/bin/python bench/bench_otel.py [--seconds 2] [--rounds 5] [--only client|receiver]
        [--json-out FILE]

It prints the JSON of every measurement, then the table of ``run.py`` (``--json-out`` writes
its rows, for ``make bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from _util import (
    cpu_seconds,
    format_rows,
    free_port,
    median,
    pin_to_cpu,
    row,
    server_process,
    write_rows,
)

HERE = Path(__file__).resolve().parent
WITHOUT_OTEL = str(HERE / "_without_otel.py")
CALLERS = (1, 64)
TARGET = 0.98
"""``api`` ÷ ``none``: within 2%."""

CLIENT_VARIANTS = ("none", "api", "sdk")
RECEIVER_VARIANTS = ("none", "api")

V = TypeVar("V")
"""A variant of a paired measurement (a client, a pair of telemetry hooks)."""


def _python(variant: str) -> list[str]:
    """How to start a Python script of ``variant``: through the blocker for ``none``."""
    return [sys.executable, WITHOUT_OTEL] if variant == "none" else [sys.executable]


# --- the client --------------------------------------------------------------------------------


def client_round(variant: str, url: str, callers: int, seconds: float) -> dict[str, float]:
    """req/s and CPU µs per call of one fresh load process of ``variant``; refuses a process
    that is not what ``variant`` says."""
    argv = [*_python(variant), str(HERE / "bench_otel.py"), "--worker", variant, "--url", url]
    argv += ["--callers", str(callers), "--seconds", str(seconds)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"{variant} worker failed: {done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if report["loaded"] != (variant != "none"):
        raise RuntimeError(f"{variant} worker: opentelemetry loaded = {report['loaded']}")
    return {"rate": float(report["rate"]), "cpu_us": float(report["cpu_us"])}


def worker(variant: str, url: str, callers: int, seconds: float) -> None:
    """The load process: configure the SDK for ``sdk``, drive the client, print the rate."""
    pin_to_cpu(1)
    if variant == "sdk":
        configure_sdk()
    # Imports opensms_async: after the blocker, after the SDK.
    from bench_client import SENDER, TO, drive

    from opensms_async import OpenSMSClient

    calls = 0

    async def load() -> float:
        client = OpenSMSClient(api_key="bench-key", base_url=url, max_retries=0)

        async def call() -> object:
            nonlocal calls
            calls += 1
            return await client.send_message(SENDER, TO, "Hello")

        async with client:
            return await drive(call, callers, seconds)

    cpu = time.process_time()
    rate = asyncio.run(load())
    cpu_us = (time.process_time() - cpu) / calls * 1e6  # the warm-up's calls counted too
    loaded = any(name.partition(".")[0] == "opentelemetry" for name in sys.modules)
    print(json.dumps({"rate": rate, "cpu_us": cpu_us, "loaded": loaded}))


def configure_sdk() -> None:
    """An SDK recording everything: spans batched to an exporter that drops them, metrics
    aggregated for a reader that is never asked (what a service with OTLP export does, less
    the network)."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def measure_client(rounds: int, seconds: float) -> dict[str, Any]:
    """Interleaved rounds of the client variants at 1 and 64 callers."""
    runs: dict[int, dict[str, list[dict[str, float]]]] = {
        callers: {variant: [] for variant in CLIENT_VARIANTS} for callers in CALLERS
    }
    port = free_port()
    with server_process([str(HERE / "_fake_api.py"), str(port)], port, cpu=0) as (url, _):
        for round_no in range(rounds):
            order = CLIENT_VARIANTS if round_no % 2 == 0 else CLIENT_VARIANTS[::-1]
            for callers in CALLERS:
                for variant in order:
                    runs[callers][variant].append(client_round(variant, url, callers, seconds))
    return {
        f"{callers} caller{'s' if callers > 1 else ''}": summarise_runs(by, "req_per_s")
        for callers, by in runs.items()
    }


BATCH = 300
"""Sequential sends per batch of the paired measurement."""


async def alternate_batches(
    batch: Callable[[V], Awaitable[float]], first: V, second: V, batches: int
) -> tuple[list[float], list[float]]:
    """``batch`` run ``batches`` times on each of two variants, which goes first alternating
    from pair to pair (after a warm-up batch of each): the figures of ``first``, of ``second``."""
    await batch(first), await batch(second)  # warm-up
    times: tuple[list[float], list[float]] = ([], [])
    for n in range(batches):
        pair = (first, second) if n % 2 == 0 else (second, first)
        for variant in pair:
            times[variant is second].append(await batch(variant))
    return times


def measure_paired(rounds: int) -> dict[str, Any]:
    """The paired measurement, in a fresh load process pinned to CPU 1."""
    port = free_port()
    with server_process([str(HERE / "_fake_api.py"), str(port)], port, cpu=0) as (url, _):
        argv = [sys.executable, str(HERE / "bench_otel.py"), "--worker", "paired", "--url", url]
        argv += ["--rounds", str(rounds * 6)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"paired worker failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def paired_worker(url: str, batches: int) -> None:
    """Alternate batches of sends of a traced client and a plain one; print CPU µs per send."""
    pin_to_cpu(1)
    from bench_client import SENDER, TO

    from opensms_async import OpenSMSClient, _telemetry

    if not _telemetry.OTEL_API:
        raise RuntimeError("the paired measurement needs opentelemetry-api")

    async def cpu_per_send(client: OpenSMSClient) -> float:
        started = time.process_time()
        for _ in range(BATCH):
            await client.send_message(SENDER, TO, "Hello")
        return (time.process_time() - started) / BATCH * 1e6

    async def alternate() -> tuple[list[float], list[float]]:
        traced = OpenSMSClient(api_key="bench-key", base_url=url, max_retries=0)
        plain = OpenSMSClient(api_key="bench-key", base_url=url, max_retries=0)
        plain._call = _telemetry.Call  # what client_calls() gives without the API
        async with traced, plain:
            return await alternate_batches(cpu_per_send, traced, plain, batches)

    traced_us, plain_us = asyncio.run(alternate())
    extra = [t - p for t, p in zip(traced_us, plain_us, strict=True)]
    print(
        json.dumps(
            {
                "sends_per_batch": BATCH,
                "batches": batches,
                "cpu_us_per_send": {
                    "api, no SDK": round(median(traced_us), 1),
                    "no API (plain Call)": round(median(plain_us), 1),
                },
                "extra_cpu_us_per_send, median of pairs": round(median(extra), 2),
                "api ÷ none by CPU time": round(median(plain_us) / median(traced_us), 3),
            }
        )
    )


# --- the receiver ------------------------------------------------------------------------------


def receiver_round(variant: str, script: str, workdir: str, seconds: float) -> dict[str, float]:
    """callbacks/s and server CPU µs per callback of one fresh receiver of ``variant``."""
    from bench_receiver import wrk

    port = free_port()
    stats = os.path.join(workdir, "stats.json")
    app = [str(HERE / "_receiver_apps.py"), "memory", str(port), "--stats", stats]
    argv = [*_python(variant)[1:], *app]  # server_process puts sys.executable in front
    duration = max(1, round(seconds))
    with server_process(argv, port) as (url, pid):
        wrk(url, script, tag="w", duration=1, connections=64)
        cpu = cpu_seconds(pid)
        run = wrk(url, script, tag="m", duration=duration, connections=64)
        cpu = cpu_seconds(pid) - cpu
    errors = sum(run[k] for k in ("connect", "read", "write", "status", "timeout"))
    if errors:
        raise RuntimeError(f"receiver {variant}: {errors} errors or non-2xx answers")
    return {
        "rate": run["requests"] / (run["duration_us"] / 1e6),
        "cpu_us": cpu / max(run["requests"], 1) * 1e6,
    }


def measure_receiver(rounds: int, seconds: float) -> dict[str, Any]:
    """Interleaved rounds of the receiver variants (memory store)."""
    from bench_receiver import lua_script

    runs: dict[str, list[dict[str, float]]] = {v: [] for v in RECEIVER_VARIANTS}
    with tempfile.TemporaryDirectory(prefix="opensms-bench-otel-") as workdir:
        script = os.path.join(workdir, "callback.lua")
        Path(script).write_text(lua_script())
        for round_no in range(rounds):
            order = RECEIVER_VARIANTS if round_no % 2 == 0 else RECEIVER_VARIANTS[::-1]
            for variant in order:
                runs[variant].append(receiver_round(variant, script, workdir, seconds))
    return summarise_runs(runs, "callbacks_per_s", cpu="server_cpu_us_per_callback")


CALLBACKS_PER_BATCH = 2000
"""Callbacks per batch of the receiver's paired measurement."""


def measure_receiver_paired(rounds: int) -> dict[str, Any]:
    """The receiver's paired measurement, in a fresh process pinned to CPU 1."""
    argv = [sys.executable, str(HERE / "bench_otel.py"), "--worker", "receiver-paired"]
    argv += ["--rounds", str(rounds * 6)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"receiver-paired worker failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


class _NoTelemetry:
    """What the receiver's and the tracker's hooks would be if they did nothing at all."""

    def start(self) -> None:
        return None

    def ingested(self, updates: object, events: object) -> None:
        return None

    def track(self, sent: object, now: float) -> None:
        return None


def receiver_paired_worker(batches: int) -> None:
    """Alternate batches of callbacks through a receiver's ASGI endpoint in one process (no
    sockets): with its telemetry hooks as shipped (API importable, no SDK), and with hooks that
    do nothing; print CPU µs per callback. The difference is the whole cost of the hooks, an
    upper bound of what the API costs over its absence (without it the hooks run the same
    code)."""
    pin_to_cpu(1)
    from _receiver_apps import TOKEN

    from opensms_async import DeliveryTracker, _telemetry
    from opensms_async.receiver import CallbackEndpoint
    from opensms_async.stores import MemoryStore

    if not _telemetry.OTEL_API or _telemetry.active() is not None:
        raise RuntimeError("the paired measurement needs opentelemetry-api and no SDK")

    def body(n: int) -> bytes:
        resource = (
            "https://opensms.api.bics.com/smsmessaging/v1/outbound/tel%3A%2B3212345678/"
            f"requests/req-{n % 5000}/deliveryInfos"
        )
        status = ("DeliveredToNetwork", "DeliveredToTerminal")[n // 5000 % 2]
        info = {"address": f"tel:+3361{n % 5000:07d}", "deliveryStatus": status}
        payload = {"resourceURL": resource, "securityToken": TOKEN, "deliveryInfo": [info]}
        return json.dumps({"deliveryInfoList": payload}).encode()

    bodies = [body(n) for n in range(CALLBACKS_PER_BATCH)]
    scope = {"type": "http", "method": "POST", "path": "/sms/callback", "headers": []}

    async def cpu_per_callback(endpoint: CallbackEndpoint) -> float:
        async def send(message: object) -> None:
            return None

        started = time.process_time()
        for content in bodies:
            message = {"type": "http.request", "body": content, "more_body": False}

            async def receive(message: dict[str, Any] = message) -> dict[str, Any]:
                return message

            await endpoint(scope, receive, send)
        return (time.process_time() - started) / len(bodies) * 1e6

    async def alternate() -> tuple[list[float], list[float]]:
        # One endpoint and one tracker whose hooks are swapped between batches: two instances
        # differ by several µs per callback on their own (memory layout), more than the hooks.
        async with DeliveryTracker(MemoryStore()) as tracker:
            endpoint = CallbackEndpoint(tracker, [TOKEN])
            shipped = (endpoint._telemetry, tracker._telemetry)
            bare = (_NoTelemetry(), _NoTelemetry())

            async def batch(hooks: tuple[Any, Any]) -> float:
                endpoint._telemetry, tracker._telemetry = hooks
                return await cpu_per_callback(endpoint)

            return await alternate_batches(batch, shipped, bare, batches)

    shipped_us, bare_us = asyncio.run(alternate())
    extra = [s - b for s, b in zip(shipped_us, bare_us, strict=True)]
    print(
        json.dumps(
            {
                "callbacks_per_batch": CALLBACKS_PER_BATCH,
                "batches": batches,
                "cpu_us_per_callback": {
                    "api, no SDK (as shipped)": round(median(shipped_us), 2),
                    "hooks doing nothing": round(median(bare_us), 2),
                },
                "extra_cpu_us_per_callback, median of pairs": round(median(extra), 3),
                "hooks doing nothing ÷ as shipped, by CPU time": round(
                    median(bare_us) / median(shipped_us), 3
                ),
            }
        )
    )


# --- summary -----------------------------------------------------------------------------------


def summarise_runs(
    runs: dict[str, list[dict[str, float]]], unit: str, cpu: str = "load_cpu_us_per_call"
) -> dict[str, Any]:
    """The rates' summary, then CPU time per call: its medians and the per-round ratios
    ``none ÷ variant`` (so that, like a rate ratio, below 1 means the variant costs more)."""
    summary = summarise({v: [r["rate"] for r in rs] for v, rs in runs.items()}, unit)
    times = {v: [r["cpu_us"] for r in rs] for v, rs in runs.items()}
    summary[cpu] = {v: round(median(us), 1) for v, us in times.items()}
    for variant in times:
        if variant != "none":
            paired = [n / a for a, n in zip(times[variant], times["none"], strict=True)]
            label = f"{variant} ÷ none by CPU time, median of rounds"
            summary[label + (" (diagnosis)" if variant == "sdk" else "")] = round(median(paired), 3)
    return summary


def summarise(rates: dict[str, list[float]], unit: str) -> dict[str, Any]:
    """Medians, every round's rate, and the median of the per-round ratios to ``none``."""
    summary: dict[str, Any] = {
        unit: {v: round(median(r)) for v, r in rates.items()},
        "per_round": {v: [round(x) for x in r] for v, r in rates.items()},
    }
    for variant in rates:
        if variant == "none":
            continue
        paired = [a / n for a, n in zip(rates[variant], rates["none"], strict=True)]
        label = f"{variant} ÷ none, median of rounds"
        summary[label + (" (diagnosis)" if variant == "sdk" else "")] = round(median(paired), 3)
        if variant == "api":
            summary["api within 2% (>= 0.98)"] = median(paired) >= TARGET
    return summary


def main() -> None:
    """Run the benchmark (or, with ``--worker``, one load process of it); print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measured run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=("client", "receiver"))
    parser.add_argument("--json-out", help="write the table's rows here (run.py reads them)")
    workers = (*CLIENT_VARIANTS, "paired", "receiver-paired")
    parser.add_argument("--worker", choices=workers, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--callers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "paired":
        paired_worker(args.url, args.rounds)
        return
    if args.worker == "receiver-paired":
        receiver_paired_worker(args.rounds)
        return
    if args.worker:
        worker(args.worker, args.url, args.callers, args.seconds)
        return
    result: dict[str, Any] = {}
    if args.only in (None, "client"):
        result["client"] = measure_client(args.rounds, args.seconds)
        result["client, paired in one process"] = measure_paired(args.rounds)
    if args.only in (None, "receiver"):
        result["receiver (memory store)"] = measure_receiver(args.rounds, args.seconds)
        result["receiver, paired in one process"] = measure_receiver_paired(args.rounds)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    table = rows(result)
    write_rows(args.json_out, table)
    print(format_rows(table))


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures with a target (``api`` within 2% of ``none``), as ``run.py``'s rows."""
    group = "OpenTelemetry API, no SDK (bench_otel.py)"
    out = []

    def ratio(name: str, value: float, note: str) -> None:
        passed = value >= TARGET
        out.append(
            row(group, name, value, "ratio", target=f">= {TARGET}", passed=passed, note=note)
        )

    for callers, summary in result.get("client", {}).items():
        value = summary["api ÷ none, median of rounds"]
        by_cpu = summary["api ÷ none by CPU time, median of rounds"]
        ratio(f"client, {callers}: api ÷ none", value, f"by CPU time {by_cpu}")
    paired = result.get("client, paired in one process")
    if paired is not None:
        extra = paired["extra_cpu_us_per_send, median of pairs"]
        ratio("client, paired: none ÷ api by CPU", paired["api ÷ none by CPU time"], f"+{extra} µs")
    receiver = result.get("receiver (memory store)")
    if receiver is not None:
        by_cpu = receiver["api ÷ none by CPU time, median of rounds"]
        value = receiver["api ÷ none, median of rounds"]
        ratio("receiver: api ÷ none", value, f"by server CPU time {by_cpu}")
    paired = result.get("receiver, paired in one process")
    if paired is not None:
        extra = paired["extra_cpu_us_per_callback, median of pairs"]
        value = paired["hooks doing nothing ÷ as shipped, by CPU time"]
        ratio("receiver, paired: bare hooks ÷ shipped by CPU", value, f"+{extra} µs")
    return out


if __name__ == "__main__":
    main()
