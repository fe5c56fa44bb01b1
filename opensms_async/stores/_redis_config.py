"""How :class:`~opensms_async.stores.redis.RedisStore` is configured: URLs, clients, settings.

Clients made here have their own bounded pool (callers wait for a free connection instead of
failing) and retry a command whose connection broke (reset, refused) twice after a short backoff,
so a connection broken by a Redis restart is replaced at once while an unreachable server is
reported quickly. A command that timed out is not retried: a hung server would answer the retry no
sooner, and three waits in a row were what made a hung Redis take 15 s to report. Their socket
timeouts default to the store's ``timeout`` (the blocking client's to the block slice plus it),
unless the URL sets its own; the store bounds each call by ``timeout`` in any case.
"""

from __future__ import annotations

import math
from typing import Any, Final
from urllib.parse import SplitResult, urlencode, urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from .._exceptions import InvalidStoreURLError, StoreError
from ._url_options import options, positive_int, positive_seconds, redact

__all__ = [
    "BLOCK_SLICE",
    "block_slice",
    "check_policy",
    "check_settings",
    "check_version",
    "describe",
    "make_client",
    "split_url",
]

_POOL_SIZE: Final = 64
_POOL_WAIT: Final = 10.0
"""Seconds to wait for a free pooled connection (the store's ``timeout`` ends the wait sooner)."""
_RETRIES: Final = 2
BLOCK_SLICE: Final = 2.0
"""Longest single ``BLOCK``: kept well below the socket timeout, longer waits loop."""
_STORE_OPTIONS: Final = frozenset(
    {"allow_eviction", "prefix", "retention", "max_events", "timeout"}
)
_YES: Final = frozenset({"true", "1", "yes"})
_NO: Final = frozenset({"false", "0", "no"})
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


def check_settings(
    prefix: str, retention: float | None, max_events: int, max_batch: int, timeout: float
) -> None:
    """Refuse settings a store cannot work with (ValueError)."""
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"prefix must be a non-empty string, not {prefix!r}")
    if retention is not None and not (math.isfinite(retention) and retention > 0):
        raise ValueError(f"retention must be a positive number of seconds or None: {retention!r}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds: {timeout!r}")
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


def check_policy(policy: str | None, where: str, *, allow_eviction: bool) -> str | None:
    """Whether a server's ``maxmemory-policy`` lets the store keep what it acknowledged.

    None for ``noeviction`` and ``volatile-*`` (they evict only keys with a TTL, and the store's
    have none); a warning to log for a policy unknown or unreadable, or for ``allkeys-*`` with
    ``allow_eviction``; StoreError for ``allkeys-*`` without it (whatever ``maxmemory`` is now:
    ``CONFIG SET`` can change it at any time).
    """
    if policy is None:
        return (
            f"could not read the maxmemory-policy of Redis at {where} (CONFIG GET and INFO both"
            " refused): make sure it is noeviction or volatile-*, or a full Redis may evict"
            " acknowledged delivery states"
        )
    if policy == "noeviction" or policy.startswith("volatile-"):
        return None
    if not policy.startswith("allkeys-"):
        return (
            f"Redis at {where} has maxmemory-policy {policy!r}, unknown to this version: make sure"
            " it never evicts keys without a TTL"
        )
    risk = (
        f"Redis at {where} has maxmemory-policy {policy}: once full it evicts any key, acknowledged"
        " delivery states and the polling schedule included (a stale update would then be taken"
        " for a new one)"
    )
    if allow_eviction:
        return risk + "; running anyway, as allow_eviction asks"
    raise StoreError(
        f"{risk}. Set maxmemory-policy noeviction (or volatile-lru: the store's keys carry no TTL,"
        " so it never evicts them), or open the store with allow_eviction=True"
        " (?allow_eviction=true) to accept that risk"
    )


def split_url(url: str) -> tuple[str, dict[str, Any]]:
    """A URL without the store's options, and those options as keyword arguments."""
    parts, shown = _parse(url)
    given = options(shown, parts.query, _STORE_OPTIONS | _CONNECTION_OPTIONS)
    kwargs: dict[str, Any] = {}
    if "prefix" in given:
        kwargs["prefix"] = given.pop("prefix")
        if not kwargs["prefix"]:
            raise InvalidStoreURLError(f"prefix must not be empty in {shown!r}")
    for name in ("retention", "timeout"):
        if name in given:
            kwargs[name] = positive_seconds(shown, name, given.pop(name))
    if "max_events" in given:
        kwargs["max_events"] = positive_int(shown, "max_events", given.pop("max_events"))
    if "allow_eviction" in given:
        flag = given.pop("allow_eviction").lower()
        if flag not in _YES | _NO:
            raise InvalidStoreURLError(f"allow_eviction must be true or false in {shown!r}")
        kwargs["allow_eviction"] = flag in _YES
    return urlunsplit(parts._replace(query=urlencode(given))), kwargs


def _parse(url: str) -> tuple[SplitResult, str]:
    """``urlsplit(url)`` and the URL as errors may show it; InvalidStoreURLError if malformed."""
    if not isinstance(url, str):
        raise InvalidStoreURLError(f"a Redis URL must be a string, not {type(url).__name__}")
    shown = redact(url)
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


def make_client(url: str, *, socket_timeout: float) -> Redis:
    """A client with its own bounded pool, retries of broken connections only, and the URL's
    connection options (its ``socket_timeout`` and ``socket_connect_timeout`` default to
    ``socket_timeout``)."""
    parts, shown = _parse(url)
    options(shown, parts.query, _CONNECTION_OPTIONS)
    retry = Retry(
        EqualJitterBackoff(cap=0.25, base=0.02), _RETRIES, supported_errors=(RedisConnectionError,)
    )
    try:
        pool = BlockingConnectionPool.from_url(  # options in the URL override these keywords
            url,
            max_connections=_POOL_SIZE,
            timeout=_POOL_WAIT,
            retry=retry,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
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
        return BLOCK_SLICE
    return min(BLOCK_SLICE, timeout / 2)
