"""The receiver mounted inside an existing Starlette app (FastAPI works the same way).

A mounted app's lifespan does not run, so the host app opens the tracker in its own lifespan.

    OPENSMS_SECURITY_TOKEN=r2k5hq3 .venv/bin/uvicorn examples.receiver_mounted:app --port 8080
    # callbacks: POST http://127.0.0.1:8080/sms/callback
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from opensms_async import DeliveryTracker, create_receiver_app

tracker = DeliveryTracker(store=os.environ.get("OPENSMS_STORE", "sqlite:///opensms.db"))


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Open the tracker for the life of the host app."""
    async with tracker:
        yield


async def home(request: Request) -> PlainTextResponse:
    """The host app's own route."""
    return PlainTextResponse("my service")


app = Starlette(
    routes=[
        Route("/", home),
        Mount(
            "/sms",
            create_receiver_app(
                tracker, os.environ.get("OPENSMS_SECURITY_TOKEN", "change-me"), path="/callback"
            ),
        ),
    ],
    lifespan=lifespan,
)
