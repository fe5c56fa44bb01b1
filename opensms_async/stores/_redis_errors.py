"""What both Redis stores do around each call: redis-py's errors as the store's, one deadline.

:func:`translated` turns redis-py's errors into :class:`StoreUnavailableError` (unreachable,
timed out, full) or :class:`StoreError` (anything else), with the password scrubbed from the
message; :func:`bounded` adds a deadline on the whole call, not only on each socket read (it
also bounds the wait for a pooled connection, a reconnection and the retries of a broken
connection). :func:`check_server` is what opening a store asks of the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from .._exceptions import StoreError, StoreUnavailableError
from .._telemetry import log_fields
from . import _redis_codec as codec
from . import _redis_config as config

__all__ = ["bounded", "check_server", "eviction_policy", "scrub", "translated"]


@contextlib.asynccontextmanager
async def bounded(
    deadline: asyncio.Timeout,
    timeout: float,
    redis: Redis,
    where: str,
    action: str,
    full: str = "",
    *,
    within: contextlib.AbstractContextManager[None] | None = None,
) -> AsyncIterator[None]:
    """:func:`translated` within ``deadline`` (a store's ``timeout``, shown as such):
    StoreUnavailableError when it expires; ``within`` is entered around the call (a store
    counting its calls in flight)."""
    try:
        async with deadline:
            with within or contextlib.nullcontext(), translated(redis, where, action, full):
                yield
    except TimeoutError:
        if not deadline.expired():
            raise
        raise StoreUnavailableError(
            f"Redis at {where} did not answer within {timeout:g} s, could not {action}"
        ) from None


@contextlib.contextmanager
def translated(redis: Redis, where: str, action: str, full: str = "") -> Iterator[None]:
    """Turn redis-py's errors into the store's, without secrets; ``full`` is added to the
    message of a Redis out of memory (what to do about it)."""
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        detail = scrub(redis, f"{type(exc).__name__}: {exc}")
        raise StoreUnavailableError(
            f"Redis at {where} is unavailable, could not {action} ({detail})"
        ) from exc
    except redis_errors.OutOfMemoryError as exc:
        # Refused before its first write: nothing recorded. Try again once memory is freed.
        raise StoreUnavailableError(
            f"Redis at {where} is full (maxmemory), could not {action}{full}"
        ) from exc
    except redis_errors.RedisError as exc:
        detail = scrub(redis, f"{type(exc).__name__}: {exc}")
        raise StoreError(f"Redis at {where} could not {action} ({detail})") from exc


def scrub(redis: Redis, text: str) -> str:
    """``text`` with the client's password, if any, replaced by ``***``."""
    password = redis.connection_pool.connection_kwargs.get("password")
    return text.replace(password, "***") if isinstance(password, str) and password else text


async def check_server(
    redis: Redis, where: str, *, allow_eviction: bool, logger: logging.Logger
) -> None:
    """Ping the server and check its version and ``maxmemory-policy`` (call it within
    :func:`bounded`): StoreError for a server too old, or a policy that may evict the store's
    keys unless ``allow_eviction``; a policy that cannot be told is logged as a warning."""
    await redis.ping()
    info = await redis.info("server")
    policy = await eviction_policy(redis)
    config.check_version(info.get("redis_version"))
    warning = config.check_policy(policy, where, allow_eviction=allow_eviction)
    if warning is not None:
        logger.warning("%s", warning, extra=log_fields("store.open", outcome="warning"))


async def eviction_policy(redis: Redis) -> str | None:
    """The server's ``maxmemory-policy``: from ``CONFIG GET``, else from ``INFO memory``
    (managed services often disable CONFIG); None when neither tells."""
    with contextlib.suppress(redis_errors.ResponseError):
        reply: dict[Any, Any] = await redis.config_get("maxmemory-policy") or {}
        for name, value in reply.items():
            if codec.text(name) == "maxmemory-policy" and isinstance(value, str | bytes):
                return codec.text(value)
    with contextlib.suppress(redis_errors.ResponseError):
        value = (await redis.info("memory")).get("maxmemory_policy")
        if isinstance(value, str | bytes):
            return codec.text(value)
    return None
