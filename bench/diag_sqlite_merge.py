"""Diagnosis: the SQLite store's writer work per callback, in process, no server, no thread.

A file already holding ``--states`` states (and as many events); then ``--batches`` write
transactions as the writer runs them under ``bench_receiver.py``'s load: ``--jobs`` jobs of one
update each (the bench's 33-37), half first sightings (``DeliveredToNetwork`` of a new
recipient), half advances (``DeliveredToTerminal`` of one sighted about a thousand updates
before). Mode ``merge`` times ``BEGIN IMMEDIATE``, ``_merge_batch``, ``COMMIT``; mode ``serve``
the whole ``Writer._serve_batch`` (jobs queued by hand, the hop to the loop a no-op), the event
log's trimming included (no retention of states: see below). Prints µs and CPU µs (this
thread's) per callback, best of ``--rounds``; with ``--profile``, cProfile's breakdown by
function instead.

    .venv/bin/python bench/diag_sqlite_merge.py [--mode serve] [--batches 2000] [--profile]

Instruction counts (no lock needed): run it under callgrind twice with different ``--batches``
and divide the difference of the totals by the difference of the callbacks, which cancels the
start-up and the fill (``--build`` the same in both: building the updates is no writer's work):

    .venv/bin/python bench/diag_sqlite_merge.py --save /tmp/filled.db --rounds 1
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python \
        bench/diag_sqlite_merge.py --filled /tmp/filled.db --batches 300 --build 300 \
        --rounds 1 --quiet

(``--filled`` skips the fill, which under callgrind would take minutes.)

Mode ``loop`` is the other side: ``--tasks`` tasks each calling ``apply_events`` ``--batches``
times (one update a call) on a fresh store, its writer on its own thread; it prints this (the
event loop's) thread's CPU per call. Under ``valgrind --tool=callgrind --separate-threads=yes``
the loop's instructions are those of the file ending ``-01`` (two ``--batches``, as above).

``PYTHONPATH`` at another checkout measures that checkout's store (it must have the same
private names: ``_connect``, ``_merge_batch``, ``_Writer``, ``_Job``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import uvloop

from opensms_async import _models
from opensms_async._state import DeliveryUpdate, Source
from opensms_async.stores import _sqlite_writer as writer_module
from opensms_async.stores import sqlite as module
from opensms_async.stores._memo import MergeMemo

_NETWORK = _models.DeliveryStatus.DELIVERED_TO_NETWORK
_TERMINAL = _models.DeliveryStatus.DELIVERED_TO_TERMINAL
_LAG = 1000


def _update(k: int, terminal: bool, at: float) -> DeliveryUpdate:
    return DeliveryUpdate(
        request_id=f"req-m0-{k // 10:07d}",
        address=f"tel:+336{k:08d}",
        status=_TERMINAL if terminal else _NETWORK,
        source=Source.CALLBACK,
        sms_parts=1,
        status_code=2 if terminal else 1,
        received_at=at,
    )


def _jobs(first: int, batches: int, jobs: int) -> list[list[tuple[DeliveryUpdate, ...]]]:
    """The bench's callbacks from recipient ``first`` on: network, terminal (lagged), ..."""
    out: list[list[tuple[DeliveryUpdate, ...]]] = []
    n = 2 * first
    for _ in range(batches):
        batch: list[tuple[DeliveryUpdate, ...]] = []
        for _ in range(jobs):
            k = n // 2 if n % 2 == 0 else (n - 1) // 2 - _LAG
            if k < 0:
                k = 50_000_000 + n  # the first ones: a fresh recipient, as in the bench
            batch.append((_update(k, n % 2 == 1, 1_700_000_000.0 + n * 1e-4),))
            n += 1
        out.append(batch)
    return out


