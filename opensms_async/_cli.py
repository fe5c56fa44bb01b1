"""The ``opensms`` command line: the only module that prints."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from ._client import OpenSMSClient
from ._exceptions import OpenSMSError, StoreUnavailableError
from ._segments import count_segments
from ._state import DeliveryEvent
from ._tracker import DeliveryTracker
from .receiver import DEFAULT_RECORD_DEADLINE

__all__ = ["main"]

ENV_SECURITY_TOKEN = "OPENSMS_SECURITY_TOKEN"  # noqa: S105 (a variable name)
_RESUME_AFTER = 1.0
"""Seconds ``opensms receive`` waits to read events again after its store was unavailable."""
_SHUTDOWN_MARGIN = 2.0
"""Seconds of graceful shutdown beyond the record deadline: every record in flight at SIGTERM
ends (recorded: 204, or abandoned at the deadline: 503) before uvicorn cancels what is left."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``opensms``; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(asyncio.run(args.run(args)) or 0)
    except OpenSMSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opensms", description="BICS OpenSMS from the shell.")
    parser.add_argument("--api-key", help="API key (default: env OPENSMS_API_KEY)")
    parser.add_argument("--base-url", help="API base URL (default: env OPENSMS_BASE_URL)")
    sub = parser.add_subparsers(title="commands")

    send = sub.add_parser("send", help="send a message")
    send.add_argument("--from", dest="sender", required=True, help="sender number or name")
    send.add_argument("--to", action="append", required=True, help="recipient (repeatable)")
    send.add_argument("--sender-name")
    send.add_argument("--correlator", help="clientCorrelator (default: generated)")
    send.add_argument("text")
    send.set_defaults(run=_send)

    status = sub.add_parser("status", help="delivery infos of a request")
    status.add_argument("--from", dest="sender", required=True, help="sender used to send")
    status.add_argument("request_id")
    status.set_defaults(run=_status)

    subscription = sub.add_parser("subscription", help="the delivery-info subscription")
    actions = subscription.add_subparsers(title="actions", required=True)
    create = actions.add_parser("create", help="subscribe an https URL")
    create.add_argument("url")
    create.add_argument("--token", help=f"security token (default: env {ENV_SECURITY_TOKEN})")
    create.set_defaults(run=_subscription_create)
    actions.add_parser("get", help="show the subscription").set_defaults(run=_subscription_get)
    actions.add_parser("delete", help="delete it").set_defaults(run=_subscription_delete)

    segments = sub.add_parser("segments", help="count the SMS parts of a text")
    segments.add_argument("text")
    segments.set_defaults(run=_segments)

    simulate = sub.add_parser("simulate", help="run the OpenSMS simulator")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8750)
    simulate.add_argument("--sim-api-key", default=None, help="key the simulator accepts")
    simulate.add_argument("--seed", type=int, default=None)
    simulate.add_argument("--drop-rate", type=float, default=0.0, help="share of callbacks dropped")
    simulate.add_argument(
        "--callback-target", help="send callbacks here instead (a local receiver)"
    )
    simulate.set_defaults(run=_simulate)

    receive = sub.add_parser("receive", help="run the callback receiver, print events")
    receive.add_argument("--host", default="127.0.0.1")
    receive.add_argument("--port", type=int, default=8080)
    receive.add_argument("--path", default="/sms/callback")
    receive.add_argument(
        "--token", action="append", help=f"accepted token, repeatable (env {ENV_SECURITY_TOKEN})"
    )
    receive.add_argument("--store", default="sqlite:///opensms.db", help="store URL")
    receive.add_argument(
        "--record-deadline",
        type=_positive_seconds,
        default=DEFAULT_RECORD_DEADLINE,
        metavar="SECONDS",
        help="answer 503 to a callback not recorded by then (default: %(default)s)",
    )
    receive.set_defaults(run=_receive)

    events = sub.add_parser("events", help="print the event log as JSON lines")
    events.add_argument("--store", default="sqlite:///opensms.db")
    events.add_argument("--since", default=None, help="cursor to start after")
    events.add_argument("--follow", action="store_true", help="keep waiting for new events")
    events.set_defaults(run=_events)

    demo = sub.add_parser("demo", help="the whole story on embedded defaults")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--drop-rate", type=float, default=0.3)
    demo.set_defaults(run=_demo)
    return parser


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise argparse.ArgumentTypeError(f"a positive number of seconds, not {text!r}")
    return seconds


def _client(args: argparse.Namespace) -> OpenSMSClient:
    return OpenSMSClient(api_key=args.api_key, base_url=args.base_url)


