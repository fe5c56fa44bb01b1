"""``RedisStore``: delivery states, the event log and the polling schedule in Redis (6.2 or later).

For several receiver replicas (processes or hosts behind a load balancer) sharing one Redis, on
the asyncio client of redis-py. Every merge runs server-side in one Lua script (the twin of
:func:`opensms_async._state.merge`, see ``_redis_scripts.py``), so concurrent replicas never lose
an update and every replica sees every event.

Key layout (``prefix`` defaults to ``"opensms"``; give each deployment its own, and never one
that is another's prefix followed by ``":"``):

* ``{prefix}:state:{request_id}``: a hash, one field per address, holding the merged state as a
  JSON array;
* ``{prefix}:events``: the event log, a Redis Stream. A cursor is the stream id
  (``"1700000000000-3"``). The stream is trimmed approximately (``XADD MAXLEN ~ max_events``,
  default 1,000,000): Redis drops whole nodes of old entries, so a little more than
  ``max_events`` may be kept, never less. A reader whose cursor was trimmed away resumes at the
  oldest retained event. The stream itself never expires;
* ``{prefix}:pending``: the polling schedule, a sorted set of request ids scored by when each is
  due (``next_poll_at``, or the end of its lease while a poller holds it), and
  ``{prefix}:pending:{request_id}``: a hash per scheduled request (``sender``, ``tracked_at``,
  ``next_poll_at``, ``attempts``, ``leased_until``);
* ``{prefix}:expiry``: the expiry index, a sorted set of request ids scored by when their keys
  are due for deletion (server time in ms): ``retention`` seconds (default 7 days, the OpenSMS
  receipt retention) after the last write to the request's states or schedule entry. A sweep in
  every open store deletes what is due, at most a minute late (a request's keys go together);
* ``{prefix}:layout``: ``"2"`` once the TTLs an earlier version set were moved into the index.

No key carries a TTL, so a Redis whose ``maxmemory-policy`` is ``noeviction`` or ``volatile-*``
never evicts one: when it is full it refuses writes instead (``apply_events`` raises
:class:`StoreUnavailableError`, the receiver answers 503, nothing acknowledged is lost). An
``allkeys-*`` policy may evict anything, acknowledged states included: :meth:`RedisStore.open`
refuses it unless ``allow_eviction=True``. A store written by an earlier version (keys with TTLs)
keeps working: every write drops the TTL of the keys it writes, and each store, once opened, moves
the TTLs left into the index in the background (``SCAN``; once per prefix, marked by
``{prefix}:layout``); until then, those keys are as evictable as before.

Writes are batched (group commit): concurrent ``apply_events`` calls share one script call, each
caller returning once Redis has answered it (and the store's listeners get the batch's events).
A second batch is sent while Redis runs the first; it is handed out after the first
(``_redis_batches.py``). How
durable that answer is depends on the server: with ``appendonly yes`` and ``appendfsync always`` an
acknowledged update survives a crash of Redis or of its host; ``appendfsync everysec`` may lose
about the last second on a crash of the host; with snapshots only (or none), everything since the
last snapshot is lost when Redis restarts.

A lost connection raises :class:`StoreUnavailableError` (the receiver answers 503); redis-py
reconnects on the next call and reloads the scripts when the server lost them. So does a Redis that
does not answer (hung, stopped, overloaded): every call but a blocking wait gives up after
``timeout`` seconds (default 2) from the moment it was made, queued ``apply_events`` calls included
(they never wait out a hung batch one after another), and the next call after Redis answers again
works. An ``apply_events`` whose answer was lost may or may not have been recorded: applying it
again is harmless, since the merge logs nothing for an update it already holds. A consumer group
that Redis lost (restarted without persistence, flushed) is created again by the next read of a
store that knew it (see :meth:`RedisStore.create_group`). Not for Redis Cluster (the scripts touch
keys they cannot declare).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeAlias, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.typing import KeyT, StreamIdT

from .._exceptions import StoreUnavailableError
from .._lifecycle import OPEN
from .._state import DeliveryEvent, DeliveryState, DeliveryUpdate
from .._telemetry import log_fields
from . import _redis_codec as codec
from . import _redis_config as config
from . import _redis_errors as errors
from . import _redis_scripts as scripts
from ._base import PendingRequest
from ._common import Listeners
from ._redis_batches import Batches, Call
from ._redis_calls import CallingStore, Calls
from ._redis_expiry import Expiry

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_EVENTS",
    "DEFAULT_PREFIX",
    "DEFAULT_RETENTION",
    "DEFAULT_TIMEOUT",
    "RedisStore",
]

DEFAULT_PREFIX: Final = "opensms"
DEFAULT_RETENTION: Final = 7 * 24 * 3600.0
"""Seconds a request's keys live after the last write to them: the OpenSMS receipt retention."""
DEFAULT_MAX_EVENTS: Final = 1_000_000
"""Approximate length the event stream is trimmed to."""
DEFAULT_MAX_BATCH: Final = 500
"""Most updates merged by one script call (one caller's updates are never split)."""
DEFAULT_TIMEOUT: Final = 2.0
"""Seconds any call (but a blocking wait) waits for Redis before StoreUnavailableError: below the
few seconds BICS gives a receiver, far above what a healthy Redis takes (milliseconds)."""
logger = logging.getLogger("opensms_async.stores.redis")

