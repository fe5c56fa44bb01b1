"""The server side of ``bench_receiver.py``: one app per variant, served by uvicorn.

    python bench/_receiver_apps.py VARIANT PORT [ARG] [--stats FILE]

| variant | app |
|---|---|
| ``raw`` | a raw ASGI app that drains the body and answers 204 (the ceiling, for context) |
| ``starlette`` | a bare Starlette route that reads the body and answers 204 (**the yardstick**) |
| ``memory`` | ``create_receiver_app`` over a ``DeliveryTracker(MemoryStore())`` |
| ``sqlite`` | the same over ``SQLiteStore`` in the directory ``ARG`` (2xx after commit) |
| ``redis`` | the same over ``open_store(ARG)``, ``ARG`` a ``redis://`` URL |
| ``null`` | the receiver over a store that records nothing: the cost of HTTP, token and parsing |

Every variant serves ``GET /healthz`` too (``_util.server_process`` waits for it) and runs under
the same uvicorn settings: uvloop, httptools, one process, no access log. With ``--stats FILE``,
the receivers write the cursor of the last event their store logged to ``FILE`` when they stop, so
the benchmark can check that the load made real inserts and merges.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Sequence

import uvicorn
from _util import drain_body
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from opensms_async import DeliveryEvent, DeliveryTracker, DeliveryUpdate
from opensms_async.receiver import create_receiver_app
from opensms_async.stores import MemoryStore, SQLiteStore, Store, open_store

VARIANTS = ("raw", "starlette", "memory", "sqlite", "redis", "null")
TOKEN = "bench-token"
CALLBACK_PATH = "/sms/callback"


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Drain the request body and answer 204: the least any ASGI receiver can do."""
    if scope["type"] != "http":
        return
    await drain_body(receive)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def starlette_app() -> Starlette:
    """A bare Starlette route that reads the body and answers 204 (the yardstick)."""

    async def callback(request: Request) -> Response:
        await request.body()
        return Response(status_code=204)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route(CALLBACK_PATH, callback, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )


class NullStore(MemoryStore):
    """A store whose writes record nothing: the receiver's own cost, without the merge."""

    async def apply_events(self, updates: Sequence[DeliveryUpdate]) -> list[DeliveryEvent]:
        """Record nothing."""
        return []


def _write_stats(path: str, stats: dict[str, object]) -> None:
    with open(path, "w") as file:
        json.dump(stats, file)


def receiver_app(store: Store, stats: str | None) -> Starlette:
    """The SDK's receiver over ``store``; writes its last event cursor to ``stats`` at the end."""
    tracker = DeliveryTracker(store)
    app = create_receiver_app(tracker, TOKEN, CALLBACK_PATH)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with inner(app):
            yield
            if stats is not None:
                last = await store.last_cursor()
                await asyncio.to_thread(_write_stats, stats, {"last_cursor": last})

    app.router.lifespan_context = lifespan
    return app


def build(variant: str, arg: str | None, stats: str | None) -> ASGIApp:
    """The app of one variant."""
    if variant == "raw":
        return raw_app
    if variant == "starlette":
        return starlette_app()
    if variant == "memory":
        return receiver_app(MemoryStore(), stats)
    if variant == "sqlite":
        if arg is None:
            raise SystemExit("the sqlite variant needs a directory")
        return receiver_app(SQLiteStore(os.path.join(arg, "bench.db")), stats)
    if variant == "null":
        return receiver_app(NullStore(), stats)
    if variant == "redis":
        if arg is None:
            raise SystemExit("the redis variant needs a redis:// URL")
        return receiver_app(open_store(arg), stats)
    raise SystemExit(f"unknown variant {variant!r}")


def main() -> None:
    """Serve one variant on 127.0.0.1:PORT until terminated."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("port", type=int)
    parser.add_argument("arg", nargs="?", help="sqlite: a directory; redis: a redis:// URL")
    parser.add_argument("--stats", help="write the store's last event cursor here at the end")
    args = parser.parse_args()
    uvicorn.run(
        build(args.variant, args.arg, args.stats),
        host="127.0.0.1",
        port=args.port,
        log_level="error",
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_keep_alive=30,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
