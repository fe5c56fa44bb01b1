"""The server side of ``bench_receiver.py`` and ``bench_latency.py``: one app per variant.

    python bench/_receiver_apps.py VARIANT PORT [ARG] [--consumers N] [--mounted]
                                   [--stats FILE] [--latency FILE]

| variant | app |
|---|---|
| ``raw`` | a raw ASGI app that drains the body and answers 204 (the ceiling, for context) |
| ``starlette`` | a bare Starlette route that reads the body and answers 204 (**the yardstick**) |
| ``memory`` | ``create_receiver_app`` over a ``DeliveryTracker(MemoryStore())`` |
| ``sqlite`` | the same over ``SQLiteStore`` in the directory ``ARG`` (2xx after commit) |
| ``redis`` | the same over ``open_store(ARG)``, ``ARG`` a ``redis://`` URL |
| ``null`` | the receiver over a store that records nothing: the cost of HTTP, token and parsing |
| ``baseline`` | a Starlette route: parse, queue, 204; one consumer (the latency yardstick) |

``--consumers N`` runs N tasks in the server that do nothing but ``async for _ in
tracker.events()`` (counting), opened with the tracker: what a user of the receiver runs. With
``--mounted``, the app (the bare route, or the receiver) is mounted at ``/sms`` in a parent
Starlette app that has a route of its own and opens the tracker in its lifespan, as
``examples/receiver_mounted.py`` does; the callback path is ``/sms/callback`` either way.

Every variant serves ``GET /healthz`` too (``_util.server_process`` waits for it) and runs under
the same uvicorn settings: uvloop, httptools, one process, no access log. With ``--stats FILE``,
a receiver writes, when it stops, the cursor of the last event its store logged and how many
events each consumer saw, so the benchmark can check that the load made real inserts and merges
and that every consumer was live. With ``--latency FILE``, the first consumer notes
``time.monotonic()`` (``CLOCK_MONOTONIC``: one clock for every process of the machine) as it
receives each event, keyed by the event's address and status, and writes them there at the end
(``bench_latency.py`` pairs them with the moments it sent the callbacks), with the generation and
duration of every garbage collection meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import os
import signal
import sys
import time
from array import array
from collections.abc import AsyncIterator, Sequence
from typing import Any

from _util import drain_body, serve_fast
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from opensms_async import DeliveryEvent, DeliveryTracker, DeliveryUpdate
from opensms_async._json import loads as parse_json
from opensms_async.receiver import create_receiver_app
from opensms_async.stores import MemoryStore, SQLiteStore, Store, open_store

VARIANTS = ("raw", "starlette", "memory", "sqlite", "redis", "null", "baseline")
RECEIVERS = ("memory", "sqlite", "redis", "null")
TOKEN = "bench-token"
CALLBACK_PATH = "/sms/callback"
MOUNT = "/sms"


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Drain the request body and answer 204: the least any ASGI receiver can do."""
    if scope["type"] != "http":
        return
    await drain_body(receive)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _callback(request: Request) -> Response:
    await request.body()
    return Response(status_code=204)


async def _health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def _home(request: Request) -> Response:
    return PlainTextResponse("my service")


def starlette_app(path: str = CALLBACK_PATH) -> Starlette:
    """A bare Starlette route that reads the body and answers 204 (the yardstick)."""
    return Starlette(routes=[Route(path, _callback, methods=["POST"]), Route("/healthz", _health)])


class NullStore(MemoryStore):
    """A store whose writes record nothing: the receiver's own cost, without the merge."""

    async def apply_events(self, updates: Sequence[DeliveryUpdate]) -> list[DeliveryEvent]:
        """Record nothing."""
        return []


