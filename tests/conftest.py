"""Fixtures shared by the test modules: a real redis-server, every store a tracker runs on, and
what the command-line tests share (``no_opensms_env``, ``busy_port``)."""

from __future__ import annotations

import gc
import os
import socket
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


@pytest.fixture
def no_opensms_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The test runs without OPENSMS_* variables, in an empty folder (the CLI tests use it on
    every test: ``pytest.mark.usefixtures("no_opensms_env")``)."""
    for name in list(os.environ):
        if name.startswith("OPENSMS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A 127.0.0.1 port something listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _collector_unfrozen() -> Iterator[None]:
    """``opensms receive`` run in this process freezes every object alive (``gc.freeze()``):
    give them back to the collector after the test, so no later test runs on a frozen heap."""
    yield
    if gc.get_freeze_count():
        gc.unfreeze()


_CHECKOUT_STORE = Path(__file__).resolve().parent.parent / "opensms.db"


@pytest.fixture(autouse=True)
def _checkout_left_clean() -> Iterator[None]:
    """No test leaves the CLI's default store (``opensms.db``) in the checkout: a test that runs
    ``opensms receive`` must give it a ``--store`` of its own, under ``tmp_path``."""
    existed = _CHECKOUT_STORE.exists()
    yield
    if not existed and _CHECKOUT_STORE.exists():
        _CHECKOUT_STORE.unlink()
        pytest.fail(f"the test left {_CHECKOUT_STORE.name} in the checkout (give it a --store)")
