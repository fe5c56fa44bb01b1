"""``open_store(url)``: a store chosen by URL, its backend imported only when named.

* ``memory://`` (option ``?max_events=N``): :meth:`MemoryStore.from_url`;
* ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, ``sqlite:///:memory:``
  (options ``?synchronous=NORMAL|FULL``, ``retention=SECONDS`` and ``max_events=N``):
  :meth:`SQLiteStore.from_url`;
* ``redis://host:port/db`` and ``rediss://...``: :meth:`RedisStore.from_url`, which needs the
  ``redis`` extra.

A scheme maps to a module and a class (:data:`BACKENDS`); the module is imported when a URL names
it, so nothing here imports a backend (or is imported by one), and a backend whose optional
package is missing is reported as a clear :class:`InvalidStoreURLError`. Each backend parses its
own URL (with the helpers of :mod:`._url_options`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Final, cast

from .._exceptions import InvalidStoreURLError
from ._url_options import redact

if TYPE_CHECKING:
    from ._base import Store

__all__ = ["BACKENDS", "open_store"]

BACKENDS: Final = {
    "memory": (".memory", "MemoryStore", None),
    "sqlite": (".sqlite", "SQLiteStore", None),
    "redis": (".redis", "RedisStore", "redis"),
    "rediss": (".redis", "RedisStore", "redis"),
}
"""Scheme -> (module of this package, store class, the extra its optional package needs)."""
_SCHEMES = "memory://, sqlite:///path.db, redis:// or rediss://"


def open_store(url: str) -> Store:
    """The store a URL names, not opened yet; :class:`InvalidStoreURLError` when none fits."""
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
        return cast("Store", getattr(module, class_name).from_url(url))
    except InvalidStoreURLError:
        raise
    except ValueError:  # urlsplit's, e.g. a malformed IPv6 host
        raise InvalidStoreURLError(f"malformed store URL {redact(url)!r}") from None
