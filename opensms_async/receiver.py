"""The callback receiver: a Starlette app that records BICS delivery-info callbacks, and BICS's
inbound-message callbacks into an :class:`~opensms_async.Inbox` (``_inbound_receiver.py``: the
token is ``Authorization: Bearer``, checked before the body is read; 422 for a body without a
``messageId``; a duplicate is answered 204, since it is recorded already).

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
| 422 | JSON, but not a delivery-info callback, or one with a field the update's gate refuses |
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
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ._exceptions import ValidationError
from ._inbound_receiver import InboundEndpoint
from ._inbox import Inbox
from ._lifecycle import Lifecycle
from ._receiving import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_RECORD_DEADLINE,
    NO_TOKEN,
    WRONG_TOKEN,
    Endpoint,
    Refusal,
)
from ._telemetry_receiver import INVALID, ReceiverTelemetry
from ._tracker import DeliveryTracker
from ._webhook import (
    cached_url_ids,
    callback_root,
    encode_token,
    token_in,
    token_matches,
    updates_in,
)

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_RECORD_DEADLINE",
    "CallbackEndpoint",
    "InboundEndpoint",
    "create_receiver_app",
]


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


_NOT_A_CALLBACK = Refusal(422, "not_a_callback", "not a delivery-info callback", INVALID)


class CallbackEndpoint(Endpoint):
    """The raw ASGI endpoint behind the delivery callback route (see :class:`Endpoint`)."""

    what = "callback"

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
        super().__init__(
            max_body_size=max_body_size,
            record_deadline=record_deadline,
            telemetry=ReceiverTelemetry(),  # opensms.callback, opensms.receiver.callbacks
        )
        self._tracker = tracker
        self._tokens = [encode_token(t) for t in tokens]
        self._clock = clock
        self._url_ids = cached_url_ids()

    def __repr__(self) -> str:
        return f"CallbackEndpoint(tokens={len(self._tokens)}, max_body_size={self._max})"

    async def _handle(self, scope: Scope, receive: Receive) -> Refusal | None:
        """None once the callback is recorded, else the refusal to answer."""
        headers = dict(scope["headers"])
        payload = await self._read_json(scope, headers, receive)
        if type(payload) is Refusal:
            return payload
        root = callback_root(payload)  # found once, for the token and the updates
        presented = token_in(root, headers.get(b"authorization"))
        if not token_matches(presented, self._tokens):
            return self._refused(scope, NO_TOKEN if presented is None else WRONG_TOKEN)
        try:
            updates = updates_in(root, received_at=self._clock(), url_ids=self._url_ids)
        except ValidationError as exc:  # not a callback, or a field the update's gate refuses
            return self._refused(scope, _NOT_A_CALLBACK, exc)
        # The updates are all the record needs: while it waits (a group commit, a Redis round
        # trip), the parsed body would be held for nothing, by thousands of callbacks at once
        # under load, surviving the collector's young passes to lengthen its full ones.
        del payload, headers, root
        return await self._record(self._tracker.ingest, updates)


def create_receiver_app(
    tracker: DeliveryTracker | None,
    security_token: str | Sequence[str] | None = None,
    path: str = "/sms/callback",
    *,
    inbox: Inbox | None = None,
    inbound_path: str = "/sms/inbound",
    inbound_security_token: str | Sequence[str] | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    record_deadline: float = DEFAULT_RECORD_DEADLINE,
    health_path: str = "/healthz",
    manage_tracker: bool = True,
    metrics: bool = False,
    metrics_path: str = "/metrics",
) -> Starlette:
    """A Starlette app that records delivery-info callbacks into ``tracker`` and inbound messages
    into ``inbox``: either or both (``create_receiver_app(None, inbox=inbox,
    inbound_security_token="in-tok")`` receives inbound messages only, with no delivery token).

    ``security_token`` is the delivery subscription's token, ``inbound_security_token`` the
    inbound subscription's (BICS sends it as ``Authorization: Bearer``); give a list of two to
    rotate without downtime. Run it alone (``uvicorn``) or mount it in an existing
    Starlette/FastAPI app. Run alone with ``manage_tracker=True``, its lifespan opens the tracker
    and the inbox if they are not open yet and closes what it opened; a mounted app's lifespan
    does not run, so open them in your own lifespan.

    A callback gets 204 (no body) only once the store has recorded it; every other answer has
    a short JSON body, ``{"error": ..., "reason": ...}``, and is logged as a WARNING with its
    reason (never the token). A record that takes longer than
    ``record_deadline`` seconds (default 2; BICS waits a few seconds for an answer) is abandoned
    and the callback answered 503, whatever the store: a hung Redis, a SQLite file locked by
    another process. The abandoned write may still land after the 503; that is harmless, since
    the merge is idempotent and a state only advances (and an inbound message recorded late is
    a duplicate when BICS retries it). Run under uvicorn, give its graceful shutdown
    (``timeout_graceful_shutdown``) more than ``record_deadline``, so that the records in flight
    at shutdown finish; whatever it still cancels is answered 503, never 500.

    ``GET health_path`` answers 200 ``{"status": "ok"}`` while the stores can record, and 503
    with a ``status`` and a short ``reason`` otherwise: before the tracker or inbox is open, after
    a callback could not be recorded (for a few seconds, or until one is), or when a store does
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
    endpoints = _endpoints(
        tracker, security_token, path, inbox, inbound_path, inbound_security_token,
        max_body_size=max_body_size, record_deadline=record_deadline,
    )  # fmt: skip
    managed: list[Lifecycle] = [owner for owner, _, _ in endpoints.values()]
    health = _Health(list(endpoints.values()))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        opened: list[Lifecycle] = []
        try:
            for owner in managed:
                if manage_tracker and not owner.is_open:
                    await owner.open()
                    opened.append(owner)
            yield
        finally:
            for owner in reversed(opened):
                await owner.aclose()

    routes = [Route(p, endpoint, methods=["POST"]) for p, (_, _, endpoint) in endpoints.items()]
    routes.append(Route(health_path, health.route, methods=["GET"]))
    if metrics:
        from ._telemetry_prometheus import metrics_route

        routes.append(metrics_route(metrics_path))
    return _ReceiverApp(
        {p: endpoint for p, (_, _, endpoint) in endpoints.items()},
        routes=routes,
        lifespan=lifespan,
    )


