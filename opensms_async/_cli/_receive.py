"""``opensms receive``: the callback receiver, printing every delivery event as a JSON line.

Given credentials (``--api-key``, the OAuth options or their variables) its tracker has a client
and polls for the callbacks that never came, for what ``opensms send --store`` tracked in the same
store too; without, it only receives.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math

from .._client import OpenSMSClient
from .._exceptions import StoreUnavailableError
from .._tracker import DeliveryTracker
from ..receiver import DEFAULT_RECORD_DEADLINE
from ._base import (
    ENV_SECURITY_TOKEN,
    EXIT_FAILED,
    EXIT_USAGE,
    CommandError,
    Commands,
    add_reconcile_option,
    callback_path,
    credentials,
    env,
    listening,
    non_empty,
    port,
    positive_seconds,
    until_stopped,
)
from ._events import add_store_option, store_url
from ._output import Output

__all__ = ["register"]

_RESUME_AFTER = 1.0
"""Seconds ``opensms receive`` waits to read events again after its store was unavailable."""
_SHUTDOWN_MARGIN = 2.0
"""Seconds of graceful shutdown beyond the record deadline: every record in flight at SIGTERM
ends (recorded: 204, or abandoned at the deadline: 503) before uvicorn cancels what is left."""


def register(commands: Commands) -> None:
    """Add ``receive``."""
    receive = commands.add(
        "receive",
        run=_receive,
        help="run the callback receiver, print events",
        description="Receive BICS's delivery-info callbacks on http://HOST:PORT/PATH (put it "
        "behind your TLS proxy; BICS posts to https only), record them in the store and print "
        "every delivery event as a JSON line. With credentials (--api-key, or the OAuth "
        "options) it also polls for the callbacks that never came, including for what "
        "`opensms send --store` tracked in the same store. Refused callbacks are logged as "
        "warnings with their reason; GET /healthz says whether the store can record.",
    )
    receive.add_argument("--host", default="127.0.0.1", help="address to listen on")
    receive.add_argument(
        "--port", type=port, default=8080, help="port to listen on (0: any free one)"
    )
    receive.add_argument(
        "--path", type=callback_path, default="/sms/callback", help="the callback route"
    )
    receive.add_argument(
        "--token",
        action="append",
        type=non_empty,
        help=f"security token of the subscription; repeat it to accept two while rotating "
        f"(default: env {ENV_SECURITY_TOKEN})",
    )
    add_store_option(receive)
    receive.add_argument(
        "--record-deadline",
        type=positive_seconds,
        default=DEFAULT_RECORD_DEADLINE,
        metavar="SECONDS",
        help="answer 503 to a callback not recorded by then",
    )
    receive.add_argument(
        "--metrics-port",
        type=port,
        metavar="PORT",
        help="also serve OpenTelemetry's metrics for Prometheus on http://HOST:PORT/metrics "
        "(needs: pip install 'opensms-async[prometheus]')",
    )
    add_reconcile_option(
        receive,
        help="wait between two polls of a request still not final, doubling each time (its "
        "first poll comes when its send said: `opensms send --reconcile-after`)",
    )


def _tokens(args: argparse.Namespace) -> list[str]:
    if args.token:
        tokens: list[str] = args.token
        return tokens
    token = env(ENV_SECURITY_TOKEN)
    if token is None or not token.strip():
        raise CommandError(
            f"give --token (the subscription's security token) or set {ENV_SECURITY_TOKEN}; "
            "a receiver never accepts callbacks without one",
            EXIT_USAGE,
        )
    return [token]


def _poller_client(args: argparse.Namespace) -> OpenSMSClient | None:
    """The client that polls for lost callbacks, or None without credentials."""
    api_key, oauth = credentials(args)
    if api_key is None and oauth is None:
        return None
    return OpenSMSClient(api_key=api_key, oauth=oauth, base_url=args.base_url)


async def _receive(args: argparse.Namespace, out: Output) -> int:
    from ..receiver import create_receiver_app

    tokens = _tokens(args)
    # Before anything opens: a missing exporter is a one-line error, and the meter provider is
    # set before the tracker and the receiver first look for one.
    metrics = _metrics_app() if args.metrics_port is not None else None
    deadline = args.record_deadline
    # Longer than the deadline: a shutdown cancels no record, only bodies still arriving.
    graceful = math.ceil(deadline + _SHUTDOWN_MARGIN)
    async with contextlib.AsyncExitStack() as stack:
        client = _poller_client(args)
        if client is not None:
            await stack.enter_async_context(client)
        tracker = await stack.enter_async_context(
            DeliveryTracker(
                store=store_url(args), client=client, reconcile_after=args.reconcile_after
            )
        )
        app = create_receiver_app(
            tracker, tokens, path=args.path, record_deadline=deadline, manage_tracker=False
        )
        # Where printing starts, read before the port accepts anything: a callback recorded
        # between serving and this read would otherwise be behind the cursor, never printed.
        cursor = await tracker.store.last_cursor()
        printer = asyncio.create_task(_print_events(tracker, cursor, out))
        try:
            async with listening(app, args.host, args.port, graceful_shutdown=graceful) as server:
                out.note(f"receiving on {server.url}{args.path}")
                if metrics is not None:
                    exporting = await stack.enter_async_context(
                        listening(metrics, args.host, args.metrics_port)
                    )
                    out.note(f"metrics for Prometheus on {exporting.url}/metrics")
                out.note(_polling_note(client, args.reconcile_after))
                code = await until_stopped()
        finally:
            printer.cancel()  # after the shutdown: what the last callbacks recorded is printed
    return code


def _metrics_app() -> object:
    from .._exceptions import MissingDependencyError
    from .._telemetry_prometheus import metrics_app

    try:
        return metrics_app()
    except MissingDependencyError as exc:
        raise CommandError(f"--metrics-port: {exc}", EXIT_FAILED) from exc


def _polling_note(client: OpenSMSClient | None, reconcile_after: float) -> str:
    if client is None:
        return (
            "not polling for lost callbacks: no credentials (give --api-key or set "
            "OPENSMS_API_KEY, or the OAuth options)"
        )
    return (
        f"polling {client.base_url} for lost callbacks: a tracked request still not final is "
        f"polled when its send said (--reconcile-after), then again after {reconcile_after:g} "
        "s, doubling up to an hour"
    )


async def _print_events(tracker: DeliveryTracker, cursor: str | None, out: Output) -> None:
    # A store outage (Redis restarting, say) pauses the printing instead of ending it silently
    # while callbacks are still accepted: it resumes after the last event printed.
    while True:
        try:
            async for event in tracker.events(since=cursor):
                out.event(event)
                cursor = event.cursor
            return
        except StoreUnavailableError as exc:
            out.note(f"events paused: {exc}")
            await asyncio.sleep(_RESUME_AFTER)
