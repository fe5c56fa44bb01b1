"""``opensms send``, ``status`` and ``segments``: one message at a time."""

from __future__ import annotations

import argparse
from typing import Any

from .._models import DeliveryInfo, SendResult
from .._segments import count_segments
from .._tracker import DeliveryTracker
from ._base import (
    DEFAULT_STORE,
    ENV_STORE,
    CommandError,
    Commands,
    add_reconcile_option,
    env,
    make_client,
)
from ._output import Output, info_json, table
from ._stores import check_writable_store

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add ``send``, ``status`` and ``segments``."""
    send = commands.add(
        "send",
        run=_send,
        help="send a message",
        description="Send one message to one or more recipients. With --store, record it there "
        "so that `opensms receive` on the same store tracks it (and polls for lost callbacks).",
    )
    send.add_argument("--from", dest="sender", required=True, help="sender number or name")
    send.add_argument("--to", action="append", required=True, help="recipient, +33... (repeatable)")
    send.add_argument("--sender-name", help="sender name shown to the recipient (BICS v2/v3)")
    send.add_argument("--correlator", help="clientCorrelator (default: generated)")
    send.add_argument(
        "--store",
        help=f"track the send in this store, e.g. {DEFAULT_STORE} (default: env {ENV_STORE}, "
        "else not tracked)",
    )
    add_reconcile_option(
        send,
        help="with --store: a recipient still not final this long after the send is polled "
        "(by `opensms receive` with credentials on that store)",
    )
    send.add_argument("text")

    status = commands.add("status", run=_status, help="delivery infos of a request")
    status.add_argument("--from", dest="sender", required=True, help="sender used to send")
    status.add_argument("request_id")

    segments = commands.add("segments", run=_segments, help="count the SMS parts of a text")
    segments.add_argument("text")


async def _send(args: argparse.Namespace, out: Output) -> int:
    store = args.store or env(ENV_STORE)
    async with make_client(args) as client:
        if store is None:
            sent = await _send_one(args, client)
        else:
            sent = await _send_tracked(args, client, store)
    _print_sent(out, sent, store)
    return 0


async def _send_one(args: argparse.Namespace, client: Any) -> SendResult:
    """The send the options describe, tracked or not."""
    sent: SendResult = await client.send_message(
        args.sender,
        args.to,
        args.text,
        sender_name=args.sender_name,
        client_correlator=args.correlator,
    )
    return sent


async def _send_tracked(args: argparse.Namespace, client: Any, store: str) -> SendResult:
    # The store is opened first: a store that cannot record fails the command before any send.
    tracker = DeliveryTracker(
        store=check_writable_store(store), reconcile_after=args.reconcile_after
    )
    async with tracker:
        sent = await _send_one(args, client)
        try:
            await tracker.track(sent)
        except Exception as exc:
            raise CommandError(
                f"sent request {sent.request_id}, but could not track it in {store}: {exc}"
            ) from exc
    return sent


def _print_sent(out: Output, sent: SendResult, store: str | None) -> None:
    data = {
        "request_id": sent.request_id,
        "sender": sent.sender,
        "correlator": sent.client_correlator,
        "parts": sent.parts,
        "recipients": [info_json(info) for info in _infos(sent)],
        "tracked_in": store,
    }
    lines = [
        f"request {sent.request_id} ({sent.parts} part(s), correlator {sent.client_correlator})"
    ]
    lines += table([(info.address, str(info.status)) for info in _infos(sent)])
    if store is not None:
        lines.append(f"tracked in {store}: `opensms receive --store {store}` follows it")
    out.result(data, lines)


def _infos(sent: SendResult) -> list[DeliveryInfo]:
    known = {info.address: info for info in sent.delivery_infos}
    return [
        known.get(address) or DeliveryInfo(address, "MessageAccepted")
        for address in sent.recipients
    ]


async def _status(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args) as client:
        infos = await client.get_delivery_infos(args.sender, args.request_id)
    rows = [
        (info.address, str(info.status), "final" if info.is_final else "pending")
        for info in infos.delivery_infos
    ]
    data = {
        "request_id": args.request_id,
        "recipients": [info_json(info) for info in infos.delivery_infos],
    }
    out.result(data, table(rows))
    return 0


async def _segments(args: argparse.Namespace, out: Output) -> int:
    count = count_segments(args.text)
    data = {
        "encoding": count.encoding,
        "units": count.units,
        "parts": count.parts,
        "remaining": count.remaining,
    }
    out.result(
        data,
        [f"{count.encoding}: {count.units} units, {count.parts} part(s), {count.remaining} left"],
    )
    return 0
