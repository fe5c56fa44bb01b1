"""``RedisInboundStore``: the inbound log, the ids seen and the parts being joined, in Redis.

For several receiver replicas sharing one Redis (6.2 or later), beside the delivery store or
alone. Each ``receive`` is one Lua script call (``_redis_scripts.RECEIVE``) that, per part,
takes the id into the set of ids seen (``ZADD NX``: the first replica to take it wins, atomically
across replicas), runs the reassembly step and appends what it yields to the log, so that no
replica ever logs a message twice, loses a part, or joins a part twice.

Key layout (``prefix`` defaults to the delivery store's, ``"opensms"``, so that one URL serves
both; its keys are all under ``{prefix}:inbound:``):

* ``{prefix}:inbound:seen``: the ids seen, a sorted set scored by when each may be forgotten
  (``now + retention``, on the receiving inbox's clock);
* ``{prefix}:inbound:log``: the log, a Redis Stream (a cursor is the stream id), trimmed
  approximately to ``max_messages`` (``XADD MAXLEN ~``);
* ``{prefix}:inbound:groups`` and ``{prefix}:inbound:windows``: the parts held, one JSON group
  per key in a hash, and when each group's window opened, a sorted set.

No key carries a TTL, for the reason the delivery store gives (``stores/_redis_expiry.py``): a
Redis whose ``maxmemory-policy`` is ``volatile-*`` (the default of managed services) evicts only
keys with one, and would pick exactly the ids that dedupe needs. Instead ``expire`` (which every
open inbox calls about once a second) forgets the ids whose time has come and closes the groups
whose window has ended, a bounded batch per script call. :meth:`open` refuses an ``allkeys-*``
policy unless ``allow_eviction=True``. Every call but a blocking wait gives up after ``timeout``
seconds (default 2) with :class:`StoreUnavailableError`: a ``receive`` whose answer was lost may
or may not have been recorded; receiving it again is harmless (its ids are duplicates then).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis

from ..._exceptions import InvalidStoreURLError, StoreError
from ..._inbound_message import InboundMessage, decode
from ..._reassembly import Part, group_key
from .. import _redis_codec as codec
from .. import _redis_config as config
from .. import _redis_errors as errors
from .._redis_calls import CallingStore, Calls
from .._url_options import options, positive_int, redact
from . import _redis_scripts as scripts
from ._base import Received

__all__ = ["DEFAULT_MAX_MESSAGES", "DEFAULT_PREFIX", "DEFAULT_TIMEOUT", "RedisInboundStore"]

DEFAULT_PREFIX: Final = "opensms"
DEFAULT_MAX_MESSAGES: Final = 1_000_000
"""Approximate length the log is trimmed to."""
DEFAULT_TIMEOUT: Final = 2.0
"""Seconds any call (but a blocking wait) waits for Redis before StoreUnavailableError."""
_EXPIRE_BATCH: Final = 500
"""Most groups and ids one expire script call handles (a script blocks Redis while it runs)."""
_DELIVERY_OPTIONS: Final = ("retention", "max_events")
"""The delivery store's options: accepted so that one URL may serve both, left to it."""

logger = logging.getLogger("opensms_async.stores.redis")