async def _send(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        sent = await client.send_message(
            args.sender,
            args.to,
            args.text,
            sender_name=args.sender_name,
            client_correlator=args.correlator,
        )
    print(f"request {sent.request_id} ({sent.parts} part(s), correlator {sent.client_correlator})")
    _table([(info.address, str(info.status)) for info in sent.delivery_infos])
    return 0


async def _status(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        infos = await client.get_delivery_infos(args.sender, args.request_id)
    _table([(info.address, str(info.status)) for info in infos.delivery_infos])
    return 0


async def _subscription_create(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(ENV_SECURITY_TOKEN)
    if not token:
        print(f"error: give --token or set {ENV_SECURITY_TOKEN}", file=sys.stderr)
        return 2
    async with _client(args) as client:
        sub = await client.create_subscription(args.url, token)
    print(f"subscribed {sub.url}")
    return 0


async def _subscription_get(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        sub = await client.get_subscription()
    print(sub.url if sub is not None else "no subscription")
    return 0


async def _subscription_delete(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        await client.delete_subscription()
    print("subscription deleted")
    return 0


async def _segments(args: argparse.Namespace) -> int:
    count = count_segments(args.text)
    print(f"{count.encoding}: {count.units} units, {count.parts} part(s), {count.remaining} left")
    return 0


async def _simulate(args: argparse.Namespace) -> int:
    from .testing import run_simulator

    config: dict[str, Any] = {"callback_drop_rate": args.drop_rate}
    if args.sim_api_key:
        config["api_key"] = args.sim_api_key
    if args.seed is not None:
        config["seed"] = args.seed
    async with run_simulator(host=args.host, port=args.port, **config) as sim:
        if args.callback_target:
            sim.simulator.route_callbacks_to(args.callback_target)
        print(f"simulator on {sim.base_url} (API key from --sim-api-key or the default)")
        await asyncio.Event().wait()
    return 0


async def _receive(args: argparse.Namespace) -> int:
    from ._server import serve
    from .receiver import create_receiver_app

    tokens = args.token or [t for t in [os.environ.get(ENV_SECURITY_TOKEN)] if t]
    if not tokens:
        print(f"error: give --token or set {ENV_SECURITY_TOKEN}", file=sys.stderr)
        return 2
    deadline = args.record_deadline
    # Longer than the deadline: a shutdown cancels no record, only bodies still arriving.
    graceful = math.ceil(deadline + _SHUTDOWN_MARGIN)
    async with DeliveryTracker(store=args.store) as tracker:
        app = create_receiver_app(
            tracker, tokens, path=args.path, record_deadline=deadline, manage_tracker=False
        )
        printer = asyncio.create_task(_print_events(tracker))
        try:
            async with serve(
                app, host=args.host, port=args.port, graceful_shutdown=graceful
            ) as server:
                print(f"receiving on {server.url}{args.path}", file=sys.stderr)
                await _until_terminated()
        finally:
            printer.cancel()  # after the shutdown: what the last callbacks recorded is printed
    return 0


async def _print_events(tracker: DeliveryTracker) -> None:
    # A store outage (Redis restarting, say) pauses the printing instead of ending it silently
    # while callbacks are still accepted: it resumes after the last event printed.
    cursor: str | None = None
    started = False
    while True:
        try:
            if not started:
                cursor, started = await tracker.store.last_cursor(), True
            async for event in tracker.events(since=cursor):
                print(json.dumps(event_json(event)), flush=True)
                cursor = event.cursor
            return
        except StoreUnavailableError as exc:
            print(f"events paused: {exc}", file=sys.stderr)
            await asyncio.sleep(_RESUME_AFTER)


async def _until_terminated() -> None:
    # SIGTERM (a process manager stopping us) shuts down as cleanly as Ctrl+C.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _events(args: argparse.Namespace) -> int:
    from .stores import open_store

    store = open_store(args.store)
    await store.open()
    try:
        cursor = args.since
        while True:
            batch = await store.read_events(cursor, limit=1000, timeout=1.0 if args.follow else 0)
            for event in batch:
                print(json.dumps(event_json(event)), flush=True)
            if batch:
                cursor = batch[-1].cursor
            elif not args.follow:
                return 0
    finally:
        await store.aclose()


async def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return await run_demo(seed=args.seed, drop_rate=args.drop_rate, out=sys.stdout)


def event_json(event: DeliveryEvent) -> dict[str, Any]:
    """An event as a flat JSON object."""
    return {
        "cursor": event.cursor,
        "request_id": event.request_id,
        "address": event.address,
        "status": str(event.status),
        "previous": None if event.previous is None else str(event.previous),
        "source": str(event.source),
        "parts_delivered": event.parts_delivered,
        "conflict": event.conflict,
        "at": event.at,
    }


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    if not rows:
        print("(none)")
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":  # pragma: no cover
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
