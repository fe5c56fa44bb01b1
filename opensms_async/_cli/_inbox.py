"""``opensms inbox``: the inbound log of a store as JSON lines, once or following it."""

from __future__ import annotations

import argparse

from ._base import Commands
from ._events import add_store_option, check_since, follow_log, open_store_for, store_url
from ._output import Output
from ._stores import reader_inbound_store

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add ``inbox``."""
    inbox = commands.add(
        "inbox",
        run=_inbox,
        help="print the inbound messages as JSON lines",
        description="Print the inbound messages a store logged (what `opensms receive "
        '--inbound-token` received, each once and whole), one JSON object a line with "kind": '
        '"inbound", oldest first. Reads only: a store that does not exist is an error, never '
        "created. With --follow, waits for new messages and rides out a store outage.",
    )
    add_store_option(inbox)
    inbox.add_argument(
        "--since",
        metavar="CURSOR",
        help="start after this message's cursor (default: the oldest retained)",
    )
    inbox.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new messages as they come"
    )


async def _inbox(args: argparse.Namespace, out: Output) -> int:
    store = reader_inbound_store(store_url(args))
    check_since(store, args.since)
    await open_store_for(store)
    try:
        await follow_log(
            store.read_messages, out.inbound, args.since, out, follow=args.follow, what="inbox"
        )
    finally:
        await store.aclose()
    return 0
