"""Faults injected into the simulator at runtime, and the ASGI layer that applies them.

A test adds :class:`Fault` objects (from any thread); each request takes the first fault that
matches its endpoint, and the fault is used up after ``times`` requests. The layer also keeps the
request log the tests assert on.

Dropping a connection from ASGI: the layer starts a response whose ``Content-Length`` promises a
body it never sends, then returns. uvicorn closes the socket and the client sees a connection
error (httpx ``RemoteProtocolError``), not an HTTP status. uvicorn reports that as an application
error on its ``uvicorn.error`` logger; :class:`_DeliberateDropFilter` silences exactly those
records, marked by a context variable set in the request's own task.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import logging
import re
import threading
from collections.abc import Callable
from typing import Literal

import attrs
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "Endpoint",
    "Fault",
    "FaultAction",
    "FaultInjector",
    "FaultList",
    "RequestRecord",
    "endpoint_classifier",
    "install_drop_filter",
]

Endpoint = Literal[
    "send",
    "poll",
    "subscription",
    "token",
    "inbound_subscription",
    "inbound_messages",
    "conversion",
    "any",
]
"""What a fault applies to; ``"any"`` matches every request, including unknown paths.
``"conversion"`` is both ``/conversions`` and ``/conversionsinfos``."""

_ENDPOINTS = (
    "send",
    "poll",
    "subscription",
    "token",
    "inbound_subscription",
    "inbound_messages",
    "conversion",
    "any",
)

_DROPPING: contextvars.ContextVar[bool] = contextvars.ContextVar("opensms_drop", default=False)


class FaultAction(enum.StrEnum):
    """What a fault does to the request it takes."""

    RESPOND = "respond"
    """Answer ``status`` at once (with ``Retry-After`` when set); the request is not processed."""
    SLOW = "slow"
    """Wait ``delay`` seconds, then process and answer normally (a client may time out first)."""
    DROP = "drop"
    """Close the connection before processing: nothing happened."""
    DROP_RESPONSE = "drop_response"
    """Process the request (a send IS sent), then close the connection instead of answering."""


@attrs.define
class Fault:
    """One injected fault; ``times=None`` keeps it until :meth:`FaultList.clear`."""

    action: FaultAction
    endpoint: Endpoint = attrs.field(default="any", validator=attrs.validators.in_(_ENDPOINTS))
    times: int | None = 1
    status: int = 503
    retry_after: float | None = None
    delay: float = 0.0
    hits: int = attrs.field(default=0, init=False)
    """Requests this fault has taken so far."""

    @classmethod
    def respond(
        cls,
        status: int = 503,
        *,
        retry_after: float | None = None,
        endpoint: Endpoint = "any",
        times: int | None = 1,
    ) -> Fault:
        """Answer ``status`` with an empty body (and ``Retry-After`` when given), unprocessed."""
        return cls(FaultAction.RESPOND, endpoint, times, status=status, retry_after=retry_after)

    @classmethod
    def slow(cls, delay: float, *, endpoint: Endpoint = "any", times: int | None = 1) -> Fault:
        """Wait ``delay`` seconds, then process: a send the client gave up on is still sent."""
        return cls(FaultAction.SLOW, endpoint, times, delay=delay)

    @classmethod
    def drop(cls, *, endpoint: Endpoint = "any", times: int | None = 1) -> Fault:
        """Close the connection before processing: the client sees a connection error."""
        return cls(FaultAction.DROP, endpoint, times)

    @classmethod
    def drop_response(cls, *, endpoint: Endpoint = "any", times: int | None = 1) -> Fault:
        """Process (a send IS sent), then close the connection instead of answering."""
        return cls(FaultAction.DROP_RESPONSE, endpoint, times)

    def matches(self, endpoint: str | None) -> bool:
        """True when this fault applies to a request for ``endpoint`` and is not used up."""
        used_up = self.times is not None and self.hits >= self.times
        return not used_up and self.endpoint in ("any", endpoint)


class FaultList:
    """The faults waiting for requests; safe to change from the test's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        """Queue ``fault`` after the ones already waiting."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every waiting fault."""
        with self._lock:
            self._faults.clear()

    def take(self, endpoint: str | None) -> Fault | None:
        """The first fault matching ``endpoint``, counted as used once; None when none applies."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(endpoint):
                    fault.hits += 1
                    return fault
        return None


@attrs.frozen
class RequestRecord:
    """One request the simulator saw; ``status`` is None when the connection was dropped."""

    method: str
    path: str
    endpoint: str | None
    status: int | None
    fault: FaultAction | None = None


def endpoint_classifier(base_path: str) -> Callable[[str], str | None]:
    """A function naming the endpoint of a request path, or None for an unknown path."""
    base = re.escape(base_path)
    patterns = [
        ("subscription", re.compile(rf"{base}/outbound/subscriptions/?")),
        ("poll", re.compile(rf"{base}/outbound/[^/]+/requests/[^/]+/deliveryInfos/?")),
        ("send", re.compile(rf"{base}/outbound/[^/]+/requests/?")),
        ("token", re.compile(r"/oauth/token/?")),
        ("inbound_subscription", re.compile(rf"{base}/inbound/subscriptions/?")),
        ("inbound_messages", re.compile(rf"{base}/inbound/registrations/[^/]+/messages/?")),
        ("conversion", re.compile(rf"{base}/conversions(?:infos)?/?")),
    ]

    def classify(path: str) -> str | None:
        return next((name for name, regex in patterns if regex.fullmatch(path)), None)

    return classify


class _DeliberateDropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _DROPPING.get()


def install_drop_filter() -> None:
    """Silence uvicorn's error report for the connections the simulator drops on purpose."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DeliberateDropFilter) for f in logger.filters):
        logger.addFilter(_DeliberateDropFilter())


