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

``--against CHECKOUT`` measures another checkout's package too (``git worktree add /tmp/old
main``), in the same process (copied under another name), its rounds interleaved with this
one's: on a machine whose speed drifts by a fifth from one process to the next, an A/B in one
process is the one that shows a change of a few percent. Each stage's best of each side, and
new ÷ old, are printed.

    .venv/bin/python bench/diag_merge.py [--recipients 50000] [--rounds 5] [--consumers 1,4]
        [--against /tmp/old]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import uvloop
from _util import pin_to_cpu
from bench_merge import STATUSES

import opensms_async
import opensms_async.stores


def make_batches(package: ModuleType, recipients: int, batch: int) -> list[list[Any]]:
    """``bench_merge.make_batches``, with ``package``'s own update class and enums."""
    state = importlib.import_module(f"{package.__name__}._state")
    models = importlib.import_module(f"{package.__name__}._models")
    updates = [
        state.DeliveryUpdate(
            request_id=f"req-{k // 10:07d}",
            address=f"tel:+336{k:08d}",
            status=models.DeliveryStatus(str(status)),
            source=state.Source.CALLBACK,
            sms_parts=1,
            sender="tel:+3212345",
            received_at=1_700_000_000.0 + step,
        )
        for step, status in enumerate(STATUSES)
        for k in range(recipients)
    ]
    return [updates[i : i + batch] for i in range(0, len(updates), batch)]


def load_copy(checkout: str, folder: str) -> ModuleType:
    """The package of another checkout, copied as ``opensms_against`` and imported."""
    shutil.copytree(Path(checkout) / "opensms_async", Path(folder) / "opensms_against")
    sys.path.insert(0, folder)
    importlib.import_module("opensms_against.stores")
    return importlib.import_module("opensms_against")


async def store_alone(package: ModuleType, batches: list[list[Any]]) -> float:
    """Seconds to merge every batch into a fresh store, nobody listening."""
    async with package.stores.MemoryStore() as store:
        started = time.perf_counter()
        for updates in batches:
            await store.apply_events(updates)
            await asyncio.sleep(0)
        return time.perf_counter() - started


async def through_tracker(package: ModuleType, batches: list[list[Any]], consumers: int) -> float:
    """Seconds from the first ``ingest`` until ``consumers`` consumers have every event."""
    expected = sum(len(b) for b in batches)

    async def consume() -> None:
        seen = 0
        async for _ in tracker.events():
            seen += 1
            if seen == expected:
                return

    async with package.DeliveryTracker(package.stores.MemoryStore()) as tracker:
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


def stages(
    package: ModuleType, args: argparse.Namespace
) -> dict[str, Callable[[], Awaitable[float]]]:
    """Each stage of ``package``, by name."""
    batches = make_batches(package, args.recipients, args.batch)
    found: dict[str, Callable[[], Awaitable[float]]] = {
        "store": lambda: store_alone(package, batches),
        "ingest": lambda: through_tracker(package, batches, 0),
    }
    for n in args.consumers:
        found[f"consumers {n}"] = lambda n=n: through_tracker(package, batches, n)  # type: ignore[misc]
    found["iterate"] = lambda: iterate(len(batches) * args.batch)
    return found


async def measure(args: argparse.Namespace, packages: dict[str, ModuleType]) -> None:
    """Print each stage's best µs per event (per package, and new ÷ old with two)."""
    events = args.recipients * len(STATUSES)
    plans = {side: stages(package, args) for side, package in packages.items()}
    best = {side: {name: float("inf") for name in plan} for side, plan in plans.items()}
    for _ in range(args.rounds):
        for name in plans["this"]:
            for side, plan in plans.items():  # interleaved: one stage of each side in turn
                best[side][name] = min(best[side][name], await plan[name]())
    for name in plans["this"]:
        cells = [f"{side} {best[side][name] / events * 1e6:6.3f}" for side in plans]
        ratio = ""
        if "against" in best:
            ratio = f"  this ÷ against {best['this'][name] / best['against'][name]:.3f}"
        print(f"{name:<12} µs/event: {'  '.join(cells)}{ratio}")


def main() -> None:
    """Run the stages and print their table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=50_000, help="x4 updates")
    parser.add_argument("--batch", type=int, default=100, help="updates per ingest() call")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--consumers", type=lambda s: [int(n) for n in s.split(",")], default=[1, 4]
    )
    parser.add_argument("--against", help="another checkout, measured in the same process")
    args = parser.parse_args()
    pin_to_cpu(0)
    with tempfile.TemporaryDirectory(prefix="opensms-diag-") as folder:
        packages = {"this": opensms_async}
        if args.against:
            packages["against"] = load_copy(args.against, folder)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(measure(args, packages))


if __name__ == "__main__":
    main()