_Target = tuple[Lifecycle, Any, Endpoint]
"""What a route serves: the tracker or inbox (opened by the lifespan), its store (probed by the
health route), and its endpoint."""


def _endpoints(
    tracker: DeliveryTracker | None,
    security_token: str | Sequence[str] | None,
    path: str,
    inbox: Inbox | None,
    inbound_path: str,
    inbound_security_token: str | Sequence[str] | None,
    *,
    max_body_size: int,
    record_deadline: float,
) -> dict[str, _Target]:
    """Each path's target; ValueError for settings that cannot work together."""
    if tracker is None and inbox is None:
        raise ValueError("create_receiver_app needs a tracker, an inbox, or both")
    if tracker is None and security_token is not None:
        raise ValueError("security_token is the delivery callbacks' token: it needs a tracker")
    if inbox is None and inbound_security_token is not None:
        raise ValueError("inbound_security_token is the inbound messages' token: it needs an inbox")
    if tracker is not None and inbox is not None and path == inbound_path:
        raise ValueError(f"the callback and inbound paths must differ, both are {path!r}")
    targets: dict[str, _Target] = {}
    if tracker is not None:
        callback = CallbackEndpoint(
            tracker, _tokens(security_token), max_body_size=max_body_size,
            record_deadline=record_deadline,
        )  # fmt: skip
        targets[path] = (tracker, tracker.store, callback)
    if inbox is not None:
        inbound = InboundEndpoint(
            inbox, _tokens(inbound_security_token), max_body_size=max_body_size,
            record_deadline=record_deadline,
        )  # fmt: skip
        targets[inbound_path] = (inbox, inbox.store, inbound)
    return targets


def _tokens(token: str | Sequence[str] | None) -> list[str]:
    if token is None:
        return []
    return [token] if isinstance(token, str) else list(token)


class _Health:
    """What the health route answers: can the stores record now?

    Two signals per store: how the last record went (a failed one means "no" for
    ``_FAILED_RECORD_MEMORY`` seconds, or until a record succeeds), and a bounded read of the
    store (``last_cursor()`` within ``_PROBE_TIMEOUT``), whose outcome is kept for
    ``_PROBE_TTL``: concurrent checks share one read, so a load balancer never hammers the store.
    The read sees a store that is down or hung (Redis stopped or unreachable); the record outcome
    sees what only writes meet (SQLite's write lock held by another process, a full disk).
    """

    def __init__(self, targets: list[_Target]) -> None:
        self._targets = targets
        self._reason: str | None = None
        self._fresh_until = -math.inf
        self._probe: asyncio.Future[str | None] | None = None

    async def route(self, request: Request) -> Response:
        """The health route's endpoint."""
        if not all(owner.is_open for owner, _, _ in self._targets):
            return JSONResponse({"status": "starting"}, status_code=503)
        reason = await self.problem()
        if reason is None:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)

    async def problem(self) -> str | None:
        """Why a store cannot record now (a fixed phrase, nothing from the store), or None."""
        for _, _, endpoint in self._targets:
            failed_at = endpoint.failed_at
            if failed_at is not None and time.monotonic() - failed_at < _FAILED_RECORD_MEMORY:
                return f"the last {endpoint.what} could not be recorded"
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
                for _, store, _ in self._targets:
                    await store.last_cursor()
        except TimeoutError:
            reason = f"the store did not answer within {_PROBE_TIMEOUT:g} s"
        except Exception as exc:  # its message could name a host: only its kind is said
            reason = f"the store failed ({type(exc).__name__})"
        self._reason = reason
        self._fresh_until = time.monotonic() + _PROBE_TTL
        return reason


class _ReceiverApp(Starlette):
    """Starlette, except that a POST to an endpoint's path goes straight to the endpoint.

    Starlette's middleware stack and router are a large share of a callback's cost
    (``bench/bench_receiver.py``) and add nothing to an endpoint that answers every error itself.
    Mounted in a parent app (``Mount("/sms", receiver)``), the callback path is matched below the
    mount's prefix, as Starlette's router would match it. Anything else (another path or method,
    middleware added with ``add_middleware``) goes through Starlette as usual.
    """

    def __init__(self, endpoints: dict[str, Endpoint], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not self.user_middleware:
            root = scope.get("root_path")
            endpoint = self._endpoints.get(_below(scope["path"], root) if root else scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _below(path: str, root: str) -> str:
    """The path an app mounted at ``root`` routes on, as Starlette's router finds it: ``path``
    less its ``root`` prefix (a Mount keeps the full path in ``path`` and the prefix in
    ``root_path``), or ``path`` itself when it does not start with that prefix."""
    if path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return "" if path == root else path