class Consumers:
    """``count`` tasks iterating ``tracker.events()``; the first may note when each event came."""

    def __init__(self, tracker: DeliveryTracker, count: int, *, timed: bool) -> None:
        self._tracker = tracker
        self.seen = [0] * count
        # Three flat columns, not a tuple per event: a growing list of tuples would make the
        # garbage collector's full passes longer and more frequent, a tail of this benchmark's.
        self.addresses: list[str] = []
        self.statuses: list[str] = []
        self.times = array("d")
        self._timed = timed
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start iterating (the tracker is open)."""
        self._tasks = [
            asyncio.create_task(self._timed_run() if self._timed and i == 0 else self._run(i))
            for i in range(len(self.seen))
        ]

    async def _run(self, index: int) -> None:
        seen = self.seen
        async for _ in self._tracker.events():
            seen[index] += 1

    async def _timed_run(self) -> None:
        address, status, at = self.addresses.append, self.statuses.append, self.times.append
        clock = time.monotonic
        async for event in self._tracker.events():
            at(clock())
            address(event.address)
            status(event.status)
        self.seen[0] = len(self.times)

    def arrivals(self) -> list[tuple[str, str, float]]:
        """(address, status, monotonic time) of each event the first consumer saw."""
        return list(zip(self.addresses, self.statuses, self.times, strict=True))

    async def stop(self) -> None:
        """Wait for the iterators to end (the tracker closed), 10 s at most."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)


