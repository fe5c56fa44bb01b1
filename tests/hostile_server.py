"""A raw asyncio HTTP/1.1 server for tests whose peer must send chosen bytes.

uvicorn and Starlette answer politely; a hostile or broken API does not. Here a handler sees each
request and returns a :class:`Reply`: any status, headers and body bytes, optionally dripped a few
bytes at a time (a stalled proxy). Connections are kept alive, as an API's are. Listens on
127.0.0.1, on a free port::

    async with hostile_server(handler) as server:
        OpenSMSClient(api_key="k", base_url=server.url, ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import attrs

__all__ = ["HostileServer", "Reply", "Request", "hostile_server"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024


@attrs.frozen
class Request:
    """One request as the server read it; header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@attrs.frozen
class Reply:
    """What to answer: ``body`` is sent as given (no encoding is applied by the server).

    ``drip``: seconds to wait between pieces of ``drip_size`` body bytes (None: all at once).
    ``Content-Length`` is added unless ``headers`` has one. ``close``: the server closes the
    connection once the reply is written (e.g. a body shorter than its ``Content-Length``).
    ``raw``: bytes sent as the whole answer instead (no status line is made up).
    """

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    drip: float | None = None
    drip_size: int = 1
    close: bool = False
    raw: bytes | None = None


Handler = Callable[[Request], Reply | Awaitable[Reply]]


@attrs.define
class HostileServer:
    """A running :func:`hostile_server`: where it listens and what it received."""

    url: str
    requests: list[Request] = attrs.field(factory=list)


@contextlib.asynccontextmanager
async def hostile_server(
    handler: Handler, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[HostileServer]:
    """Serve ``handler`` until the block exits; open connections are cut at exit.

    ``tls``: serve HTTPS with this server context (the URL is then ``https://``).
    """
    connections: set[asyncio.Task[None]] = set()
    state = HostileServer(url="")

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await _serve_connection(reader, writer, handler, state.requests)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away, as clients do (often on purpose, in these tests)
        except asyncio.CancelledError:
            pass  # the server is shutting down; asyncio would log a cancelled connection task
        finally:
            connections.discard(task)
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, limit=_MAX_HEAD, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    state.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        yield state
    finally:
        server.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await server.wait_closed()


async def _serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    log: list[Request],
) -> None:
    for _ in range(10_000):  # keep-alive, bounded
        request = await _read_request(reader)
        if request is None:
            return
        log.append(request)
        reply = handler(request)
        if inspect.isawaitable(reply):
            reply = await reply
        await _write_reply(writer, reply)
        if reply.close or reply.raw is not None:
            return


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed the connection between requests
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = min(int(headers.get("content-length", "0")), _MAX_BODY)
    body = await reader.readexactly(length) if length else b""
    return Request(method, path, headers, body)


async def _write_reply(writer: asyncio.StreamWriter, reply: Reply) -> None:
    if reply.raw is not None:
        writer.write(reply.raw)
        await writer.drain()
        return
    headers = list(reply.headers)
    if not any(name.lower() == "content-length" for name, _ in headers):
        headers.append(("Content-Length", str(len(reply.body))))
    head = f"HTTP/1.1 {reply.status} Whatever\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers
    )
    writer.write(head.encode("latin-1") + b"\r\n")
    if reply.drip is None:
        writer.write(reply.body)
        await writer.drain()
        return
    await writer.drain()
    for start in range(0, len(reply.body), reply.drip_size):
        await asyncio.sleep(reply.drip)
        writer.write(reply.body[start : start + reply.drip_size])
        await writer.drain()
