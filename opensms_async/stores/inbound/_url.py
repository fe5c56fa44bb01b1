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
from typing import TYPE_CHECKING, Final, cast

from ..._exceptions import InvalidStoreURLError
from .._url_options import redact

if TYPE_CHECKING:
    from ._base import InboundStore

__all__ = ["BACKENDS", "open_inbound_store"]

BACKENDS: Final = {
    "memory": (".memory", "MemoryInboundStore", None),
    "sqlite": (".sqlite", "SQLiteInboundStore", None),
    "redis": (".redis", "RedisInboundStore", "redis"),
    "rediss": (".redis", "RedisInboundStore", "redis"),
}
"""Scheme -> (module of this package, store class, the extra its optional package needs)."""
_SCHEMES = "memory://, sqlite:///path.db, redis:// or rediss://"


def open_inbound_store(url: str) -> InboundStore:
    """The inbound store a URL names, not opened yet; InvalidStoreURLError when none fits."""
    if not isinstance(url, str):
        raise InvalidStoreURLError(f"a store URL must be a string, not {type(url).__name__}")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    backend = BACKENDS.get(scheme)
    if backend is None:
        raise InvalidStoreURLError(f"unknown store URL {redact(url)!r}: expected {_SCHEMES}")
    module_name, class_name, extra = backend
    try:
        module = importlib.import_module(module_name, __package__)
    except ImportError as exc:
        if extra is not None and exc.name == extra:
            hint = f"the {extra} package is missing: pip install 'opensms-async[{extra}]'"
        else:
            hint = f"the {class_name} backend cannot be imported ({exc})"
        raise InvalidStoreURLError(f"cannot open {redact(url)!r}: {hint}") from exc
    try:
        return cast("InboundStore", getattr(module, class_name).from_url(url))
    except InvalidStoreURLError:
        raise
    except ValueError:  # urlsplit's, e.g. a malformed IPv6 host
        raise InvalidStoreURLError(f"malformed store URL {redact(url)!r}") from None
