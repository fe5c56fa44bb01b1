"""``open_inbound_store(url)``: an inbound store chosen by URL, its backend imported when named.

The URLs are the delivery stores' (``memory://``, ``sqlite:///path.db``, ``redis://...``), so one
URL may configure both a :class:`~opensms_async.DeliveryTracker` and an
:class:`~opensms_async.Inbox` on one file or server: the inbound stores keep tables and keys of
their own, take the delivery stores' options too (those that concern only delivery state, such as
``retention`` and ``max_events``, are left to them), and add ``max_messages``, the length of the
inbound log.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Final, cast

from .._url import Backend, open_backend

if TYPE_CHECKING:
    from ._base import InboundStore

__all__ = ["BACKENDS", "open_inbound_store"]

BACKENDS: Final[Mapping[str, Backend]] = {
    "memory": (".memory", "MemoryInboundStore", None),
    "sqlite": (".sqlite", "SQLiteInboundStore", None),
    "redis": (".redis", "RedisInboundStore", "redis"),
    "rediss": (".redis", "RedisInboundStore", "redis"),
}
"""Scheme -> (module of this package, store class, the extra its optional package needs)."""


def open_inbound_store(url: str) -> InboundStore:
    """The inbound store a URL names, not opened yet; InvalidStoreURLError when none fits."""
    return cast("InboundStore", open_backend(url, BACKENDS, _import))


def _import(module_name: str) -> ModuleType:
    return importlib.import_module(module_name, __package__)
