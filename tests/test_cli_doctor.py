"""``opensms doctor``: one ✓/✗ line per check of a set-up, exit 1 when any failed."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import RedisServer, serving, start_durable_redis_server

from opensms_async._cli import main
from opensms_async.stores import SQLiteStore
from opensms_async.testing import RunningSimulator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_opensms_env")]


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server with appendonly yes, appendfsync always."""
    with serving(start_durable_redis_server(tmp_path / "redis")) as server:
        yield server


def doctor(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str]]:
    """Run doctor; its exit code and each check's line by name."""
    code = main(["doctor", *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    lines = {line.split()[1]: line for line in captured.out.splitlines()}
    return code, lines


def sqlite_store(path: Path) -> str:
    """A SQLite store created at ``path``; its URL."""

    async def create() -> None:
        async with SQLiteStore(path):
            pass

    asyncio.run(create())
    return f"sqlite:///{path}"


def test_a_good_set_up_is_all_ticks(
    opensms_simulator: RunningSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Credentials, base URL, key, subscription and store all ✓: exit 0."""
    sim = opensms_simulator
    base = ["--api-key", sim.api_key, "--base-url", sim.base_url]
    assert main([*base, "subscription", "create", "https://me.example/cb", "--token", "tok1"]) == 0
    capsys.readouterr()
    code, lines = doctor([*base, "--store", sqlite_store(tmp_path / "s.db")], capsys)
    assert code == 0
    assert list(lines) == ["credentials", "base", "accepted", "subscription", "store"]
    assert all(line.startswith("✓") for line in lines.values()), lines
    assert "https://me.example/cb" in lines["subscription"]
    assert "no events yet" in lines["store"]


def test_a_wrong_key_is_a_cross(
    opensms_simulator: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key the API refuses: ✗ accepted with what to check; the subscription not checked."""
    code, lines = doctor(["--api-key", "wrong", "--base-url", opensms_simulator.base_url], capsys)
    assert code == 1
    assert lines["accepted"].startswith("✗") and "401" in lines["accepted"]
    assert "check the key" in lines["accepted"]
    assert lines["subscription"].startswith("-")
    assert "wrong" not in lines["credentials"]


def test_an_unreachable_base_url_is_a_cross(capsys: pytest.CaptureFixture[str]) -> None:
    """A base URL nothing answers on: ✗ with the cause and what to check."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, lines = doctor(["--api-key", "k", "--base-url", f"http://127.0.0.1:{port}"], capsys)
    assert code == 1
    assert lines["base"].startswith("✗")
    assert "Connection refused" in lines["base"]
    assert "OPENSMS_BASE_URL" in lines["base"]
    assert lines["accepted"].startswith("-")


def test_a_malformed_base_url_is_a_cross(capsys: pytest.CaptureFixture[str]) -> None:
    """A base URL that is not a URL: ✗, no request."""
    code, lines = doctor(["--api-key", "k", "--base-url", "127.0.0.1:8750"], capsys)
    assert code == 1
    assert lines["base"].startswith("✗") and "absolute http" in lines["base"]


def test_no_credentials_is_a_cross(
    opensms_simulator: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """No key at all: ✗ credentials naming the option and the variable."""
    code, lines = doctor(["--base-url", opensms_simulator.base_url], capsys)
    assert code == 1
    assert lines["credentials"].startswith("✗")
    assert "OPENSMS_API_KEY" in lines["credentials"]


def test_no_subscription_is_a_cross(
    opensms_simulator: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """An account without a subscription gets no callback: ✗ with the command that fixes it."""
    sim = opensms_simulator
    code, lines = doctor(["--api-key", sim.api_key, "--base-url", sim.base_url], capsys)
    assert code == 1
    assert "opensms subscription create" in lines["subscription"]


def test_a_missing_sqlite_file_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default store not there yet is fine (receive creates it), and doctor creates nothing;
    one in a folder that does not exist is a ✗."""
    _, lines = doctor([], capsys)
    assert lines["store"].startswith("✓") and "no file yet" in lines["store"]
    assert str(tmp_path / "opensms.db") in lines["store"]
    assert not (tmp_path / "opensms.db").exists()
    _, lines = doctor(["--store", "sqlite:///nowhere/x.db"], capsys)
    assert lines["store"].startswith("✗")


def test_redis_without_aof_is_a_cross(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A redis:// store on a Redis with appendonly no: ✗ redis, saying what is at risk."""
    code, lines = doctor(["--store", redis_url], capsys)
    assert code == 1
    assert lines["store"].startswith("✓")
    assert lines["redis"].startswith("✗") and "appendonly no" in lines["redis"]


def test_redis_with_aof_is_a_tick(
    durable_redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """appendonly yes, appendfsync always: ✓ redis."""
    _, lines = doctor(["--store", durable_redis.url], capsys)
    assert lines["redis"].startswith("✓")
    assert "appendfsync always" in lines["redis"]


def test_unreachable_redis_is_a_cross(capsys: pytest.CaptureFixture[str]) -> None:
    """A redis:// store nothing answers on: ✗ store and ✗ redis."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, lines = doctor(["--store", f"redis://127.0.0.1:{port}/0"], capsys)
    assert code == 1
    assert lines["store"].startswith("✗")
    assert lines["redis"].startswith("✗")


def test_json_lines(
    opensms_simulator: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints one object per check: name, ok, detail, hint."""
    sim = opensms_simulator
    assert main(["--json", "doctor", "--api-key", sim.api_key, "--base-url", sim.base_url]) == 1
    checks = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [c["name"] for c in checks] == [
        "credentials",
        "base URL",
        "accepted",
        "subscription",
        "store",
    ]
    assert [c["ok"] for c in checks] == [True, True, True, False, True]
    assert checks[3]["hint"].startswith("opensms subscription create")
