"""The library's errors a new user meets first: typed, under OpenSMSError, saying what to change."""

from __future__ import annotations

import socket
import typing

import httpx
import pytest

from opensms_async import (
    APIConnectionError,
    APITimeoutError,
    DeliveryInfo,
    DeliveryStatus,
    DeliveryTracker,
    InvalidBaseURLError,
    InvalidCursorError,
    OpenSMSClient,
    OpenSMSError,
    ValidationError,
)
from opensms_async.stores import MemoryStore, SQLiteStore
from opensms_async.stores._redis_codec import cursor_key as redis_cursor_key


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:8750",
        "localhost:8750/v1",
        "htp://127.0.0.1:8750",
        "http://",
        "http://[x",
        "http://127.0.0.1:99999",
        "https://a b/v1",
        "ftp://example.com",
    ],
)
def test_a_bad_base_url_is_a_validation_error(url: str) -> None:
    """A base URL that is not absolute http(s) raises InvalidBaseURLError, a ValidationError."""
    with pytest.raises(InvalidBaseURLError, match="absolute http:// or https:// URL") as caught:
        OpenSMSClient(api_key="k", base_url=url)
    assert isinstance(caught.value, ValidationError)
    assert isinstance(caught.value, OpenSMSError)
    assert isinstance(caught.value, ValueError)


def test_a_bad_base_url_from_the_environment_says_where_it_came_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad OPENSMS_BASE_URL is refused naming the variable, so the user knows what to fix."""
    monkeypatch.setenv("OPENSMS_BASE_URL", "127.0.0.1:8750")
    with pytest.raises(InvalidBaseURLError, match="OPENSMS_BASE_URL"):
        OpenSMSClient(api_key="k")


@pytest.mark.parametrize("cursor", ["abc", "-1", " 1", "1.5", ""])
def test_a_malformed_cursor_is_a_validation_error(cursor: str) -> None:
    """Memory and SQLite stores refuse a cursor they never gave with InvalidCursorError."""
    for store in (MemoryStore(), SQLiteStore(":memory:")):
        with pytest.raises(InvalidCursorError, match="malformed event cursor"):
            store.cursor_key(cursor)


@pytest.mark.parametrize("cursor", ["abc", "12", "1-x", "99999999999999999999-0"])
def test_a_malformed_redis_cursor_is_a_validation_error(cursor: str) -> None:
    """A Redis cursor that is no stream id is an InvalidCursorError (no redis-server needed)."""
    with pytest.raises(InvalidCursorError):
        redis_cursor_key(cursor)


async def test_events_since_a_malformed_cursor_raises_a_validation_error() -> None:
    """tracker.events(since="abc") raises InvalidCursorError, not a bare ValueError."""
    async with DeliveryTracker() as tracker:
        with pytest.raises(InvalidCursorError):
            async for _ in tracker.events(since="abc"):
                pass


def _closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_connection_error_names_the_host_and_the_cause() -> None:
    """A refused connection says where and why (Connection refused), with httpx's error kept."""
    port = _closed_port()
    async with OpenSMSClient(api_key="k", base_url=f"http://127.0.0.1:{port}", max_retries=0) as c:
        with pytest.raises(APIConnectionError) as caught:
            await c.get_subscription()
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "Connection refused" in message
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_a_timeout_names_the_host() -> None:
    """A server that accepts and never answers ends in an APITimeoutError naming the host."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        async with OpenSMSClient(
            api_key="k", base_url=f"http://127.0.0.1:{port}", timeout=0.3, max_retries=0
        ) as c:
            with pytest.raises(APITimeoutError) as caught:
                await c.get_subscription()
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_delivery_info_status_is_typed_as_a_status_or_a_string() -> None:
    """DeliveryInfo.status reads DeliveryStatus | str in signatures and IDEs, not an alias."""
    hints = typing.get_type_hints(DeliveryInfo)
    assert hints["status"] == DeliveryStatus | str
    assert "DeliveryStatus | str" in str(DeliveryInfo.__annotations__["status"])
