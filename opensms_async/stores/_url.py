"""``open_store(url)``: a store chosen by URL, its backend imported only when named.

* ``memory://`` (option ``?max_events=N``);
* ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, ``sqlite:///:memory:``
  (options ``?synchronous=NORMAL|FULL``, ``retention=SECONDS`` and ``max_events=N``);
* ``redis://host:port/db`` and ``rediss://...``: handed whole to ``RedisStore.from_url``, which
  needs the ``redis`` extra.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qs, unquote, urlsplit

from .._exceptions import InvalidStoreURLError

if TYPE_CHECKING:
    from ._base import Store

__all__ = ["open_store"]

_SCHEMES = "memory://, sqlite:///path.db, redis:// or rediss://"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_UNPARSEABLE = "<unparseable URL>"


def open_store(url: str) -> Store:
    """The store a URL names, not opened yet; :class:`InvalidStoreURLError` when none fits."""
    if not isinstance(url, str):
        raise InvalidStoreURLError(f"a store URL must be a string, not {type(url).__name__}")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in ("redis", "rediss"):
        return _redis_store(url)
    opener = _OPENERS.get(scheme)
    if opener is None:
        raise InvalidStoreURLError(f"unknown store URL {_redact(url)!r}: expected {_SCHEMES}")
    try:
        return opener(url)
    except InvalidStoreURLError:
        raise
    except ValueError:  # urlsplit's, e.g. a malformed IPv6 host
        raise InvalidStoreURLError(f"malformed store URL {_redact(url)!r}") from None


def _memory_store(url: str) -> Store:
    from .memory import MemoryStore

    parts = urlsplit(url)
    if parts.netloc or parts.path not in ("", "/"):
        raise InvalidStoreURLError(f"a memory store URL has no host or path: {_redact(url)!r}")
    options = _options(url, parts.query, {"max_events"})
    if "max_events" not in options:
        return MemoryStore()
    return MemoryStore(max_events=_positive_int(url, "max_events", options["max_events"]))


def _sqlite_store(url: str) -> Store:
    from .sqlite import DEFAULT_MAX_EVENTS, DEFAULT_RETENTION, SQLiteStore

    parts = urlsplit(url)
    if parts.netloc:
        raise InvalidStoreURLError(
            f"a SQLite URL has no host: {_redact(url)!r} (relative: sqlite:///file.db,"
            " absolute: sqlite:////path/file.db)"
        )
    path = unquote(parts.path[1:])  # the third slash ends the empty host
    if not path or path.endswith("/"):
        raise InvalidStoreURLError(f"a SQLite URL needs a file name: {url!r}")
    options = _options(url, parts.query, {"synchronous", "retention", "max_events"})
    synchronous = options.pop("synchronous", "NORMAL").upper()
    if synchronous not in ("NORMAL", "FULL"):
        raise InvalidStoreURLError(f"synchronous must be NORMAL or FULL in {url!r}")
    retention = DEFAULT_RETENTION
    if "retention" in options:
        retention = _positive_seconds(url, "retention", options["retention"])
    max_events = DEFAULT_MAX_EVENTS
    if "max_events" in options:
        max_events = _positive_int(url, "max_events", options["max_events"])
    return SQLiteStore(path, synchronous=synchronous, retention=retention, max_events=max_events)


def _redis_store(url: str) -> Store:
    try:
        module = importlib.import_module(".redis", __package__)
    except ImportError as exc:
        if exc.name == "redis":
            hint = "the redis package is missing: pip install 'opensms-async[redis]'"
        else:
            hint = f"the Redis store cannot be imported ({exc})"
        raise InvalidStoreURLError(f"cannot open {_redact(url)!r}: {hint}") from exc
    return cast("Store", module.RedisStore.from_url(url))


_OPENERS: dict[str, Callable[[str], Store]] = {"memory": _memory_store, "sqlite": _sqlite_store}


def _options(url: str, query: str, known: set[str]) -> dict[str, str]:
    """The query options of a URL, each at most once and all of them known."""
    parsed = _parse_query(query)
    if parsed is None:
        raise InvalidStoreURLError(
            f"malformed options in {url!r}: expected name=value pairs joined by '&'"
        )
    unknown = sorted(set(parsed) - known)
    if unknown:
        allowed = ", ".join(sorted(known))
        raise InvalidStoreURLError(f"unknown option {unknown[0]!r} in {url!r} (known: {allowed})")
    repeated = [name for name, values in parsed.items() if len(values) > 1]
    if repeated:
        raise InvalidStoreURLError(f"option {repeated[0]!r} given twice in {url!r}")
    return {name: values[0] for name, values in parsed.items()}


def _parse_query(query: str) -> dict[str, list[str]] | None:
    """The options of a query, None when malformed: not the parser's error, which quotes the
    offending field (part of a password, maybe), not even as the context of another."""
    try:
        return parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        return None


def _positive_int(url: str, name: str, value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise InvalidStoreURLError(f"{name} must be a positive integer in {url!r}")
    return int(value)


def _positive_seconds(url: str, name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidStoreURLError(f"{name} must be a positive number of seconds in {url!r}")
    return seconds


def _redact(url: object) -> str:
    """What of a URL a message or repr may show: scheme, host, port and path, never credentials.

    Credentials become ``***@`` and the query and fragment are dropped (``?password=`` is a
    password too). An unencoded ``/``, ``?``, ``#`` or ``@`` in a password moves part of it into
    the host, port, path, query or fragment, where nothing can tell it from the rest: a URL with an
    ``@`` outside its credentials, or that does not split, shows as ``scheme://<unparseable URL>``.
    """
    if not isinstance(url, str):
        return _UNPARSEABLE
    scheme, separator, _ = url.partition("://")
    if not separator:
        return _UNPARSEABLE if any(c in url for c in "@?#") else url
    if not _SCHEME.fullmatch(scheme):
        return _UNPARSEABLE
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return f"{scheme}://{_UNPARSEABLE}"
    if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
        return f"{scheme}://{_UNPARSEABLE}"
    credentials = "***@" if "@" in parts.netloc else ""
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{credentials}{host}{'' if port is None else f':{port}'}{parts.path}"
