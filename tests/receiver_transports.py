"""Two ways for a test to reach a receiver app: in process, or over a real socket.

``"asgi"`` calls the app in the test's own task through ``httpx.ASGITransport`` (no socket, no
uvicorn: the fast unit run covers the receiver's answers this way), with the app's ASGI lifespan
run around it as a server would (httpx does not run it). ``"socket"`` serves the app under
uvicorn on a free 127.0.0.1 port (``opensms_async.testing.serve``) and is an integration test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Message

from opensms_async.testing import serve

__all__ = ["LIFESPAN_WAIT", "TRANSPORTS", "lifespan", "reach"]

TRANSPORTS = ["asgi", pytest.param("socket", marks=pytest.mark.integration)]
"""Parameters for a ``transport`` fixture: in process (a unit test), then over a socket."""
LIFESPAN_WAIT = 30.0
"""Seconds the app's lifespan startup or shutdown may take at most."""


@contextlib.asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run ``app``'s ASGI lifespan (startup, then shutdown) around the block, as uvicorn does."""
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

    async def run() -> None:
        await app(scope, to_app.get, from_app.put)

    task = asyncio.create_task(run())
    try:
        await _step(to_app, from_app, "startup")
        yield
        await _step(to_app, from_app, "shutdown")
        async with asyncio.timeout(LIFESPAN_WAIT):
            await task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _step(
    to_app: asyncio.Queue[Message], from_app: asyncio.Queue[Message], name: str
) -> None:
    await to_app.put({"type": f"lifespan.{name}"})
    async with asyncio.timeout(LIFESPAN_WAIT):
        answer = await from_app.get()
    if answer["type"] != f"lifespan.{name}.complete":
        raise RuntimeError(f"lifespan {name} failed: {answer.get('message', '')}")


@contextlib.asynccontextmanager
async def reach(
    app: ASGIApp, transport: str, *, timeout: float = 30.0
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """An HTTP client for ``app`` and the base URL to prefix its paths with."""
    if transport == "socket":
        async with (
            serve(app) as server,
            httpx.AsyncClient(timeout=timeout, trust_env=False) as http,
        ):
            yield http, server.url
        return
    if transport != "asgi":
        raise ValueError(f"unknown transport {transport!r}")
    asgi = httpx.ASGITransport(app=app)
    async with lifespan(app), httpx.AsyncClient(transport=asgi, timeout=timeout) as http:
        yield http, "http://receiver"
