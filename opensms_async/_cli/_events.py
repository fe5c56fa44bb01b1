"""``opensms events``: the event log of a store as JSON lines, once or following it."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from .._exceptions import InvalidCursorError, StoreError, StoreUnavailableError
from ..stores import SQLiteStore, Store
from ..stores.inbound import InboundStore
from ..stores.inbound.sqlite import SQLiteInboundStore
from ._base import DEFAULT_STORE, ENV_STORE, EXIT_USAGE, CommandError, Commands, env
from ._output import Output
from ._stores import check_exists, reader_store, sqlite_hint

__all__ = [
    "READ_BATCH",
    "add_store_option",
    "check_since",
    "follow_log",
    "open_store_for",
    "register",
    "store_url",
]

READ_BATCH = 1000
_FOLLOW_WAIT = 1.0
"""Seconds one read of ``--follow`` waits for new events before it reads again."""
_OUTAGE_BACKOFF = (0.25, 5.0)
"""First and longest wait (seconds) between reads while the store is unavailable."""


def register(commands: Commands) -> None:
    """Add ``events``."""
    events = commands.add(
        "events",
        run=_events,
        help="print the event log as JSON lines",
        description="Print a store's delivery events, one JSON object a line, oldest first. "
        "Reads only: a store that does not exist is an error, never created. With --follow, "
        "waits for new events and rides out a store outage (a Redis restart).",
    )
    add_store_option(events)
    events.add_argument(
        "--since", metavar="CURSOR", help="start after this event's cursor (default: the oldest)"
    )
    events.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new events as they come"
    )


def add_store_option(parser: argparse.ArgumentParser) -> None:
    """``--store URL``, defaulting to env ``OPENSMS_STORE``, else the SQLite file here."""
    parser.add_argument(
        "--store",
        metavar="URL",
        help=f"store URL: sqlite:///relative.db, sqlite:////absolute.db, redis://host:port/db "
        f"(default: env {ENV_STORE}, else {DEFAULT_STORE})",
    )


def store_url(args: argparse.Namespace) -> str:
    """The store URL the options and the environment name."""
    url: str = args.store or env(ENV_STORE) or DEFAULT_STORE
    return url


def check_since(store: Store | InboundStore, since: str | None) -> None:
    """A usage error for a ``--since`` this store could never have given."""
    if since is None:
        return
    try:
        store.cursor_key(since)
    except (InvalidCursorError, ValueError) as exc:  # an inbound store's may be a ValueError
        raise CommandError(f"--since: {exc}", EXIT_USAGE) from exc


async def open_store_for(store: Store | InboundStore) -> None:
    """Open ``store``; a failure is one line saying where a SQLite path resolved to."""
    try:
        await store.open()
    except StoreError as exc:
        if isinstance(store, SQLiteStore | SQLiteInboundStore):
            raise CommandError(f"{exc} (at {sqlite_hint(store)})") from exc
        raise


async def _events(args: argparse.Namespace, out: Output) -> int:
    store = reader_store(store_url(args))
    check_since(store, args.since)
    check_exists(store)
    await open_store_for(store)
    try:
        await print_log(store, args.since, out, follow=args.follow)
    finally:
        await store.aclose()
    return 0


async def print_log(store: Store, cursor: str | None, out: Output, *, follow: bool) -> None:
    """Print the events after ``cursor``; with ``follow``, forever, through store outages."""
    await follow_log(store.read_events, out.event, cursor, out, follow=follow, what="events")


class _Logged(Protocol):
    @property
    def cursor(self) -> str: ...


T = TypeVar("T", bound=_Logged)


async def follow_log(
    read: Callable[..., Awaitable[Sequence[T]]],
    emit: Callable[[T], None],
    cursor: str | None,
    out: Output,
    *,
    follow: bool,
    what: str,
) -> None:
    """Emit what a store's log holds after ``cursor`` (``read(cursor, limit=, timeout=)`` reads
    it); with ``follow``, forever, through store outages (a note on stderr names ``what``)."""
    outage: float | None = None
    while True:
        try:
            batch = await read(cursor, limit=READ_BATCH, timeout=_FOLLOW_WAIT if follow else 0)
        except StoreUnavailableError as exc:
            if not follow:
                raise
            if outage is None:
                out.note(f"{what} paused, store unavailable: {exc}")
            outage = _OUTAGE_BACKOFF[0] if outage is None else min(outage * 2, _OUTAGE_BACKOFF[1])
            await asyncio.sleep(outage)
            continue
        if outage is not None:
            out.note(f"{what} resumed")
            outage = None
        for item in batch:
            emit(item)
        if batch:
            cursor = batch[-1].cursor
        elif not follow:
            return
