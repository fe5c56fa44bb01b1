"""Fixtures shared by the test modules: a real redis-server, and every store a tracker runs on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import RedisServer, start_redis_server

from opensms_async.stores import MemoryStore, RedisStore, SQLiteStore, Store


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


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def tracker_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Each store a tracker runs on, not yet open: memory, SQLite, and Redis (the session's
    redis-server, emptied for the test)."""
    if request.param == "memory":
        return MemoryStore()
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "t.db")
    return RedisStore(request.getfixturevalue("redis_url"))
