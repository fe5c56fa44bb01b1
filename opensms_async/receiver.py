"""The callback receiver: a Starlette app that records BICS delivery-info callbacks.

The endpoint is a thin edge over the framework-free core in ``_webhook.py``: read the bytes
(refusing bodies over the limit before reading them all) → find and check the token (constant-time,
on bytes) → parse → record in the tracker → answer. It answers 2xx only after the store has recorded
the update, because BICS never retries a callback; when the store cannot record, 503.

| answer | when |
|---|---|
| 204 | recorded |
| 400 | the body is not JSON |
| 401 | the token is missing or wrong (nothing is stored) |
| 413 | the body is over ``max_body_size`` |
| 415 | (never: any content type is read as JSON, since senders differ) |
| 422 | JSON, but not a delivery-info callback |
| 503 | not recorded: the store failed or took over ``record_deadline``, or the server stopped |

Every answer but 204 carries a short JSON body, ``{"error": "unauthorized", "reason": "wrong
security token"}``, a fixed phrase that never quotes the token or the body; the 204 has no body.
Each refusal is logged as a WARNING with its reason and the sender's address (never the token),
so that a wrong token shows on the receiving side.

Never 500, from any path: a record that outlives ``record_deadline`` (a hung Redis, a SQLite file
locked by another process) is abandoned and answered 503 while the sender still waits, and a
callback cancelled before it was answered (uvicorn's graceful shutdown ran out while its body was
still arriving, say) is answered 503 by the endpoint itself rather than 500 by uvicorn.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import time
from asyncio import current_task, get_running_loop
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ._exceptions import StoreError
from ._telemetry import log_fields, mask_numbers
from ._telemetry_receiver import (
    INVALID,
    MALFORMED,
    TOO_LARGE,
    UNAUTHORIZED,
    UNAVAILABLE,
    ReceiverTelemetry,
)
from ._tracker import DeliveryTracker
from ._webhook import (
    CallbackPayloadError,
    cached_url_ids,
    encode_token,
    find_token,
    parse_callback,
    token_matches,
)

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_RECORD_DEADLINE",
    "CallbackEndpoint",
    "create_receiver_app",
]

logger = logging.getLogger("opensms_async.receiver")

DEFAULT_MAX_BODY_SIZE = 64 * 1024
DEFAULT_RECORD_DEADLINE = 2.0
"""Seconds a callback's record may take before it is answered 503: BICS waits a few seconds."""

_DEADLINE_SLICES = 16
"""The deadline's resolution: a record is abandoned between 15/16 of the deadline and all of it."""
_PROBE_TIMEOUT = 1.0
"""Longest a health check waits for the store to answer its read."""
_PROBE_TTL = 1.0
"""How long a probe's outcome answers health checks: at most one probe a second, however many
load balancers ask."""
_FAILED_RECORD_MEMORY = 5.0
"""Seconds a callback that could not be recorded keeps ``/healthz`` at 503 (a record that
succeeds ends it at once). A read cannot see every fault that stops writes (another process
holding SQLite's write lock, a full disk), and a load balancer that took the receiver out sends
no callback to tell it recovered: after this long the probe alone decides again."""


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


class _Refusal:
    """An answer other than 204: its status, and a short JSON body saying why.

    Built once (module constants, or per endpoint for what names its settings): a refusal costs
    no encoding, and the body is a fixed phrase, never anything the sender sent.
    """

    __slots__ = ("body", "error", "headers", "outcome", "reason", "status")

    def __init__(self, status: int, error: str, reason: str, outcome: str) -> None:
        self.status = status
        self.error = error
        self.reason = reason
        self.outcome = outcome
        """``opensms.outcome`` of a callback so answered (DESIGN.md's bounded values)."""
        self.body = json.dumps({"error": error, "reason": reason}).encode()
        self.headers = (
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
        )

    def __repr__(self) -> str:
        return f"_Refusal({self.status}, {self.error!r}, {self.reason!r})"


_NOT_JSON = _Refusal(400, "not_json", "the body is not JSON", MALFORMED)
_CLIENT_GONE = _Refusal(400, "incomplete", "the connection closed before the body ended", MALFORMED)
_NO_TOKEN = _Refusal(401, "unauthorized", "missing security token", UNAUTHORIZED)
_WRONG_TOKEN = _Refusal(401, "unauthorized", "wrong security token", UNAUTHORIZED)
_NOT_A_CALLBACK = _Refusal(422, "not_a_callback", "not a delivery-info callback", INVALID)
_STORE_FAILED = _Refusal(
    503, "not_recorded", "the store could not record it; retry later", UNAVAILABLE
)
_STOPPING = _Refusal(503, "not_recorded", "the server is stopping; retry later", UNAVAILABLE)
_UNEXPECTED = _Refusal(503, "not_recorded", "an unexpected error; retry later", UNAVAILABLE)


