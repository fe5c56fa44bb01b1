"""open_inbound_store refuses a bad URL as open_store does: the same typed error, the same words."""

from __future__ import annotations

import builtins
import sys

import pytest

from opensms_async import InvalidStoreURLError
from opensms_async.stores import open_store
from opensms_async.stores.inbound import (
    MemoryInboundStore,
    SQLiteInboundStore,
    open_inbound_store,
)


def _refusal(open_url: object, url: object) -> str:
    with pytest.raises(InvalidStoreURLError) as info:
        open_url(url)  # type: ignore[operator]
    return str(info.value)


@pytest.mark.parametrize(
    "url",
    ["", "x.db", "ftp://host/x", "memory", "ftp://:hunter2@host/x", "sqlite://[::1/x.db", 42],
)
def test_a_bad_inbound_store_url_is_refused_as_a_delivery_store_url(url: object) -> None:
    """Unknown schemes, malformed URLs and non-strings get InvalidStoreURLError with the message
    open_store gives (no password in it)."""
    refused = _refusal(open_inbound_store, url)
    assert refused == _refusal(open_store, url)
    assert "hunter2" not in refused


def test_a_missing_backend_module_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend whose optional package is missing is an InvalidStoreURLError naming the extra."""
    real_import = builtins.__import__

    def no_redis(name: str, *args: object, **kwargs: object) -> object:
        if name == "redis" or name.startswith("redis."):
            raise ModuleNotFoundError(f"No module named {name!r}", name="redis")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_redis)
    for module in [name for name in sys.modules if name.endswith("stores.inbound.redis")]:
        monkeypatch.delitem(sys.modules, module)
    refused = _refusal(open_inbound_store, "redis://localhost/0")
    assert "pip install 'opensms-async[redis]'" in refused


def test_good_inbound_store_urls_open_their_backend() -> None:
    """memory:// and sqlite:/// name the inbound stores of their scheme."""
    assert isinstance(open_inbound_store("memory://"), MemoryInboundStore)
    assert isinstance(open_inbound_store("sqlite:///:memory:"), SQLiteInboundStore)
