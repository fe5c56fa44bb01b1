"""The one small interface every inbound store implements (memory, SQLite, Redis).

An inbound store keeps three things: the ``messageId`` s it has received (for dedupe, each until
the ``retention`` given with it has passed), the parts of long messages still being reassembled
(one group per key of :func:`~opensms_async._reassembly.group_key`), and an append-only log of
the messages that came out (:class:`~opensms_async._inbound_message.InboundMessage`, under
increasing cursors). :meth:`InboundStore.receive` does everything one part needs in one atomic
step per part: the dedupe check, the reassembly rule of :mod:`opensms_async._reassembly` and the
log append, so that concurrent receivers (and replicas, on a shared store) never log a message
twice nor lose a part. Every method may raise :class:`StoreError`; ``receive`` raises
:class:`StoreUnavailableError` when it recorded nothing, so the receiver can answer 503.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import attrs

from ..._inbound_message import InboundMessage
from ..._reassembly import Part

__all__ = ["InboundStore", "Received"]


@attrs.frozen
class Received:
    """What :meth:`InboundStore.receive` did: the messages it logged (oldest first) and how many
    of the parts were duplicates (their ``messageId`` was remembered: nothing was done)."""

    messages: list[InboundMessage]
    duplicates: int = 0


@runtime_checkable
class InboundStore(Protocol):
    """Durable (or not) home of the inbound log, the ids seen and the parts being joined."""

    shared: bool
    """True when other processes may append to the log too (it must be read from the store)."""

    async def open(self) -> None:
        """Connect, create the schema; idempotent."""

    async def aclose(self) -> None:
        """Flush and release resources; idempotent."""

    async def __aenter__(self) -> Self:
        """``open()``; the store itself."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """``aclose()``."""

    async def receive(
        self, parts: Sequence[Part], *, now: float, timeout: float, retention: float
    ) -> Received:
        """Record ``parts`` (received at ``now``), in order, each atomically: a part whose
        ``messageId`` is remembered is a duplicate; any other is remembered until ``now +
        retention`` and taken into reassembly (window ``timeout``), and what that yields is
        logged. When this returns, the parts are as durable as the store promises."""
        ...

    async def expire(self, now: float, *, timeout: float) -> list[InboundMessage]:
        """Log the groups whose window (``timeout``) has ended by ``now`` (incomplete), and
        forget the ids whose retention has passed; a bounded amount of work per call. Returns
        the messages logged, oldest first."""
        ...

    async def read_messages(
        self, after: str | None, *, limit: int = 1000, timeout: float = 0.0
    ) -> list[InboundMessage]:
        """Up to ``limit`` messages after cursor ``after`` (None: from the oldest retained),
        oldest first. With ``timeout`` > 0, waits up to that many seconds for one when there is
        none."""
        ...

    async def last_cursor(self) -> str | None:
        """The cursor of the newest logged message, or None for an empty log."""
        ...

    def cursor_key(self, cursor: str) -> tuple[int, int]:
        """A sortable key for a cursor of this store; raises ValueError for a malformed one."""
        ...

    async def remembers(self, message_id: str) -> bool:
        """True while ``message_id`` is remembered (received, and its retention not passed)."""
        ...
