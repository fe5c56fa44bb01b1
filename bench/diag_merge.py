"""Diagnosis: where ``bench_merge.py``'s time per event goes, piece by piece (one process).

``bench_merge.py``'s updates and producer (a batch of ``--batch`` updates, then a loop turn),
stopped at each stage, so that each stage's cost shows as the difference to the one before:

- ``store``: ``MemoryStore.apply_events`` alone, no tracker, nobody listening;
- ``ingest``: ``tracker.ingest`` with no ``events()`` consumer (the buffer keeps nothing);
- ``consumers N``: ``tracker.ingest`` to N consumers iterating ``tracker.events()`` (the figure
  ``bench_merge.py`` reports, as µs per event);
- ``iterate``: the ``async for`` of one consumer alone, over an async generator yielding from
  ready batches of 512 (what ``events()`` does per item once it has a batch): the floor of a
  consumer's cost per event.

Each figure is the fastest of ``--rounds`` rounds (the least disturbed by the machine's other
work), in µs per event of wall clock, on uvloop, pinned to CPU 0, the collector's time included.

    .venv/bin/python bench/diag_merge.py [--recipients 50000] [--rounds 5] [--consumers 1,4]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import uvloop
from _util import pin_to_cpu
from bench_merge import make_batches

from opensms_async import DeliveryTracker, DeliveryUpdate
from opensms_async.stores import MemoryStore


async def store_alone(batches: list[list[DeliveryUpdate]]) -> float:
    """Seconds to merge every batch into a fresh store, nobody listening."""
    async with MemoryStore() as store:
        started = time.perf_counter()
        for updates in batches:
            await store.apply_events(updates)
            await asyncio.sleep(0)
        return time.perf_counter() - started


async def through_tracker(batches: list[list[DeliveryUpdate]], consumers: int) -> float:
    """Seconds from the first ``ingest`` until ``consumers`` consumers have every event."""
    expected = sum(len(b) for b in batches)

    async def consume() -> None:
        seen = 0
        async for _ in tracker.events():
            seen += 1
            if seen == expected:
                return

    async with DeliveryTracker(MemoryStore()) as tracker:
        tasks = [asyncio.create_task(consume()) for _ in range(consumers)]
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        for updates in batches:
            await tracker.ingest(updates)
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        return time.perf_counter() - started


async def iterate(count: int) -> float:
    """Seconds for one ``async for`` over ``count`` items of an async generator (batches of 512)."""
    items = list(range(count))

    async def generator() -> AsyncIterator[int]:
        for start in range(0, count, 512):
            for item in items[start : start + 512]:
                yield item

    started = time.perf_counter()
    async for _ in generator():
        pass
    return time.perf_counter() - started


async def measure(args: argparse.Namespace) -> None:
    """Print each stage's best µs per event."""
    batches = make_batches(args.recipients, args.batch)
    events = sum(len(b) for b in batches)
    stages: dict[str, Callable[[], Awaitable[float]]] = {
        "store": lambda: store_alone(batches),
        "ingest": lambda: through_tracker(batches, 0),
    }
    for n in args.consumers:
        stages[f"consumers {n}"] = lambda n=n: through_tracker(batches, n)  # type: ignore[misc]
    stages["iterate"] = lambda: iterate(events)
    best = {name: float("inf") for name in stages}
    for _ in range(args.rounds):
        for name, stage in stages.items():
            best[name] = min(best[name], await stage())
    for name, seconds in best.items():
        print(f"{name:<14} {seconds / events * 1e6:6.3f} µs/event  ({events / seconds:>9,.0f}/s)")


def main() -> None:
    """Run the stages and print their table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=50_000, help="x4 updates")
    parser.add_argument("--batch", type=int, default=100, help="updates per ingest() call")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--consumers", type=lambda s: [int(n) for n in s.split(",")], default=[1, 4]
    )
    args = parser.parse_args()
    pin_to_cpu(0)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(measure(args))


if __name__ == "__main__":
    main()
