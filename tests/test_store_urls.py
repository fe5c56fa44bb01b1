"""Store URLs: ``open_store`` picks a store and its options from a URL, and refuses bad ones
without showing a password.
"""

from __future__ import annotations

import importlib.abc
import sys
import types
from pathlib import Path

import pytest

from opensms_async._exceptions import InvalidStoreURLError
from opensms_async.stores import open_store
from opensms_async.stores.memory import DEFAULT_MAX_EVENTS, MemoryStore
from opensms_async.stores.redis import RedisStore
from opensms_async.stores.sqlite import SQLiteStore

# --- open_store ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "attributes"),
    [
        ("memory://", MemoryStore, {"max_events": DEFAULT_MAX_EVENTS}),
        ("MEMORY://", MemoryStore, {}),
        ("memory://?max_events=500", MemoryStore, {"max_events": 500}),
        ("sqlite:///opensms.db", SQLiteStore, {"path": "opensms.db", "synchronous": "NORMAL"}),
        ("sqlite:///data/o%20s.db", SQLiteStore, {"path": "data/o s.db"}),
        ("sqlite:////var/lib/opensms.db", SQLiteStore, {"path": "/var/lib/opensms.db"}),
        ("sqlite:///:memory:", SQLiteStore, {"path": ":memory:"}),
        ("sqlite:///x.db?synchronous=full", SQLiteStore, {"synchronous": "FULL"}),
        ("redis://localhost:6379/0", RedisStore, {"prefix": "opensms", "retention": 604800.0}),
        ("rediss://:pw@cache.example:6380/1?prefix=sms", RedisStore, {"prefix": "sms"}),
        ("redis://h?retention=60&max_events=5", RedisStore, {"retention": 60.0, "max_events": 5}),
        ("redis://h/2?socket_timeout=1.5&prefix=x", RedisStore, {"prefix": "x"}),
    ],
)
def test_open_store_urls(url: str, kind: type, attributes: dict[str, object]) -> None:
    """Each supported URL gives the right, unopened store with its options (nothing connects
    yet)."""
    store = open_store(url)
    assert isinstance(store, kind)
    for name, value in attributes.items():
        assert getattr(store, name) == value


@pytest.mark.parametrize(
    "url",
    [
        "",
        "opensms.db",
        "memory",
        "ftp://host/x",
        "memory://somewhere",
        "memory://?max_events=0",
        "memory://?max_events=ten",
        "memory://?max_events=1&max_events=2",
        "memory://?colour=blue",
        "memory://?=x",
        "sqlite://",
        "sqlite:///",
        "sqlite:///data/",
        "sqlite://host/x.db",
        "sqlite:///x.db?synchronous=OFF",
        "sqlite:///x.db?journal=delete",
        "sqlite://[::1/x.db",
    ],
)
def test_open_store_rejects_bad_urls(url: str) -> None:
    """Malformed or unknown URLs raise InvalidStoreURLError (a ValueError)."""
    with pytest.raises(InvalidStoreURLError):
        open_store(url)


def test_open_store_rejects_non_strings() -> None:
    """A store URL must be a string."""
    with pytest.raises(InvalidStoreURLError):
        open_store(Path("x.db"))  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://:pw@cache.example:6380/1"])
def test_open_store_hands_redis_urls_to_the_redis_store(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis:// and rediss:// go whole to ``RedisStore.from_url`` of the lazily imported module."""
    seen: list[str] = []

    class FakeRedisStore:
        @classmethod
        def from_url(cls, given: str) -> str:
            seen.append(given)
            return "a redis store"

    fake = types.ModuleType("opensms_async.stores.redis")
    fake.RedisStore = FakeRedisStore  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "opensms_async.stores.redis", fake)
    assert open_store(url) == "a redis store"  # type: ignore[comparison-overlap]
    assert seen == [url]


def test_open_store_redis_module_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the Redis store module, a redis:// URL is refused clearly, password hidden."""
    monkeypatch.setitem(sys.modules, "opensms_async.stores.redis", None)
    with pytest.raises(InvalidStoreURLError, match="RedisStore") as info:
        open_store("redis://:hunter2@localhost/0")
    assert "hunter2" not in str(info.value)


class _NoRedisPackage(importlib.abc.MetaPathFinder):
    """An import hook under which the store module fails to import ``redis``."""

    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name == "opensms_async.stores.redis":
            raise ModuleNotFoundError("No module named 'redis'", name="redis")


def test_open_store_redis_package_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the redis package, a redis:// URL says to install the extra."""
    monkeypatch.delitem(sys.modules, "opensms_async.stores.redis", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoRedisPackage(), *sys.meta_path])
    with pytest.raises(InvalidStoreURLError, match=r"opensms-async\[redis\]"):
        open_store("rediss://localhost/0")


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@h/0?colour=blue",
        "redis://:hunter2@h/0?retention=0",
        "redis://:hunter2@h/0?retention=soon",
        "redis://:hunter2@h/0?max_events=0",
        "redis://:hunter2@h/0?prefix=",
        "redis://:hunter2@h/0?prefix=a&prefix=b",
        "redis://:hunter2@h/zero",
        "redis://:hunter2@h/0/1",
        "redis://:hunter2@h:99999/0",
        "redis://:hunter2@h/0?socket_timeout=never",
    ],
)
def test_redis_bad_urls(url: str) -> None:
    """Malformed Redis URLs and unknown options are refused without showing the password."""
    with pytest.raises(InvalidStoreURLError) as info:
        open_store(url)
    assert "hunter2" not in str(info.value)
