"""Delivery stores, chosen by URL: ``memory://``, ``sqlite:///path/to/file.db``, ``redis://...``.

``MemoryStore`` and ``SQLiteStore`` need only the standard library; the Redis backend is imported
lazily, so the optional ``redis`` extra is needed only for ``redis://`` URLs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import Listener, PendingRequest, Schedule, Store
from ._url import open_store
from .memory import MemoryStore
from .sqlite import SQLiteStore

if TYPE_CHECKING:
    from .redis import RedisStore

__all__ = [
    "Listener",
    "MemoryStore",
    "PendingRequest",
    "RedisStore",
    "SQLiteStore",
    "Schedule",
    "Store",
    "open_store",
]


def __getattr__(name: str) -> Any:
    # RedisStore needs the optional redis package: import it only when asked for.
    if name == "RedisStore":
        from .redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
