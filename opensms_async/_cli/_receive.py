"""``opensms receive``: the callback receiver, printing every delivery event as a JSON line.

Given credentials (``--api-key``, the OAuth options or their variables) its tracker has a client
and polls for the callbacks that never came, for what ``opensms send --store`` tracked in the same
store too; without, it only receives. Given ``--inbound-token`` it receives inbound messages too
(on ``--inbound-path``, into an :class:`~opensms_async.Inbox` on the same store) and prints each,
once and whole, as a JSON line with ``"kind": "inbound"``; with no delivery token, only those.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math

from .._client import OpenSMSClient
from .._exceptions import StoreUnavailableError
from .._inbox import Inbox
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
from ._inbound import ENV_INBOUND_TOKEN
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
        "`opensms send --store` tracked in the same store. With --inbound-token it also "
        "receives inbound messages on --inbound-path, records them in the same store (each "
        'once, long ones joined) and prints each as a JSON line with "kind": "inbound"; '
        "without a delivery token it receives only those. Refused callbacks are logged as "
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
    receive.add_argument(
        "--inbound-token",
        action="append",
        type=non_empty,
        metavar="TOKEN",
        help=f"security token of the inbound subscription (its Bearer token): receive inbound "
        f"messages too; repeat it to accept two while rotating (default: env "
        f"{ENV_INBOUND_TOKEN}, else no inbound route)",
    )
    receive.add_argument(
        "--inbound-path",
        type=callback_path,
        default="/sms/inbound",
        help="the inbound messages' route (with --inbound-token)",
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


def _tokens(args: argparse.Namespace) -> tuple[list[str] | None, list[str] | None]:
    """The delivery tokens and the inbound tokens (None: that route is not served); a usage
    error when neither is given, since a receiver never accepts callbacks without a token."""
    delivery = _given(args.token, ENV_SECURITY_TOKEN)
    inbound = _given(args.inbound_token, ENV_INBOUND_TOKEN)
    if delivery is None and inbound is None:
        raise CommandError(
            f"give --token (the subscription's security token) or set {ENV_SECURITY_TOKEN}, "
            f"or --inbound-token (the inbound subscription's) or set {ENV_INBOUND_TOKEN}; "
            "a receiver never accepts callbacks without one",
            EXIT_USAGE,
        )
    if delivery is not None and inbound is not None and args.path == args.inbound_path:
        raise CommandError(
            f"--path and --inbound-path must differ, both are {args.path}", EXIT_USAGE
        )
    return delivery, inbound


def _given(option: list[str] | None, variable: str) -> list[str] | None:
    if option:
        return option
    token = env(variable)
    return None if token is None or not token.strip() else [token]


def _poller_client(args: argparse.Namespace) -> OpenSMSClient | None:
    """The client that polls for lost callbacks, or None without credentials."""
    api_key, oauth = credentials(args)
    if api_key is None and oauth is None:
        return None
    return OpenSMSClient(api_key=api_key, oauth=oauth, base_url=args.base_url)


async def _receive(args: argparse.Namespace, out: Output) -> int:
    from ..receiver import create_receiver_app

    tokens, inbound_tokens = _tokens(args)
    # Before anything opens: a missing exporter is a one-line error, and the meter provider is
    # set before the tracker and the receiver first look for one.
    metrics = _metrics_app() if args.metrics_port is not None else None
    deadline = args.record_deadline
    # Longer than the deadline: a shutdown cancels no record, only bodies still arriving.
    graceful = math.ceil(deadline + _SHUTDOWN_MARGIN)
    async with contextlib.AsyncExitStack() as stack:
        client = _poller_client(args) if tokens is not None else None
        if client is not None:
            await stack.enter_async_context(client)
        tracker = None
        if tokens is not None:
            tracker = await stack.enter_async_context(
                DeliveryTracker(
                    store=store_url(args), client=client, reconcile_after=args.reconcile_after
                )
            )
        inbox = None
        if inbound_tokens is not None:
            inbox = await stack.enter_async_context(Inbox(store=store_url(args)))
        app = create_receiver_app(
            tracker,
            tokens,
            path=args.path,
            inbox=inbox,
            inbound_path=args.inbound_path,
            inbound_security_token=inbound_tokens,
            record_deadline=deadline,
            manage_tracker=False,
        )
        # Where printing starts, read before the port accepts anything: a callback recorded
        # between serving and this read would otherwise be behind the cursor, never printed.
        printers = await _printers(tracker, inbox, out)
        _freeze_startup()
        try:
            async with listening(app, args.host, args.port, graceful_shutdown=graceful) as server:
                _announce(out, server.url, args, tracker, inbox, client)
                if metrics is not None:
                    exporting = await stack.enter_async_context(
                        listening(metrics, args.host, args.metrics_port)
                    )
                    out.note(f"metrics for Prometheus on {exporting.url}/metrics")
                code = await until_stopped()
        finally:
            for printer in printers:  # after the shutdown: what the last callbacks logged prints
                printer.cancel()
    return code


def _freeze_startup() -> None:
    """Move what start-up made (modules, classes, functions, the app) out of the garbage
    collector's way for the life of the process.

    Every full collection walks every tracked object, start-up's tens of thousands included: a
    pause of the receiver that the callbacks arriving meanwhile wait through (a latency tail;
    figures in bench/README.md, "Tricks"). Frozen, a full collection walks only what was made
    since. This command owns its process, so it may; the library never does this to a user's
    process. Collected first, so that start-up's garbage is freed, not frozen.
    """
    gc.collect()
    gc.freeze()


def _metrics_app() -> object:
    from .._exceptions import MissingDependencyError
    from .._telemetry_prometheus import metrics_app

    try:
        return metrics_app()
    except MissingDependencyError as exc:
        raise CommandError(f"--metrics-port: {exc}", EXIT_FAILED) from exc


async def _printers(
    tracker: DeliveryTracker | None, inbox: Inbox | None, out: Output
) -> list[asyncio.Task[None]]:
    """The tasks printing what is logged from now on: delivery events and inbound messages."""
    printers = []
    if tracker is not None:
        cursor = await tracker.store.last_cursor()
        printers.append(asyncio.create_task(_print_events(tracker, cursor, out)))
    if inbox is not None:
        since = await inbox.store.last_cursor()
        printers.append(asyncio.create_task(_print_inbound(inbox, since, out)))
    return printers


def _announce(
    out: Output,
    url: str,
    args: argparse.Namespace,
    tracker: DeliveryTracker | None,
    inbox: Inbox | None,
    client: OpenSMSClient | None,
) -> None:
    if tracker is not None:
        out.note(f"receiving on {url}{args.path}")
    if inbox is not None:
        out.note(f"receiving inbound messages on {url}{args.inbound_path}")
    if tracker is not None:
        out.note(_polling_note(client, args.reconcile_after))


async def _print_inbound(inbox: Inbox, since: str | None, out: Output) -> None:
    # messages() rides out a store outage itself, resuming after the last message it yielded.
    async for message in inbox.messages(since=since):
        out.inbound(message)


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
