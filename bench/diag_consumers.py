"""Diagnosis: what a live ``events()`` consumer costs per event, and why (no HTTP, one process).

A model of the receiver's loop under load: ``producers`` tasks each ``ingest`` one update at a
time and then yield a loop turn (as a callback's task does before answering), over a
``MemoryStore``, while ``consumers`` tasks iterate ``tracker.events()``. With 64 producers many
callbacks are recorded in each loop turn (a saturated receiver); with 1, each callback has its
turn to itself (a receiver paced at 1,000/s). Reported: this process's CPU µs per update, and
how many events each consumer got per wake-up (counted by the consumers themselves, against a
task that counts loop turns), so that the cost of a wake-up and its task switch shows apart from
the cost of an event.

    .venv/bin/python bench/diag_consumers.py [--recipients 10000] [--rounds 3] [--store redis]

``--store redis`` runs it over a ``RedisStore`` on a fresh redis-server instead (this process's
CPU only: redis-server's is not counted), where a consumer reads the shared log itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator

import uvloop
from _util import median, pin_to_cpu, redis_server
from bench_merge import make_batches

from opensms_async import DeliveryTracker, DeliveryUpdate
from opensms_async.stores import MemoryStore, RedisStore, Store


class Turns:
    """Counts the loop's turns (a task that yields once per turn), while running."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Count from now on."""
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)

    def stop(self) -> None:
        """Stop counting."""
        if self._task is not None:
            self._task.cancel()


async def once(
    updates: list[DeliveryUpdate], producers: int, consumers: int, store: Callable[[], Store]
) -> tuple[float, float]:
    """CPU µs per update, and events per wake-up of a consumer (0 without consumers)."""
    turns = Turns()
    wakes = [0] * consumers
    counts = [0] * consumers
    async with DeliveryTracker(store()) as tracker:

        async def consume(index: int) -> None:
            last_turn = -1
            async for _ in tracker.events():
                counts[index] += 1
                if turns.count != last_turn:  # the first event of this wake-up
                    wakes[index] += 1
                    last_turn = turns.count
                if counts[index] == len(updates):
                    return

        tasks = [asyncio.create_task(consume(i)) for i in range(consumers)]
        await asyncio.sleep(0.01)
        turns.start()
        pending = iter(updates)

        async def produce() -> None:
            for update in pending:
                await tracker.ingest([update])
                await asyncio.sleep(0)

        cpu = time.process_time()
        await asyncio.gather(*(produce() for _ in range(producers)))
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        cpu = time.process_time() - cpu
        turns.stop()
    per_wake = sum(counts) / sum(wakes) if consumers else 0.0
    return cpu / len(updates) * 1e6, per_wake


@contextlib.contextmanager
def stores(kind: str) -> Iterator[Callable[[], Store]]:
    """What makes each run's store: a fresh memory store, or a Redis store emptied first."""
    if kind == "memory":
        yield MemoryStore
        return
    with tempfile.TemporaryDirectory(prefix="opensms-diag-") as folder, redis_server(folder) as url:
        serial = iter(range(1_000_000))
        yield lambda: RedisStore(url, prefix=f"diag{next(serial)}")


async def measure(args: argparse.Namespace, store: Callable[[], Store]) -> None:
    """Every (producers, consumers) pair, rounds interleaved; print the medians."""
    updates = [u for batch in make_batches(args.recipients, 100) for u in batch]
    plans = [(p, c) for p in (64, 8, 1) for c in (0, 1, 4)]
    results: dict[tuple[int, int], list[tuple[float, float]]] = {plan: [] for plan in plans}
    for _ in range(args.rounds):
        for producers, consumers in plans:
            run = await once(updates, producers, consumers, store)
            results[producers, consumers].append(run)
    for (producers, consumers), runs in results.items():
        cpu = median([r[0] for r in runs])
        base = median([r[0] for r in results[producers, 0]])
        per_wake = median([r[1] for r in runs])
        extra = f"+{cpu - base:5.2f} µs per update over none; {per_wake:5.1f} events per wake-up"
        print(f"{producers:2} producers, {consumers} consumers: {cpu:6.2f} µs/update  {extra}")


def main() -> None:
    """Run the diagnosis and print its lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000, help="x4 updates")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", choices=["memory", "redis"], default="memory")
    args = parser.parse_args()
    pin_to_cpu(0)
    with stores(args.store) as store, asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(measure(args, store))


if __name__ == "__main__":
    main()
