"""One HTTP exchange with httpx, bounded: a deadline on the whole of it, a cap on the body read.

Both the API calls and the OAuth token fetch go through :meth:`Wire.send`, so they share one
mapping of httpx's transport errors to this package's. The body is streamed and inflated here, in
bounded steps, and counted as decoded bytes: a small gzip answer that inflates to gigabytes is
refused at ``max_response_size`` instead of being held in memory.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import time
import zlib
from collections.abc import Awaitable, Iterable, Iterator
from typing import TypeVar

import httpx

from ._constants import ACCEPT_ENCODING, DECODE_PIECE
from ._exceptions import APIConnectionError, APITimeoutError, ResponseTooLargeError

__all__ = ["WholeBody", "Wire", "attempt_deadline", "connection_cause", "transport_timeouts"]

_MAX_CAUSE = 200
"""Characters of a transport error's own text kept in a message."""

T = TypeVar("T")


def attempt_deadline(timeout: httpx.Timeout) -> float | None:
    """The default deadline of one exchange: the longest of httpx's per-phase timeouts.

    ``timeout=1.0`` thus bounds each attempt at 1 s in all, not each read at 1 s; the default
    ``Timeout(30, connect=5)`` gives 30 s. None when every phase is unbounded.
    """
    phases = (timeout.connect, timeout.read, timeout.write, timeout.pool)
    bounded = [phase for phase in phases if phase is not None]
    return max(bounded) if bounded else None


def transport_timeouts(timeout: httpx.Timeout, deadline: float | None) -> dict[str, float | None]:
    """The per-phase timeouts handed to the transport with each request of a :class:`Wire`.

    httpx's, but with no read timeout when the deadline is no longer than it: a wait between
    reads cannot outlast the whole exchange, so the deadline always fires first and the read
    timer (rearmed by aiohttp at every chunk received) would only cost time.
    """
    phases = timeout.as_dict()
    read = phases.get("read")
    if deadline is not None and read is not None and read >= deadline:
        phases["read"] = None
    return phases


