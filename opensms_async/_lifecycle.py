"""One lifecycle for everything that opens and closes: ``async with`` is ``open()`` + ``aclose()``.

Modelled on httpx's ``ClientState``: the state is explicit (:class:`LifecycleState`) and only moves
forward, ``UNOPENED`` → ``OPEN`` → ``CLOSED`` (or ``UNOPENED`` → ``CLOSED``). The rules, the same
for the client, the tracker and every store (and for whatever comes next, the inbox):

* ``aclose()`` is idempotent and closes from any state: an object never opened, or whose
  ``open()`` failed or was cancelled half-way, releases whatever it holds;
* ``open()`` on a closed object raises: create a new one;
* ``open()`` on an open object raises, except for classes that set ``_open_twice``: the stores,
  which a user may open and then hand to a ``DeliveryTracker`` that opens them again (the second
  ``open()`` does nothing);
* using an object that is not open raises, saying what to do (the client alone may be used
  unopened, as httpx's may: it checks only for "closed");
* concurrent ``open()`` calls run the opening once (the others wait for it), and an
  ``aclose()`` during an ``open()`` waits for it to finish.

The errors are ``_lifecycle_error``: RuntimeError by default, StoreError for the stores (so that a
receiver whose store was closed under it answers 503).
"""

from __future__ import annotations

import asyncio
import enum
from types import TracebackType
from typing import ClassVar, Self

__all__ = ["AsyncContext", "Lifecycle", "LifecycleState"]


class LifecycleState(enum.Enum):
    """Where an object is in its life; it only moves forward."""

    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


OPEN = LifecycleState.OPEN
CLOSED = LifecycleState.CLOSED


class AsyncContext:
    """``async with x`` as ``await x.open()`` then ``await x.aclose()``, for anything that has
    those two (a :class:`Lifecycle`, or a wrapper that hands them to what it wraps)."""

    async def open(self) -> None:
        """Open."""

    async def aclose(self) -> None:
        """Close."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Lifecycle(AsyncContext):
    """``open()``/``aclose()``/``async with`` on top of two hooks, :meth:`_open` and
    :meth:`_aclose`; see the module docstring for the rules.

    Hot paths test ``self._state is not OPEN`` themselves and raise :meth:`_unusable`.
    """

    _state: LifecycleState = LifecycleState.UNOPENED
    _open_twice: ClassVar[bool] = False
    """True: a second ``open()`` of an open object does nothing (instead of raising)."""
    _lifecycle_error: ClassVar[type[Exception]] = RuntimeError
    _lifecycle_lock: asyncio.Lock | None = None

    @property
    def is_open(self) -> bool:
        """True between a successful ``open()`` and ``aclose()``."""
        return self._state is OPEN

    async def open(self) -> None:
        """Open (see the class for what opening twice or after closing does)."""
        self._check_openable()
        async with self._lock():
            self._check_openable()  # again: another open() may have finished meanwhile
            if self._state is OPEN:
                return
            await self._open()
            self._state = OPEN

    async def aclose(self) -> None:
        """Close and release everything; idempotent."""
        if self._state is CLOSED:
            return
        async with self._lock():
            if self._state is CLOSED:
                return
            self._state = CLOSED
            await self._aclose()

    async def _open(self) -> None:
        """Take what the object needs (connect, start threads and tasks)."""

    async def _aclose(self) -> None:
        """Release what :meth:`_open` took, however far it got (the state is CLOSED already)."""

    def _check_usable(self) -> None:
        """Raise unless the object is open."""
        if self._state is not OPEN:
            raise self._unusable()

    def _unusable(self) -> Exception:
        """The error for using an object that is not open."""
        name = type(self).__name__
        if self._state is CLOSED:
            return self._lifecycle_error(f"This {name} is closed.")
        return self._lifecycle_error(
            f"This {name} is not open: use `async with {name}(...) as ...` or await its open()"
            " first."
        )

    def _check_openable(self) -> None:
        name = type(self).__name__
        if self._state is CLOSED:
            raise self._lifecycle_error(f"This {name} is closed; create a new one instead.")
        if self._state is OPEN and not self._open_twice:
            raise self._lifecycle_error(f"A {name} can be opened once; create a new one instead.")

    def _lock(self) -> asyncio.Lock:
        # Made on first use: an asyncio.Lock binds to the loop that first waits on it.
        lock = self._lifecycle_lock
        if lock is None:
            lock = self._lifecycle_lock = asyncio.Lock()
        return lock
