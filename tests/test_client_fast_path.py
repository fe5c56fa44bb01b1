"""The client's per-request fast paths keep its behaviour, over real sockets (issue 12 item 3).

The default transport reads a small answer of a declared length in one call and hands aiohttp
the request's header lines as they are; these tests pin what a user relies on around that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from opensms_async import AiohttpTransport, APITimeoutError, OpenSMSClient
from opensms_async._constants import READ_AT_ONCE
from opensms_async._transport import transport_timeouts

pytestmark = pytest.mark.integration


@dataclass
class RawServer:
    """A raw HTTP/1.1 server on 127.0.0.1: its URL, each request's head (bytes) as it came, and
    how many connections it was opened."""

    url: str = ""
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0


@contextlib.asynccontextmanager
async def raw_server(answer: bytes) -> AsyncIterator[RawServer]:
    """A :class:`RawServer` sending ``answer`` to each request, kept alive (bounded)."""
    raw = RawServer()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw.connections += 1
        try:
            for _ in range(100):  # keep-alive, bounded
                raw.heads.append(await reader.readuntil(b"\r\n\r\n"))
                writer.write(answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    raw.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield raw
    finally:
        server.close()
        await server.wait_closed()


def answer_of(body: bytes) -> bytes:
    """An HTTP/1.1 200 answer carrying ``body`` with its Content-Length."""
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def test_a_repeated_header_goes_out_as_separate_lines() -> None:
    """A header given twice is sent as two lines, as httpx's own transport sends it."""
    async with (
        raw_server(answer_of(b"{}")) as raw,
        httpx.AsyncClient(transport=AiohttpTransport()) as http,
    ):
        headers = [("X-Tag", "one"), ("X-Tag", "two")]
        response = await http.get(raw.url + "/x", headers=headers)
    assert response.status_code == 200
    lines = raw.heads[0].split(b"\r\n")
    assert b"X-Tag: one" in lines
    assert b"X-Tag: two" in lines


async def test_a_small_answer_is_read_whole_and_its_connection_reused() -> None:
    """An answer of a small declared length comes back read, and its connection serves the next
    request (the pool is not drained by small answers)."""
    body = b'{"ok": true}'
    async with raw_server(answer_of(body)) as raw:
        transport = AiohttpTransport()
        try:
            for _ in range(3):
                response = await transport.handle_async_request(
                    httpx.Request("GET", raw.url + "/x")
                )
                assert isinstance(response.stream, httpx.ByteStream)  # in memory already
                assert await response.aread() == body
        finally:
            await transport.aclose()
    assert raw.connections == 1


async def test_a_long_answer_is_streamed() -> None:
    """An answer longer than READ_AT_ONCE is streamed, not read whole before the client's
    size bound can stop it."""
    body = b"x" * (READ_AT_ONCE + 1)
    async with raw_server(answer_of(body)) as raw:
        transport = AiohttpTransport()
        try:
            response = await transport.handle_async_request(httpx.Request("GET", raw.url + "/x"))
            assert not isinstance(response.stream, httpx.ByteStream)
            assert await response.aread() == body
        finally:
            await transport.aclose()


async def test_a_utf8_header_goes_out_as_its_bytes() -> None:
    """A header value given as UTF-8 bytes reaches the server as those bytes."""
    async with (
        raw_server(answer_of(b"{}")) as raw,
        httpx.AsyncClient(transport=AiohttpTransport()) as http,
    ):
        await http.get(raw.url + "/x", headers={b"X-Name": "café".encode()})
        await http.get(raw.url + "/x", headers={"X-Name": "plain"})
    assert "X-Name: café".encode() in raw.heads[0].split(b"\r\n")
    assert b"X-Name: plain" in raw.heads[1].split(b"\r\n")


def test_the_read_timeout_is_left_to_a_shorter_deadline() -> None:
    """A read timeout no shorter than the deadline is not armed (the deadline fires first); a
    shorter one is kept, as are the other phases."""
    default = transport_timeouts(httpx.Timeout(30.0, connect=5.0), 30.0)
    assert default == {"connect": 5.0, "read": None, "write": 30.0, "pool": 30.0}
    short = transport_timeouts(httpx.Timeout(5.0, read=0.5), 60.0)
    assert short == {"connect": 5.0, "read": 0.5, "write": 5.0, "pool": 5.0}
    unbounded = transport_timeouts(httpx.Timeout(None, read=2.0), None)
    assert unbounded["read"] == 2.0


async def test_a_silent_server_hits_the_deadline_without_a_read_timeout() -> None:
    """timeout=0.5 (so a 0.5 s deadline): a server that never answers gives APITimeoutError
    naming the deadline, well within 30 s."""

    writers: list[asyncio.StreamWriter] = []

    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)  # closed by the test: this handler never ends on its own
        with contextlib.suppress(Exception):
            await reader.read(1 << 16)
            await asyncio.sleep(60)

    server = await asyncio.start_server(never, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        client = OpenSMSClient(api_key="k", base_url=url, timeout=0.5, max_retries=0)
        async with client, asyncio.timeout(30):  # the server sleeps 60 s
            with pytest.raises(APITimeoutError, match="deadline"):
                await client.get_subscription()
    finally:
        server.close()
        for writer in writers:  # before the loop closes, or the socket is reported unclosed
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await server.wait_closed()