_FULL: Final = ": give it more memory or the store a shorter retention"
"""What a full Redis's message adds: nothing was recorded, and what to do about it."""

_T = TypeVar("_T")
_Args: TypeAlias = list[str | int | float]


class RedisStore(CallingStore):
    """A :class:`~opensms_async.stores.Store` in Redis, shared by any number of replicas.

    ``client`` is a ``redis://`` or ``rediss://`` URL (connection options only in its query; the
    store's own go in the keyword arguments, or use :meth:`from_url`) or a ``redis.asyncio.Redis``
    client, which stays yours to close. Blocking reads (``read_events`` with a timeout,
    ``read_group`` with ``block``) use ``blocking_client`` so they never hold the connections
    writes need; a store made from a URL opens its own, else they share ``client``.

    ``retention`` (seconds, None: never) is how long a request's states and schedule entry outlive
    the last write to them; ``max_events`` the approximate length of the event stream;
    ``max_batch`` how many updates one script call merges at most; ``timeout`` (seconds) how long
    any call but a blocking wait waits for Redis before it raises :class:`StoreUnavailableError`
    (clients made from a URL also take it as their socket timeouts, unless the URL sets its own);
    ``allow_eviction=True`` opens the store even on a Redis whose ``maxmemory-policy`` may evict
    its keys (``allkeys-*``), with a warning. Cursors are stream ids, ``"<ms>-<seq>"``.
    """

    shared: bool = True
    durable: bool = True
    """As durable as the server is configured to be (see the module docstring)."""
    consecutive: bool = False

    def __init__(
        self,
        client: str | Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        retention: float | None = DEFAULT_RETENTION,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_batch: int = DEFAULT_MAX_BATCH,
        timeout: float = DEFAULT_TIMEOUT,
        allow_eviction: bool = False,
        blocking_client: Redis | None = None,
    ) -> None:
        config.check_settings(prefix, retention, max_events, max_batch, timeout)
        self.prefix = prefix
        self.timeout = float(timeout)
        self.allow_eviction = bool(allow_eviction)
        self.retention = None if retention is None else float(retention)
        self.max_events = max_events
        self._retention_ms = 0 if retention is None else max(1, round(retention * 1000))
        self._keys = codec.Keys(prefix)
        clients = config.clients(client, blocking_client, self.timeout)
        self._where, self._redis, self._blocking = clients.where, clients.redis, clients.blocking
        self._owned = clients.owned
        self._slice = config.block_slice(self._blocking)
        self._merge = self._redis.register_script(scripts.MERGE)
        self._schedule = self._redis.register_script(scripts.SCHEDULE)
        self._claim = self._redis.register_script(scripts.CLAIM_DUE)
        self._reschedule = self._redis.register_script(scripts.RESCHEDULE)
        self._unschedule = self._redis.register_script(scripts.UNSCHEDULE)
        self._expiry = Expiry(
            self._redis, self._keys, self.retention, self._bounded, lambda: self._state is OPEN
        )
        self._maintainer: asyncio.Task[None] | None = None
        self._groups: set[str] = set()
        """The consumer groups this store created or read from: created again if Redis lost them."""
        self._calls = Calls(self._unusable, type(self).__name__, self._where, self.timeout)
        self._listeners: Listeners[DeliveryEvent] = Listeners()
        self._batches = Batches(self._merge_batch, self._listeners, max_batch, self._late)

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """The store a URL names: ``redis://[[user]:password@]host[:port][/db][?options]`` or
        ``rediss://`` (TLS).

        Store options: ``prefix``, ``retention`` (seconds), ``max_events``, ``timeout`` (seconds),
        ``allow_eviction`` (``true`` or ``false``). Connection options
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
        """Check that Redis answers, is 6.2 or later and will not evict the store's keys; start
        the background sweep of expired requests; idempotent.

        Raises :class:`StoreUnavailableError` when Redis does not answer (the store may be opened
        again later), :class:`StoreError` for a ``maxmemory-policy`` that may evict any key
        (``allkeys-*``) unless ``allow_eviction``, and once the store was closed. A policy that
        cannot be read (``CONFIG`` and ``INFO`` both refused) or is unknown is logged as a warning.
        """
        await super().open()

    async def _open(self) -> None:
        async with self._bounded("connect"):
            await errors.check_server(
                self._redis, self._where, allow_eviction=self.allow_eviction, logger=logger
            )
        # Runs once open() has returned: the state is OPEN by then (no await in between).
        self._maintainer = asyncio.create_task(self._expiry.run())

    async def aclose(self) -> None:
        """Finish the queued applies and the calls in flight (each bounded by ``timeout``), end
        waiting reads (StoreError) and close the connections this store opened; idempotent."""
        await super().aclose()

    async def _aclose(self) -> None:
        if self._maintainer is not None:
            self._maintainer.cancel()
            await asyncio.wait((self._maintainer,))  # each of its calls is bounded by timeout
        await self._calls.end_reads()
        await self._batches.finish()
        # Only once nothing is in flight: redis-py's aclose() stops no command, and one in flight
        # would hand a live connection back to the closed pool (see _redis_calls.py).
        await self._calls.drain()
        for client in self._owned:
            await client.aclose()

    # --- states ------------------------------------------------------------------------------

    async def apply_events(self, updates: Sequence[DeliveryUpdate]) -> list[DeliveryEvent]:
        """Merge each update into its state and log an event per advance, atomically in Redis;
        the events logged, oldest first.

        A malformed update raises (TypeError or ValueError) before anything is sent. Concurrent
        calls share one script call; one call's updates apply in order. Raises
        :class:`StoreUnavailableError` when Redis could not be reached or did not answer within
        ``timeout`` seconds of this call (then the updates may or may not be recorded; applying
        them again is harmless), or is full (``maxmemory``: then nothing was recorded).
        """
        self._ready()
        if not updates:
            return []
        fields = [codec.encode_update(update) for update in updates]
        loop = asyncio.get_running_loop()
        call = Call(updates, fields, loop.create_future(), loop.time() + self.timeout)
        self._batches.submit(call)
        return await call.future  # a cancelled caller cancels it: then it is not sent

    @property
    def writing(self) -> bool:
        """Whether a batch of applies is queued or in flight: its events will be handed to the
        listeners (or it fails). The live buffer waits for them rather than read the log."""
        return self._batches.writing

    def listen(self, listener: Callable[[Sequence[DeliveryEvent]], None]) -> Callable[[], None]:
        """Hand every batch of events this store logged to ``listener`` when Redis answers, in
        the order the batches were sent, whether or not its callers still wait; returns the
        function that stops it. (Events other replicas log reach only readers of the log.) Each
        batch is a :class:`~._common.LogRun`: its ``after`` is the cursor of the event logged
        just before it, by any replica, so a batch that Redis ran before the one handed out
        ahead of it (two are in flight at most) shows as a run that does not continue it."""
        return self._listeners.add(listener)

    async def get(self, request_id: str, address: str) -> DeliveryState | None:
        """The state of one recipient, or None if the pair was never seen (or has expired)."""
        self._ready()
        async with self._bounded("read a state"):
            raw = await self._redis.hget(self._keys.state(request_id), address)
        return None if raw is None else codec.state_from_json(request_id, address, raw)

    async def get_request(self, request_id: str) -> list[DeliveryState]:
        """The states of every recipient seen for a request, sorted by address."""
        self._ready()
        async with self._bounded("read a request"):
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
        async with self._bounded("read events"):
            entries = codec.range_entries(await self._redis.xrange(events, start, "+", limit))
        if not entries and timeout > 0:
            with self._translated("wait for events"):
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
        async with self._bounded("read the last event"):
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

        A group this store created or read from that Redis lost (restarted without persistence,
        flushed) is created again by the next :meth:`read_group`, :meth:`read_pending` or
        :meth:`claim_stale`, from the oldest event still in the log: events logged since the
        loss are delivered, none skipped, and any the group had handled before come again (as
        after any redelivery, handle them idempotently). Its pending lists are lost with it.
        A group this store never saw still raises :class:`StoreError` (``NOGROUP``).
        """
        if start not in ("0", "$"):
            self._checked(start)
        self._ready()
        async with self._bounded("create a consumer group"):
            created = await self._create_group(group, start)
        self._groups.add(group)
        return created

    async def _create_group(self, group: str, start: str) -> bool:
        try:
            await self._redis.xgroup_create(self._keys.events, group, start, mkstream=True)
        except redis_errors.ResponseError as exc:
            if str(exc).startswith("BUSYGROUP"):
                return False
            raise
        return True

    async def _in_group(self, group: str, call: Callable[[], Awaitable[_T]]) -> _T:
        """``call()``, creating ``group`` again first when Redis lost a group this store knew."""
        try:
            result = await call()
        except redis_errors.ResponseError as exc:
            # UNBLOCKED: the log (and the group with it) was deleted while a read waited.
            if not str(exc).startswith(("NOGROUP", "UNBLOCKED")) or group not in self._groups:
                raise
            logger.warning(
                "consumer group %r is missing from Redis at %s (restarted without persistence,"
                " or flushed): created again from the oldest retained event",
                group,
                self._where,
                extra=log_fields("store.read_events", outcome="recreated"),
            )
            await self._create_group(group, "0")
            result = await call()
        self._groups.add(group)
        return result

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
        async with self._bounded("read from a consumer group"):
            reply = await self._in_group(group, lambda: read(None))
        if not codec.read_entries(reply) and block > 0:
            with self._translated("wait in a consumer group"):
                reply = await self._wait(lambda ms: self._in_group(group, lambda: read(ms)), block)
        return await self._group_events(group, codec.read_entries(reply))

    async def read_pending(
        self, group: str, consumer: str, *, count: int = 100
    ) -> list[DeliveryEvent]:
        """Up to ``count`` events ``consumer`` received from ``group`` and has not acknowledged,
        oldest first (acknowledge them to see the next ones).

        Events trimmed from the log meanwhile are acknowledged and left out.
        """
        self._ready()
        read = self._group_reader(group, consumer, count, "0")
        async with self._bounded("read pending events"):
            reply = await self._in_group(group, lambda: read(None))
        return await self._group_events(group, codec.read_entries(reply))

    async def ack(self, group: str, *cursors: str) -> int:
        """Acknowledge handled events of ``group``; how many were pending."""
        ids = [self._checked(cursor) for cursor in cursors]
        self._ready()
        if not ids:
            return 0
        async with self._bounded("acknowledge events"):
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
        async with self._bounded("claim pending events"):
            while len(events) < count:
                claim = functools.partial(
                    self._redis.xautoclaim,
                    self._keys.events,
                    group,
                    consumer,
                    idle,
                    start,
                    count=count - len(events),
                )
                reply = await self._in_group(group, claim)
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
            async with self._bounded("acknowledge trimmed events"):
                await self._redis.xack(self._keys.events, group, *gone)
        return [codec.event_from_entry(i, fields) for i, fields in entries if fields]

    # --- polling schedule --------------------------------------------------------------------

    async def schedule(
        self,
        request_id: str,
        sender: str,
        *,
        tracked_at: float,
        poll_at: float,
        traceparent: str | None = None,
    ) -> None:
        """Add a request to the polling schedule (an existing entry keeps attempts, lease and
        traceparent)."""
        args: _Args = [
            _text_arg(request_id, "request_id"),
            _text_arg(sender, "sender"),
            codec.number(tracked_at, "tracked_at"),
            codec.number(poll_at, "poll_at"),
            self._retention_ms,
            _text_arg(traceparent or "", "traceparent"),
        ]
        self._ready()
        async with self._bounded("schedule a poll"):
            await self._schedule(keys=[*self._entry_keys(request_id), self._keys.expiry], args=args)

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
            self._retention_ms,
            self._keys.entry(""),
        ]
        self._ready()
        if limit < 1:
            return []
        async with self._bounded("claim due polls"):
            rows = await self._claim(keys=[self._keys.pending, self._keys.expiry], args=args)
        return [codec.pending_from_row(row) for row in rows]

    async def reschedule(self, request_id: str, *, next_poll_at: float, attempts: int) -> None:
        """Set a request's next poll time and attempts and release its lease (no-op if gone)."""
        args: _Args = [
            _text_arg(request_id, "request_id"),
            codec.number(next_poll_at, "next_poll_at"),
            int(attempts),
            self._retention_ms,
        ]
        self._ready()
        async with self._bounded("reschedule a poll"):
            keys = [*self._entry_keys(request_id), self._keys.expiry]
            await self._reschedule(keys=keys, args=args)

    async def unschedule(self, request_id: str) -> None:
        """Stop polling a request (no-op if it is not scheduled)."""
        self._ready()
        async with self._bounded("unschedule a poll"):
            await self._unschedule(keys=self._entry_keys(request_id), args=[request_id])

    def _entry_keys(self, request_id: str) -> list[str]:
        return [self._keys.pending, self._keys.entry(request_id)]

    # --- group commit (_redis_batches.py) ------------------------------------------------------

    async def _merge_batch(self, calls: list[Call]) -> Any:
        keys, slots, payload = [self._keys.events, self._keys.expiry], dict[str, int](), []
        for call in calls:
            for update, fields in zip(call.updates, call.fields, strict=True):
                slot = slots.get(update.request_id)
                if slot is None:
                    keys.append(self._keys.state(update.request_id))
                    slot = slots[update.request_id] = len(keys)
                payload.append([slot, *fields])
        encoded = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        # Given up when its last caller is: nobody waits for an answer after that.
        async with self._bounded("apply updates", until=calls[-1].deadline):
            reply = await self._merge(
                keys=keys, args=[self.max_events, self._retention_ms, encoded]
            )
        return json.loads(reply)

    # --- helpers -----------------------------------------------------------------------------

    def _bounded(
        self, action: str, until: float | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """:func:`~._redis_errors.translated`, giving up after ``timeout`` seconds, or at loop
        time ``until`` (StoreUnavailableError); counted as in flight until it ends
        (:meth:`aclose` waits for it)."""
        deadline = asyncio.timeout(self.timeout) if until is None else asyncio.timeout_at(until)
        return errors.bounded(
            deadline,
            self.timeout,
            self._redis,
            self._where,
            action,
            _FULL,
            within=self._calls.tracked(),
        )

    def _late(self) -> StoreUnavailableError:
        """The error of an ``apply_events`` whose deadline passed before Redis answered."""
        return StoreUnavailableError(
            f"Redis at {self._where} did not answer within {self.timeout:g} s, could not apply"
            " updates (they may or may not be recorded)"
        )

    def _translated(self, action: str) -> contextlib.AbstractContextManager[None]:
        """Turn redis-py's errors into the store's, without secrets."""
        return errors.translated(self._redis, self._where, action, _FULL)


def _text_arg(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value
