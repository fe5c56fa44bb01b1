"""Merge + fan-out in process: events/s from ``tracker.ingest`` to every ``events()`` consumer.

A :class:`DeliveryTracker` over a fresh store; ``consumers`` tasks iterate ``tracker.events()``;
one producer feeds ``ingest()`` batches of ``batch`` updates. The updates take ``recipients``
recipients (ten per request id) through four statuses in turn (``MessageWaiting``,
``DeliveredToNetwork``, ``DeliveryUncertain``, ``DeliveredToTerminal``), so every update advances
a state and logs one event: the first of each recipient inserts, the others merge. The producer
yields to the loop after each batch, as a receiver does between callbacks (otherwise the consumers
would only start once everything is ingested). The clock runs from the first ``ingest`` until
every consumer has received every event; the updates are built before it starts.

    .venv/bin/python bench/bench_merge.py [--recipients 50000] [--rounds 3]

Reported (medians of interleaved rounds, on uvloop, pinned to CPU 0): MemoryStore with 4
consumers (the target, at least 300k events/s), MemoryStore with 1 consumer, and SQLiteStore
(a temporary file, group commit) with 4 consumers, for context. Beside events/s (wall clock),
events per CPU-second of this process, steadier on a shared machine, and the time the garbage
collector ran per event (``gc.callbacks``). Printed below the table: the load average when
the run started, and the share of the run this process waited for a CPU (``schedstat``) and the
hypervisor stole from CPU 0 (``/proc/stat``): a disturbed run shows there.

Absolute events/s drift with the machine, so each memory figure is also given as a ratio to a
**baseline measured in the same round**: the same updates, the same producer (a batch, then a
loop turn), through the least a hand-written tracker could do: a plain ``dict`` from (request
id, address) to status, an advance when the status ranks higher, and one ``asyncio.Queue`` per
consumer that every event tuple is put into. The ratio of each round is paired with that round's
baseline, and the median of the rounds is reported.

    .venv/bin/python bench/bench_merge.py [--rounds 3] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import uvloop
from _util import (
    cpu_wait_seconds,
    format_rows,
    median,
    pin_to_cpu,
    row,
    steal_seconds,
    steal_since,
    write_rows,
)

from opensms_async import DeliveryTracker
from opensms_async._models import DeliveryStatus
from opensms_async._state import DeliveryUpdate, Source
from opensms_async.stores import MemoryStore, SQLiteStore, Store

TARGET = 300_000
STATUSES = (
    DeliveryStatus.MESSAGE_WAITING,
    DeliveryStatus.DELIVERED_TO_NETWORK,
    DeliveryStatus.DELIVERY_UNCERTAIN,
    DeliveryStatus.DELIVERED_TO_TERMINAL,
)


def make_batches(recipients: int, batch: int) -> list[list[DeliveryUpdate]]:
    """Every recipient through every status, in batches; each update advances its recipient."""
    updates = [
        DeliveryUpdate(
            request_id=f"req-{k // 10:07d}",
            address=f"tel:+336{k:08d}",
            status=status,
            source=Source.CALLBACK,
            sms_parts=1,
            sender="tel:+3212345",
            received_at=1_700_000_000.0 + step,
        )
        for step, status in enumerate(STATUSES)
        for k in range(recipients)
    ]
    return [updates[i : i + batch] for i in range(0, len(updates), batch)]


async def consume(tracker: DeliveryTracker, expected: int) -> None:
    """Iterate the tracker's events until ``expected`` have arrived."""
    seen = 0
    async for _ in tracker.events():
        seen += 1
        if seen == expected:
            return


class GCTime:
    """Seconds the garbage collector ran while this is active (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> GCTime:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


async def run_once(
    store: Store, batches: list[list[DeliveryUpdate]], consumers: int
) -> tuple[float, float, float]:
    """Events per second (wall clock, CPU time) through ``store`` to ``consumers`` consumers,
    and the garbage collector's µs per event meanwhile."""
    expected = sum(len(b) for b in batches)
    async with DeliveryTracker(store) as tracker:
        tasks = [asyncio.create_task(consume(tracker, expected)) for _ in range(consumers)]
        await asyncio.sleep(0.05)  # every consumer is waiting for its first event
        with GCTime() as collector:
            started, cpu = time.perf_counter(), time.process_time()
            for updates in batches:
                await tracker.ingest(updates)
                await asyncio.sleep(0)
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=600)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return expected / elapsed, expected / cpu, collector.seconds / expected * 1e6


RANK: dict[str, int] = {status: rank for rank, status in enumerate(STATUSES)}


