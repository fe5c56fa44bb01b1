"""How :class:`~opensms_async.stores.redis.RedisStore` is configured: URLs, clients, settings.

Clients made here have their own bounded pool (callers wait up to ``_POOL_WAIT`` seconds for a
free connection instead of failing) and retry a failed command twice after a short backoff, so a
connection broken by a Redis restart is replaced at once while an unreachable server is reported
quickly. redis-py's defaults (5 s socket timeouts) stay unless the URL sets its own.
"""

from __future__ import annotations

import math
from typing import Any, Final
from urllib.parse import SplitResult, urlencode, urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff

from .._exceptions import InvalidStoreURLError, StoreError
from ._url import _options, _positive_int, _redact

__all__ = [
    "block_slice",
    "check_settings",
    "check_version",
    "describe",
    "make_client",
    "split_url",
]

_POOL_SIZE: Final = 64
_POOL_WAIT: Final = 10.0
_RETRIES: Final = 2
_BLOCK_SLICE: Final = 2.0
"""Longest single ``BLOCK``: kept well below the socket timeout, longer waits loop."""
_STORE_OPTIONS: Final = frozenset({"prefix", "retention", "max_events"})
_CONNECTION_OPTIONS: Final = frozenset(
    {
        "client_name",
        "health_check_interval",
        "max_connections",
        "socket_connect_timeout",
        "socket_timeout",
        "ssl_ca_certs",
        "ssl_cert_reqs",
        "ssl_check_hostname",
    }
)


def check_settings(prefix: str, retention: float | None, max_events: int, max_batch: int) -> None:
    """Refuse settings a store cannot work with (ValueError)."""
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"prefix must be a non-empty string, not {prefix!r}")
    if retention is not None and not (math.isfinite(retention) and retention > 0):
        raise ValueError(f"retention must be a positive number of seconds or None: {retention!r}")
    if max_events < 1 or max_batch < 1:
        raise ValueError("max_events and max_batch must be at least 1")


def check_version(version: object) -> None:
    """StoreError for a server older than 6.2 (XAUTOCLAIM, exclusive XRANGE starts)."""
    parts = str(version).split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return  # an unusual server (a compatible fork): let the commands speak for themselves
    if (major, minor) < (6, 2):
        raise StoreError(f"RedisStore needs Redis 6.2 or later; this server is {version}")


def split_url(url: str) -> tuple[str, dict[str, Any]]:
    """A URL without the store's options, and those options as keyword arguments."""
    parts, shown = _parse(url)
    options = _options(shown, parts.query, set(_STORE_OPTIONS | _CONNECTION_OPTIONS))
    kwargs: dict[str, Any] = {}
    if "prefix" in options:
        kwargs["prefix"] = options.pop("prefix")
        if not kwargs["prefix"]:
            raise InvalidStoreURLError(f"prefix must not be empty in {shown!r}")
    if "retention" in options:
        kwargs["retention"] = _seconds(shown, options.pop("retention"))
    if "max_events" in options:
        kwargs["max_events"] = _positive_int(shown, "max_events", options.pop("max_events"))
    return urlunsplit(parts._replace(query=urlencode(options))), kwargs


def _parse(url: str) -> tuple[SplitResult, str]:
    """``urlsplit(url)`` and the URL as errors may show it; InvalidStoreURLError if malformed."""
    if not isinstance(url, str):
        raise InvalidStoreURLError(f"a Redis URL must be a string, not {type(url).__name__}")
    shown = _redact(url)
    parts, port_ok = _split(url)
    if parts is None or "@" in parts.path or "@" in parts.query or "#" in url:
        # Split wrong, most likely at an unencoded "/", "?" or "#" of a password.
        raise InvalidStoreURLError(_malformed(shown))
    if parts.scheme.lower() not in ("redis", "rediss"):
        raise InvalidStoreURLError(f"not a redis:// or rediss:// URL: {shown!r}")
    db = parts.path.removeprefix("/")
    if not port_ok or "/" in db or not (db == "" or (db.isascii() and db.isdigit())):
        raise InvalidStoreURLError(f"expected redis://host[:port][/db] in {shown!r}")
    return parts, shown


def _split(url: str) -> tuple[SplitResult | None, bool]:
    """``urlsplit(url)`` and whether its port is valid; None when it does not split.

    urlsplit's errors quote the port, which may be the start of a password: they are not passed
    on, not even as the context of the error raised instead.
    """
    try:
        parts = urlsplit(url)
        return parts, parts.port is None or parts.port > 0
    except ValueError:
        return None, False


def _malformed(shown: str) -> str:
    return (
        f"malformed Redis URL {shown!r}: expected redis://[[user]:password@]host[:port][/db]"
        "[?options], with any '/', '?', '#' or '@' of the password percent-encoded"
        " (%2F, %3F, %23, %40)"
    )


def _seconds(shown: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidStoreURLError(f"retention must be a positive number of seconds in {shown!r}")
    return seconds


def make_client(url: str) -> Redis:
    """A client with its own bounded pool, short retries and the URL's connection options."""
    parts, shown = _parse(url)
    _options(shown, parts.query, set(_CONNECTION_OPTIONS))
    retry = Retry(EqualJitterBackoff(cap=0.25, base=0.02), _RETRIES)
    try:
        pool = BlockingConnectionPool.from_url(
            url, max_connections=_POOL_SIZE, timeout=_POOL_WAIT, retry=retry
        )
    except (ValueError, TypeError) as exc:
        raise InvalidStoreURLError(f"invalid Redis URL {shown!r}: {exc}") from None
    return Redis.from_pool(pool)


def describe(client: Redis) -> str:
    """Where a client connects, for reprs and messages (never its credentials)."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"redis://{host}:{port}/{kwargs.get('db', 0)}"


def block_slice(client: Redis) -> float:
    """The longest single ``BLOCK`` (seconds) a client's socket timeout allows with margin."""
    timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
    if not isinstance(timeout, int | float) or timeout <= 0:
        return _BLOCK_SLICE
    return min(_BLOCK_SLICE, timeout / 2)
