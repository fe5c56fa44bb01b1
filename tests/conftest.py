"""Fixtures shared by the test modules: a real redis-server for the Redis store's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis_server import RedisServer, start_redis_server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One throwaway redis-server for the whole run (fails, never skips, when not installed)."""
    try:
        server = start_redis_server(tmp_path_factory.mktemp("redis"))
    except AssertionError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's redis-server, emptied (FLUSHALL) for this test."""
    redis_server.flush()
    return redis_server.url
