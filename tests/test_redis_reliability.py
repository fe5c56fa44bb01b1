"""``RedisStore`` under hostile input, faults and shutdown (issue 8), against a real redis-server.

URLs never show a password.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest

from opensms_async._cli import main as cli_main
from opensms_async._exceptions import InvalidStoreURLError, StoreUnavailableError
from opensms_async.stores import open_store
from opensms_async.stores.redis import RedisStore

# --- item 7: URLs never show a password ----------------------------------------------------------

PASSWORDS = ["QZ7/XW9KJ4", "QZ7?XW9KJ4", "QZ7#XW9KJ4", "QZ7@XW9KJ4", "Q/Z7?XW#9K@J4", "QZ7XW9KJ4"]
"""Passwords with every character that ends a URL part early; no 3 of their characters in a row
appear in any message of the store."""


def hostile_urls(password: str) -> list[str]:
    """URLs holding ``password`` where a parser may not expect it."""
    encoded = quote(password, safe="")
    return [
        f"redis://:{password}@cache.example:6380/1",
        f"redis://user:{password}@cache.example/0",
        f"rediss://{password}@cache.example/0",
        f"redis://:{password}@cache.example:notaport/0",
        f"redis://:{password}@[::1/0",
        f"redis://:{password}@cache.example/zero",
        f"redis://:{password}@cache.example/0?colour=blue",
        f"redis://:{password}@cache.example/0?retention=soon",
        f"redis://:{password}@cache.example/0#x",
        f"redis://cache.example/0?password={password}",
        f"redis://cache.example/0?password={encoded}",
        f"redis://cache.example/0?password={encoded}&password=x",
        f"redis://cache.example/0?password={password}&colour=blue",
        f"redis://cache.example/0?socket_timeout=1&password={password}",
        f"redis://:{encoded}@cache.example/0?colour=blue",
        f"redis://:{encoded}@cache.example/0?socket_timeout=never",
        f"redis:{password}@cache.example/0",
        f"unknown://:{password}@cache.example/0",
        f"redis://:{encoded}@cache.example:6380/1",
    ]


def leaks(text: str, password: str) -> list[str]:
    """The pieces of ``password`` (3 characters or more, plain or percent-encoded) in ``text``."""
    pieces = {password[i : i + 3] for i in range(len(password) - 2)}
    encoded = quote(password, safe="")
    pieces |= {encoded[i : i + 3] for i in range(len(encoded) - 2) if "%" not in encoded[i : i + 3]}
    return sorted(piece for piece in pieces if piece in text)


def error_texts(exc: BaseException) -> str:
    """An exception's message with those of its causes and contexts."""
    texts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(texts) < 10:
        texts.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


@pytest.mark.parametrize("password", PASSWORDS)
def test_no_url_error_or_repr_shows_the_password(password: str) -> None:
    """Whatever the URL looks like, the error of open_store, RedisStore and from_url, and the
    repr of any store made, hold no piece of the password."""
    for url in hostile_urls(password):
        for make in (open_store, RedisStore, RedisStore.from_url):
            try:
                made = make(url)
            except (InvalidStoreURLError, ValueError) as exc:
                text = error_texts(exc)
            else:
                text = repr(made)
            assert not leaks(text, password), f"{make.__name__}({url!r}) -> {text}"


@pytest.mark.integration
async def test_connection_errors_and_cli_show_no_password(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A well-formed URL whose server is unreachable fails open() without the password, and the
    CLI prints no piece of it on stderr for any hostile URL."""
    for password in PASSWORDS:
        url = f"redis://:{quote(password, safe='')}@127.0.0.1:1/0"
        store = RedisStore(url)
        with pytest.raises(StoreUnavailableError) as info:
            await store.open()
        await store.close()
        assert not leaks(error_texts(info.value) + repr(store), password)
    for password in PASSWORDS[:3]:
        for url in [*hostile_urls(password), f"redis://:{quote(password, safe='')}@127.0.0.1:1/0"]:
            assert await asyncio.to_thread(cli_main, ["events", "--store", url]) == 1
            err = capsys.readouterr().err
            assert err.startswith("error: ")
            assert not leaks(err + caplog.text, password), (url, err)
