"""The ``opensms`` command line: every error one line, the options a real tool has, exit codes.

Errors run the real CLI (a child process, or ``main()`` with stderr captured) and check the exit
code, exactly one ``error: ...`` line and no traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import (
    assert_cli_error,
    background,
    interrupt,
    main_error,
    run_cli,
    wait_for_text,
)

from opensms_async import DeliveryUpdate, __version__
from opensms_async._cli import main
from opensms_async.stores import SQLiteStore
from opensms_async.testing import RunningSimulator

SENDER = "tel:+3212345678"


@pytest.fixture(autouse=True)
def _no_opensms_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test starts without OPENSMS_* variables, in an empty folder."""
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


def sim_args(sim: RunningSimulator) -> list[str]:
    """The global options that point the CLI at a simulator."""
    return ["--api-key", sim.api_key, "--base-url", sim.base_url]


# --- errors: one line, never a traceback ---------------------------------------------------------


@pytest.mark.integration
def test_simulate_on_a_port_in_use_is_one_line(busy_port: int) -> None:
    """opensms simulate --port N on a busy port says so and what to do, exit 1."""
    result = run_cli("simulate", "--port", str(busy_port))
    line = assert_cli_error(result, expected=1, says=f"cannot listen on 127.0.0.1:{busy_port}")
    assert "choose another --port" in line


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["simulate", "--port", "99999"], "a port is a number from 0 to 65535"),
        (["simulate", "--port", "-1"], "a port is a number from 0 to 65535"),
        (["simulate", "--drop-rate", "2"], "--drop-rate: a share from 0 to 1"),
        (["demo", "--drop-rate", "2"], "--drop-rate: a share from 0 to 1"),
        (["demo", "--drop-rate", "nan"], "--drop-rate: a share from 0 to 1"),
        (["simulate", "--duplicate-rate", "-0.1"], "--duplicate-rate: a share from 0 to 1"),
        (["simulate", "--callback-target", "localhost:8080"], "--callback-target must be"),
        (["simulate", "--base-url", "http://x"], "simulate takes no --base-url"),
        (["demo", "--api-key", "k"], "demo takes no --api-key"),
        (["--json", "demo"], "leave out --json"),
        (["simulate", "--sim-api-key", "a", "--api-key", "b"], "--sim-api-key and --api-key"),
        (["send", "--to", "+33612345678", "x"], "--from"),
        (["nonsense"], "invalid choice: 'nonsense'"),
        (["subscription"], "required"),
        (["send-many"], "required: file"),
        (["--log-level", "loud", "segments", "x"], "--log-level"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every refused option value is one error line naming it, with exit code 2."""
    main_error(argv, capsys, expected=2, says=says)


@pytest.mark.parametrize("url", ["127.0.0.1:8750", "htp://127.0.0.1:8750", "http://:80"])
def test_a_bad_base_url_option_is_one_line(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--base-url that is not an absolute http(s) URL: one line, exit 2, nothing sent."""
    argv = ["--api-key", "k", "--base-url", url, "status", "--from", SENDER, "r1"]
    main_error(argv, capsys, expected=2, says="absolute http:// or https:// URL")


@pytest.mark.integration
def test_a_bad_base_url_from_the_environment_is_one_line() -> None:
    """OPENSMS_BASE_URL=127.0.0.1:8750 is refused naming the variable (real process)."""
    env = {"OPENSMS_BASE_URL": "127.0.0.1:8750", "OPENSMS_API_KEY": "k"}
    result = run_cli("status", "--from", SENDER, "r1", env=env)
    assert_cli_error(result, expected=2, says="(from OPENSMS_BASE_URL)")


@pytest.mark.parametrize("since", ["abc", "-1", "1.5"])
def test_events_since_a_malformed_cursor_is_one_line(
    since: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """opensms events --since abc / -1 says the cursor is malformed, exit 2."""
    main_error(["events", "--since", since], capsys, expected=2, says="--since: malformed event")


@pytest.mark.integration
def test_events_since_a_malformed_cursor_in_a_real_process(tmp_path: Path) -> None:
    """The same from a real process: no traceback, exit 2."""
    result = run_cli("events", "--since", "-1", cwd=tmp_path)
    assert_cli_error(result, expected=2, says="malformed event cursor")


def test_events_on_a_missing_sqlite_file_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reader never creates a store: events on sqlite:///typo.db is an error, and no file."""
    line = main_error(
        ["events", "--store", "sqlite:///typo.db"], capsys, expected=2, says="no SQLite store at"
    )
    assert str(tmp_path / "typo.db") in line
    assert "sqlite:///PATH is relative" in line
    assert "sqlite:////PATH is absolute" in line
    assert list(tmp_path.iterdir()) == []


def test_events_on_a_memory_store_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """memory:// is empty in a new process: events says so instead of printing nothing."""
    main_error(["events", "--store", "memory://"], capsys, expected=2, says="memory://")


def test_a_bad_store_url_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown store scheme is refused in one line listing the known ones."""
    main_error(["events", "--store", "postgres://x"], capsys, expected=2, says="unknown store URL")


def test_no_credentials_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A command that needs the API without credentials says how to give them, exit 2."""
    main_error(["status", "--from", SENDER, "r1"], capsys, expected=2, says="no credentials")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--api-key", "", "status", "--from", SENDER, "r"], "--api-key is empty"),
        (["--api-key", "k", "--client-id", "c", "status", "--from", SENDER, "r"], "not both"),
        (["--client-id", "c", "status", "--from", SENDER, "r"], "--client-secret"),
        (["--client-id", "c", "--client-secret", "s", "status", "--from", SENDER, "r"], "--scope"),
    ],
)
def test_credential_mistakes_are_one_line(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Half-given or contradictory credentials are refused before any request."""
    main_error(argv, capsys, expected=2, says=says)


def test_an_unreachable_api_is_one_line_naming_the_host(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A refused connection names the host and the cause, exit 1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = ["--api-key", "k", "--base-url", f"http://127.0.0.1:{port}", "status", "--from", SENDER]
    line = main_error([*argv, "r1"], capsys, expected=1, says=f"127.0.0.1:{port}")
    assert "Connection refused" in line


def test_send_store_memory_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """send --store memory:// would forget at exit: refused before sending."""
    argv = ["--api-key", "k", "send", "--from", SENDER, "--to", "+33612345678", "--store"]
    main_error([*argv, "memory://", "x"], capsys, expected=2, says="memory://")


def test_send_store_in_a_missing_folder_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """send --store sqlite:///no/such/dir.db is refused before sending, naming the path."""
    argv = ["--api-key", "k", "send", "--from", SENDER, "--to", "+33612345678", "--store"]
    main_error([*argv, "sqlite:///no/such/x.db", "x"], capsys, expected=2, says="no folder")


# --- Ctrl-C: 130 --------------------------------------------------------------------------------


@pytest.mark.integration
def test_ctrl_c_stops_simulate_with_130(tmp_path: Path) -> None:
    """Ctrl-C on a running simulator exits 130, quietly."""
    out, err = tmp_path / "out", tmp_path / "err"
    with background("simulate", "--port", "0", out=out, err=err) as process:
        wait_for_text(out, "Ctrl-C stops it", process, 30)
        assert interrupt(process) == 130
    assert "Traceback" not in err.read_text()


def _store_with_one_event(db: Path) -> None:
    """A SQLite store at ``db`` whose log holds one event."""

    async def write() -> None:
        async with SQLiteStore(db) as store:
            await store.apply_events(
                [DeliveryUpdate("r1", "tel:+33612345678", "DeliveredToNetwork")]
            )

    asyncio.run(write())


@pytest.mark.integration
def test_ctrl_c_stops_events_follow_with_130(tmp_path: Path) -> None:
    """Ctrl-C on events --follow (waiting for new events) exits 130 without a traceback."""
    db = tmp_path / "log.db"
    _store_with_one_event(db)
    out, err = tmp_path / "out", tmp_path / "err"
    with background(
        "events", "--follow", "--store", f"sqlite:///{db}", out=out, err=err
    ) as process:
        wait_for_text(out, '"request_id": "r1"', process, 30)
        assert interrupt(process) == 130
    assert "Traceback" not in err.read_text()


# --- a real tool --------------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """opensms --version prints the package version."""
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert f"opensms {__version__}" in capsys.readouterr().out


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """--help shows each option's default, including the simulator's key and port."""
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 8750)" in text
    assert "sim-api-key" in text
    assert "(default: 127.0.0.1)" in text


