"""What the receiver's two endpoints share: the answer, the bounded body, the record deadline.

:class:`Endpoint` is a raw ASGI endpoint (below Starlette's Request/Response, where it pays: it is
the hot path of the receiver) that a subclass completes with :meth:`Endpoint._handle`: read the
bytes (:meth:`Endpoint._read`, refusing bodies over the limit before reading them all), check,
parse, and record (:meth:`Endpoint._record`, under the record deadline). It answers 204 once
recorded, and every refusal with a short JSON body (:class:`Refusal`), logged as a WARNING with
its reason and the sender's address (never a token); never 500.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import time
import types
from asyncio import current_task, get_running_loop
from collections.abc import Awaitable, Callable, Generator
from typing import Any, ClassVar, TypeVar

from starlette.types import Receive, Scope, Send

from ._exceptions import StoreError
from ._json import loads as parse_json
from ._telemetry import log_fields, mask_numbers
from ._telemetry_receiver import (
    MALFORMED,
    TOO_LARGE,
    UNAUTHORIZED,
    UNAVAILABLE,
    ReceiverTelemetry,
)

__all__ = [
    "CLIENT_GONE",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_RECORD_DEADLINE",
    "NOT_JSON",
    "NO_TOKEN",
    "WRONG_TOKEN",
    "Deadline",
    "Endpoint",
    "Refusal",
    "parse_json",
]

logger = logging.getLogger("opensms_async.receiver")

DEFAULT_MAX_BODY_SIZE = 64 * 1024
DEFAULT_RECORD_DEADLINE = 2.0
"""Seconds a callback's record may take before it is answered 503: BICS waits a few seconds."""

_DEADLINE_SLICES = 16
"""The deadline's resolution: a record is abandoned between 15/16 of the deadline and all of it."""

_T = TypeVar("_T")


class Refusal:
    """An answer other than a plain 204: its status, and a short JSON body saying why.

    Built once (module constants, or per endpoint for what names its settings): a refusal costs
    no encoding, and the body is a fixed phrase, never anything the sender sent. One of status
    204 is no refusal but a 204 with an outcome of its own (an inbound message recorded already:
    ``duplicate``), answered with no body like any 204.
    """

    __slots__ = ("body", "error", "headers", "outcome", "reason", "status")

    def __init__(self, status: int, error: str, reason: str, outcome: str) -> None:
        self.status = status
        self.error = error
        self.reason = reason
        self.outcome = outcome
        """``opensms.outcome`` of a request so answered (DESIGN.md's bounded values)."""
        if status == 204:
            self.body = b""
            self.headers: tuple[tuple[bytes, bytes], ...] = ()
            return
        self.body = json.dumps({"error": error, "reason": reason}).encode()
        self.headers = (
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
        )

    def __repr__(self) -> str:
        return f"Refusal({self.status}, {self.error!r}, {self.reason!r})"


NOT_JSON = Refusal(400, "not_json", "the body is not JSON", MALFORMED)
CLIENT_GONE = Refusal(400, "incomplete", "the connection closed before the body ended", MALFORMED)
NO_TOKEN = Refusal(401, "unauthorized", "missing security token", UNAUTHORIZED)
WRONG_TOKEN = Refusal(401, "unauthorized", "wrong security token", UNAUTHORIZED)
_STORE_FAILED = Refusal(
    503, "not_recorded", "the store could not record it; retry later", UNAVAILABLE
)
_STOPPING = Refusal(503, "not_recorded", "the server is stopping; retry later", UNAVAILABLE)
_UNEXPECTED = Refusal(503, "not_recorded", "an unexpected error; retry later", UNAVAILABLE)


