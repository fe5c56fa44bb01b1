"""``MemoryInboundStore``: the inbound log, the ids seen and the parts being joined, in memory.

Everything runs on the event loop without awaiting inside ``receive``, which makes each call
atomic. Built to remember a million ``messageId`` s in little memory
(``bench/bench_inbound.py``): an id in BICS's form (a lowercase UUID) is kept as its 16 bytes,
in one set, and forgotten by time buckets (a list of ids per slice of the retention) rather than
with a time per id.
"""

from __future__ import annotations

import collections
import heapq
import re
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, TypeAlias

from ..._inbound_message import InboundMessage, logged, logged_single
from ..._lifecycle import OPEN
from ..._reassembly import Assembled, GroupKey, Part, PartGroup, add_part, expire, group_key
from .._common import InProcessLog, Listeners, LogRun, Wakeup
from .._url_options import memory_options, positive_int
from ._base import Received

__all__ = ["DEFAULT_MAX_MESSAGES", "MemoryInboundStore"]

DEFAULT_MAX_MESSAGES: Final = 100_000
"""Messages the log retains by default; past it the oldest are dropped first."""
_BUCKETS: Final = 1000
"""Slices of the retention an id is forgotten by: an id goes at most a slice late."""
_MIN_SLICE: Final = 1.0
_EXPIRE_BATCH: Final = 1000
"""Most groups one expire() call closes (the loop is not held for long)."""
_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

_IdKey: TypeAlias = "bytes | str"


def id_key(message_id: str) -> _IdKey:
    """How an id is remembered: a lowercase UUID as its 16 bytes (49 bytes of memory instead of
    85), anything else as given. A str and bytes never compare equal, so no two ids meet."""
    if len(message_id) == 36 and _UUID.fullmatch(message_id):
        return bytes.fromhex(message_id.replace("-", ""))
    return message_id


class _Seen:
    """The ids received, each until its time is up: a set, and buckets that say when to forget."""

    __slots__ = ("_buckets", "_ids")

    def __init__(self) -> None:
        self._ids: set[_IdKey] = set()
        self._buckets: collections.deque[tuple[float, list[_IdKey]]] = collections.deque()
        """``(forget_at, ids)``, oldest first: the ids go once ``forget_at`` has come."""

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: _IdKey) -> bool:
        return key in self._ids

    def add(self, key: _IdKey, forget_at: float, slice_: float) -> None:
        """Remember ``key`` until ``forget_at`` (or up to ``slice_`` seconds longer)."""
        self._ids.add(key)
        buckets = self._buckets
        if buckets and buckets[-1][0] >= forget_at:
            buckets[-1][1].append(key)
        else:
            buckets.append((forget_at + slice_, [key]))

    def forget(self, now: float) -> None:
        """Forget every id whose time is up."""
        buckets, ids = self._buckets, self._ids
        while buckets and buckets[0][0] <= now:
            for key in buckets.popleft()[1]:
                ids.discard(key)


