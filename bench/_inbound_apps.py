"""The server side of ``bench_inbound.py``: one app per variant, served by uvicorn.

    python bench/_inbound_apps.py VARIANT PORT [DIR] [--stats FILE]

| variant | app |
|---|---|
| ``starlette`` | a bare Starlette route that reads the body and answers 204 (**the yardstick**) |
| ``memory`` | ``create_receiver_app(None, inbox=Inbox(MemoryInboundStore()), ...)`` |
| ``sqlite`` | the same over ``SQLiteInboundStore`` in the directory ``DIR`` (2xx after commit) |

The receivers run as a user runs them: one live ``inbox.messages()`` consumer iterates the whole
time (it counts what it gets). Every variant serves ``GET /healthz`` and runs under the settings
of ``_receiver_apps.py``: uvloop, httptools, one process, no access log. With ``--stats FILE``, a
receiver writes how many messages its store logged and its consumer got when it stops, so the
benchmark can check that every callback was recorded and yielded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator

from _util import serve_fast
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from opensms_async import Inbox, create_receiver_app
from opensms_async.stores.inbound import InboundStore, MemoryInboundStore, SQLiteInboundStore

VARIANTS = ("starlette", "memory", "sqlite")
TOKEN = "bench-inbound-token"
INBOUND_PATH = "/sms/inbound"


def starlette_app() -> Starlette:
    """A bare Starlette route that reads the body and answers 204 (the yardstick)."""

    async def inbound(request: Request) -> Response:
        await request.body()
        return Response(status_code=204)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route(INBOUND_PATH, inbound, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )


def _write_stats(path: str, stats: dict[str, object]) -> None:
    with open(path, "w") as file:
        json.dump(stats, file)


def inbound_app(store: InboundStore, stats: str | None) -> Starlette:
    """The SDK's inbound receiver over ``store``, with one live ``messages()`` consumer."""
    inbox = Inbox(store)
    app = create_receiver_app(None, inbox=inbox, inbound_security_token=TOKEN)
    inner = app.router.lifespan_context
    consumed = 0

    async def consume() -> None:
        nonlocal consumed
        async for _ in inbox.messages():
            consumed += 1

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with inner(app):
            consumer = asyncio.create_task(consume())
            yield
            await asyncio.sleep(0.5)  # let the consumer take what the last callbacks logged
            last = await inbox.store.last_cursor()
            consumer.cancel()
            if stats is not None:
                result: dict[str, object] = {"last_cursor": last, "consumed": consumed}
                await asyncio.to_thread(_write_stats, stats, result)

    app.router.lifespan_context = lifespan
    return app


def build(variant: str, arg: str | None, stats: str | None) -> ASGIApp:
    """The app of one variant."""
    if variant == "starlette":
        return starlette_app()
    if variant == "memory":
        return inbound_app(MemoryInboundStore(), stats)
    if variant == "sqlite":
        if arg is None:
            raise SystemExit("the sqlite variant needs a directory")
        return inbound_app(SQLiteInboundStore(os.path.join(arg, "bench.db")), stats)
    raise SystemExit(f"unknown variant {variant!r}")


def main() -> None:
    """Serve one variant on 127.0.0.1:PORT until terminated."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("port", type=int)
    parser.add_argument("arg", nargs="?", help="sqlite: a directory")
    parser.add_argument("--stats", help="write the log's length and what was consumed here")
    args = parser.parse_args()
    serve_fast(build(args.variant, args.arg, args.stats), args.port)


if __name__ == "__main__":
    main()