class Endpoint:
    """A receiver endpoint; subclasses give :meth:`_handle` (and :attr:`what`, for log lines,
    :attr:`operation`, for their structured fields, and their telemetry)."""

    what: ClassVar[str] = "callback"
    """What the endpoint receives, as log lines and the health route name it."""
    operation: ClassVar[str] = "callback"
    """The ``operation`` field of the endpoint's log records."""

    def __init__(
        self, *, max_body_size: int, record_deadline: float, telemetry: ReceiverTelemetry
    ) -> None:
        if not (isinstance(record_deadline, int | float) and 0 < record_deadline < math.inf):
            raise ValueError(f"record_deadline must be a positive number, not {record_deadline!r}")
        self._max = max_body_size
        self._deadline = Deadline(record_deadline)
        self._too_large = Refusal(
            413, "too_large", f"the body is over {max_body_size} bytes", TOO_LARGE
        )
        self._too_slow = Refusal(
            503,
            "not_recorded",
            f"not recorded within {record_deadline:g} s; retry later",
            UNAVAILABLE,
        )
        self._telemetry = telemetry
        self.failed_at: float | None = None
        """``time.monotonic()`` when the last record attempt failed; None once one succeeded."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        seen = self._telemetry.start()  # its span and count; None unless an SDK records
        try:
            refusal = await self._handle(scope, receive)
        except asyncio.CancelledError:
            # Cancelled before an answer: uvicorn's graceful shutdown ran out (a body still
            # arriving, a record still running). uvicorn would answer 500; nothing was recorded,
            # so it is a 503, and this request ends here: the cancellation is consumed.
            logger.warning(
                "%s not recorded (the server is stopping), answering 503",
                self.what,
                extra=self._fields(_STOPPING),
            )
            refusal = _STOPPING
        except Exception:
            # A bug (in parsing, say) is logged and answered 503, as a failed record is.
            logger.exception(
                "%s not recorded (unexpected error), answering 503",
                self.what,
                extra=self._fields(_UNEXPECTED),
            )
            refusal = _UNEXPECTED
        if seen is not None:  # the answer is decided: the span ends as it is sent
            seen.end(refusal)
        # Answer on the loop's next turn: callbacks that arrive together are then all recorded
        # first and all answered together, so the server reads and writes its sockets in batches
        # (less CPU per callback under concurrent load, for one more turn of the loop each).
        try:  # noqa: SIM105 - the hot path: a try costs nothing, contextlib.suppress does
            await _next_turn()
        except asyncio.CancelledError:
            pass  # answer what was decided: a recorded callback still gets its 204
        if refusal is None:  # recorded: 204, no body
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await send(
            {
                "type": "http.response.start",
                "status": refusal.status,
                "headers": list(refusal.headers),
            }
        )
        await send({"type": "http.response.body", "body": refusal.body})

    async def _handle(self, scope: Scope, receive: Receive) -> Refusal | None:
        """None once the request is recorded, else the refusal to answer."""
        raise NotImplementedError

    def _refused(self, scope: Scope, refusal: Refusal, detail: object = None) -> Refusal:
        """Log ``refusal`` (WARNING: a sender with a wrong token or a bad body shows here). The
        detail (a parse error's message, which may quote the body) has its numbers masked."""
        client = scope.get("client")
        origin = f" from {client[0]}" if client else ""
        why = refusal.reason if detail is None else f"{refusal.reason}: {mask_numbers(str(detail))}"
        logger.warning(
            "%s refused (%s %s)%s: %s",
            self.what,
            refusal.status,
            refusal.error,
            origin,
            why,
            extra=self._fields(refusal),
        )
        return refusal

    def _fields(self, refusal: Refusal) -> dict[str, object]:
        """The ``extra=`` of a record about a request answered ``refusal``."""
        return log_fields(self.operation, http_status=refusal.status, outcome=refusal.outcome)

    async def _read_json(
        self, scope: Scope, headers: dict[bytes, bytes], receive: Receive
    ) -> object:
        """The body parsed as JSON, else the :class:`Refusal` to answer, logged: 413 over the
        limit (refused before the body is read whole), 400 for a body that is not JSON, or for
        a sender gone before its body ended. No JSON value is a Refusal, so the caller tells
        them apart with ``type(x) is Refusal``: one call per request, no exception on the way."""
        declared = headers.get(b"content-length")
        if declared is not None and _declared_over(declared, self._max):
            return self._refused(scope, self._too_large)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                logger.info(
                    "%s abandoned: the sender closed the connection mid-body",
                    self.what,
                    extra=self._fields(CLIENT_GONE),
                )
                return CLIENT_GONE  # nobody reads this answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                return self._refused(scope, self._too_large)
            if not message.get("more_body", False):
                break
            chunks.append(chunk)
        try:
            return parse_json(b"".join([*chunks, chunk]) if chunks else chunk)  # mostly one message
        except (ValueError, RecursionError):
            return self._refused(scope, NOT_JSON)

    async def _record(self, record: Callable[[_T], Awaitable[object]], items: _T) -> Refusal | None:
        """``await record(items)`` under the record deadline; None once it returned (or what it
        returned when that is a :class:`Refusal`: a 204 with an outcome of its own)."""
        # The deadline's bookkeeping inline, with one loop lookup: it runs for every request.
        loop = get_running_loop()
        task = current_task(loop)
        if task is None:  # pragma: no cover - an ASGI app always runs in a task
            raise RuntimeError("the receiver runs in an asyncio task")
        deadline = self._deadline
        if deadline.timer is None or deadline.loop is not loop:
            deadline.start(loop)
        watched = deadline.newest
        watched.add(task)
        try:
            recorded = await record(items)
        except asyncio.CancelledError:
            if not deadline.expired(task):
                raise  # not ours: the server is stopping
            task.uncancel()
            logger.error(
                "%s not recorded within %s s, answering 503",
                self.what,
                deadline.seconds,
                extra=self._fields(self._too_slow),
            )
            return self._failed(self._too_slow)
        except StoreError as exc:
            logger.error(
                "%s not recorded, answering 503: %s",
                self.what,
                mask_numbers(str(exc)),
                extra=self._fields(_STORE_FAILED),
            )
            return self._failed(_STORE_FAILED)
        except Exception:
            # Never a 500: 503 says "try later".
            logger.exception(
                "%s not recorded (unexpected error), answering 503",
                self.what,
                extra=self._fields(_UNEXPECTED),
            )
            return self._failed(_UNEXPECTED)
        finally:
            watched.discard(task)
        if self.failed_at is not None:
            self.failed_at = None
        return recorded if type(recorded) is Refusal else None

    def _failed(self, refusal: Refusal) -> Refusal:
        self.failed_at = time.monotonic()
        return refusal


class Deadline:
    """Cancels the records still running ``seconds`` after they started, with one timer for all.

    An ``asyncio.timeout`` per callback would cost a timer handle per callback, on the receiver's
    hot path. Instead, a record joins :attr:`newest`, the newest of ``_DEADLINE_SLICES`` sets,
    and leaves it when done; a timer that ticks every slice of the deadline while any record is
    in flight retires the oldest set, cancelling what is still in it. A record is thus abandoned
    between 15/16 of the deadline and the deadline.
    """

    __slots__ = ("_expired", "_ring", "_slice", "loop", "newest", "seconds", "timer")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._slice = seconds / _DEADLINE_SLICES
        self._ring: collections.deque[set[asyncio.Task[Any]]] = collections.deque(
            set() for _ in range(_DEADLINE_SLICES)
        )
        self.newest = self._ring[-1]
        """The set a record starting now joins (and discards itself from when it ends)."""
        self._expired: set[asyncio.Task[Any]] = set()
        self.timer: asyncio.TimerHandle | None = None
        """The pending tick; None when nothing is in flight."""
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start ticking on ``loop``, before a record joins :attr:`newest` with no timer running."""
        if loop is not self.loop:  # what was in flight on another (ended) loop is gone
            for watched in self._ring:
                watched.clear()
            self._expired.clear()
            self.loop = loop
        # Otherwise nothing is in flight: the timer stops only once every set is empty.
        self.timer = loop.call_later(self._slice, self._tick)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """True (once) if this deadline cancelled ``task``."""
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def _tick(self) -> None:
        ring = self._ring
        oldest = ring.popleft()
        self.newest = set()
        ring.append(self.newest)
        # A record that swallowed its cancellation never asked expired(): forget it.
        self._expired = {task for task in self._expired if not task.done()}
        for task in oldest:
            self._expired.add(task)
            task.cancel()
        if any(ring) and self.loop is not None:
            self.timer = self.loop.call_later(self._slice, self._tick)
        else:
            self.timer = None


@types.coroutine
def _next_turn() -> Generator[None, None, None]:
    """``asyncio.sleep(0)`` as it ends up (a bare yield: the task steps again on the loop's next
    turn), without its two coroutines: it runs once per request."""
    yield


def _declared_over(declared: bytes, limit: int) -> bool:
    """True for a Content-Length that is not a decimal number, or one over ``limit``."""
    digits = declared.lstrip(b"0")
    # Never int() thousands of digits: Python refuses them (ValueError), and they are over anyway.
    return not declared.isdigit() or len(digits) > 18 or int(digits or b"0") > limit