class _Log:
    """The newest ``max_messages`` messages; message ``n`` (cursors count from 1) sits at
    ``n - base``. Dropped messages leave the head in chunks (amortised O(1))."""

    __slots__ = ("_slack", "base", "max_messages", "messages")

    def __init__(self, max_messages: int) -> None:
        self.max_messages = max_messages
        self._slack = max(64, max_messages // 4)
        self.base = 1
        self.messages: list[InboundMessage] = []

    @property
    def next_cursor(self) -> int:
        return self.base + len(self.messages)

    @property
    def first_retained(self) -> int:
        return self.next_cursor - min(len(self.messages), self.max_messages)

    def trim(self) -> None:
        count = len(self.messages) - self.max_messages
        if count > self._slack:
            del self.messages[:count]
            self.base += count

    def read(self, after: int, limit: int) -> list[InboundMessage]:
        start = max(after + 1, self.first_retained) - self.base
        return self.messages[start : start + limit]


class MemoryInboundStore(InProcessLog[InboundMessage]):
    """An :class:`~opensms_async.stores.inbound.InboundStore` in process memory.

    Nothing survives the process. ``max_messages`` bounds the log (default
    :data:`DEFAULT_MAX_MESSAGES`): past it the oldest messages are dropped, and a reader whose
    cursor is older than the retained log resumes from the oldest retained message. Cursors are
    decimal strings counting from ``"1"``. Use it as ``async with MemoryInboundStore() as store``
    (or ``open()`` and ``aclose()``), like every store.
    """

    shared: bool = False
    _log: _Log

    def __init__(self, *, max_messages: int = DEFAULT_MAX_MESSAGES) -> None:
        if isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1:
            raise ValueError(f"max_messages must be an integer of at least 1, not {max_messages!r}")
        self._seen = _Seen()
        self._groups: dict[GroupKey, PartGroup] = {}
        self._windows: list[tuple[float, GroupKey]] = []
        """``(opened_at, key)`` of every group, a heap; an item whose group is gone or was
        opened at another time is stale and skipped."""
        self._log = _Log(max_messages)
        self._wakeup = Wakeup()
        self._listeners: Listeners[InboundMessage] = Listeners()

    @classmethod
    def from_url(cls, url: str) -> MemoryInboundStore:
        """The store ``memory://`` names (option ``?max_messages=N``; a delivery store's
        ``max_events`` is accepted and left to it); InvalidStoreURLError for anything else."""
        given = memory_options(url, {"max_events", "max_messages"})
        if "max_messages" not in given:
            return cls()
        return cls(max_messages=positive_int(url, "max_messages", given["max_messages"]))

    def __repr__(self) -> str:
        return f"MemoryInboundStore(max_messages={self._log.max_messages})"

    @property
    def max_messages(self) -> int:
        """How many messages the log retains."""
        return self._log.max_messages

    # --- receiving ---------------------------------------------------------------------------

    async def receive(
        self, parts: Sequence[Part], *, now: float, timeout: float, retention: float
    ) -> Received:
        """Dedupe, reassemble and log each part, atomically (no ``await`` inside)."""
        if self._state is not OPEN:
            raise self._unusable()
        seen, groups = self._seen, self._groups
        slice_ = max(_MIN_SLICE, retention / _BUCKETS)
        forget_at = now + retention
        mark = self._log.next_cursor
        out: LogRun[InboundMessage] = LogRun()
        duplicates = 0
        for part in parts:
            key = id_key(part.message_id)
            if key in seen:
                duplicates += 1
                continue
            gkey = group_key(part)
            if gkey is None:  # a message of its own: the common case, built directly
                seen.add(key, forget_at, slice_)
                out.append(self._append_single(part, now))
                continue
            old = groups.get(gkey)
            outcome = add_part(old, part, now, timeout=timeout)  # pure: may raise, changes nothing
            seen.add(key, forget_at, slice_)
            if outcome.group is None:
                groups.pop(gkey, None)
            else:
                groups[gkey] = outcome.group
                if old is None or old.opened_at != outcome.group.opened_at:
                    heapq.heappush(self._windows, (outcome.group.opened_at, gkey))
            out.extend(self._append(m) for m in outcome.messages)
        if out:
            # The cursor before this run (none before the first): the live buffer appends a
            # run that continues what it holds without parsing one.
            out.after = f"{mark - 1}" if mark > 1 else None
            self._logged()
            self._listeners.publish(out)
        return Received(out, duplicates)

    def _append_single(self, part: Part, now: float) -> InboundMessage:
        log = self._log
        message = logged_single(part, now, str(log.next_cursor))
        log.messages.append(message)
        return message

    def _append(self, assembled: Assembled) -> InboundMessage:
        log = self._log
        message = logged(assembled, str(log.next_cursor))
        log.messages.append(message)
        return message

    def _logged(self) -> None:
        self._log.trim()
        self._wakeup.fire()

    def listen(self, listener: Callable[[Sequence[InboundMessage]], None]) -> Callable[[], None]:
        """Hand what each ``receive`` logs to ``listener``, before it returns, in log order;
        returns the function that stops it. (What ``expire`` logs, it returns.)"""
        return self._listeners.add(listener)

    async def expire(self, now: float, *, timeout: float) -> list[InboundMessage]:
        """Log the groups whose window has ended (at most a thousand a call), forget old ids."""
        self._check_usable()
        self._seen.forget(now)
        windows, groups = self._windows, self._groups
        out: list[InboundMessage] = []
        while windows and windows[0][0] + timeout <= now and len(out) < _EXPIRE_BATCH:
            opened_at, gkey = heapq.heappop(windows)
            group = groups.get(gkey)
            if group is None or group.opened_at != opened_at:
                continue  # stale: yielded or replaced since
            outcome = expire(group, now, timeout=timeout)
            groups.pop(gkey)
            out.extend(self._append(m) for m in outcome.messages)
        if out:
            self._logged()
        return out

    async def remembers(self, message_id: str) -> bool:
        """True while ``message_id`` is remembered."""
        self._check_usable()
        return id_key(message_id) in self._seen

    @property
    def remembered(self) -> int:
        """How many ids are remembered now (for tests and the memory benchmark)."""
        return len(self._seen)

    # --- the log -----------------------------------------------------------------------------

    def read_messages(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> Coroutine[Any, Any, list[InboundMessage]]:
        """Up to ``limit`` messages after cursor ``after`` (None: the oldest retained); with
        ``timeout`` > 0, waits up to that long for one when there is none."""
        return self._read_log(after, limit, timeout)