class RedisInboundStore(CallingStore):
    """An :class:`~opensms_async.stores.inbound.InboundStore` in Redis, shared by replicas.

    ``client`` is a ``redis://`` or ``rediss://`` URL (connection options only in its query; use
    :meth:`from_url` for the store's own) or a ``redis.asyncio.Redis`` client, which stays yours
    to close. Blocking reads (``read_messages`` with a timeout) use ``blocking_client`` so they
    never hold the connections writes need; a store made from a URL opens its own. Cursors are
    stream ids, ``"<ms>-<seq>"``.
    """

    shared: bool = True

    def __init__(
        self,
        client: str | Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        timeout: float = DEFAULT_TIMEOUT,
        allow_eviction: bool = False,
        blocking_client: Redis | None = None,
    ) -> None:
        config.check_settings(prefix, None, max_messages, 1, timeout)
        self.prefix = prefix
        self.max_messages = max_messages
        self.timeout = float(timeout)
        self.allow_eviction = bool(allow_eviction)
        base = f"{prefix}:inbound"
        self._keys = [f"{base}:seen", f"{base}:log", f"{base}:groups", f"{base}:windows"]
        clients = config.clients(client, blocking_client, self.timeout)
        self._where, self._redis, self._blocking = clients.where, clients.redis, clients.blocking
        self._owned = clients.owned
        self._slice = config.block_slice(self._blocking)
        self._receive = self._redis.register_script(scripts.RECEIVE)
        self._expire = self._redis.register_script(scripts.EXPIRE)
        self._calls = Calls(self._unusable, type(self).__name__, self._where, self.timeout)

    @classmethod
    def from_url(cls, url: str) -> RedisInboundStore:
        """The store a URL names: ``redis://[[user]:password@]host[:port][/db][?options]`` or
        ``rediss://``, with the delivery store's options (``prefix``, ``timeout``,
        ``allow_eviction`` and the connection options; its ``retention`` and ``max_events`` are
        left to it) and ``max_messages``. Anything else raises :class:`InvalidStoreURLError`; no
        error message shows the password."""
        if not isinstance(url, str):
            raise InvalidStoreURLError(f"a Redis URL must be a string, not {type(url).__name__}")
        shown = redact(url)
        try:
            parts = urlsplit(url)
        except ValueError:  # its message may quote part of a password: not passed on
            raise InvalidStoreURLError(f"malformed Redis URL {shown!r}") from None
        # max_messages is this store's; the rest is read (strictly) as the delivery store reads it.
        pieces = parts.query.split("&") if parts.query else []
        ours = [piece for piece in pieces if piece.partition("=")[0] == "max_messages"]
        rest = "&".join(piece for piece in pieces if piece not in ours)
        mine = options(shown, "&".join(ours), {"max_messages"})
        connection_url, kwargs = config.split_url(urlunsplit(parts._replace(query=rest)))
        for name in _DELIVERY_OPTIONS:
            kwargs.pop(name, None)
        if "max_messages" in mine:
            kwargs["max_messages"] = positive_int(shown, "max_messages", mine["max_messages"])
        return cls(connection_url, **kwargs)

    def __repr__(self) -> str:
        return f"RedisInboundStore({self._where!r}, prefix={self.prefix!r})"

    async def _open(self) -> None:
        async with self._bounded("connect"):
            await errors.check_server(
                self._redis, self._where, allow_eviction=self.allow_eviction, logger=logger
            )

    async def aclose(self) -> None:
        """Finish the calls in flight (each bounded by ``timeout``), end waiting reads
        (StoreError) and close the connections this store opened; idempotent."""
        await super().aclose()

    async def _aclose(self) -> None:
        # Only once nothing is in flight: redis-py's aclose() stops no command, and one in flight
        # would hand a live connection back to the closed pool (see _redis_calls.py).
        await self._calls.drain()
        for client in self._owned:
            await client.aclose()

    # --- receiving ---------------------------------------------------------------------------

    async def receive(
        self, parts: Sequence[Part], *, now: float, timeout: float, retention: float
    ) -> Received:
        """Dedupe, reassemble and log each part in one script call, atomic across replicas.

        Raises :class:`StoreUnavailableError` when Redis could not be reached or did not answer
        within ``timeout`` seconds (then the parts may or may not be recorded; receiving them
        again is harmless), or is full (then nothing was recorded).
        """
        if not parts:
            self._ready()
            return Received([])
        payload = json.dumps([_part_row(part) for part in parts], ensure_ascii=False)
        args: list[str | int] = [
            _time(now), _number(timeout), _time(now + retention), self.max_messages, payload
        ]  # fmt: skip
        self._ready()
        async with self._bounded("record inbound messages"):
            reply = await self._receive(keys=self._keys, args=args)
        rows = json.loads(reply)
        if not isinstance(rows, list) or len(rows) != len(parts):
            raise StoreError(f"Redis at {self._where} answered the receive script unexpectedly")
        messages = [_message(entry) for row in rows if row for entry in row]
        return Received(messages, sum(1 for row in rows if row == 0))

    async def expire(self, now: float, *, timeout: float) -> list[InboundMessage]:
        """Log the groups whose window has ended and forget old ids (a batch of each)."""
        args: list[str | int] = [_time(now), _number(timeout), _EXPIRE_BATCH, self.max_messages]
        self._ready()
        async with self._bounded("expire inbound groups"):
            reply = await self._expire(keys=self._keys, args=args)
        return [_message(entry) for entry in json.loads(reply)]

    async def remembers(self, message_id: str) -> bool:
        """True while ``message_id`` is remembered."""
        self._ready()
        async with self._bounded("read an inbound id"):
            return await self._redis.zscore(self._keys[0], message_id) is not None

    # --- the log -----------------------------------------------------------------------------

    async def read_messages(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> list[InboundMessage]:
        """Up to ``limit`` messages after cursor ``after`` (None: the oldest retained); with
        ``timeout`` > 0 and nothing to return, waits (``XREAD BLOCK``) up to that long for one
        logged by any replica."""
        start = "-" if after is None else "(" + self._checked(after)
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit!r}")
        self._ready()
        log = self._keys[1]
        async with self._bounded("read inbound messages"):
            entries = codec.range_entries(await self._redis.xrange(log, start, "+", limit))
        if not entries and timeout > 0:
            with errors.translated(self._redis, self._where, "wait for inbound messages"):
                last = after or "0-0"

                async def read(ms: int) -> list[tuple[Any, Any]]:
                    reply = await self._blocking.xread({log: last}, count=limit, block=ms)
                    return codec.read_entries(reply)

                entries = await self._wait(read, timeout) or []
        return [decode(codec.text(i), _field(fields)) for i, fields in entries]

    async def last_cursor(self) -> str | None:
        """The cursor of the newest logged message, or None for an empty log."""
        self._ready()
        async with self._bounded("read the last inbound message"):
            entries = codec.range_entries(await self._redis.xrevrange(self._keys[1], count=1))
        return codec.text(entries[0][0]) if entries else None

    def cursor_key(self, cursor: str) -> tuple[int, int]:
        """``(ms, seq)`` for cursor ``"<ms>-<seq>"``; ValueError for a malformed cursor."""
        return codec.cursor_key(cursor)

    # --- helpers -----------------------------------------------------------------------------

    def _bounded(self, action: str) -> contextlib.AbstractAsyncContextManager[None]:
        """redis-py's errors as the store's (without secrets), giving up after ``timeout``
        seconds; counted as in flight until it ends (:meth:`aclose` waits for it)."""
        deadline = asyncio.timeout(self.timeout)
        return errors.bounded(
            deadline, self.timeout, self._redis, self._where, action, within=self._calls.tracked()
        )


def _part_row(part: Part) -> list[object]:
    """A part as the receive script reads it (checked here: a script must not fail half-way)."""
    for name in ("message_id", "sender", "destination", "text", "source"):
        if not isinstance(getattr(part, name), str):
            raise TypeError(f"a part's {name} must be a str")
    key = group_key(part)
    keytext = "" if key is None else json.dumps(key, ensure_ascii=False, separators=(",", ":"))
    number = part.number if key is not None else 0
    return [part.message_id, part.sender, part.destination, part.text, keytext, number,
            key[3] if key else 1, part.source, part.date_time]  # fmt: skip


def _time(value: float) -> str:
    return codec.number(value, "time")


def _number(value: float) -> str:
    return codec.number(value, "timeout")


def _message(entry: list[Any]) -> InboundMessage:
    cursor, raw = entry
    return decode(codec.text(cursor), raw)


def _field(fields: Any) -> str | bytes:
    """The ``m`` field of a stream entry (a dict of bytes or of str)."""
    if isinstance(fields, dict):
        for name, value in fields.items():
            if codec.text(name) == "m":
                return value  # type: ignore[no-any-return]
    raise StoreError("a Redis inbound log entry without its message")
