"""``opensms receive``: the callback receiver, printing every delivery event as a JSON line."""

from __future__ import annotations

import argparse
import asyncio
import os

from .._exceptions import StoreUnavailableError
from .._tracker import DeliveryTracker
from ._base import ENV_SECURITY_TOKEN, EXIT_USAGE, CommandError, Commands, until_stopped
from ._events import add_store_option, store_url
from ._output import Output

__all__ = ["register"]

_RESUME_AFTER = 1.0
"""Seconds ``opensms receive`` waits to read events again after its store was unavailable."""


def register(commands: Commands) -> None:
    """Add ``receive``."""
    receive = commands.add("receive", run=_receive, help="run the callback receiver, print events")
    receive.add_argument("--host", default="127.0.0.1")
    receive.add_argument("--port", type=int, default=8080)
    receive.add_argument("--path", default="/sms/callback")
    receive.add_argument(
        "--token", action="append", help=f"accepted token, repeatable (env {ENV_SECURITY_TOKEN})"
    )
    add_store_option(receive)


async def _receive(args: argparse.Namespace, out: Output) -> int:
    from .._server import serve
    from ..receiver import create_receiver_app

    tokens = args.token or [t for t in [os.environ.get(ENV_SECURITY_TOKEN)] if t]
    if not tokens:
        raise CommandError(f"give --token or set {ENV_SECURITY_TOKEN}", EXIT_USAGE)
    async with DeliveryTracker(store=store_url(args)) as tracker:
        app = create_receiver_app(tracker, tokens, path=args.path, manage_tracker=False)
        async with serve(app, host=args.host, port=args.port) as server:
            out.note(f"receiving on {server.url}{args.path}")
            printer = asyncio.create_task(_print_events(tracker, out))
            code = await until_stopped()
            printer.cancel()
    return code


async def _print_events(tracker: DeliveryTracker, out: Output) -> None:
    # A store outage (Redis restarting, say) pauses the printing instead of ending it silently
    # while callbacks are still accepted: it resumes after the last event printed.
    cursor: str | None = None
    started = False
    while True:
        try:
            if not started:
                cursor, started = await tracker.store.last_cursor(), True
            async for event in tracker.events(since=cursor):
                out.event(event)
                cursor = event.cursor
            return
        except StoreUnavailableError as exc:
            out.note(f"events paused: {exc}")
            await asyncio.sleep(_RESUME_AFTER)