def _fill(conn: Any, memo: MergeMemo, states: int) -> None:
    """``states`` recipients sighted (and as many events), as a long-running receiver has."""
    for batch in _jobs(0, states // 500, 1000):
        conn.execute("BEGIN IMMEDIATE")
        module._merge_batch(conn, memo, batch, time.time())
        conn.execute("COMMIT")


class _Loop:
    """The writer's loop, as far as ``_settle`` sees it: the hop to the loop does nothing."""

    def call_soon_threadsafe(self, *args: object) -> None:
        pass


def _serve(store: Any, conn: Any, batches: list[list[tuple[DeliveryUpdate, ...]]]) -> None:
    writer = store._make_writer(_Loop())
    for batch in batches:
        for payload in batch:
            writer._queue.put(writer_module._Job(None, "write", None, writer._merger, payload))
        writer._serve_batch(conn)


def _merge(memo: MergeMemo, conn: Any, batches: list[list[tuple[DeliveryUpdate, ...]]]) -> None:
    for batch in batches:
        conn.execute("BEGIN IMMEDIATE")
        module._merge_batch(conn, memo, batch, time.time())
        conn.execute("COMMIT")


async def _loop_side(tasks: int, calls: int, jobs: int) -> None:
    """``tasks`` tasks calling ``apply_events`` ``calls`` times each (one update a call, the
    bench's) on a fresh store, the writer on its thread: this (the loop's) thread's CPU."""
    with tempfile.TemporaryDirectory(prefix="opensms-diag-") as workdir:
        async with module.SQLiteStore(os.path.join(workdir, "loop.db")) as store:
            for first in (0, 10_000_000):  # a warm-up, then the measured run
                batches = _jobs(first, tasks * calls // jobs + 1, jobs)
                updates = [update for batch in batches for job in batch for update in job]

                async def caller(i: int, updates: list[DeliveryUpdate] = updates) -> None:
                    for k in range(calls):
                        await store.apply_events((updates[k * tasks + i],))

                start, cpu = time.perf_counter(), time.thread_time()
                await asyncio.gather(*(caller(i) for i in range(tasks)))
                wall, cpu = time.perf_counter() - start, time.thread_time() - cpu
    n = tasks * calls
    print(
        f"{module.__file__}\nloop: {wall / n * 1e6:.2f} µs per call, the loop's CPU"
        f" {cpu / n * 1e6:.2f} µs"
    )


def main() -> None:
    """Fill a file, then time (or profile) the writer's batches."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("merge", "serve", "loop"), default="serve")
    parser.add_argument("--tasks", type=int, default=64, help="loop mode: concurrent callers")
    parser.add_argument("--states", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=35)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--build", type=int, default=0, help="build this many batches' updates")
    parser.add_argument("--filled", help="copy this file (made by --save) instead of filling")
    parser.add_argument("--save", help="save the filled file here (then measure as usual)")
    args = parser.parse_args()
    if args.mode == "loop":
        uvloop.run(_loop_side(args.tasks, args.batches, args.jobs))
        return
    with tempfile.TemporaryDirectory(prefix="opensms-diag-") as workdir:
        path = os.path.join(workdir, "bench.db")
        # No retention sweep: the bench's file starts empty, so its sweeps read next to nothing,
        # while this filled file's first pass would read every state during the measurement.
        store = module.SQLiteStore(path, retention=None)
        if args.filled:
            shutil.copyfile(args.filled, path)
        conn = module._connect(path, "NORMAL", time.time())
        memo = store._memo
        if not args.filled:
            _fill(conn, memo, args.states)
        if args.save:
            conn.execute("VACUUM INTO ?", (args.save,))
        first = args.states
        best = best_cpu = float("inf")
        for _ in range(args.rounds):
            batches = _jobs(first, max(args.batches, args.build), args.jobs)[: args.batches]
            first += args.batches * args.jobs // 2
            run: Callable[[], None] = (
                partial(_serve, store, conn, batches)
                if args.mode == "serve"
                else partial(_merge, memo, conn, batches)
            )
            if args.profile:
                profile = cProfile.Profile()
                profile.runcall(run)
                pstats.Stats(profile).sort_stats("tottime").print_stats(25)
                continue
            start, cpu = time.perf_counter(), time.thread_time()
            run()
            best = min(best, time.perf_counter() - start)
            best_cpu = min(best_cpu, time.thread_time() - cpu)
        conn.close()
    if not args.quiet and not args.profile:
        per, cpu = (t / (args.batches * args.jobs) * 1e6 for t in (best, best_cpu))
        print(
            f"{module.__file__}\n{args.mode}: {per:.2f} µs per callback, CPU {cpu:.2f} µs"
            f" (best of {args.rounds})"
        )


if __name__ == "__main__":
    main()
