"""Diagnosis: what one callback costs the garbage collector, counted, not timed (one process).

Drives the receiver app (``create_receiver_app`` over a ``MemoryStore``, or ``SQLiteStore``) in
process through ASGI, one callback at a time as at a paced rate: each callback's request runs as
its own task (as uvicorn runs it), and the next starts once the live ``tracker.events()`` consumer
got its event. The same callbacks go through the latency benchmark's baseline (a bare Starlette
route → ``asyncio.Queue`` → one consumer) for comparison. Counted per 10,000 callbacks, after a
warm-up: collections of each generation (the default thresholds), objects the collector found
unreachable (cycles), tasks created, loop turns from the request's start to the consumer's
wake-up; and the tracked objects the app holds after the run per callback (``len(gc.get_objects())``
after a full collection, before and after). The counts depend on the code, not the machine's load.

    .venv/bin/python bench/diag_gc.py [--callbacks 20000] [--variants memory,sqlite,baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import uvloop
from _receiver_apps import CALLBACK_PATH, TOKEN, Baseline
from bench_latency import callback

from opensms_async import DeliveryTracker
from opensms_async.receiver import create_receiver_app
from opensms_async.stores import MemoryStore, SQLiteStore

Scope = dict[str, Any]
PER = 10_000


def _scope(headers: list[tuple[bytes, bytes]]) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": CALLBACK_PATH,
        "raw_path": CALLBACK_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }


def bodies(total: int) -> list[bytes]:
    """The latency benchmark's callbacks, their bodies only."""
    return [callback(n)[0].partition(b"\r\n\r\n")[2] for n in range(total)]


class Counter:
    """Counts tasks created and loop turns (a task yielding once per turn) while running."""

    def __init__(self) -> None:
        self.tasks = 0
        self.turns = 0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Count every task the loop creates from now on."""

        def factory(
            loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
        ) -> Any:
            self.tasks += 1
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(factory)  # type: ignore[arg-type]

    async def spin(self) -> None:
        """Count turns, forever."""
        while True:
            self.turns += 1
            await asyncio.sleep(0)


async def drive(
    app: Callable[..., Awaitable[None]], bodies: list[bytes], seen: Callable[[], int]
) -> dict[str, float]:
    """Send each body as its own request task, waiting for the consumer to see its event;
    the counts per 10,000 callbacks after the first quarter (warm-up)."""
    counter = Counter()
    counter.install(asyncio.get_running_loop())
    spinner = asyncio.ensure_future(counter.spin())
    warm = len(bodies) // 4
    answers: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answers.append(message["status"])

    async def one(body: bytes) -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await app(_scope(headers), receive, send)

    turns_to_consumer = 0
    for n, body in enumerate(bodies):
        if n == warm:
            gc.collect()
            stats0, tasks0, turns_to_consumer = gc.get_stats(), counter.tasks, 0
            objects0 = len(gc.get_objects())
        before, start = seen(), counter.turns
        task = asyncio.ensure_future(one(body))
        for i in range(3000):  # bounded: a few turns (memory), a commit by a thread (SQLite)
            if seen() > before:
                break
            await asyncio.sleep(0 if i < 1000 else 0.001)
        else:
            raise RuntimeError(f"callback {n}: no event after 1000 turns; answers {answers[-3:]}")
        turns_to_consumer += counter.turns - start
        await task
    stats1, tasks1 = gc.get_stats(), counter.tasks
    gc.collect()
    objects1 = len(gc.get_objects())
    spinner.cancel()
    counted = len(bodies) - warm
    scale = PER / counted
    if any(status != 204 for status in answers):
        raise RuntimeError(f"answers other than 204: {sorted(set(answers))}")
    out = {
        f"gen{g}_collections": (stats1[g]["collections"] - stats0[g]["collections"]) * scale
        for g in range(3)
    }
    out["unreachable_found"] = (
        sum(stats1[g]["collected"] - stats0[g]["collected"] for g in range(3)) * scale
    )
    out["tasks"] = (tasks1 - tasks0) * scale
    out["turns_to_consumer"] = turns_to_consumer * scale
    out["tracked_objects_held"] = (objects1 - objects0) * scale
    return out


async def sdk(store_name: str, total: int, folder: str) -> dict[str, float]:
    """The receiver over a store, one live consumer."""
    store = MemoryStore() if store_name == "memory" else SQLiteStore(str(Path(folder) / "d.db"))
    tracker = DeliveryTracker(store)
    app = create_receiver_app(tracker, TOKEN, CALLBACK_PATH, manage_tracker=False)
    count = [0]
    async with tracker:

        async def consume() -> None:
            async for _ in tracker.events():
                count[0] += 1

        consumer = asyncio.ensure_future(consume())
        await asyncio.sleep(0)
        try:
            return await drive(app, bodies(total), lambda: count[0])
        finally:
            consumer.cancel()


async def baseline(total: int) -> dict[str, float]:
    """The latency benchmark's baseline app, its lifespan run by hand."""
    base = Baseline(None)
    app = base.app(freeze=False)
    async with app.router.lifespan_context(app):
        return await drive(app, bodies(total), lambda: len(base.times))


def main() -> None:
    """Print each variant's counts per 10,000 callbacks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=20_000)
    parser.add_argument("--variants", default="memory,sqlite,baseline")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for variant in args.variants.split(","):
            run = (
                baseline(args.callbacks)
                if variant == "baseline"
                else sdk(variant, args.callbacks, folder)
            )
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                results[variant] = runner.run(run)
    if args.json:
        print(json.dumps(results))
        return
    keys = list(next(iter(results.values())))
    print(f"per {PER:,} callbacks  " + "".join(f"{v:>12}" for v in results))
    for key in keys:
        print(f"{key:22}" + "".join(f"{results[v][key]:12.1f}" for v in results))


if __name__ == "__main__":
    main()
