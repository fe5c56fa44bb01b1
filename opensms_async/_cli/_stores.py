"""Store URLs as the commands take them: readers never create a store, writers need one that keeps.

``sqlite:///path`` is relative to the current folder and ``sqlite:////path`` absolute (the
convention SQLAlchemy set); every error about a SQLite file says where that resolved to.
"""

from __future__ import annotations

import os

from ..stores import MemoryStore, SQLiteStore, Store, open_store
from ..stores.inbound import InboundStore, MemoryInboundStore, open_inbound_store
from ..stores.inbound.sqlite import SQLiteInboundStore
from ._base import EXIT_USAGE, CommandError

__all__ = [
    "check_exists",
    "check_writable_store",
    "reader_inbound_store",
    "reader_store",
    "sqlite_hint",
    "where",
]

SQLiteFile = SQLiteStore | SQLiteInboundStore
"""A store in a SQLite file: the delivery store or the inbound one (both may share a file)."""


def where(store: SQLiteFile) -> str:
    """The absolute path of a SQLite store's file."""
    return os.path.abspath(store.path)


def sqlite_hint(store: SQLiteFile) -> str:
    """A SQLite store's absolute path, and how its URL maps to it, for messages."""
    return (
        f"{where(store)} (sqlite:///PATH is relative to the current folder, {os.getcwd()}; "
        "sqlite:////PATH is absolute)"
    )


def reader_store(url: str) -> Store:
    """The store a reader (``events``) names, not opened: ``memory://`` is refused, since it is
    empty in every new process."""
    store = open_store(url)
    if isinstance(store, MemoryStore):
        raise CommandError(
            "a memory:// store starts empty in every process: give the store that "
            "`opensms receive` writes to, e.g. sqlite:///opensms.db",
            EXIT_USAGE,
        )
    return store


def reader_inbound_store(url: str) -> InboundStore:
    """The inbound store a reader (``inbox``) names, not opened: as :func:`reader_store`, a
    ``memory://`` one is refused, and a SQLite file must exist (:func:`check_exists`)."""
    store = open_inbound_store(url)
    if isinstance(store, MemoryInboundStore):
        raise CommandError(
            "a memory:// store starts empty in every process: give the store that "
            "`opensms receive --inbound-token` writes to, e.g. sqlite:///opensms.db",
            EXIT_USAGE,
        )
    check_exists(store)
    return store


def check_exists(store: Store | InboundStore) -> None:
    """A usage error for a SQLite file that is not there: a reader never creates a store."""
    if not isinstance(store, SQLiteFile) or store.path == ":memory:":
        return
    if not os.path.exists(store.path):
        raise CommandError(f"no SQLite store at {sqlite_hint(store)}", EXIT_USAGE)


def check_writable_store(url: str) -> str:
    """``url``, if a process that exits may record in it: not ``memory://``, not a SQLite file in
    a folder that does not exist."""
    store = open_store(url)
    if isinstance(store, MemoryStore):
        raise CommandError(
            "a memory:// store forgets everything when this command exits: give a store that "
            "`opensms receive` reads too, e.g. sqlite:///opensms.db",
            EXIT_USAGE,
        )
    if isinstance(store, SQLiteStore) and store.path != ":memory:":
        folder = os.path.dirname(where(store))
        if not os.path.isdir(folder):
            raise CommandError(
                f"no folder {folder} for the SQLite store at {sqlite_hint(store)}", EXIT_USAGE
            )
    return url
