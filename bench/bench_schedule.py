"""The polling schedule of a ``MemoryStore``: what ``claim_due`` costs with many requests pending.

The reconciliation poller calls ``claim_due`` every tick (up to once a second); with a million
requests pending and none due, that call should cost next to nothing, and taking the due ones
should cost in proportion to what it takes, not to what is pending.

    .venv/bin/python bench/bench_schedule.py [--pending 1000000] [--calls 50]

Reported: µs per ``schedule`` (filling), and the median µs of ``claim_due`` with none due, then
with 64 due (``limit=64``, as the poller claims; each round's claims rescheduled an hour later,
as a poll does).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from _util import median

from opensms_async.stores.memory import MemoryStore

NOW = 1_700_000_000.0
HOUR = 3600.0


async def measure(pending: int, calls: int) -> dict[str, float]:
    """Fill a store with ``pending`` requests due in an hour or later, then time claim_due."""
    store = MemoryStore()
    await store.open()
    started = time.perf_counter()
    for n in range(pending):
        await store.schedule(f"req-{n:07d}", "tel:+3212345", tracked_at=NOW, poll_at=NOW + HOUR + n)
    fill = (time.perf_counter() - started) / pending * 1e6
    idle = []
    for _ in range(calls):
        started = time.perf_counter()
        claimed = await store.claim_due(NOW, limit=64)
        idle.append(time.perf_counter() - started)
        if claimed:
            raise RuntimeError("nothing should be due")
    busy = []
    at = NOW + HOUR + 64
    for _ in range(calls):
        started = time.perf_counter()
        claimed = await store.claim_due(at, limit=64)
        busy.append(time.perf_counter() - started)
        if len(claimed) != 64:
            raise RuntimeError(f"64 should be due, not {len(claimed)}")
        for request in claimed:  # as the poller does: the next poll is far off
            await store.reschedule(request.request_id, next_poll_at=at + 100 * HOUR, attempts=1)
        at += 64
    return {
        "schedule_us": round(fill, 2),
        "claim_due_none_due_us": round(median(idle) * 1e6, 1),
        "claim_due_64_due_us": round(median(busy) * 1e6, 1),
    }


def main() -> None:
    """Run the benchmark and print a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    result = asyncio.run(measure(args.pending, args.calls))
    print(json.dumps({"pending": args.pending, **result}, indent=2))


if __name__ == "__main__":
    main()
