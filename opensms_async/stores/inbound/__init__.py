"""Inbound stores, chosen by the same URLs as the delivery stores (see :mod:`._url`).

``MemoryInboundStore`` and ``SQLiteInboundStore`` need only the standard library; the Redis
backend is imported lazily, so the optional ``redis`` extra is needed only for ``redis://`` URLs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import InboundStore, Received
from ._url import open_inbound_store
from .memory import MemoryInboundStore

if TYPE_CHECKING:
    from .redis import RedisInboundStore
    from .sqlite import SQLiteInboundStore

__all__ = [
    "InboundStore",
    "MemoryInboundStore",
    "Received",
    "RedisInboundStore",
    "SQLiteInboundStore",
    "open_inbound_store",
]


def __getattr__(name: str) -> Any:
    # The SQLite and Redis backends are imported when asked for (Redis needs the redis extra).
    if name == "SQLiteInboundStore":
        from .sqlite import SQLiteInboundStore

        return SQLiteInboundStore
    if name == "RedisInboundStore":
        from .redis import RedisInboundStore

        return RedisInboundStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
