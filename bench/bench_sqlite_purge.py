"""Apply latency of a ``SQLiteStore`` while its retention deletes a big backlog of expired rows.

A file holds ``--expired`` states (two recipients per request) written long ago; the store opens
with a clock past their retention, so its writer thread sweeps them away in small steps between
batches. Meanwhile ``--callers`` concurrent callers each apply one update at a time, as a
receiver's callbacks do, and every apply's latency is recorded until the purge is done. The same
load then runs on a file with nothing to purge, for comparison (same run, same machine).

    .venv/bin/python bench/bench_sqlite_purge.py [--expired 200000] [--callers 8]

Reported: apply latency p50 / p99 / max in ms with and without the purge, how long the purge
took, and how many retention steps it needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import tempfile
import time

from _util import median

from opensms_async._state import DeliveryUpdate
from opensms_async.stores import SQLiteStore

T0 = 1_700_000_000.0
SENDER = "tel:+3212345"


def add_expired_states(path: str, rows: int) -> None:
    """``rows`` states, two per request, last written at ``T0``."""
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO states VALUES (?, ?, 'DeliveredToTerminal', NULL, 1, ?, 0, 0.0, ?)",
            ((f"old-{n // 2:07d}", f"tel:+3360{n:07d}", SENDER, T0) for n in range(rows)),
        )
    conn.close()


def remaining(path: str) -> int:
    """Expired states still in the file (read by another connection)."""
    conn = sqlite3.connect(path)
    try:
        sql = "SELECT count(*) FROM states WHERE request_id >= 'old-' AND request_id < 'old.'"
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


async def caller(store: SQLiteStore, k: int, stop: asyncio.Event, out: list[float]) -> None:
    """Apply one update at a time until ``stop``, recording each latency."""
    n = 0
    while not stop.is_set():
        update = DeliveryUpdate(f"live-{k}", f"tel:+33{n:09d}", "MessageWaiting", sender=SENDER)
        started = time.perf_counter()
        await store.apply_events([update])
        out.append(time.perf_counter() - started)
        n += 1


async def run(path: str, callers: int, purge: bool, seconds: float) -> dict[str, float]:
    """Latencies under load; with ``purge``, until the expired rows are gone."""
    latencies: list[float] = []
    stop = asyncio.Event()
    async with SQLiteStore(path, retention=100.0, clock=lambda: T0 + 1000) as store:
        started = time.perf_counter()
        tasks = [asyncio.create_task(caller(store, k, stop, latencies)) for k in range(callers)]
        while True:
            await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            if purge and await asyncio.to_thread(remaining, path) == 0:
                break
            if not purge and elapsed >= seconds:
                break
        stop.set()
        await asyncio.gather(*tasks)
        writer = store._writer
        steps = writer._retention.steps if writer is not None else 0
    latencies.sort()
    return {
        "p50_ms": round(median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
        "applies": len(latencies),
        "seconds": round(elapsed, 2),
        "retention_steps": steps,
    }


async def measure(expired: int, callers: int) -> dict[str, dict[str, float]]:
    """The purge run, then the same load for as long on a file with nothing to purge."""
    with tempfile.TemporaryDirectory(prefix="opensms-purge-") as workdir:
        paths = [os.path.join(workdir, name) for name in ("purge.db", "plain.db")]
        for path in paths:
            async with SQLiteStore(path):
                pass
        add_expired_states(paths[0], expired)
        purging = await run(paths[0], callers, True, 0.0)
        plain = await run(paths[1], callers, False, purging["seconds"])
    return {"purging": purging, "nothing_to_purge": plain}


def main() -> None:
    """Run the benchmark and print a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expired", type=int, default=200_000)
    parser.add_argument("--callers", type=int, default=8)
    args = parser.parse_args()
    result = asyncio.run(measure(args.expired, args.callers))
    print(json.dumps({"expired_states": args.expired, "callers": args.callers, **result}, indent=2))


if __name__ == "__main__":
    main()
