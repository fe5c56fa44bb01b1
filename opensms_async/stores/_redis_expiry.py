"""How :class:`~opensms_async.stores.redis.RedisStore`'s requests expire: by the store itself.

No key of the store carries a TTL: a Redis with a ``volatile-*`` eviction policy (the default of
managed services) evicts only keys with one, and would pick exactly the delivery states. Instead
the scripts that write a request's state or schedule entry score its id in the expiry index
(``{prefix}:expiry``) with when ``retention`` runs out, on the server's clock, and every open store
sweeps the index in the background: at once, then every minute (or ``retention``, if shorter), it
deletes the keys of the requests that are due, a bounded batch per script call.

Before its first sweep, a store moves the TTLs an earlier version set into the index (a ``SCAN``
of the database, once per prefix: ``{prefix}:layout`` says it was done). A key an old replica
still writes afterwards (a rolling upgrade) keeps its TTL until a write of this version drops it,
or until it expires as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Final

from redis.asyncio import Redis

from .._exceptions import StoreError
from .._telemetry import log_fields
from . import _redis_scripts as scripts
from ._redis_codec import Keys, text

__all__ = ["SWEEP_INTERVAL", "Expiry"]

SWEEP_INTERVAL: Final = 60.0
"""Most seconds between two sweeps (as short as ``retention``, if shorter, down to a second)."""
_MIN_INTERVAL: Final = 1.0
_SWEEP_LIMIT: Final = 500
"""Most requests one purge script call deletes (a script blocks Redis while it runs)."""
_SWEEP_CALLS: Final = 100
"""Most purge calls of one sweep: a larger backlog waits for the next sweep."""
_SCAN_COUNT: Final = 1000
"""Keys per SCAN of the migration."""
_LAYOUT: Final = "2"
"""The key layout of this version: no TTLs, an expiry index."""

logger = logging.getLogger("opensms_async.stores.redis")

Bounded = Callable[[str], AbstractAsyncContextManager[None]]
"""The store's deadline and error translation around one action (named for its messages)."""


class Expiry:
    """The background expiry of one store: the migration of old TTLs, then the sweeps."""

    def __init__(
        self,
        client: Redis,
        keys: Keys,
        retention: float | None,
        bounded: Bounded,
        is_open: Callable[[], bool],
    ) -> None:
        self._redis = client
        self._keys = keys
        self._retention = retention
        self._bounded = bounded
        self._is_open = is_open
        self._purge = client.register_script(scripts.PURGE)
        self._migrate = client.register_script(scripts.MIGRATE)

    async def run(self) -> None:
        """Migrate, then sweep now and every interval while the store is open; a failure is
        logged and tried again at the next interval. With no ``retention``, ends once migrated."""
        migrated = False
        retention = SWEEP_INTERVAL if self._retention is None else self._retention
        interval = min(SWEEP_INTERVAL, max(_MIN_INTERVAL, retention))
        is_open = self._is_open
        # is_open(), not only the cancel of close(), ends every loop here: on Python 3.11
        # redis-py's socket writes (asyncio.wait_for) can swallow a cancel landing as they end.
        while True:
            try:
                if not migrated:
                    await self.migrate()
                    migrated = True
                if self._retention is not None:
                    await self.sweep()
            except StoreError as exc:
                if is_open():
                    logger.warning(
                        "expiry of Redis store keys postponed: %s",
                        exc,
                        extra=log_fields("store.expiry", outcome="retry", error=type(exc).__name__),
                    )
            if not is_open() or (migrated and self._retention is None):
                return
            await asyncio.sleep(interval)

    async def sweep(self) -> int:
        """Delete the keys of the requests that are due, in bounded script calls; how many."""
        keys = [self._keys.expiry, self._keys.pending]
        args: list[str | int] = [_SWEEP_LIMIT, self._keys.state(""), self._keys.entry("")]
        total = 0
        for _ in range(_SWEEP_CALLS):
            if not self._is_open():
                break
            async with self._bounded("delete expired requests"):
                purged = int(await self._purge(keys=keys, args=args))
            total += purged
            if purged < _SWEEP_LIMIT:
                break
        return total

    async def migrate(self) -> int:
        """Once per prefix: move the TTL of every key an earlier version wrote into the index;
        how many keys had one."""
        async with self._bounded("read the key layout"):
            if text(await self._redis.get(self._keys.layout) or b"") == _LAYOUT:
                return 0
        pattern = glob_escape(self._keys.prefix) + ":*"
        cursor, moved = 0, 0
        for _ in range(2**32):  # SCAN ends when it is back at 0; a bound all the same
            if not self._is_open():
                return moved  # not done: the next store to open does it
            async with self._bounded("migrate keys with a TTL"):
                cursor, found = await self._redis.scan(cursor, match=pattern, count=_SCAN_COUNT)
                keys, ids = self._request_keys(text(key) for key in found)
                if keys:
                    moved += int(await self._migrate(keys=[self._keys.expiry, *keys], args=ids))
            if int(cursor) == 0:
                break
        async with self._bounded("record the key layout"):
            await self._redis.set(self._keys.layout, _LAYOUT)
        if moved:
            logger.info(
                "%d Redis keys of an earlier version traded their TTL for the index",
                moved,
                extra=log_fields("store.migrate", outcome="ok"),
            )
        return moved

    def _request_keys(self, names: Iterable[str]) -> tuple[list[str], list[str]]:
        """The state and schedule-entry keys among ``names``, and their request ids."""
        keys, ids = [], []
        for name in names:
            for prefix in (self._keys.state(""), self._keys.entry("")):
                if name.startswith(prefix):
                    keys.append(name)
                    ids.append(name.removeprefix(prefix))
                    break
        return keys, ids


def glob_escape(literal: str) -> str:
    """``literal`` as a Redis glob pattern matching only itself (``SCAN MATCH``)."""
    return "".join("\\" + c if c in "\\*?[]" else c for c in literal)
