"""``opensms inbound subscription create | get | delete`` and ``opensms inbound poll NUMBER``."""

from __future__ import annotations

import argparse

from .._inbound import InboundSmsMessage
from ._base import Commands, make_client, security_token
from ._output import Output, wire_json

__all__ = ["ENV_INBOUND_TOKEN", "register"]

ENV_INBOUND_TOKEN = "OPENSMS_INBOUND_TOKEN"  # noqa: S105 (a variable name)
_MAX_BATCH_SIZE = 200
_CONCAT = {"true": True, "false": False}


def register(commands: Commands) -> None:
    """Add the ``inbound`` group: its ``subscription`` actions and ``poll``."""
    inbound = commands.group("inbound", help="inbound SMS: the subscription, polling a number")
    subscription = inbound.group("subscription", help="the inbound-message subscription")
    create = subscription.add(
        "create",
        run=_create,
        help="subscribe an https URL to inbound messages",
        description="Subscribe an https:// URL to inbound messages (one per account: a new one "
        "replaces the old). BICS posts each message with 'Authorization: Bearer TOKEN' and "
        "retries for up to 3 days; give `opensms receive --inbound-token` the same token.",
    )
    create.add_argument("url", help="the receiver's public https:// URL, e.g. .../sms/inbound")
    create.add_argument(
        "--token", help=f"security token BICS sends (default: env {ENV_INBOUND_TOKEN})"
    )
    create.add_argument(
        "--concat",
        type=str.lower,
        choices=sorted(_CONCAT),
        help="true: BICS joins long messages; false: it posts each part with its UDH fields "
        "and the receiver joins them (default: left off, BICS's legacy behaviour: each part "
        "a message of its own)",
    )
    subscription.add("get", run=_get, help="show the inbound subscription (never its token)")
    subscription.add("delete", run=_delete, help="delete it")

    poll = inbound.add(
        "poll",
        run=_poll,
        help="fetch the messages waiting for an inbound number",
        description="Fetch one page of the messages waiting in NUMBER's inbox at BICS and print "
        "them (one JSON object a line with --json). A fetch may take them off BICS's inbox: "
        "they are printed, not stored (an `opensms receive` Inbox dedupes and joins them).",
    )
    poll.add_argument("number", help="the inbound number, +32470000000 (tel: and + optional)")
    poll.add_argument(
        "--max-batch-size",
        type=batch_size,
        metavar="N",
        help="at most N messages, 0 to 200 (default: BICS's, 20)",
    )


def batch_size(text: str) -> int:
    """A page size, 0 to 200."""
    if not (text.isascii() and text.isdigit()) or int(text) > _MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(f"a number from 0 to {_MAX_BATCH_SIZE}, not {text!r}")
    return int(text)


async def _create(args: argparse.Namespace, out: Output) -> int:
    token = security_token(args.token, ENV_INBOUND_TOKEN)
    concat = None if args.concat is None else _CONCAT[args.concat]
    async with make_client(args) as client:
        subscription = await client.create_inbound_subscription(args.url, token, concat)
    data = {"url": subscription.url, "concat": subscription.concat}
    out.result(data, [f"subscribed {subscription.url} to inbound messages ({_concat(concat)})"])
    return 0


def _concat(concat: bool | None) -> str:
    if concat is None:
        return "concat off the wire: each part a message"
    return "concat true: joined by BICS" if concat else "concat false: parts, joined here"


async def _get(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args) as client:
        subscription = await client.get_inbound_subscription()
    if subscription is None:
        data: dict[str, object] = {"subscribed": False, "url": None, "concat": None}
        out.result(data, ["no inbound subscription"])
        return 0
    data = {"subscribed": True, "url": subscription.url, "concat": subscription.concat}
    out.result(data, [f"{subscription.url} ({_concat(subscription.concat)})"])
    return 0


async def _delete(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args) as client:
        await client.delete_inbound_subscription()
    out.result({"deleted": True}, ["inbound subscription deleted"])
    return 0


async def _poll(args: argparse.Namespace, out: Output) -> int:
    async with make_client(args) as client:
        page = await client.get_inbound_messages(args.number, args.max_batch_size)
    pending = "unknown" if page.total_pending is None else str(page.total_pending)
    if out.json:
        for message in page.messages:
            out.json_line(wire_json(message))
    else:
        for message in page.messages:
            out.line(_text(message))
    out.note(f"{len(page.messages)} message(s) fetched; BICS counted {pending} pending")
    return 0


def _text(message: InboundSmsMessage) -> str:
    data = wire_json(message)
    part = ""
    if data["concat_part"] is not None:
        part = f" part {data['concat_part']}/{data['concat_total']} ref {data['udh_message_id']}"
    return (
        f"{data['date_time'] or '-'}  {data['sender'] or '?'} -> {data['destination'] or '?'}"
        f"{part}  {data['message_id'] or '(no id)'}: {data['text'] or ''}"
    )