def _refused(scope: Scope, refusal: _Refusal, detail: object = None) -> _Refusal:
    """Log ``refusal`` (WARNING: a sender with a wrong token or a bad body shows here). The
    detail (a parse error's message, which may quote the body) has its numbers masked."""
    client = scope.get("client")
    origin = f" from {client[0]}" if client else ""
    why = refusal.reason if detail is None else f"{refusal.reason}: {mask_numbers(str(detail))}"
    logger.warning(
        "callback refused (%s %s)%s: %s",
        refusal.status,
        refusal.error,
        origin,
        why,
        extra=_fields(refusal),
    )
    return refusal


def _fields(refusal: _Refusal) -> dict[str, object]:
    """The ``extra=`` of a record about a callback answered ``refusal``."""
    return log_fields("callback", http_status=refusal.status, outcome=refusal.outcome)


class CallbackEndpoint:
    """The raw ASGI endpoint behind the callback route (below Starlette's Request/Response,
    where it pays: this is the hot path of the receiver)."""

    def __init__(
        self,
        tracker: DeliveryTracker,
        tokens: Sequence[str],
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        record_deadline: float = DEFAULT_RECORD_DEADLINE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not tokens or not all(isinstance(t, str) and t for t in tokens):
            raise ValueError("A receiver needs a non-empty security token; it never accepts all.")
        if not (isinstance(record_deadline, int | float) and 0 < record_deadline < math.inf):
            raise ValueError(f"record_deadline must be a positive number, not {record_deadline!r}")
        self._tracker = tracker
        self._tokens = [encode_token(t) for t in tokens]
        self._max = max_body_size
        self._clock = clock
        self._url_ids = cached_url_ids()
        self._deadline = _Deadline(record_deadline)
        self._too_large = _Refusal(
            413, "too_large", f"the body is over {max_body_size} bytes", TOO_LARGE
        )
        self._too_slow = _Refusal(
            503,
            "not_recorded",
            f"not recorded within {record_deadline:g} s; retry later",
            UNAVAILABLE,
        )
        self._telemetry = ReceiverTelemetry()
        self.failed_at: float | None = None
        """``time.monotonic()`` when the last record attempt failed; None once one succeeded."""

    def __repr__(self) -> str:
        return f"CallbackEndpoint(tokens={len(self._tokens)}, max_body_size={self._max})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        seen = self._telemetry.start()  # its span and count; None unless an SDK records
        try:
            refusal = await self._handle(scope, receive)
        except asyncio.CancelledError:
            # Cancelled before an answer: uvicorn's graceful shutdown ran out (a body still
            # arriving, a record still running). uvicorn would answer 500; the callback was not
            # recorded, so it is a 503, and this request ends here: the cancellation is consumed.
            logger.warning(
                "callback not recorded (the server is stopping), answering 503",
                extra=_fields(_STOPPING),
            )
            refusal = _STOPPING
        except Exception:
            # A bug (in parsing, say) is logged and answered 503, as a failed record is.
            logger.exception(
                "callback not recorded (unexpected error), answering 503",
                extra=_fields(_UNEXPECTED),
            )
            refusal = _UNEXPECTED
        if seen is not None:  # the answer is decided: the span ends as it is sent
            seen.end(refusal)
        # Answer on the loop's next turn. Callbacks that arrive together are then all recorded
        # first and all answered together, so the server reads and writes its sockets in
        # batches: under concurrent load that cuts the server's CPU per callback by about a
        # third (bench/bench_receiver.py), for one more turn of the loop (~10 µs) per answer.
        try:  # noqa: SIM105 - the hot path: a try costs nothing, contextlib.suppress does
            await asyncio.sleep(0)
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

    async def _handle(self, scope: Scope, receive: Receive) -> _Refusal | None:
        """None once the callback is recorded, else the refusal to answer."""
        headers = dict(scope["headers"])
        try:
            body = await self._read(headers, receive)
        except _BodyTooLarge:
            return _refused(scope, self._too_large)
        except _ClientGone:
            logger.info(
                "callback abandoned: the sender closed the connection mid-body",
                extra=_fields(_CLIENT_GONE),
            )
            return _CLIENT_GONE  # nobody reads this answer
        try:
            payload = _json(body)
        except (ValueError, RecursionError):
            return _refused(scope, _NOT_JSON)
        presented = find_token(payload, headers.get(b"authorization"))
        if not token_matches(presented, self._tokens):
            return _refused(scope, _NO_TOKEN if presented is None else _WRONG_TOKEN)
        try:
            updates = parse_callback(payload, received_at=self._clock(), url_ids=self._url_ids)
        except CallbackPayloadError as exc:
            return _refused(scope, _NOT_A_CALLBACK, exc)
        return await self._record(updates)

    async def _read(self, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        declared = headers.get(b"content-length")
        if declared is not None and _declared_over(declared, self._max):
            raise _BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone  # nothing to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                raise _BodyTooLarge
            if not message.get("more_body", False):
                return b"".join([*chunks, chunk]) if chunks else chunk  # mostly one message
            chunks.append(chunk)

    async def _record(self, updates: Any) -> _Refusal | None:
        # The deadline's bookkeeping inline, with one loop lookup: it runs for every callback.
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
            await self._tracker.ingest(updates)
        except asyncio.CancelledError:
            if not deadline.expired(task):
                raise  # not ours: the server is stopping
            task.uncancel()
            logger.error(
                "callback not recorded within %s s, answering 503",
                deadline.seconds,
                extra=_fields(self._too_slow),
            )
            return self._failed(self._too_slow)
        except StoreError as exc:
            logger.error(
                "callback not recorded, answering 503: %s",
                mask_numbers(str(exc)),
                extra=_fields(_STORE_FAILED),
            )
            return self._failed(_STORE_FAILED)
        except Exception:
            # Never a 500: BICS would drop the callback either way, and 503 says "try later".
            logger.exception(
                "callback not recorded (unexpected error), answering 503",
                extra=_fields(_UNEXPECTED),
            )
            return self._failed(_UNEXPECTED)
        finally:
            watched.discard(task)
        if self.failed_at is not None:
            self.failed_at = None
        return None

    def _failed(self, refusal: _Refusal) -> _Refusal:
        self.failed_at = time.monotonic()
        return refusal


class _Deadline:
    """Cancels the records still running ``seconds`` after they started, with one timer for all.

    An ``asyncio.timeout`` per callback costs a timer handle per callback: 14% more instructions
    per callback in the receiver's server (uvicorn, uvloop; counted with valgrind), where this
    costs 1.3%. Instead, a record joins :attr:`newest`, the newest of ``_DEADLINE_SLICES`` sets,
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


_DECODER = json.JSONDecoder()
_JSON_WHITESPACE = " \t\n\r"


def _json(body: bytes) -> object:
    """``json.loads(body)``, minus the wrappers that cost as much as the parse of a callback.

    A body opening with ``{`` and no NUL byte after it is UTF-8 to ``json.loads`` (no BOM, not
    UTF-16/32); parsed whole with nothing but JSON whitespace after it (senders often end with a
    newline), the answer is the same. Anything else takes the standard path, which decides.
    """
    if body[:1] == b"{" and body[1:2] != b"\x00":
        text = body.decode("utf-8", "surrogatepass")
        payload, end = _DECODER.raw_decode(text)
        if end == len(text) or not text[end:].strip(_JSON_WHITESPACE):
            return payload
    return json.loads(body)


def _declared_over(declared: bytes, limit: int) -> bool:
    """True for a Content-Length that is not a decimal number, or one over ``limit``."""
    digits = declared.lstrip(b"0")
    # Never int() thousands of digits: Python refuses them (ValueError), and they are over anyway.
    return not declared.isdigit() or len(digits) > 18 or int(digits or b"0") > limit


def create_receiver_app(
    tracker: DeliveryTracker,
    security_token: str | Sequence[str],
    path: str = "/sms/callback",
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    record_deadline: float = DEFAULT_RECORD_DEADLINE,
    health_path: str = "/healthz",
    manage_tracker: bool = True,
    metrics: bool = False,
    metrics_path: str = "/metrics",
) -> Starlette:
    """A Starlette app that records delivery-info callbacks into ``tracker``.

    ``security_token`` is the subscription's token; give a list of two to rotate without downtime.
    Run it alone (``uvicorn``) or mount it in an existing Starlette/FastAPI app. Run alone with
    ``manage_tracker=True``, its lifespan opens the tracker if it is not open yet and closes what
    it opened; a mounted app's lifespan does not run, so open the tracker in your own lifespan.

    A callback gets 204 (no body) only once the store has recorded it; every other answer has
    a short JSON body, ``{"error": ..., "reason": ...}``, and is logged as a WARNING with its
    reason (never the token). A record that takes longer than
    ``record_deadline`` seconds (default 2; BICS waits a few seconds for an answer) is abandoned
    and the callback answered 503, whatever the store: a hung Redis, a SQLite file locked by
    another process. The abandoned write may still land after the 503; that is harmless, since
    the merge is idempotent and a state only advances. Run under uvicorn, give its graceful
    shutdown (``timeout_graceful_shutdown``) more than ``record_deadline``, so that the records
    in flight at shutdown finish; whatever it still cancels is answered 503, never 500.

    ``GET health_path`` answers 200 ``{"status": "ok"}`` while the store can record, and 503
    with a ``status`` and a short ``reason`` otherwise: before the tracker is open, after a
    callback could not be recorded (for a few seconds, or until one is), or when the store does
    not answer a small read (its newest cursor) within a second. The read is made at most once a
    second, however often a load balancer asks.

    ``metrics=True`` serves OpenTelemetry's metrics for Prometheus at ``GET metrics_path``; it
    needs the ``prometheus`` extra (``opentelemetry-exporter-prometheus``), else it raises
    :class:`~opensms_async.MissingDependencyError`. When no OpenTelemetry SDK meter provider is
    set yet, it sets one exporting to Prometheus; otherwise give yours a
    ``PrometheusMetricReader``. Each process exports its own counts: do not scrape a port
    shared by ``uvicorn --workers N`` (a scrape reaches one worker); run one process per port,
    or push OTLP to a collector.
    """
    tokens = [security_token] if isinstance(security_token, str) else list(security_token)
    endpoint = CallbackEndpoint(
        tracker, tokens, max_body_size=max_body_size, record_deadline=record_deadline
    )
    health = _Health(tracker, endpoint)
    routes = [
        Route(path, endpoint, methods=["POST"]),
        Route(health_path, health.route, methods=["GET"]),
    ]
    if metrics:
        from ._telemetry_prometheus import metrics_route

        routes.append(metrics_route(metrics_path))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        opened_here = manage_tracker and not tracker.is_open
        if opened_here:
            await tracker.open()
        try:
            yield
        finally:
            if opened_here:
                await tracker.aclose()

    return _ReceiverApp(endpoint, path, routes=routes, lifespan=lifespan)


class _Health:
    """What the health route answers: can the store record now?

    Two signals: how the last record went (a failed one means "no" for
    ``_FAILED_RECORD_MEMORY`` seconds, or until a record succeeds), and a bounded read of the
    store (``last_cursor()`` within ``_PROBE_TIMEOUT``), whose outcome is kept for
    ``_PROBE_TTL``: concurrent checks share one read, so a load balancer never hammers the store.
    The read sees a store that is down or hung (Redis stopped or unreachable); the record outcome
    sees what only writes meet (SQLite's write lock held by another process, a full disk).
    """

    def __init__(self, tracker: DeliveryTracker, endpoint: CallbackEndpoint) -> None:
        self._tracker = tracker
        self._endpoint = endpoint
        self._reason: str | None = None
        self._fresh_until = -math.inf
        self._probe: asyncio.Future[str | None] | None = None

    async def route(self, request: Request) -> Response:
        """The health route's endpoint."""
        if not self._tracker.is_open:
            return JSONResponse({"status": "starting"}, status_code=503)
        reason = await self.problem()
        if reason is None:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)

    async def problem(self) -> str | None:
        """Why the store cannot record now (a fixed phrase, nothing from the store), or None."""
        failed_at = self._endpoint.failed_at
        if failed_at is not None and time.monotonic() - failed_at < _FAILED_RECORD_MEMORY:
            return "the last callback could not be recorded"
        if time.monotonic() < self._fresh_until:
            return self._reason
        probe = self._probe
        if probe is None or probe.done() or probe.get_loop() is not asyncio.get_running_loop():
            probe = self._probe = asyncio.ensure_future(self._read())
        # Shielded: a health check that gives up does not cancel the read the others share.
        return await asyncio.shield(probe)

    async def _read(self) -> str | None:
        reason: str | None = None
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT):
                await self._tracker.store.last_cursor()
        except TimeoutError:
            reason = f"the store did not answer within {_PROBE_TIMEOUT:g} s"
        except Exception as exc:  # its message could name a host: only its kind is said
            reason = f"the store failed ({type(exc).__name__})"
        self._reason = reason
        self._fresh_until = time.monotonic() + _PROBE_TTL
        return reason


class _ReceiverApp(Starlette):
    """Starlette, except that a POST to the callback path goes straight to the endpoint.

    Starlette's middleware stack and router cost about as much as the endpoint's own work
    (``bench/bench_receiver.py``), and add nothing to an endpoint that answers every error itself.
    Anything else (another path or method, the app mounted under a prefix, middleware added with
    ``add_middleware``) goes through Starlette as usual.
    """

    def __init__(self, endpoint: CallbackEndpoint, path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._endpoint = endpoint
        self._path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._is_callback(scope):
            scope["app"] = self
            await self._endpoint(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def _is_callback(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["path"] == self._path
            and scope["method"] == "POST"
            and not scope.get("root_path")
            and not self.user_middleware
        )
