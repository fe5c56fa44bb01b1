"""One HTTP exchange with httpx, bounded: a deadline on the whole of it, a cap on the body read.

Both the API calls and the OAuth token fetch go through :meth:`Wire.send`, so they share one
mapping of httpx's transport errors to this package's. The body is streamed and inflated here, in
bounded steps, and counted as decoded bytes: a small gzip answer that inflates to gigabytes is
refused at ``max_response_size`` instead of being held in memory.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import Iterable, Iterator

import attrs
import httpx

from ._constants import ACCEPT_ENCODING, DECODE_PIECE
from ._exceptions import APIConnectionError, APITimeoutError, ResponseTooLargeError

__all__ = ["Wire", "attempt_deadline", "connection_cause"]

_MAX_CAUSE = 200
"""Characters of a transport error's own text kept in a message."""


def attempt_deadline(timeout: httpx.Timeout) -> float | None:
    """The default deadline of one exchange: the longest of httpx's per-phase timeouts.

    ``timeout=1.0`` thus bounds each attempt at 1 s in all, not each read at 1 s; the default
    ``Timeout(30, connect=5)`` gives 30 s. None when every phase is unbounded.
    """
    phases = (timeout.connect, timeout.read, timeout.write, timeout.pool)
    bounded = [phase for phase in phases if phase is not None]
    return max(bounded) if bounded else None


@attrs.frozen
class Wire:
    """An httpx client and the bounds every exchange over it keeps.

    ``deadline``: seconds one exchange may take from sending to the last byte of the answer
    (None: no bound beyond httpx's own timeouts); ``max_response_size``: decoded body bytes read
    at most.
    """

    http: httpx.AsyncClient
    deadline: float | None
    max_response_size: int

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
        headers["Accept-Encoding"] = ACCEPT_ENCODING
        return self.http.build_request(method, url, content=content, data=data, headers=headers)

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and read its whole answer, within the deadline and the size bound.

        Raises :class:`APITimeoutError` (a timeout of httpx or the deadline), another
        :class:`APIConnectionError`, or :class:`ResponseTooLargeError`. The message names the
        host and the cause (``Connection refused``), never the URL's path or query; httpx's
        exception stays reachable as ``__cause__``.
        """
        deadline = asyncio.timeout(self.deadline)
        try:
            async with deadline:
                return await self._exchange(request)
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            message = f"{_target(request)} did not answer within the {self.deadline:g} s deadline"
            raise APITimeoutError(message, request=request) from exc
        except httpx.TimeoutException as exc:
            message = f"{_target(request)} timed out ({type(exc).__name__})"
            raise APITimeoutError(message, request=request) from exc
        except httpx.RequestError as exc:  # transport errors, and DecodingError: a body garbled
            message = f"Connection error with {_target(request)}: {connection_cause(exc)}"
            raise APIConnectionError(message, request=request) from exc

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        response = await self.http.send(request, stream=True)
        try:
            await _read_body(response, self.max_response_size)
        finally:
            await response.aclose()  # a no-op once read; else drops the connection mid-body
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


async def _read_body(response: httpx.Response, limit: int) -> None:
    """Read the decoded body into ``response``, as ``aread`` would, refusing more than ``limit``."""
    if response.is_stream_consumed:  # an in-memory response (httpx.MockTransport): read already
        _check_size(response, len(response.content), limit)
        return
    decoding = _decoding(response.headers)
    pieces: list[bytes] = []
    size = 0
    try:
        async for raw in response.aiter_raw():
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
    codings = headers.get_list("content-encoding", split_commas=True)
    if not codings:
        return None
    found = (_inflater(coding.strip().lower()) for coding in reversed(codings))
    inflaters = [inflater for inflater in found if inflater is not None]
    return _Decoding(inflaters) if inflaters else None
