"""Latency: callback sent → its event in an ``async for`` consumer, at a paced (open-loop) rate.

The receiver (``_receiver_apps.py``: memory or SQLite store, one live consumer, uvicorn with
uvloop and httptools) runs in its own process pinned to CPU 0. This process, pinned to CPU 1, is
an **open-loop** load generator: callback ``n`` is due at ``start + n / rate`` whatever the
answers do (wrk's closed loop would wait for an answer before sending more, and so hide the
stalls it should measure). It sends each callback on an idle keep-alive connection from a pool
opened beforehand (``--connections``, 256: enough that none waits through a stall of tens of
ms at 3,000/s), noting ``time.monotonic()`` just before the write; when every connection is
busy, the callback waits for the first to free up (counted, and the lag from the moment it was
due is reported beside, so a generator that could not keep the pace shows).

The generator adds no tail of its own (since 2026-12-02; ``bench/diag_floor.py`` measures it
against a plain-Python epoll server answering at once): it runs asyncio's own loop over
``select(2)``, whose timeout is in microseconds, and sleeps to each callback's due time, so it
leaves its CPU idle between sends; its requests are built beforehand; its collector is frozen
and off during a run. The generator before (``--pacing spin --generator-gc on``, diagnosis) ran
uvloop, whose timers tick in milliseconds, and so spun through every gap under 2 ms: at
1,000/s and above it held CPU 1 at 100 %, competing with everything else the machine ran, and
its own collections ran mid-run.

The consumer in the server notes ``time.monotonic()`` as each event arrives, keyed by the
event's address and status, and writes the list when the server stops. On Linux,
``CLOCK_MONOTONIC`` is one clock for every process of the machine, so the two processes' notes
subtract. The callbacks are those of ``bench_receiver.py``: even ones the first sighting of a
recipient, odd ones the final status of the recipient first seen 2000 callbacks earlier; each
causes one event. The first ``--warmup`` seconds of each run are sent but not counted.

A run is refused (its figures not counted) on any answer but 204, any socket error, or any
callback whose event the consumer never saw. Reported per store and rate: p50, p99 and max of
each run, the worst p99 of the runs beside the target (p99 < 5 ms memory, < 10 ms SQLite, in every
run), and the answers' own round trip for context. Beside them, what explains a tail that is not
the receiver's: the server's longest garbage collection (and the median count of collections of
each generation per 10,000 callbacks sent), and how long it waited for a CPU while
runnable (``schedstat``: on a shared machine, other processes holding CPU 0), as a share of the
run, with the load average when the run started; and the **steal** time of CPU 0 and CPU 1 (a
virtual machine's CPUs kept from running by the hypervisor, ``/proc/stat``), which ``schedstat``
cannot see: on this project's VMs it reached 10 to 40 % in some runs, whose tails, the bare
baseline's included, were then tens of ms.

**The baseline**, measured in the same run, its runs interleaved with the SDK's: a bare
Starlette route under the same uvicorn settings and pinning that parses the same callback JSON
(``_json.loads``), hands it to an ``asyncio.Queue`` and answers 204, one consumer ``async for``-ing
the queue and noting ``time.monotonic()`` as the SDK's does (``_receiver_apps.py`` variant
``baseline``). Its p50/p99/max are reported per rate beside the SDK's, and per store and rate the
SDK's p99 over the baseline's (each round's own ratio, the median as the figure; the difference in
ms beside): the machine's part of a tail shows in both, the SDK's own part only in the ratio.
``--no-baseline`` skips it.

    .venv/bin/python bench/bench_latency.py [--seconds 10] [--rates 1000,3000] [--rounds 3]
        [--stores memory,sqlite] [--no-baseline] [--connections 256] [--json-out FILE]
        diagnosis: [--gc-freeze] [--pacing spin] [--generator-gc on] [--switch-interval S]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import math
import os
import selectors
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import uvloop
from _receiver_apps import CALLBACK_PATH, TOKEN
from _util import (
    RunRefused,
    cpu_wait_seconds,
    format_rows,
    free_port,
    median,
    pin_to_cpu,
    row,
    server_process,
    steal_seconds,
    steal_since,
    write_rows,
)

HERE = Path(__file__).resolve().parent
TARGETS_MS = {"memory": 5.0, "sqlite": 10.0}
"""p99 of callback → consumer, in every run (PERFORMANCE.md)."""
LAG = 1000
BASELINE = "baseline"
"""The yardstick's name among the stores: ``_receiver_apps.py``'s bare Starlette → Queue app."""
_BODY = (
    '{{"deliveryInfoList":{{"securityToken":"{token}",'
    '"resourceURL":"http://h/outbound/tel%3A%2B32123/requests/lat-{rid:07d}/deliveryInfos",'
    '"smsParts":1,"deliveryInfo":[{{"address":"{address}","deliveryStatus":"{status}",'
    '"deliveryStatusCode":{code}}}]}}}}'
)


def callback(n: int) -> tuple[bytes, tuple[str, str]]:
    """Callback ``n``'s HTTP request, and the (address, status) of the event it causes."""
    if n % 2 == 0:
        k, status, code = n // 2, "DeliveredToNetwork", 1
    else:
        k, status, code = (n - 1) // 2 - LAG, "DeliveredToTerminal", 2
        if k < 0:
            k = 50_000_000 + n  # the first ones: a fresh recipient
    address = f"tel:+336{k:08d}"
    body = _BODY.format(token=TOKEN, rid=k // 10, address=address, status=status, code=code)
    head = (
        f"POST {CALLBACK_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return (head + body).encode(), (address, status)


class Connection(asyncio.Protocol):
    """One keep-alive connection: one request in flight at a time, answers checked (204)."""

    def __init__(self, generator: Generator) -> None:
        self._generator = generator
        self._buffer = b""
        self.transport: asyncio.Transport | None = None
        self.in_flight: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = cast("asyncio.Transport", transport)

    def send(self, n: int, request: bytes) -> None:
        """Send callback ``n`` (this connection is idle)."""
        transport = cast("asyncio.Transport", self.transport)
        self.in_flight = n
        self._generator.sent_at[n] = time.monotonic()
        transport.write(request)

    def data_received(self, data: bytes) -> None:
        """Complete answers end the request in flight; anything but 204 refuses the run."""
        self._buffer += data
        while b"\r\n\r\n" in self._buffer:
            head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 204 "):
                self._generator.failures.append(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                self._buffer = b""  # a body may follow: the run is refused anyway
            if self.in_flight is not None:
                self._generator.answered(self, self.in_flight)

    def connection_lost(self, exc: Exception | None) -> None:
        """A connection closed under the load refuses the run."""
        if not self._generator.finished:
            self._generator.failures.append(f"connection lost: {exc!r}")
        self._generator.answered(self, None)


class Generator:
    """The open-loop load: callbacks due at a fixed pace, sent on idle connections."""

    def __init__(
        self, rate: float, total: int, *, pacing: str = "select", collector: str = "frozen"
    ) -> None:
        self.rate = rate
        self.pacing = pacing
        self.collector = collector
        self.requests = [callback(n) for n in range(total)]
        self.due = [0.0] * total
        self.sent_at = [math.nan] * total
        self.answered_at = [math.nan] * total
        self.failures: list[str] = []
        self.pool_waits = 0
        """Callbacks that found every connection busy (sent late: their lag from due shows it)."""
        self.finished = False
        self._idle: collections.deque[Connection] = collections.deque()
        self._waiting: collections.deque[int] = collections.deque()
        self._outstanding = 0
        self._done: asyncio.Future[None] | None = None

    async def connect(self, port: int, count: int) -> None:
        """Open the pool of keep-alive connections."""
        loop = asyncio.get_running_loop()
        for _ in range(count):
            _, protocol = await loop.create_connection(lambda: Connection(self), "127.0.0.1", port)
            self._idle.append(protocol)

    def answered(self, connection: Connection, n: int | None) -> None:
        """Callback ``n`` was answered on ``connection``: send a waiting one, or idle it."""
        if n is not None:
            self.answered_at[n] = time.monotonic()
            connection.in_flight = None
            self._outstanding -= 1
        if connection.transport is None or connection.transport.is_closing():
            return
        if self._waiting:
            self._send(connection, self._waiting.popleft())
        else:
            self._idle.append(connection)
        if self._outstanding == 0 and self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _send(self, connection: Connection, n: int) -> None:
        connection.send(n, self.requests[n][0])

    def _dispatch(self, n: int) -> None:
        self._outstanding += 1
        if not self._idle:
            self.pool_waits += 1
        if self._idle:
            self._send(self._idle.popleft(), n)
        else:
            self._waiting.append(n)

    async def run(self) -> None:
        """Send every callback at its due time, then wait for every answer (30 s at most)."""
        loop = asyncio.get_running_loop()
        start = time.monotonic() + 0.05
        total = len(self.requests)
        self.due = [start + n / self.rate for n in range(total)]
        collecting = gc.isenabled()
        if self.collector == "frozen":  # no collection can stall the generator mid-run
            gc.collect()
            gc.freeze()
            gc.disable()
        try:
            await self._pace(total)
            self._done = loop.create_future()
            if self._outstanding:
                await asyncio.wait_for(self._done, 30)
        finally:
            if collecting:
                gc.enable()
            gc.unfreeze()
        self.finished = True

    async def _pace(self, total: int) -> None:
        n = 0
        due = self.due
        clock = time.monotonic
        while n < total:
            now = clock()
            while n < total and due[n] <= now:
                self._dispatch(n)
                n += 1
            if n < total:
                ahead = due[n] - clock()
                if self.pacing == "spin":
                    # The old generator (diagnosis): uvloop's timers tick in milliseconds, so it
                    # slept through the long gaps and spun through the short ones.
                    await asyncio.sleep(ahead - 0.0015 if ahead > 0.002 else 0)
                else:
                    await asyncio.sleep(ahead)  # select(2)'s timeout: microseconds


def loop_factory(pacing: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """asyncio's own loop over ``select(2)``, whose timeout is in microseconds, so the generator
    sleeps to each due time (libuv's and epoll's timeouts are in milliseconds); uvloop for the
    old spinning generator."""
    if pacing == "select":
        return lambda: asyncio.SelectorEventLoop(selectors.SelectSelector())
    return uvloop.new_event_loop


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of sorted ``values`` (nearest rank)."""
    index = min(len(values) - 1, max(0, math.ceil(fraction * len(values)) - 1))
    return values[index]


def one_run(store: str, rate: int, args: argparse.Namespace, workdir: str) -> dict[str, float]:
    """One fresh server, one paced run: lag percentiles in ms, or RunRefused."""
    port = free_port()
    arrivals = os.path.join(workdir, f"arrivals-{port}.json")
    argv = [str(HERE / "_receiver_apps.py"), store, str(port)]
    argv += [tempfile.mkdtemp(dir=workdir)] if store == "sqlite" else []
    argv += ["--consumers", "1", "--latency", arrivals] + (
        ["--gc-freeze"] if args.gc_freeze else []
    )
    if args.switch_interval is not None:
        argv += ["--switch-interval", str(args.switch_interval)]
    total = int(rate * (args.warmup + args.seconds))
    generator = Generator(rate, total, pacing=args.pacing, collector=args.generator_gc)
    load = os.getloadavg()[0]
    with server_process(argv, port) as (_, pid):
        waited, started = cpu_wait_seconds(pid), time.monotonic()
        stolen = steal_seconds()
        with asyncio.Runner(loop_factory=loop_factory(args.pacing)) as runner:
            runner.run(_drive(generator, port, args.connections))
        elapsed = time.monotonic() - started
        waited = (cpu_wait_seconds(pid) - waited) / elapsed
        shares = [seconds / elapsed for seconds in steal_since(stolen)]
        time.sleep(0.3)  # the last events reach the consumer (they were recorded before the 204)
    if generator.failures:
        raise RunRefused(f"{len(generator.failures)} failures, first: {generator.failures[0]}")
    with open(arrivals) as file:
        data = json.load(file)
    seen = {(a, s): t for a, s, t in data["arrivals"]}
    skip = int(rate * args.warmup)
    lags, from_due, trips = [], [], []
    for n in range(skip, total):
        key = generator.requests[n][1]
        if key not in seen:
            raise RunRefused(f"the consumer never saw the event of callback {n} {key}")
        lags.append(seen[key] - generator.sent_at[n])
        from_due.append(seen[key] - generator.due[n])
        trips.append(generator.answered_at[n] - generator.sent_at[n])
    summary = summarise_lags(lags, from_due, trips)
    # The collections the load met: from the first send to the last answer (warm-up included),
    # not those of the server's shutdown (its list of arrivals, built then, makes dozens).
    first, last = generator.sent_at[0], max(generator.answered_at)
    met = [(g, seconds) for g, seconds, at in data["gc_pauses"] if first <= at <= last]
    summary["gc_max_ms"] = max((seconds for _, seconds in met), default=0.0) * 1e3
    summary["gc_full"] = float(sum(1 for g, _ in met if g == 2))
    for g in range(3):  # per 10,000 callbacks sent
        collections = sum(1 for generation, _ in met if generation == g)
        summary[f"gc{g}_per_10k"] = collections * 10_000 / total
    summary["cpu_wait"] = waited
    summary["pool_waits"] = float(generator.pool_waits)
    summary["steal_server"], summary["steal_generator"] = shares
    summary["load"] = load
    return summary


async def _drive(generator: Generator, port: int, connections: int) -> None:
    await generator.connect(port, connections)
    await generator.run()


def summarise_lags(
    lags: list[float], from_due: list[float], trips: list[float]
) -> dict[str, float]:
    """p50, p99, max in milliseconds."""
    lags.sort()
    from_due.sort()
    trips.sort()
    return {
        "p50_ms": percentile(lags, 0.50) * 1e3,
        "p99_ms": percentile(lags, 0.99) * 1e3,
        "max_ms": lags[-1] * 1e3,
        "p99_from_due_ms": percentile(from_due, 0.99) * 1e3,
        "answer_p99_ms": percentile(trips, 0.99) * 1e3,
        "count": float(len(lags)),
    }


Results = dict[tuple[str, int], list[dict[str, float] | str]]


def measure(args: argparse.Namespace) -> Results:
    """Interleaved rounds of every store and rate (the baseline's too), a fresh server each
    run."""
    stores = [s for s in args.stores.split(",") if s] + ([] if args.no_baseline else [BASELINE])
    plans = [(s, r) for s in stores for r in (int(x) for x in args.rates.split(","))]
    results: Results = {plan: [] for plan in plans}
    with tempfile.TemporaryDirectory(prefix="opensms-latency-") as workdir:
        for round_no in range(args.rounds):
            shift = round_no % len(plans)
            for store, rate in [*plans[shift:], *plans[:shift]]:
                try:
                    outcome: dict[str, float] | str = one_run(store, rate, args, workdir)
                except (RunRefused, TimeoutError, OSError) as exc:
                    outcome = f"{type(exc).__name__}: {exc}"
                    print(f"refused: {store} at {rate}/s: {outcome}", file=sys.stderr)
                results[store, rate].append(outcome)
    return results


def rows(results: Results) -> list[dict[str, Any]]:
    """The table's rows: per store and rate the worst p99 of the runs beside its target, the
    rest as notes; per rate the baseline's; per store and rate the SDK's p99 over the
    baseline's (the median of each round's own ratio, the headline on a shared machine)."""
    out = []
    group = "latency: callback sent → async for consumer (open loop, paced; p99 in every run)"
    for (store, rate), runs in results.items():
        out.append(_absolute_row(group, store, rate, runs))
    for (store, rate), runs in results.items():
        if store != BASELINE and (BASELINE, rate) in results:
            out.append(_ratio_row(group, store, rate, runs, results[BASELINE, rate]))
    return out


def _absolute_row(
    group: str, store: str, rate: int, runs: list[dict[str, float] | str]
) -> dict[str, Any]:
    counted = [r for r in runs if isinstance(r, dict)]
    refused = len(runs) - len(counted)
    target = TARGETS_MS.get(store)
    worst = max((r["p99_ms"] for r in counted), default=None)
    notes = [
        "runs p50/p99/max ms: "
        + ", ".join(f"{r['p50_ms']:.1f}/{r['p99_ms']:.1f}/{r['max_ms']:.0f}" for r in counted)
    ]
    if counted:
        due = max(r["p99_from_due_ms"] for r in counted)
        answer = max(r["answer_p99_ms"] for r in counted)
        notes.append(f"p99 from due {due:.1f}, 204 round trip p99 {answer:.1f}")
        gc_max = max(r["gc_max_ms"] for r in counted)
        full = sum(r["gc_full"] for r in counted)
        notes.append(f"longest GC {gc_max:.1f} ms, {full:.0f} full")
        per = [median([r[f"gc{g}_per_10k"] for r in counted]) for g in range(3)]
        notes.append("GC gen0/1/2 per 10k callbacks " + "/".join(f"{c:.1f}" for c in per))
        waited = max(r["cpu_wait"] for r in counted)
        load = max(r["load"] for r in counted)
        notes.append(f"server waited for a CPU up to {waited:.0%} of a run, load avg {load:.1f}")
        waits = max(r["pool_waits"] for r in counted)
        notes.append(f"callbacks that waited for a connection: up to {waits:.0f} a run")
        notes.append(
            "steal CPU 0/1 per run: "
            + ", ".join(f"{r['steal_server']:.0%}/{r['steal_generator']:.0%}" for r in counted)
        )
    if refused:
        notes.append(f"{refused}/{len(runs)} runs refused")
    passed = None if target is None or worst is None else worst < target and not refused
    label = "baseline (Starlette→Queue)" if store == BASELINE else store
    return row(
        group,
        f"{label}, {rate:,}/s: worst p99 of {len(counted)} runs",
        worst,
        "ms",
        target="" if target is None else f"< {target:g} ms",
        passed=passed,
        note="; ".join(notes),
    )


def _ratio_row(
    group: str,
    store: str,
    rate: int,
    runs: list[dict[str, float] | str],
    baselines: list[dict[str, float] | str],
) -> dict[str, Any]:
    """The SDK's p99 over the baseline's, round by round (a round's pair is counted only when
    both runs were), the median as the figure; the differences in ms beside."""
    pairs = [
        (sdk, base)
        for sdk, base in zip(runs, baselines, strict=False)
        if isinstance(sdk, dict) and isinstance(base, dict)
    ]
    ratios = [sdk["p99_ms"] / base["p99_ms"] for sdk, base in pairs]
    minus = [sdk["p99_ms"] - base["p99_ms"] for sdk, base in pairs]
    notes = []
    if pairs:
        notes.append("rounds p99 ratio: " + ", ".join(f"{r:.2f}" for r in ratios))
        notes.append("p99 minus baseline ms: " + ", ".join(f"{m:+.1f}" for m in minus))
        notes.append(
            "p50 ratio: "
            + ", ".join(f"{sdk['p50_ms'] / base['p50_ms']:.2f}" for sdk, base in pairs)
        )
    if len(pairs) < len(runs):
        notes.append(f"{len(runs) - len(pairs)}/{len(runs)} rounds without a counted pair")
    return row(
        group,
        f"{store}, {rate:,}/s: p99 ÷ baseline p99 (median of {len(pairs)} rounds)",
        median(ratios) if ratios else None,
        "ratio",
        note="; ".join(notes),
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1, help="seconds sent, not counted")
    parser.add_argument("--rates", default="1000,3000", help="callbacks/s, comma-separated")
    parser.add_argument("--stores", default="memory,sqlite")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=256, help="the generator's pool")
    parser.add_argument(
        "--pacing",
        default="select",
        choices=("select", "spin"),
        help="select: sleep to each due time; spin: diagnosis, the generator before 2026-12-02",
    )
    parser.add_argument(
        "--generator-gc",
        default="frozen",
        choices=("frozen", "on"),
        help="frozen: the generator's collector frozen and off during a run; on: diagnosis",
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the baseline server's runs"
    )
    parser.add_argument(
        "--switch-interval", type=float, help="diagnosis: the server's sys.setswitchinterval()"
    )
    parser.add_argument("--json-out", help="write the table's rows here (run.py reads them)")
    parser.add_argument(
        "--gc-freeze", action="store_true", help="diagnosis: the server calls gc.freeze() at start"
    )
    return parser.parse_args(argv)


def main() -> None:
    """Run the benchmark and print its table."""
    args = parse_args()
    pin_to_cpu(1)
    table = rows(measure(args))
    write_rows(args.json_out, table)
    print(format_rows(table))


if __name__ == "__main__":
    main()
