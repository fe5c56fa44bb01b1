"""An httpx transport over aiohttp: the client's default HTTP layer.

httpx stays the API (``httpx.Request`` and ``httpx.Response`` in and out, ``transport=`` and
``http_client=`` injectable); aiohttp moves the bytes, at many more requests per second than
httpcore on one core (``bench/bench_client.py``). The transport keeps httpx's
contract: no redirect is followed, nothing is decompressed (the client's bounded decoder sees the
raw bytes), no cookie is kept, TLS is verified with httpx's own default context, httpx's per-phase
timeouts apply, and every aiohttp or socket error comes out as the ``httpx`` error it would have
been over httpcore.

While a library has replaced httpx's own transport to watch or fake it (respx, pytest-httpx,
OpenTelemetry's httpx instrumentation), requests go through httpx's ``AsyncHTTPTransport``
instead, so that library sees them as it would without this transport.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpcore
import httpx
import yarl

from ._constants import DEFAULT_MAX_IN_FLIGHT, KEEPALIVE_EXPIRY, READ_AT_ONCE
from ._transport import WholeBody

__all__ = ["AiohttpTransport", "environment_proxies", "httpx_transport_patched", "proxy_mounts"]

_MOCKABLE = (
    (httpcore.AsyncConnectionPool, "handle_async_request"),
    (httpx.AsyncHTTPTransport, "handle_async_request"),
)
"""The methods mock libraries replace to intercept httpx (respx: the first; pytest-httpx: the
second), with the functions httpx and httpcore define for them."""

_ORIGINALS = tuple((cls, name, cls.__dict__[name]) for cls, name in _MOCKABLE)

_GENUINE = all(
    getattr(original, "__module__", "").startswith(cls.__module__.partition(".")[0] + ".")
    for cls, name, original in _ORIGINALS
)
"""Whether what this module found at import is httpx's and httpcore's own (a mock started before
the import is not): worked out once, as it cannot change."""


def httpx_transport_patched() -> bool:
    """True while something other than httpx and httpcore answers for their transport.

    Compared by identity with what this module found at import, and that by the module that
    defines it (httpx's or httpcore's), so that a mock started before the import is seen too.
    """
    if not _GENUINE:
        return True
    for cls, name, original in _ORIGINALS:  # noqa: SIM110 - any() of a generator costs more
        if cls.__dict__.get(name) is not original:
            return True
    return False


def environment_proxies() -> dict[str, str | None]:
    """The proxies of ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY``, by URL
    pattern (None: a ``NO_PROXY`` host, reached directly), as httpx reads them."""
    # httpx's own reading of the environment (urllib's getproxies, curl's NO_PROXY rules).
    from httpx._utils import get_environment_proxies

    return get_environment_proxies()


def proxy_mounts(
    proxies: dict[str, str | None], limits: httpx.Limits
) -> dict[str, httpx.AsyncBaseTransport | None]:
    """The mounts httpx makes of :func:`environment_proxies`.

    httpx ignores the environment when given a transport, so the client passes these along with
    its default one: a proxied URL goes through httpx's own proxy transport, exactly as it did
    before aiohttp was the default; a ``NO_PROXY`` host (None) through the default.
    """
    return {
        pattern: None if url is None else httpx.AsyncHTTPTransport(limits=limits, proxy=url)
        for pattern, url in proxies.items()
    }


_TIMEOUTS_KEPT = 16
"""Distinct per-phase timeout settings whose aiohttp ``ClientTimeout`` is kept (one per client,
in practice; the cache is cleared past this)."""


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` whose connections are aiohttp's.

    ``verify`` and ``cert`` are httpx's (``True``: certifi's CAs, or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR`` when set); ``max_connections`` bounds the pool; idle connections are closed
    after ``keepalive_expiry`` seconds. The aiohttp session is opened on first use, inside the
    running loop, and closed by :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: str | tuple[str, str] | tuple[str, str, str] | None = None,
        max_connections: int = DEFAULT_MAX_IN_FLIGHT,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._ssl = httpx.create_ssl_context(verify=verify, cert=cert)
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        self._fallback: httpx.AsyncHTTPTransport | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"AiohttpTransport(max_connections={self._max_connections})"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return the response, its body read when small, else streamed."""
        if httpx_transport_patched():
            return await self._httpx_transport().handle_async_request(request)
        session = self._session or self._open()
        try:
            content = request.content
        except httpx.RequestNotRead:  # a streamed body: read it, as httpcore would send it
            content = await request.aread()
        try:
            answer = await session.request(
                request.method,
                # As httpx encoded it: yarl would otherwise re-normalise it ("%3A" to ":").
                yarl.URL(str(request.url), encoded=True),
                headers=_header_pairs(request.headers),
                data=content or None,
                allow_redirects=False,
                timeout=self._timeout(request.extensions.get("timeout")),
                server_hostname=request.extensions.get("sni_hostname"),
            )
        except Exception as exc:
            raise _httpx_error(exc, request, connecting=True) from exc
        return httpx.Response(
            answer.status,
            headers=answer.raw_headers,
            stream=await _body(answer, request),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (answer.reason or "").encode("ascii", "replace"),
            },
        )

    async def aclose(self) -> None:
        """Close the pooled connections; the transport cannot be used afterwards."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        if self._fallback is not None:
            await self._fallback.aclose()

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("This AiohttpTransport is closed.")
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            keepalive_timeout=self._keepalive_expiry,
            ssl=self._ssl,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # the client inflates, with a bound on the output
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),  # httpx's are sent
            trust_env=False,  # proxies from the environment are httpx's mounts, not this
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session

    def _timeout(self, phases: Any) -> aiohttp.ClientTimeout:
        """httpx's per-phase timeouts in aiohttp's terms: ``connect`` also bounds the pool wait."""
        phases = phases or {}
        key = (phases.get("connect"), phases.get("read"), phases.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            if len(self._timeouts) >= _TIMEOUTS_KEPT:
                self._timeouts.clear()
            connect, read, pool = key
            total_connect = None if connect is None or pool is None else connect + pool
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, connect=total_connect, sock_connect=connect, sock_read=read
            )
        return timeout

    def _httpx_transport(self) -> httpx.AsyncHTTPTransport:
        if self._fallback is None:
            limits = httpx.Limits(
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_connections,
                keepalive_expiry=self._keepalive_expiry,
            )
            self._fallback = httpx.AsyncHTTPTransport(verify=self._ssl, limits=limits)
        return self._fallback


def _header_pairs(headers: httpx.Headers) -> list[tuple[str, str]]:
    """The request's header lines as they are, decoded as httpx decodes them.

    Not the ``Mapping`` itself: its ``items()`` works out the encoding anew for each header
    and joins repeated ones; aiohttp sends each pair as its own line, as httpcore does. ASCII is
    tried first: httpx's guess decodes every header once to check it, then again to use it.
    """
    raw = headers.raw
    try:  # ASCII (the usual case) reads the same in whichever encoding httpx would pick
        return [(name.decode("ascii"), value.decode("ascii")) for name, value in raw]
    except UnicodeDecodeError:
        encoding = headers.encoding
        return [(name.decode(encoding), value.decode(encoding)) for name, value in raw]


async def _body(answer: aiohttp.ClientResponse, request: httpx.Request) -> httpx.AsyncByteStream:
    """The answer's body: read whole now when it declares a small length, else a stream.

    An answer of a known length up to ``READ_AT_ONCE`` bytes (every API answer in practice) is
    read in one call, the connection going back to the pool at once; one that declares no length
    or a longer one is streamed, so that the client's size bound stops it early. Either way the
    bytes are raw: the client inflates them, counting the decoded size.
    """
    length = answer.headers.get("Content-Length", "")
    if not (length.isascii() and length.isdigit() and int(length) <= READ_AT_ONCE):
        return _Body(answer, request)
    try:
        return WholeBody(await answer.read())
    except Exception as exc:
        raise _httpx_error(exc, request, connecting=False) from exc


class _Body(httpx.AsyncByteStream):
    """The raw body of an aiohttp response, as it arrives; closing it early drops the
    connection, so an unread rest never comes back to the pool."""

    def __init__(self, answer: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._answer = answer
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._answer.content.iter_any():
                yield chunk
        except Exception as exc:
            raise _httpx_error(exc, self._request, connecting=False) from exc

    async def aclose(self) -> None:
        answer = self._answer
        if answer.content.at_eof():
            answer.release()
        else:
            answer.close()


# The httpx error each aiohttp or socket error becomes, first match wins (order matters: aiohttp's
# timeouts are OSErrors, its TLS errors connector errors).
_ERRORS: tuple[tuple[tuple[type[BaseException], ...], type[httpx.RequestError]], ...] = (
    ((aiohttp.ConnectionTimeoutError,), httpx.ConnectTimeout),
    ((TimeoutError,), httpx.ReadTimeout),  # aiohttp's SocketTimeoutError: sock_read
    ((aiohttp.ClientConnectorError, ssl.SSLError), httpx.ConnectError),  # TLS refused too
    # an answer cut short, or a status line or headers that are no HTTP
    ((aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError), httpx.RemoteProtocolError),
    ((aiohttp.ClientResponseError,), httpx.RemoteProtocolError),
    ((aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError), httpx.UnsupportedProtocol),
)


def _httpx_error(exc: Exception, request: httpx.Request, *, connecting: bool) -> Exception:
    """The httpx error for an aiohttp or socket error; anything else is returned unchanged.

    The message names the error's type only: aiohttp's text may carry the URL with a query.
    """
    for kinds, error in _ERRORS:
        if isinstance(exc, kinds):
            return error(type(exc).__name__, request=request)
    if isinstance(exc, aiohttp.ClientError | OSError):
        error = httpx.ConnectError if connecting else httpx.ReadError
        return error(type(exc).__name__, request=request)
    return exc