class WholeBody(httpx.ByteStream):
    """An answer's raw body that a transport has read whole already (the default transport's
    small answers): :meth:`Wire.send` takes its bytes as they are, without iterating over them
    or closing the stream, when no content coding is to be undone. Otherwise an
    ``httpx.ByteStream`` like any other."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.data = data


class Wire:
    """An httpx client and the bounds every exchange over it keeps.

    ``deadline``: seconds one exchange may take from sending to the last byte of the answer
    (None: no bound beyond httpx's own timeouts); ``max_response_size``: decoded body bytes read
    at most.

    ``direct``: the client is this package's own (built with no hooks, auth or cookies of a
    user's), so requests are built as ``httpx.Request`` and handed to the transport httpx would
    pick for their URL (its mounts: proxies from the environment), skipping the work of
    ``AsyncClient.send`` that such a client does not need (cookie extraction, above all). A
    client passed in by the user gets
    ``build_request`` and ``send``, everything it was configured with.
    """

    __slots__ = (
        "_extensions",
        "_headers",
        "_raw_headers",
        "deadline",
        "direct",
        "http",
        "max_response_size",
    )

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        deadline: float | None,
        max_response_size: int,
        direct: bool = False,
    ) -> None:
        self.http = http
        self.deadline = deadline
        self.max_response_size = max_response_size
        self.direct = direct
        self._headers = {**http.headers, "accept-encoding": ACCEPT_ENCODING}  # names lower-case
        self._raw_headers = [
            (name.encode(), value.encode()) for name, value in self._headers.items()
        ]
        self._extensions = {"timeout": transport_timeouts(http.timeout, deadline)}

    def __repr__(self) -> str:
        return f"Wire(deadline={self.deadline!r}, max_response_size={self.max_response_size!r})"

    def build(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        headers: dict[str, str],
        content: bytes | None = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Request:
        """The request, asking only for the content codings :meth:`send` inflates with a bound."""
        if self.direct and data is None:
            return self._request(method, url, headers, content)
        if self.direct:  # a form (the OAuth token fetch): httpx encodes it
            return httpx.Request(
                method,
                url,
                headers={**self._headers, **headers},
                data=data,
                extensions=self._extensions,
            )
        headers["Accept-Encoding"] = ACCEPT_ENCODING
        return self.http.build_request(method, url, content=content, data=data, headers=headers)

    def _request(
        self, method: str, url: httpx.URL | str, headers: dict[str, str], content: bytes | None
    ) -> httpx.Request:
        """The request ``httpx.Request(content=...)`` makes, with the headers it would add
        (``Host``, ``Content-Length``) given up front as bytes: that saves most of its cost,
        spent normalising and searching header names one by one."""
        if not isinstance(url, httpx.URL):  # the client's URLs are parsed once, in its cache
            url = httpx.URL(url)
        raw = [(b"Host", url.netloc), *self._raw_headers]
        raw += [(name.encode(), value.encode()) for name, value in headers.items()]
        body = content or b""
        if content is not None or method in ("POST", "PUT", "PATCH"):
            raw.append((b"Content-Length", str(len(body)).encode()))
        request = httpx.Request(
            method, url, headers=raw, stream=httpx.ByteStream(body), extensions=self._extensions
        )
        request.read()  # in memory already: makes ``request.content`` available, as httpx does
        return request

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and read its whole answer, within the deadline and the size bound.

        Raises :class:`APITimeoutError` (a timeout of httpx or the deadline), another
        :class:`APIConnectionError`, or :class:`ResponseTooLargeError`. The message names the
        host and the cause (``Connection refused``), never the URL's path or query; httpx's
        exception stays reachable as ``__cause__``.
        """
        try:
            if self.deadline is None:
                return await self._exchange(request)
            return await _within(self.deadline, self._exchange(request))
        except _DeadlineHit:
            message = f"{_target(request)} did not answer within the {self.deadline:g} s deadline"
            raise APITimeoutError(message, request=request) from None
        except httpx.TimeoutException as exc:
            message = f"{_target(request)} timed out ({type(exc).__name__})"
            raise APITimeoutError(message, request=request) from exc
        except httpx.RequestError as exc:  # transport errors, and DecodingError: a body garbled
            message = f"Connection error with {_target(request)}: {connection_cause(exc)}"
            raise APIConnectionError(message, request=request) from exc

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        if self.direct:
            # The transport httpx itself would use for this URL: a proxy mount, or the default.
            transport = self.http._transport_for_url(request.url)
            response = await transport.handle_async_request(request)
            response.request = request  # as httpx's send does: transports may leave it unset
        else:
            response = await self.http.send(request, stream=True)
        try:
            await _read_body(response, self.max_response_size)
        finally:
            await _close(response)  # once read, the stream's close is a no-op or a release
        if self.direct:  # what httpx's send would have recorded
            response.elapsed = datetime.timedelta(seconds=time.perf_counter() - started)
        return response


def _target(request: httpx.Request) -> str:
    """``host:port`` of a request: where it went, without the path or query."""
    url = request.url
    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{port}" if port else host


def connection_cause(exc: BaseException) -> str:
    """Why a connection failed, in words, with the transport error's type.

    The deepest OS error's own words (``Connection refused``, ``Name or service not known``),
    else a fixed phrase for httpx's error type: never the exception's text, which may quote a
    URL or a header.
    """
    name = type(exc).__name__
    found: BaseException | None = exc
    for _ in range(16):  # a cycle in the chain cannot hold us
        if found is None:
            break
        if isinstance(found, OSError) and found.errno:
            text = os.strerror(found.errno) if found.errno > 0 else found.strerror
            if text:
                return f"{text} ({name})"
        found = found.__cause__ or found.__context__
    for kind, phrase in _CAUSES:
        if isinstance(exc, kind):
            return f"{phrase} ({name})"
    return name


_CAUSES: tuple[tuple[type[Exception], str], ...] = (
    (httpx.ConnectError, "could not connect"),
    (httpx.ReadError, "the connection broke while the answer was read"),
    (httpx.WriteError, "the connection broke while the request was sent"),
    (httpx.RemoteProtocolError, "the server closed the connection or broke HTTP"),
    (httpx.DecodingError, "the answer's body could not be decoded"),
    (httpx.ProxyError, "the proxy refused the connection"),
    (httpx.UnsupportedProtocol, "the URL's scheme is not http or https"),
)
"""What each kind of httpx transport error means, for :func:`connection_cause`."""


class _DeadlineHit(Exception):
    """The deadline of one exchange passed (turned into :class:`APITimeoutError`)."""


async def _within(seconds: float, work: Awaitable[T]) -> T:
    """``await work``, cancelled after ``seconds`` with :class:`_DeadlineHit` raised instead.

    What ``asyncio.timeout`` does, with one timer handle and no context manager: it is on the
    path of every request. As there, a cancellation that is not the deadline's passes through
    untouched (``Task.cancelling`` counts them).
    """
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - always called from a task
        raise RuntimeError("the deadline needs a running task")
    loop = task.get_loop()
    cancelling = task.cancelling()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    handle = loop.call_at(loop.time() + seconds, expire)
    try:
        result = await work
    except BaseException as exc:
        # The deadline's own cancellation is taken back however the work ended (as
        # asyncio.timeout does); only a cancellation that was the deadline's becomes a hit.
        if expired and task.uncancel() <= cancelling and isinstance(exc, asyncio.CancelledError):
            raise _DeadlineHit from None
        raise
    finally:
        handle.cancel()
    if expired:  # the work swallowed the deadline's cancellation and finished: take it back
        task.uncancel()
    return result


async def _read_body(response: httpx.Response, limit: int) -> None:
    """Read the decoded body into ``response``, as ``aread`` would, refusing more than ``limit``."""
    if response.is_stream_consumed:  # an in-memory response (httpx.MockTransport): read already
        _check_size(response, len(response.content), limit)
        return
    decoding = _decoding(response.headers)
    stream = response.stream
    if decoding is None and type(stream) is WholeBody:  # the bytes are there: no loop to run
        response.is_stream_consumed = True
        _check_size(response, len(stream.data), limit)
        response._content = stream.data
        return
    pieces: list[bytes] = []
    size = 0
    # The stream itself, not aiter_raw(): its re-chunking would be paid for nothing, for the
    # pieces are re-cut by the inflater (or joined) here anyway.
    if not isinstance(stream, httpx.AsyncByteStream):
        raise TypeError("an AsyncClient's transport answered with a synchronous stream")
    response.is_stream_consumed = True
    try:
        async for raw in stream:
            for piece in (raw,) if decoding is None else decoding.feed(raw):
                size += len(piece)
                _check_size(response, size, limit)
                pieces.append(piece)
        for piece in () if decoding is None else decoding.flush():
            size += len(piece)
            _check_size(response, size, limit)
            pieces.append(piece)
    except zlib.error as exc:  # what httpx's own decoders report, so mapped as it would be
        raise httpx.DecodingError(str(exc), request=response.request) from None
    # httpx has no public way to hand a response bytes read outside it; this is what aread() does.
    response._content = b"".join(pieces)


async def _close(response: httpx.Response) -> None:
    """``response.aclose()``: drops the connection of a body not read to its end.

    Without the context manager ``aclose`` wraps around it, which only labels an httpx error with
    its request (:meth:`Wire.send` names the request itself) and costs as much as the close.
    """
    if not response.is_closed:
        response.is_closed = True
        stream = response.stream
        # A sync stream was refused when read; a whole body's close does nothing.
        if isinstance(stream, httpx.AsyncByteStream) and type(stream) is not WholeBody:
            await stream.aclose()


def _check_size(response: httpx.Response, size: int, limit: int) -> None:
    if size > limit:
        request = response.request
        raise ResponseTooLargeError(
            f"The answer to {request.method} {request.url.path} is larger than {limit} bytes "
            "(max_response_size); reading stopped there",
            response=response,
            limit=limit,
        )


class _Inflater:
    """zlib inflation (gzip, or deflate with or without its zlib header) in bounded steps."""

    def __init__(self, wbits: int, fallback: int | None = None) -> None:
        self._zlib = zlib.decompressobj(wbits)
        self._fallback = fallback  # raw deflate: some servers send "deflate" without the header

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The inflated output of ``data``, at most ``DECODE_PIECE`` bytes a piece."""
        while True:
            try:
                out = self._zlib.decompress(data, DECODE_PIECE)
            except zlib.error:
                if self._fallback is None:
                    raise
                self._zlib, self._fallback = zlib.decompressobj(self._fallback), None
                continue
            self._fallback = None  # the header checked out: no second guess later
            if out:
                yield out
            data = self._zlib.unconsumed_tail
            if not data and len(out) < DECODE_PIECE:  # a full piece may leave output pending
                return

    def flush(self) -> Iterator[bytes]:
        """What is left once the input has ended (little: :meth:`feed` drains the output)."""
        rest = self._zlib.flush()
        if rest:
            yield rest


class _Decoding:
    """The inflaters of a ``Content-Encoding`` list, applied last coding first."""

    def __init__(self, inflaters: list[_Inflater]) -> None:
        self._chain = inflaters

    def feed(self, data: bytes) -> Iterable[bytes]:
        """The decoded pieces of one raw chunk, produced lazily, one bounded piece at a time."""
        return self._through(0, (data,))

    def flush(self) -> Iterator[bytes]:
        """Each inflater's remainder, passed through the inflaters after it."""
        for index, inflater in enumerate(self._chain):
            yield from self._through(index + 1, inflater.flush())

    def _through(self, start: int, pieces: Iterable[bytes]) -> Iterable[bytes]:
        for inflater in self._chain[start:]:
            pieces = _inflated(inflater, pieces)
        return pieces


def _inflated(inflater: _Inflater, pieces: Iterable[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield from inflater.feed(piece)


def _inflater(coding: str) -> _Inflater | None:
    if coding in ("gzip", "x-gzip"):
        return _Inflater(zlib.MAX_WBITS | 16)
    if coding == "deflate":
        return _Inflater(zlib.MAX_WBITS, fallback=-zlib.MAX_WBITS)
    return None  # identity, or a coding not asked for: passed through as httpx does


def _decoding(headers: httpx.Headers) -> _Decoding | None:
    if "content-encoding" not in headers:  # the usual answer: one lookup, nothing to split
        return None
    codings = headers.get_list("content-encoding", split_commas=True)
    found = (_inflater(coding.strip().lower()) for coding in reversed(codings))
    inflaters = [inflater for inflater in found if inflater is not None]
    return _Decoding(inflaters) if inflaters else None