async def baseline_once(
    batches: list[list[DeliveryUpdate]], consumers: int
) -> tuple[float, float, float]:
    """The same updates through a dict merge and one ``asyncio.Queue`` per consumer."""
    expected = sum(len(b) for b in batches)
    queues: list[asyncio.Queue[tuple[object, ...]]] = [asyncio.Queue() for _ in range(consumers)]

    async def consume(queue: asyncio.Queue[tuple[object, ...]]) -> None:
        for _ in range(expected):
            await queue.get()

    tasks = [asyncio.create_task(consume(queue)) for queue in queues]
    await asyncio.sleep(0.05)
    states: dict[tuple[str, str], str] = {}
    rank = RANK
    with GCTime() as collector:
        started, cpu = time.perf_counter(), time.process_time()
        for updates in batches:
            for update in updates:
                key = (update.request_id, update.address)
                previous = states.get(key)
                status = update.status
                if previous is None or rank[status] > rank[previous]:
                    states[key] = status
                    event = (key, previous, status, update.received_at)
                    for queue in queues:
                        queue.put_nowait(event)
            await asyncio.sleep(0)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=600)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return expected / elapsed, expected / cpu, collector.seconds / expected * 1e6


async def measure(args: argparse.Namespace) -> dict[str, list[tuple[float, float, float]]]:
    """Interleaved rounds of each variant and its baseline; each round's (events/s, by CPU,
    GC µs)."""
    batches = make_batches(args.recipients, args.batch)
    small = make_batches(args.sqlite_recipients, args.batch)
    with tempfile.TemporaryDirectory(prefix="opensms-bench-") as workdir:
        counter = iter(range(1_000_000))

        def sqlite() -> Store:
            return SQLiteStore(os.path.join(workdir, f"merge-{next(counter)}.db"))

        n = args.consumers
        plans: dict[str, tuple[Callable[[], Store], list[list[DeliveryUpdate]], int]] = {
            f"memory, {n} consumers": (MemoryStore, batches, n),
            "memory, 1 consumer": (MemoryStore, batches, 1),
            f"sqlite, {n} consumers": (sqlite, small, n),
        }
        baselines = {f"baseline, {n} consumers": n, "baseline, 1 consumer": 1}
        results: dict[str, list[tuple[float, float, float]]] = {
            name: [] for name in [*plans, *baselines]
        }
        for _ in range(args.rounds):
            for name, (factory, plan, consumers) in plans.items():
                rates = await run_once(factory(), plan, consumers)
                results[name].append(rates)
            for name, consumers in baselines.items():
                results[name].append(await baseline_once(batches, consumers))
    return results


def rows(results: dict[str, list[tuple[float, float, float]]], consumers: int) -> list[Any]:
    """The table's rows: events/s beside the target, and each memory figure ÷ its baseline."""
    group = "merge + fan-out in process (tracker.ingest → every events() consumer)"
    out = []
    for name, runs in results.items():
        if name.startswith("baseline"):
            continue
        rate = median([r[0] for r in runs])
        by_cpu = median([r[1] for r in runs])
        gc_us = median([r[2] for r in runs])
        target = name == f"memory, {consumers} consumers"
        note = f"by CPU {by_cpu:,.0f}/s, GC {gc_us:.2f} µs/event"
        out.append(
            row(
                group,
                f"{name}: events/s",
                rate,
                "events/s",
                target=f">= {TARGET:,}" if target else "",
                passed=rate >= TARGET if target else None,
                note=note if target or name.startswith("memory") else f"context; {note}",
            )
        )
        base = name.replace("memory", "baseline")
        if name.startswith("memory") and base in results:
            paired = [mine[0] / theirs[0] for mine, theirs in zip(runs, results[base], strict=True)]
            by_cpu_paired = [
                mine[1] / theirs[1] for mine, theirs in zip(runs, results[base], strict=True)
            ]
            out.append(
                row(
                    group,
                    f"{name} ÷ dict + asyncio.Queue baseline",
                    median(paired),
                    "ratio",
                    note=f"per round {[round(p, 2) for p in paired]}; by CPU "
                    f"{median(by_cpu_paired):.2f}; baseline "
                    f"{median([r[0] for r in results[base]]):,.0f} events/s",
                )
            )
    return out


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=50_000, help="x4 updates (memory)")
    parser.add_argument("--sqlite-recipients", type=int, default=10_000, help="x4 (SQLite)")
    parser.add_argument("--batch", type=int, default=100, help="updates per ingest() call")
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json-out", help="write the table's rows here (run.py reads them)")
    args = parser.parse_args()
    pin_to_cpu(0)
    load = os.getloadavg()[0]
    waited, stolen, started = cpu_wait_seconds(os.getpid()), steal_seconds(), time.monotonic()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        results = runner.run(measure(args))
    elapsed = time.monotonic() - started
    waited = (cpu_wait_seconds(os.getpid()) - waited) / elapsed
    steal = steal_since(stolen)[0] / elapsed
    table = rows(results, args.consumers)
    write_rows(args.json_out, table)
    print(format_rows(table))
    print(f"load average {load:.2f} at the start; CPU wait {waited:.1%}, steal CPU 0 {steal:.1%}")


if __name__ == "__main__":
    main()
