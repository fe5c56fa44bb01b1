"""``RedisStore``: delivery states, the event log and the polling schedule in Redis (6.2 or later).

For several receiver replicas (processes or hosts behind a load balancer) sharing one Redis, on
the asyncio client of redis-py. Every merge runs server-side in one Lua script (the twin of
:func:`opensms_async._state.merge`, see ``_redis_scripts.py``), so concurrent replicas never lose
an update and every replica sees every event.

Key layout (``prefix`` defaults to ``"opensms"``; give each deployment its own, and never one
that is another's prefix followed by ``":"``):

* ``{prefix}:state:{request_id}``: a hash, one field per address, holding the merged state as a
  JSON array; it expires ``retention`` seconds (default 7 days, the OpenSMS receipt retention)
  after its last write;
* ``{prefix}:events``: the event log, a Redis Stream. A cursor is the stream id
  (``"1700000000000-3"``). The stream is trimmed approximately (``XADD MAXLEN ~ max_events``,
  default 1,000,000): Redis drops whole nodes of old entries, so a little more than
  ``max_events`` may be kept, never less. A reader whose cursor was trimmed away resumes at the
  oldest retained event. The stream itself never expires;
* ``{prefix}:pending``: the polling schedule, a sorted set of request ids scored by when each is
  due (``next_poll_at``, or the end of its lease while a poller holds it), and
  ``{prefix}:pending:{request_id}``: a hash per scheduled request (``sender``, ``tracked_at``,
  ``next_poll_at``, ``attempts``, ``leased_until``), expiring ``retention`` after its last write.

Writes are batched (group commit): concurrent ``apply`` calls share one script call, each caller
returning once Redis has answered. How durable that answer is depends on the server: with
``appendonly yes`` and ``appendfsync always`` an acknowledged update survives a crash of Redis or
of its host; ``appendfsync everysec`` may lose about the last second on a crash of the host; with
snapshots only (or none), everything since the last snapshot is lost when Redis restarts.

A lost connection raises :class:`StoreUnavailableError` (the receiver answers 503); redis-py
reconnects on the next call and reloads the scripts when the server lost them. An ``apply`` whose
answer was lost may or may not have been recorded: applying it again is harmless, since the merge
logs nothing for an update it already holds. Not for Redis Cluster (the schedule script touches
keys it cannot declare).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Final, Literal, TypeAlias, TypeVar

import attrs
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.typing import KeyT, StreamIdT

from .._exceptions import StoreError, StoreUnavailableError
from .._state import DeliveryEvent, DeliveryState, DeliveryUpdate
from . import _redis_codec as codec
from . import _redis_config as config
from . import _redis_scripts as scripts
from ._base import Applied, PendingRequest
from ._common import OpenClose
from ._url import _redact

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_EVENTS",
    "DEFAULT_PREFIX",
    "DEFAULT_RETENTION",
    "RedisStore",
]

DEFAULT_PREFIX: Final = "opensms"
DEFAULT_RETENTION: Final = 7 * 24 * 3600.0
"""Seconds a state or schedule entry lives after its last write: the OpenSMS receipt retention."""
DEFAULT_MAX_EVENTS: Final = 1_000_000
"""Approximate length the event stream is trimmed to."""
DEFAULT_MAX_BATCH: Final = 500
"""Most updates merged by one script call (one caller's updates are never split)."""

_GRACE: Final = 5.0
"""Seconds a blocking read may overrun its block before it counts as unanswered."""
_T = TypeVar("_T")
_Args: TypeAlias = list[str | int | float]


@attrs.frozen
class _Keys:
    """The names of the keys of one prefix."""

    prefix: str

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    @property
    def pending(self) -> str:
        return f"{self.prefix}:pending"

    def state(self, request_id: str) -> str:
        return f"{self.prefix}:state:{request_id}"

    def entry(self, request_id: str) -> str:
        return f"{self.pending}:{request_id}"


@attrs.define
class _Call:
    """One ``apply`` waiting for its turn in a batch."""

    updates: Sequence[DeliveryUpdate]
    fields: list[list[object]]
    future: asyncio.Future[list[Applied]]


class RedisStore(OpenClose):
    """A :class:`~opensms_async.stores.Store` in Redis, shared by any number of replicas.

    ``client`` is a ``redis://`` or ``rediss://`` URL (connection options only in its query; the
    store's own go in the keyword arguments, or use :meth:`from_url`) or a ``redis.asyncio.Redis``
    client, which stays yours to close. Blocking reads (``read_events`` with a timeout,
    ``read_group`` with ``block``) use ``blocking_client`` so they never hold the connections
    writes need; a store made from a URL opens its own, else they share ``client``.

    ``retention`` (seconds, None: never) is how long states and schedule entries outlive their last
    write; ``max_events`` the approximate length of the event stream; ``max_batch`` how many
    updates one script call merges at most. Cursors are stream ids, ``"<ms>-<seq>"``.
    """

    shared: bool = True

    def __init__(
        self,
        client: str | Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        retention: float | None = DEFAULT_RETENTION,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_batch: int = DEFAULT_MAX_BATCH,
        blocking_client: Redis | None = None,
    ) -> None:
        config.check_settings(prefix, retention, max_events, max_batch)
        self.prefix = prefix
        self.retention = None if retention is None else float(retention)
        self.max_events = max_events
        self._max_batch = max_batch
        self._ttl_ms = 0 if retention is None else max(1, round(retention * 1000))
        self._keys = _Keys(prefix)
        if isinstance(client, str):
            self._where = _redact(client)
            self._redis, self._blocking = config.make_client(client), config.make_client(client)
            self._owned: tuple[Redis, ...] = (self._redis, self._blocking)
        elif isinstance(client, Redis):
            self._where = config.describe(client)
            self._redis, self._blocking = client, blocking_client or client
            self._owned = ()
        else:
            raise TypeError(
                f"client must be a Redis URL or a redis.asyncio.Redis, not {type(client).__name__}"
            )
        self._slice = config.block_slice(self._blocking)
        self._merge = self._redis.register_script(scripts.MERGE)
        self._schedule = self._redis.register_script(scripts.SCHEDULE)
        self._claim = self._redis.register_script(scripts.CLAIM_DUE)
        self._reschedule = self._redis.register_script(scripts.RESCHEDULE)
        self._unschedule = self._redis.register_script(scripts.UNSCHEDULE)
        self._queue: collections.deque[_Call] = collections.deque()
        self._flusher: asyncio.Task[None] | None = None
        self._reads: set[asyncio.Future[Any]] = set()
        self._status: Literal["new", "open", "closed"] = "new"

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """The store a URL names: ``redis://[[user]:password@]host[:port][/db][?options]`` or
        ``rediss://`` (TLS).

        Store options: ``prefix``, ``retention`` (seconds), ``max_events``. Connection options
        handed to redis-py: ``socket_timeout``, ``socket_connect_timeout``, ``max_connections``,
        ``health_check_interval``, ``client_name``, ``ssl_cert_reqs``, ``ssl_ca_certs``,
        ``ssl_check_hostname``. Anything else raises :class:`InvalidStoreURLError`; no error
        message shows the password.
        """
        connection_url, options = config.split_url(url)
        return cls(connection_url, **options)

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, prefix={self.prefix!r})"

    async def open(self) -> None:
        """Check that Redis answers (and is 6.2 or later); idempotent.

        Raises :class:`StoreUnavailableError` when it does not answer (the store may be opened
        again later) and :class:`StoreError` once the store was closed.
        """
        if self._status == "closed":
            raise StoreError("this RedisStore is closed; create a new one")
        if self._status == "open":
            return
        with self._translated("connect"):
            await self._redis.ping()
            info = await self._redis.info("server")
        config.check_version(info.get("redis_version"))
        self._status = "open"

    async def close(self) -> None:
        """Finish the queued applies, end waiting reads (StoreError) and close the connections
        this store opened; idempotent."""
        if self._status == "closed":
            return
        self._status = "closed"
        reads = list(self._reads)
        for read in reads:
            read.cancel()
        if reads:
            await asyncio.wait(reads)
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._flusher)
        for client in self._owned:
            await client.aclose()

    # --- states ------------------------------------------------------------------------------

    async def apply(self, updates: Sequence[DeliveryUpdate]) -> list[Applied]:
        """Merge each update into its state and log an event per advance, atomically in Redis.

        A malformed update raises (TypeError or ValueError) before anything is sent. Concurrent
        calls share one script call; one call's updates apply in order. Raises
        :class:`StoreUnavailableError` when Redis could not be reached or did not answer (then
        the updates may or may not be recorded; applying them again is harmless).
        """
        self._ready()
        if not updates:
            return []
        fields = [codec.encode_update(update) for update in updates]
        call = _Call(updates, fields, asyncio.get_running_loop().create_future())
        self._queue.append(call)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await call.future

    async def apply_events(self, updates: Sequence[DeliveryUpdate]) -> list[DeliveryEvent]:
        """:meth:`apply`, returning only the events it logged (oldest first)."""
        applied = await self.apply(updates)
        return [a.event for a in applied if a.event is not None]

    async def get(self, request_id: str, address: str) -> DeliveryState | None:
        """The state of one recipient, or None if the pair was never seen (or has expired)."""
        self._ready()
        with self._translated("read a state"):
            raw = await self._redis.hget(self._keys.state(request_id), address)
        return None if raw is None else codec.state_from_json(request_id, address, raw)

    async def get_request(self, request_id: str) -> list[DeliveryState]:
        """The states of every recipient seen for a request, sorted by address."""
        self._ready()
        with self._translated("read a request"):
            rows = await self._redis.hgetall(self._keys.state(request_id))
        states = [codec.state_from_json(request_id, codec.text(a), raw) for a, raw in rows.items()]
        return sorted(states, key=lambda state: state.address)

    # --- events ------------------------------------------------------------------------------

    async def read_events(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> list[DeliveryEvent]:
        """Up to ``limit`` events after cursor ``after`` (None: the oldest retained), oldest first.

        With ``timeout`` > 0 and nothing to return, waits (``XREAD BLOCK``) up to that long for
        an event logged by any replica.
        """
        start = "-" if after is None else "(" + self._checked(after)
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit!r}")
        self._ready()
        events = self._keys.events
        with self._translated("read events"):
            entries = codec.range_entries(await self._redis.xrange(events, start, "+", limit))
            if not entries and timeout > 0:
                last = after or "0-0"
                reply = await self._wait(
                    lambda ms: self._blocking.xread({events: last}, count=limit, block=ms),
                    timeout,
                )
                entries = codec.read_entries(reply)
        return [codec.event_from_entry(i, fields) for i, fields in entries]

    async def last_cursor(self) -> str | None:
        """The cursor of the newest logged event, or None for an empty log."""
        self._ready()
        with self._translated("read the last event"):
            entries = codec.range_entries(await self._redis.xrevrange(self._keys.events, count=1))
        return codec.text(entries[0][0]) if entries else None

    def cursor_key(self, cursor: str) -> tuple[int, int]:
        """``(ms, seq)`` for cursor ``"<ms>-<seq>"``; ValueError for a malformed cursor."""
        return codec.cursor_key(cursor)

    # --- consumer groups ---------------------------------------------------------------------

    async def create_group(self, group: str, *, start: str = "0") -> bool:
        """Create consumer group ``group`` on the event log; False when it already exists.

        A group hands each event to exactly one of its consumers, which acknowledges it with
        :meth:`ack` once handled (at-least-once: an event not acknowledged stays pending and can
        be taken over with :meth:`claim_stale`). ``start``: ``"0"`` (the oldest retained event),
        ``"$"`` (only events logged from now on) or a cursor (the events after it).
        """
        if start not in ("0", "$"):
            self._checked(start)
        self._ready()
        with self._translated("create a consumer group"):
            try:
                await self._redis.xgroup_create(self._keys.events, group, start, mkstream=True)
            except redis_errors.ResponseError as exc:
                if str(exc).startswith("BUSYGROUP"):
                    return False
                raise
        return True

    async def read_group(
        self, group: str, consumer: str, *, count: int = 100, block: float = 0.0
    ) -> list[DeliveryEvent]:
        """Up to ``count`` events no consumer of ``group`` has received yet, for ``consumer``.

        Each is pending for ``consumer`` until acknowledged with :meth:`ack`. With ``block`` > 0
        and nothing new, waits up to ``block`` seconds. A restarted consumer gets the events it
        received but never acknowledged back from :meth:`read_pending`.
        """
        self._ready()
        read = self._group_reader(group, consumer, count, ">")
        with self._translated("read from a consumer group"):
            reply = await read(None)
            if not codec.read_entries(reply) and block > 0:
                reply = await self._wait(read, block)
        return await self._group_events(group, codec.read_entries(reply))

    async def read_pending(
        self, group: str, consumer: str, *, count: int = 100
    ) -> list[DeliveryEvent]:
        """Up to ``count`` events ``consumer`` received from ``group`` and has not acknowledged,
        oldest first (acknowledge them to see the next ones).

        Events trimmed from the log meanwhile are acknowledged and left out.
        """
        self._ready()
        with self._translated("read pending events"):
            reply = await self._group_reader(group, consumer, count, "0")(None)
        return await self._group_events(group, codec.read_entries(reply))

    async def ack(self, group: str, *cursors: str) -> int:
        """Acknowledge handled events of ``group``; how many were pending."""
        ids = [self._checked(cursor) for cursor in cursors]
        self._ready()
        if not ids:
            return 0
        with self._translated("acknowledge events"):
            return int(await self._redis.xack(self._keys.events, group, *ids))

    async def claim_stale(
        self, group: str, consumer: str, *, min_idle: float, count: int = 100
    ) -> list[DeliveryEvent]:
        """Take over up to ``count`` events of ``group`` pending for ``min_idle`` seconds or more
        with any consumer (one that died, say); they become pending for ``consumer``.

        Events trimmed from the log meanwhile are dropped from the pending list by Redis.
        """
        self._ready()
        idle, start = max(0, round(min_idle * 1000)), "0-0"
        events: list[DeliveryEvent] = []
        with self._translated("claim pending events"):
            while len(events) < count:
                reply = await self._redis.xautoclaim(
                    self._keys.events, group, consumer, idle, start, count=count - len(events)
                )
                start = codec.text(reply[0])
                events += [codec.event_from_entry(i, f) for i, f in codec.range_entries(reply[1])]
                if start == "0-0":
                    break
        return events

    def _group_reader(
        self, group: str, consumer: str, count: int, start: str
    ) -> Callable[[int | None], Awaitable[Any]]:
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count!r}")
        streams: dict[KeyT, StreamIdT] = {self._keys.events: start}

        def read(block: int | None) -> Awaitable[Any]:
            client = self._redis if block is None else self._blocking
            return client.xreadgroup(group, consumer, streams, count=count, block=block)

        return read

    async def _group_events(
        self, group: str, entries: list[tuple[Any, Any]]
    ) -> list[DeliveryEvent]:
        gone = [codec.text(i) for i, fields in entries if not fields]
        if gone:
            with self._translated("acknowledge trimmed events"):
                await self._redis.xack(self._keys.events, group, *gone)
        return [codec.event_from_entry(i, fields) for i, fields in entries if fields]

    # --- polling schedule --------------------------------------------------------------------

    async def schedule(
        self, request_id: str, sender: str, *, tracked_at: float, poll_at: float
    ) -> None:
        """Add a request to the polling schedule (an existing entry keeps attempts and lease)."""
        args: _Args = [
            _text_arg(request_id, "request_id"),
            _text_arg(sender, "sender"),
            codec.number(tracked_at, "tracked_at"),
            codec.number(poll_at, "poll_at"),
            self._ttl_ms,
        ]
        self._ready()
        with self._translated("schedule a poll"):
            await self._schedule(keys=self._entry_keys(request_id), args=args)

    async def claim_due(
        self, now: float, *, limit: int = 100, lease: float = 60.0
    ) -> list[PendingRequest]:
        """Lease up to ``limit`` due requests (earliest first) for ``lease`` seconds.

        Atomic across replicas: each due request goes to one caller, and comes due again when
        the lease ends without a :meth:`reschedule` (its poller died).
        """
        args: _Args = [
            codec.number(now, "now"),
            limit,
            codec.number(now + max(lease, 0.0), "lease"),
            self._ttl_ms,
            self._keys.entry(""),
        ]
        self._ready()
        if limit < 1:
            return []
        with self._translated("claim due polls"):
            rows = await self._claim(keys=[self._keys.pending], args=args)
        return [codec.pending_from_row(row) for row in rows]

    async def reschedule(self, request_id: str, *, next_poll_at: float, attempts: int) -> None:
        """Set a request's next poll time and attempts and release its lease (no-op if gone)."""
        args: _Args = [
            _text_arg(request_id, "request_id"),
            codec.number(next_poll_at, "next_poll_at"),
            int(attempts),
            self._ttl_ms,
        ]
        self._ready()
        with self._translated("reschedule a poll"):
            await self._reschedule(keys=self._entry_keys(request_id), args=args)

    async def unschedule(self, request_id: str) -> None:
        """Stop polling a request (no-op if it is not scheduled)."""
        self._ready()
        with self._translated("unschedule a poll"):
            await self._unschedule(keys=self._entry_keys(request_id), args=[request_id])

    def _entry_keys(self, request_id: str) -> list[str]:
        return [self._keys.pending, self._keys.entry(request_id)]

    # --- group commit ------------------------------------------------------------------------

    async def _flush(self) -> None:
        """Merge what is queued, a batch per script call, until the queue is empty."""
        while self._queue:
            calls = self._take()
            try:
                rows = await self._merge_batch(calls)
            except BaseException as exc:
                for call in calls:
                    _fail(call.future, exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            _settle(calls, rows)

    def _take(self) -> list[_Call]:
        calls = [self._queue.popleft()]
        size = len(calls[0].updates)
        while self._queue and size + len(self._queue[0].updates) <= self._max_batch:
            calls.append(self._queue.popleft())
            size += len(calls[-1].updates)
        return calls

    async def _merge_batch(self, calls: list[_Call]) -> list[Any]:
        keys, slots, payload = [self._keys.events], dict[str, int](), []
        for call in calls:
            for update, fields in zip(call.updates, call.fields, strict=True):
                slot = slots.get(update.request_id)
                if slot is None:
                    keys.append(self._keys.state(update.request_id))
                    slot = slots[update.request_id] = len(keys)
                payload.append([slot, *fields])
        encoded = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        with self._translated("apply updates"):
            reply = await self._merge(keys=keys, args=[self.max_events, self._ttl_ms, encoded])
        rows = json.loads(reply)
        if not isinstance(rows, list) or len(rows) != len(payload):
            raise StoreError(f"Redis at {self._where} answered the merge script unexpectedly")
        return rows

    # --- helpers -----------------------------------------------------------------------------

    async def _wait(self, read: Callable[[int], Awaitable[_T]], timeout: float) -> _T | None:
        """Repeat a blocking read (given its block in ms) until it returns something or
        ``timeout`` passes; :meth:`close` ends it with StoreError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            block = min(remaining, self._slice)
            reply = await self._unless_closed(read(max(1, round(block * 1000))), block + _GRACE)
            if reply:
                return reply
        return None

    async def _unless_closed(self, read: Awaitable[_T], limit: float) -> _T:
        task = asyncio.ensure_future(read)
        self._reads.add(task)
        task.add_done_callback(_retrieve)
        task.add_done_callback(self._reads.discard)
        try:
            done, _ = await asyncio.wait((task,), timeout=limit)
        finally:
            if not task.done():
                task.cancel()
        if not done:
            raise StoreUnavailableError(f"Redis at {self._where} did not answer in {limit:.0f} s")
        if task.cancelled():
            raise StoreError("this RedisStore was closed while reading")
        return task.result()

    @contextlib.contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """Turn redis-py's errors into the store's, without secrets."""
        try:
            yield
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            detail = self._scrub(f"{type(exc).__name__}: {exc}")
            raise StoreUnavailableError(
                f"Redis at {self._where} is unavailable, could not {action} ({detail})"
            ) from exc
        except redis_errors.RedisError as exc:
            detail = self._scrub(f"{type(exc).__name__}: {exc}")
            raise StoreError(f"Redis at {self._where} could not {action} ({detail})") from exc

    def _scrub(self, text: str) -> str:
        password = self._redis.connection_pool.connection_kwargs.get("password")
        return text.replace(password, "***") if isinstance(password, str) and password else text

    def _checked(self, cursor: str) -> str:
        codec.cursor_key(cursor)
        return cursor

    def _ready(self) -> None:
        if self._status == "closed":
            raise StoreError("this RedisStore is closed")
        if self._status != "open":
            raise StoreError("this RedisStore is not open; await store.open() first")


# --- batches -----------------------------------------------------------------------------------


def _settle(calls: list[_Call], rows: list[Any]) -> None:
    """Hand each caller of a batch its slice of the script's rows."""
    start = 0
    for call in calls:
        stop = start + len(call.updates)
        if not call.future.done():
            try:
                applied = [
                    codec.applied_from_row(update, row)
                    for update, row in zip(call.updates, rows[start:stop], strict=True)
                ]
            except Exception as exc:
                _fail(call.future, exc)
            else:
                call.future.set_result(applied)
        start = stop


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    """Fail one caller with its own copy of a store error (a bug is passed on as it is)."""
    if future.done():
        return
    if isinstance(exc, StoreError):
        copy = type(exc)(str(exc))
        copy.__cause__ = exc.__cause__
        future.set_exception(copy)
    elif isinstance(exc, Exception):
        future.set_exception(exc)
    else:
        future.set_exception(StoreError("the batch was cancelled before Redis answered"))


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a background read's outcome as seen (it may end after its reader stopped waiting)."""
    if not task.cancelled():
        task.exception()


def _text_arg(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value