def test_global_options_work_after_the_command(
    opensms_simulator: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """--api-key, --base-url and --json are accepted after the subcommand too."""
    sim = opensms_simulator
    argv = ["send", "--from", SENDER, "--to", "+33612345670", "Hi", *sim_args(sim), "--json"]
    assert main(argv) == 0
    sent = json.loads(capsys.readouterr().out)
    assert sent["recipients"][0]["address"] == "tel:+33612345670"
    assert main(["status", sent["request_id"], "--from", SENDER, *sim_args(sim)]) == 0
    assert "tel:+33612345670" in capsys.readouterr().out


def test_json_output_of_send_status_and_subscription(
    opensms_simulator: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints one JSON document for send, status and subscription get; no token."""
    base = [*sim_args(opensms_simulator), "--json"]
    assert main([*base, "send", "--from", SENDER, "--to", "+33612345699", "x"]) == 0
    sent = json.loads(capsys.readouterr().out)
    assert set(sent) >= {"request_id", "correlator", "parts", "recipients"}
    assert main([*base, "status", "--from", SENDER, sent["request_id"]]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["recipients"][0]["address"] == "tel:+33612345699"
    assert main([*base, "subscription", "get"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "subscribed": False,
        "url": None,
        "final_delivery": None,
    }
    assert main([*base, "subscription", "create", "https://me.example/cb", "--token", "t0k3n"]) == 0
    assert main([*base, "subscription", "get"]) == 0
    out = capsys.readouterr().out
    assert "t0k3n" not in out
    assert json.loads(out.splitlines()[-1])["url"] == "https://me.example/cb"
    assert main(["segments", "--json", "Hello €"]) == 0
    assert json.loads(capsys.readouterr().out)["parts"] == 1


def test_oauth_options_reach_a_v3_api(
    opensms_simulator: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """--client-id/--client-secret/--scope/--token-url authenticate with OAuth (BICS v3)."""
    sim = opensms_simulator
    argv = ["--base-url", sim.base_url, "--client-id", sim.client_id]
    argv += ["--client-secret", sim.client_secret, "--scope", "sms-a2p-business-class"]
    argv += ["--token-url", sim.token_url, "subscription", "get"]
    assert main(argv) == 0
    assert "no subscription" in capsys.readouterr().out
    assert sim.simulator.tokens_issued == 1


def test_oauth_from_the_environment(
    opensms_simulator: RunningSimulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OPENSMS_CLIENT_ID, _CLIENT_SECRET, _SCOPE and _TOKEN_URL work like the options."""
    sim = opensms_simulator
    monkeypatch.setenv("OPENSMS_CLIENT_ID", sim.client_id)
    monkeypatch.setenv("OPENSMS_CLIENT_SECRET", sim.client_secret)
    monkeypatch.setenv("OPENSMS_SCOPE", "sms-a2p-business-class")
    monkeypatch.setenv("OPENSMS_TOKEN_URL", sim.token_url)
    monkeypatch.setenv("OPENSMS_BASE_URL", sim.base_url)
    assert main(["subscription", "get"]) == 0
    assert sim.simulator.tokens_issued == 1


def test_a_wrong_key_is_one_line_exit_1(
    opensms_simulator: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The API's 401 is one error line, exit 1."""
    argv = ["--api-key", "wrong", "--base-url", opensms_simulator.base_url, "subscription", "get"]
    main_error(argv, capsys, expected=1, says="401")


@pytest.mark.integration
def test_simulate_prints_its_key_and_honours_api_key(tmp_path: Path) -> None:
    """simulate prints the base URL and key it serves; the global --api-key sets that key."""
    out, err = tmp_path / "out", tmp_path / "err"
    with background(
        "--api-key", "my-test-key", "--json", "simulate", "--port", "0", out=out, err=err
    ) as process:
        text = wait_for_text(out, "\n", process, 30)
        started = json.loads(text.splitlines()[0])
        assert started["api_key"] == "my-test-key"
        base = ["--base-url", started["base_url"], "subscription", "get"]
        assert main(["--api-key", "my-test-key", *base]) == 0
        assert main(["--api-key", "sim-api-key", *base]) == 1
        assert interrupt(process) == 130


@pytest.mark.integration
def test_simulate_names_its_default_key(tmp_path: Path) -> None:
    """Without --api-key the simulator accepts sim-api-key and says so at start-up."""
    out, err = tmp_path / "out", tmp_path / "err"
    with background("simulate", "--port", "0", out=out, err=err) as process:
        text = wait_for_text(out, "Ctrl-C stops it", process, 30)
        assert "API key     sim-api-key" in text
        assert "export OPENSMS_BASE_URL=http://127.0.0.1:" in text
        interrupt(process)


def test_verbose_logs_go_to_stderr(
    opensms_simulator: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """-vv shows the client's debug lines on stderr, and never the API key."""
    assert main([*sim_args(opensms_simulator), "-vv", "subscription", "get"]) == 0
    err = capsys.readouterr().err
    assert "GET /outbound/subscriptions -> 404" in err
    assert opensms_simulator.api_key not in err


@pytest.mark.integration
def test_events_follow_rides_out_a_redis_restart(tmp_path: Path) -> None:
    """events --follow on Redis keeps going through a Redis restart (as receive and
    tracker.events() do): paused while it is down, then the next events printed."""
    from redis_server import start_durable_redis_server

    from opensms_async.stores import open_store

    server = start_durable_redis_server(tmp_path / "redis")

    async def log(request_id: str) -> None:
        async with open_store(server.url) as store:  # type: ignore[attr-defined]
            await store.apply_events(
                [DeliveryUpdate(request_id, "tel:+33612345678", "DeliveredToNetwork")]
            )

    out, err = tmp_path / "out", tmp_path / "err"
    try:
        asyncio.run(log("before"))
        with background("events", "--follow", "--store", server.url, out=out, err=err) as process:
            wait_for_text(out, '"request_id": "before"', process, 30)
            server.kill()
            wait_for_text(err, "events paused", process, 30)
            server.start()
            asyncio.run(log("after"))
            wait_for_text(out, '"request_id": "after"', process, 30)
            assert "events resumed" in err.read_text()
            assert interrupt(process) == 130
    finally:
        server.stop()
    assert "Traceback" not in err.read_text()
