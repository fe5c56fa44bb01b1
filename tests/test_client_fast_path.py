"""The client's per-request fast paths keep its behaviour, over real sockets (issue 12 item 3).

The default transport reads a small answer of a declared length in one call and hands aiohttp
the request's header lines as they are; these tests pin what a user relies on around that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from opensms_async import AiohttpTransport
from opensms_async._constants import READ_AT_ONCE

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def raw_heads(answer: bytes) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server on 127.0.0.1 recording each request's head (bytes) and sending ``answer``."""
    heads: list[bytes] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(100):  # keep-alive, bounded
                heads.append(await reader.readuntil(b"\r\n\r\n"))
                writer.write(answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", heads
    finally:
        server.close()
        await server.wait_closed()


def answer_of(body: bytes) -> bytes:
    """An HTTP/1.1 200 answer carrying ``body`` with its Content-Length."""
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def test_a_repeated_header_goes_out_as_separate_lines() -> None:
    """A header given twice is sent as two lines, as httpx's own transport sends it."""
    async with (
        raw_heads(answer_of(b"{}")) as (url, heads),
        httpx.AsyncClient(transport=AiohttpTransport()) as http,
    ):
        headers = [("X-Tag", "one"), ("X-Tag", "two")]
        response = await http.get(url + "/x", headers=headers)
    assert response.status_code == 200
    lines = heads[0].split(b"\r\n")
    assert b"X-Tag: one" in lines
    assert b"X-Tag: two" in lines


async def test_a_small_answer_is_read_whole_and_its_connection_reused() -> None:
    """An answer of a small declared length comes back read, and its connection serves the next
    request (the pool is not drained by small answers)."""
    body = b'{"ok": true}'
    opened = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal opened
        opened += 1
        try:
            for _ in range(100):
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer_of(body))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    transport = AiohttpTransport()
    try:
        for _ in range(3):
            response = await transport.handle_async_request(httpx.Request("GET", url + "/x"))
            assert isinstance(response.stream, httpx.ByteStream)  # in memory already
            assert await response.aread() == body
    finally:
        await transport.aclose()
        server.close()
        await server.wait_closed()
    assert opened == 1


async def test_a_long_answer_is_streamed() -> None:
    """An answer longer than READ_AT_ONCE is streamed, not read whole before the client's
    size bound can stop it."""
    body = b"x" * (READ_AT_ONCE + 1)
    async with raw_heads(answer_of(body)) as (url, _):
        transport = AiohttpTransport()
        try:
            response = await transport.handle_async_request(httpx.Request("GET", url + "/x"))
            assert not isinstance(response.stream, httpx.ByteStream)
            assert await response.aread() == body
        finally:
            await transport.aclose()
