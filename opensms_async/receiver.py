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
| 503 | the store could not record it (try again later) |
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ._exceptions import StoreError
from ._tracker import DeliveryTracker
from ._webhook import (
    CallbackPayloadError,
    cached_url_ids,
    encode_token,
    find_token,
    parse_callback,
    token_matches,
)

__all__ = ["DEFAULT_MAX_BODY_SIZE", "CallbackEndpoint", "create_receiver_app"]

logger = logging.getLogger("opensms_async.receiver")

DEFAULT_MAX_BODY_SIZE = 64 * 1024


class _BodyTooLarge(Exception):
    pass


class CallbackEndpoint:
    """The raw ASGI endpoint behind the callback route (below Starlette's Request/Response,
    where it pays: this is the hot path of the receiver)."""

    def __init__(
        self,
        tracker: DeliveryTracker,
        tokens: Sequence[str],
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not tokens or not all(isinstance(t, str) and t for t in tokens):
            raise ValueError("A receiver needs a non-empty security token; it never accepts all.")
        self._tracker = tracker
        self._tokens = [encode_token(t) for t in tokens]
        self._max = max_body_size
        self._clock = clock
        self._url_ids = cached_url_ids()

    def __repr__(self) -> str:
        return f"CallbackEndpoint(tokens={len(self._tokens)}, max_body_size={self._max})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = await self._handle(scope, receive)
        # Answer on the loop's next turn. Callbacks that arrive together are then all recorded
        # first and all answered together, so the server reads and writes its sockets in
        # batches: under concurrent load that cuts the server's CPU per callback by about a
        # third (bench/bench_receiver.py), for one more turn of the loop (~10 µs) per answer.
        await asyncio.sleep(0)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", b"0")] if status != 204 else [],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _handle(self, scope: Scope, receive: Receive) -> int:
        headers = dict(scope["headers"])
        try:
            body = await self._read(headers, receive)
        except _BodyTooLarge:
            return 413
        try:
            payload = _json(body)
        except (ValueError, RecursionError):
            return 400
        if not token_matches(find_token(payload, headers.get(b"authorization")), self._tokens):
            logger.info("callback refused: missing or wrong security token")
            return 401
        try:
            updates = parse_callback(payload, received_at=self._clock(), url_ids=self._url_ids)
        except CallbackPayloadError as exc:
            logger.info("callback refused: %s", exc)
            return 422
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
                raise _BodyTooLarge  # nothing to answer; the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                raise _BodyTooLarge
            if not message.get("more_body", False):
                return b"".join([*chunks, chunk]) if chunks else chunk  # mostly one message
            chunks.append(chunk)

    async def _record(self, updates: Any) -> int:
        try:
            await self._tracker.ingest(updates)
        except StoreError as exc:
            logger.error("callback not recorded, answering 503: %s", exc)
            return 503
        except Exception:
            # Never a 500: BICS would drop the callback either way, and 503 says "try later".
            logger.exception("callback not recorded (unexpected error), answering 503")
            return 503
        return 204


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
    health_path: str = "/healthz",
    manage_tracker: bool = True,
) -> Starlette:
    """A Starlette app that records delivery-info callbacks into ``tracker``.

    ``security_token`` is the subscription's token; give a list of two to rotate without downtime.
    Run it alone (``uvicorn``) or mount it in an existing Starlette/FastAPI app. Run alone with
    ``manage_tracker=True``, its lifespan opens the tracker if it is not open yet and closes what
    it opened; a mounted app's lifespan does not run, so open the tracker in your own lifespan.
    """
    tokens = [security_token] if isinstance(security_token, str) else list(security_token)
    endpoint = CallbackEndpoint(tracker, tokens, max_body_size=max_body_size)

    async def health(request: Request) -> Response:
        ok = tracker.is_open
        return JSONResponse({"status": "ok" if ok else "starting"}, status_code=200 if ok else 503)

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

    return _ReceiverApp(
        endpoint,
        path,
        routes=[
            Route(path, endpoint, methods=["POST"]),
            Route(health_path, health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


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
