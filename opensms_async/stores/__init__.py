"""Delivery stores, chosen by URL: ``memory://``, ``sqlite:///path/to/file.db``, ``redis://...``.

``MemoryStore`` and ``SQLiteStore`` need only the standard library; the Redis backend is imported
lazily, so the optional ``redis`` extra is needed only for ``redis://`` URLs.
"""

from __future__ import annotations

from ._base import Applied, PendingRequest, Store
from ._url import open_store
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["Applied", "MemoryStore", "PendingRequest", "SQLiteStore", "Store", "open_store"]
