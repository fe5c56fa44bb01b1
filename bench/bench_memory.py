"""Bytes per tracked recipient in a ``MemoryStore`` (target: at most 400 B at 1M recipients).

Each recipient gets what ``tracker.track()`` writes: one ``source="send"`` update (hence one
logged event), sent in one ``apply_events`` per request with the request's sender and timestamp
shared. Everything the store keeps alive is counted, including the address strings.

    .venv/bin/python bench/bench_memory.py                    # 10,000 requests x 100 recipients
    .venv/bin/python bench/bench_memory.py --requests 1000    # quicker

The figure comes from :mod:`tracemalloc` (Python allocations still alive after the run, less
those alive before); the growth of the peak RSS is printed beside it as a cross-check.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import time
import tracemalloc
import uuid

from _util import row, write_rows

from opensms_async._models import DeliveryStatus
from opensms_async._state import DeliveryUpdate, Source
from opensms_async.stores.memory import MemoryStore

TARGET_BYTES = 400


async def fill(store: MemoryStore, requests: int, recipients: int) -> None:
    """Track ``requests`` requests of ``recipients`` distinct recipients each."""
    number = 33_600_000_000
    await store.open()
    for _ in range(requests):
        request_id, now = str(uuid.uuid4()), time.time()
        updates = []
        for _ in range(recipients):
            number += 1
            updates.append(
                DeliveryUpdate(
                    request_id=request_id,
                    address=f"tel:+{number}",
                    status=DeliveryStatus.MESSAGE_WAITING,
                    source=Source.SEND,
                    sms_parts=1,
                    sender="tel:+3212345678",
                    received_at=now,
                )
            )
        await store.apply_events(updates)


def max_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(requests: int, recipients: int, *, trace: bool) -> tuple[float, int]:
    """Bytes per recipient still allocated after filling a fresh store, and the store's size."""
    gc.collect()
    if trace:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if trace else max_rss_bytes()
    store = MemoryStore()
    asyncio.run(fill(store, requests, recipients))
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if trace else max_rss_bytes()
    if trace:
        tracemalloc.stop()
    total = requests * recipients
    del store
    return (after - before) / total, total


def main() -> None:
    """Print bytes per tracked recipient, by tracemalloc and by RSS growth."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--recipients", type=int, default=100)
    parser.add_argument("--json-out", help="write the table's row here (run.py reads it)")
    args = parser.parse_args()
    # RSS first: tracemalloc's own bookkeeping would inflate it.
    rss, total = measure(args.requests, args.recipients, trace=False)
    traced, _ = measure(args.requests, args.recipients, trace=True)
    verdict = "OK" if traced <= TARGET_BYTES else "OVER TARGET"
    print(f"MemoryStore, {total:,} recipients with one event each:")
    print(f"  tracemalloc: {traced:6.1f} B/recipient  (target <= {TARGET_BYTES} B: {verdict})")
    print(f"  peak RSS growth: {rss:6.1f} B/recipient")
    group = "memory (MemoryStore, tracemalloc)"
    name = f"bytes per tracked recipient ({total:,} recipients, one event each)"
    note = f"peak RSS growth {rss:.0f} B/recipient"
    passed = traced <= TARGET_BYTES
    write_rows(args.json_out, [row(group, name, traced, "B", target=f"<= {TARGET_BYTES} B",
                                   passed=passed, note=note)])  # fmt: skip


if __name__ == "__main__":
    main()