class GCPauses:
    """Every garbage collection of the server: its generation, how long it held the loop, and
    when it started (``time.monotonic()``, so that a diagnosis can line it up with lags)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float, float]] = []
        self._started = 0.0

    def callback(self, phase: str, info: dict[str, int]) -> None:
        """``gc.callbacks`` hook."""
        if phase == "start":
            self._started = time.monotonic()
        else:
            started = self._started
            self.seen.append((info["generation"], time.monotonic() - started, started))


def _write_json(path: str, data: object) -> None:
    with open(path, "w") as file:
        json.dump(data, file)


def receiver_lifespan(
    tracker: DeliveryTracker,
    consumers: Consumers,
    stats: str | None,
    latency: str | None,
    *,
    freeze: bool = False,
) -> contextlib.AbstractAsyncContextManager[None]:
    """Open the tracker, start the consumers; at the end, write the stats and arrival times."""

    pauses = GCPauses()

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with tracker:
            consumers.start()
            if freeze:  # diagnosis: what moving startup's objects out of the collector's way does
                gc.collect()
                gc.freeze()
            if latency is not None:  # from now on: the pauses the load meets
                gc.callbacks.append(pauses.callback)
            yield
            last = await tracker.store.last_cursor()
        await consumers.stop()
        if stats is not None:
            data: dict[str, object] = {"last_cursor": last, "consumed": consumers.seen}
            data["package"] = sys.modules["opensms_async"].__file__  # which checkout ran
            await asyncio.to_thread(_write_json, stats, data)
        if latency is not None:
            data = {"arrivals": consumers.arrivals(), "gc_pauses": pauses.seen}
            await asyncio.to_thread(_write_json, latency, data)

    return lifespan()


class Baseline:
    """The latency yardstick: what any receiver with a live consumer must do, and nothing more.

    A bare Starlette route reads the body, parses it as the SDK does (``_json.loads``), hands the
    parsed callback to an ``asyncio.Queue`` and answers 204; one consumer task iterates the queue
    with ``async for`` and notes ``time.monotonic()`` per item as the SDK's timed consumer does
    (three flat columns), keyed by the callback's address and status. No store, no merge, no
    token check: the SDK's p99 minus this one's is the SDK's own tail on the same machine.
    """

    def __init__(self, latency: str | None) -> None:
        self._latency = latency
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.addresses: list[str] = []
        self.statuses: list[str] = []
        self.times = array("d")
        self._task: asyncio.Task[None] | None = None

    async def callback(self, request: Request) -> Response:
        """Parse, queue, answer 204."""
        self._queue.put_nowait(parse_json(await request.body()))
        return Response(status_code=204)

    async def _items(self) -> AsyncIterator[Any]:
        queue = self._queue
        while (item := await queue.get()) is not None:
            yield item

    async def _consume(self) -> None:
        address, status, at = self.addresses.append, self.statuses.append, self.times.append
        clock = time.monotonic
        async for item in self._items():
            at(clock())
            info = item["deliveryInfoList"]["deliveryInfo"][0]
            address(info["address"])
            status(info["deliveryStatus"])

    def app(self, *, freeze: bool) -> Starlette:
        """The Starlette app; its lifespan runs the consumer and writes the arrivals."""
        pauses = GCPauses()

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            self._task = asyncio.create_task(self._consume())
            if freeze:
                gc.collect()
                gc.freeze()
            if self._latency is not None:
                gc.callbacks.append(pauses.callback)
            yield
            self._queue.put_nowait(None)
            await asyncio.wait([self._task], timeout=10)
            if self._latency is not None:
                arrivals = list(zip(self.addresses, self.statuses, self.times, strict=True))
                data = {"arrivals": arrivals, "gc_pauses": pauses.seen}
                await asyncio.to_thread(_write_json, self._latency, data)

        routes = [Route(CALLBACK_PATH, self.callback, methods=["POST"]), Route("/healthz", _health)]
        return Starlette(routes=routes, lifespan=lifespan)


def build(args: argparse.Namespace) -> ASGIApp:
    """The app of one variant, mounted or not."""
    if args.variant == "baseline":
        if args.mounted:
            raise SystemExit("the baseline variant is not mounted")
        return Baseline(args.latency).app(freeze=args.gc_freeze)
    if args.variant == "raw":
        if args.mounted:
            raise SystemExit("the raw variant cannot be mounted")
        return raw_app
    if args.variant == "starlette":
        if not args.mounted:
            return starlette_app()
        return Starlette(
            routes=[
                Route("/", _home),
                Route("/healthz", _health),
                Mount(MOUNT, starlette_app(CALLBACK_PATH.removeprefix(MOUNT))),
            ]
        )
    tracker = DeliveryTracker(make_store(args.variant, args.arg))
    consumers = Consumers(tracker, args.consumers, timed=args.latency is not None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        context = receiver_lifespan(
            tracker, consumers, args.stats, args.latency, freeze=args.gc_freeze
        )
        async with context:
            yield

    if not args.mounted:
        app = create_receiver_app(tracker, TOKEN, CALLBACK_PATH, manage_tracker=False)
        app.router.lifespan_context = lifespan
        return app
    child = create_receiver_app(tracker, TOKEN, CALLBACK_PATH.removeprefix(MOUNT))
    return Starlette(
        routes=[Route("/", _home), Route("/healthz", _health), Mount(MOUNT, child)],
        lifespan=lifespan,
    )


def make_store(variant: str, arg: str | None) -> Store:
    """The store of a receiver variant."""
    if variant == "memory":
        return MemoryStore()
    if variant == "null":
        return NullStore()
    if arg is None:
        needs = "a directory" if variant == "sqlite" else "a redis:// URL"
        raise SystemExit(f"the {variant} variant needs {needs}")
    if variant == "sqlite":
        return SQLiteStore(os.path.join(arg, "bench.db"))
    return open_store(arg)


def main() -> None:
    """Serve one variant on 127.0.0.1:PORT until terminated."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("port", type=int)
    parser.add_argument("arg", nargs="?", help="sqlite: a directory; redis: a redis:// URL")
    parser.add_argument("--consumers", type=int, default=0, help="live events() consumers")
    parser.add_argument("--mounted", action="store_true", help="mount it in a parent app")
    parser.add_argument("--stats", help="write the last event cursor and consumer counts here")
    parser.add_argument("--latency", help="write the first consumer's arrival times here")
    parser.add_argument("--profile", help="diagnosis: run under cProfile, write its stats here")
    parser.add_argument(
        "--gc-freeze", action="store_true", help="diagnosis: gc.freeze() once the tracker is open"
    )
    parser.add_argument(
        "--switch-interval", type=float, help="diagnosis: sys.setswitchinterval() at start"
    )
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    if args.latency is not None and args.consumers < 1 and args.variant != "baseline":
        parser.error("--latency needs a consumer")
    if args.profile is None:
        serve(args)
        return
    # uvicorn re-raises the SIGTERM it stopped on once it is done: end with SystemExit instead,
    # so that the profile is written.
    signal.signal(signal.SIGTERM, _exit)
    profiler = cProfile.Profile(time.process_time)
    try:
        profiler.runcall(serve, args)
    finally:
        profiler.dump_stats(args.profile)


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(args: argparse.Namespace) -> None:
    """Serve the variant with uvicorn until terminated."""
    serve_fast(build(args), args.port)


if __name__ == "__main__":
    main()