async def _drop_connection(send: Send) -> None:
    _DROPPING.set(True)
    # A promised body that never comes: uvicorn must close the connection when the app returns.
    headers = [(b"content-length", b"1"), (b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 502, "headers": headers})
    await send({"type": "http.response.body", "body": b"", "more_body": True})


async def _respond(send: Send, fault: Fault) -> None:
    headers = [(b"content-length", b"0"), (b"content-type", b"text/plain; charset=utf-8")]
    if fault.retry_after is not None:
        headers.append((b"retry-after", _format_seconds(fault.retry_after).encode()))
    await send({"type": "http.response.start", "status": fault.status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class FaultInjector:
    """ASGI middleware: applies the first matching fault, and logs every HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        faults: FaultList,
        log: list[RequestRecord],
        classify: Callable[[str], str | None],
    ) -> None:
        self.app = app
        self.faults = faults
        self.log = log
        self.classify = classify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI event; only ``http`` requests meet faults."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        endpoint = self.classify(path)
        fault = self.faults.take(endpoint)
        status = await self._handle(fault, scope, receive, send)
        action = fault.action if fault is not None else None
        self.log.append(RequestRecord(method, path, endpoint, status, action))

    async def _handle(
        self, fault: Fault | None, scope: Scope, receive: Receive, send: Send
    ) -> int | None:
        if fault is None:
            return await self._forward(scope, receive, send)
        match fault.action:
            case FaultAction.RESPOND:
                await _respond(send, fault)
                return fault.status
            case FaultAction.SLOW:
                # Read the request first: the server has it, and is slow to answer.
                receive = await _buffered(receive)
                await asyncio.sleep(fault.delay)
                return await self._forward(scope, receive, send)
            case FaultAction.DROP_RESPONSE:
                await self.app(scope, receive, _discard)
        # DROP and DROP_RESPONSE: the client never gets an answer.
        await _drop_connection(send)
        return None

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> int | None:
        status: int | None = None

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, recording_send)
        return status


async def _buffered(receive: Receive) -> Receive:
    """Read the whole request body now; the returned ``receive`` hands it over again."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks)}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def _discard(message: Message) -> None:
    """An ASGI ``send`` that throws the response away."""
