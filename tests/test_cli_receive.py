"""``opensms receive`` as a user runs it: its error lines, its first event, its polling, its logs.

Real processes (``python -m opensms_async``) against the bundled simulator, except the race test,
which runs the command's coroutine in this event loop so that it can widen the race's window.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from pathlib import Path

import httpx
import pytest
from cli_helpers import (
    assert_cli_error,
    background,
    interrupt,
    main_error,
    run_cli,
    sim_args,
    wait_for_text,
)
from redis_server import free_port

from opensms_async import DeliveryEvent
from opensms_async._cli import build_parser, main
from opensms_async._cli._output import Output
from opensms_async.stores import SQLiteStore
from opensms_async.testing import RunningSimulator, delivery_callback_body

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_opensms_env")]

TOKEN = "rcv-token-8d2e"
SENDER = "tel:+3212345678"


def callback(request_id: str, token: str = TOKEN) -> dict[str, object]:
    """A BICS delivery-info callback for one recipient of ``request_id``."""
    return delivery_callback_body(
        request_id, "tel:+33612345678", "DeliveredToTerminal", security_token=token, sender=SENDER
    )


def printed(path: Path) -> list[dict[str, object]]:
    """The complete JSON lines a child printed to ``path``."""
    text = path.read_text(errors="replace") if path.exists() else ""
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


# --- errors: one line, never a traceback ---------------------------------------------------------


def test_receive_on_a_port_in_use_is_one_line(busy_port: int) -> None:
    """opensms receive --port N on a busy port says so and what to do, exit 1 (real process)."""
    result = run_cli("receive", "--token", TOKEN, "--store", "memory://", "--port", str(busy_port))
    line = assert_cli_error(result, expected=1, says=f"cannot listen on 127.0.0.1:{busy_port}")
    assert "choose another --port" in line


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--path", "callback"], "--path: a path starts with '/'"),
        (["--path", "/sms callback"], "--path: a path starts with '/'"),
        (["--token", ""], "--token: must not be empty"),
        (["--token", "  "], "--token: must not be empty"),
        (["--port", "99999"], "--port: a port is a number from 0 to 65535"),
        (["--port", "http"], "--port: a port is a number from 0 to 65535"),
        (["--record-deadline", "0"], "--record-deadline: a positive number of seconds"),
        (["--reconcile-after", "-1"], "--reconcile-after: a positive number of seconds"),
        (["--store", "postgres://x"], "unknown store URL"),
    ],
)
def test_bad_receive_options_are_one_line_and_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every refused receive option is one error line naming it, exit 2."""
    base = ["receive", "--token", TOKEN] if "--token" not in argv else ["receive"]
    main_error([*base, *argv], capsys, expected=2, says=says)


def test_receive_without_a_token_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """No --token and no OPENSMS_SECURITY_TOKEN: one line saying to give one, exit 2."""
    main_error(["receive"], capsys, expected=2, says="give --token")


def test_receive_with_an_empty_token_variable_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPENSMS_SECURITY_TOKEN set to blanks is refused like no token at all."""
    monkeypatch.setenv("OPENSMS_SECURITY_TOKEN", "   ")
    main_error(["receive"], capsys, expected=2, says="OPENSMS_SECURITY_TOKEN")


def test_bad_receive_options_in_a_real_process() -> None:
    """The same from a real process: --path callback and --token "" exit 2 without a traceback."""
    assert_cli_error(
        run_cli("receive", "--path", "callback", "--token", TOKEN), expected=2, says="--path"
    )
    assert_cli_error(run_cli("receive", "--token", ""), expected=2, says="--token")


# --- the first events are printed ---------------------------------------------------------------


async def _accepts(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:``port``."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class RecordingOutput(Output):
    """Output to strings that also keeps the request id of each event printed."""

    def __init__(self) -> None:
        super().__init__(json=False, out=io.StringIO(), err=io.StringIO())
        self.request_ids: list[str] = []
        self.printed = asyncio.Event()

    def event(self, event: DeliveryEvent) -> None:
        """Print it, and note it."""
        super().event(event)
        self.request_ids.append(event.request_id)
        self.printed.set()


async def test_a_callback_recorded_right_after_start_is_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A callback answered 204 the instant receive's port accepts is printed: the cursor the
    printing starts after is read before serving, so no recorded event falls behind it.

    The race is made certain rather than likely: the last-cursor read is made slow (2 s, a
    loaded SQLite thread or a distant Redis), and if the port starts accepting meanwhile, it
    waits for the callback to be recorded before reading.
    """
    port = free_port()
    recorded = asyncio.Event()
    read_last_cursor = SQLiteStore.last_cursor

    async def last_cursor(self: SQLiteStore) -> str | None:
        for _ in range(100):
            if await _accepts(port):  # serving already: let the callback in before this read
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(recorded.wait(), 20)
                break
            await asyncio.sleep(0.02)
        return await read_last_cursor(self)

    monkeypatch.setattr(SQLiteStore, "last_cursor", last_cursor)
    argv = ["receive", "--port", str(port), "--token", TOKEN]
    args = build_parser().parse_args([*argv, "--store", f"sqlite:///{tmp_path / 'r.db'}"])
    out = RecordingOutput()
    receive = asyncio.create_task(args.run(args, out))
    try:
        async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
            answer = await _post_when_accepting(http, port, callback("first"), receive)
        assert answer.status_code == 204
        recorded.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(out.printed.wait(), 30)
        assert out.request_ids == ["first"]
    finally:
        receive.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receive


async def _post_when_accepting(
    http: httpx.AsyncClient, port: int, body: object, receive: asyncio.Task[int]
) -> httpx.Response:
    """POST ``body`` to the callback path as soon as ``port`` accepts (within 30 s)."""
    async with asyncio.timeout(30):
        while True:
            try:
                return await http.post(f"http://127.0.0.1:{port}/sms/callback", json=body)
            except httpx.ConnectError:
                assert not receive.done()  # the command failed: its result says why
                await asyncio.sleep(0.005)


def test_a_callback_posted_the_instant_the_port_accepts_is_printed(tmp_path: Path) -> None:
    """The same with the real command: the first callback it ever answers is printed."""
    port = free_port()
    out, err = tmp_path / "out", tmp_path / "err"
    store = f"sqlite:///{tmp_path / 'r.db'}"
    with (
        background(
            "receive", "--port", str(port), "--token", TOKEN, "--store", store, out=out, err=err
        ) as process,
        httpx.Client(timeout=30, trust_env=False) as http,
    ):
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = http.post(f"http://127.0.0.1:{port}/sms/callback", json=callback("r0"))
                break
            except httpx.ConnectError:
                assert process.poll() is None and time.monotonic() < deadline, err.read_text()
                time.sleep(0.005)
        assert answer.status_code == 204
        wait_for_text(out, '"request_id": "r0"', process, 30)
        assert interrupt(process) == 130
    assert "Traceback" not in err.read_text()


# --- polling with the credentials it is given -----------------------------------------------------


def test_receive_polls_what_send_store_tracked(
    opensms_simulator: RunningSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """send --store tracks a send with no callback coming (no subscription); receive on the same
    store with credentials polls it and prints each recipient's final state (source poll)."""
    sim = opensms_simulator
    store = f"sqlite:///{tmp_path / 'shared.db'}"
    send = ["send", "--store", store, "--reconcile-after", "0.5", "--from", SENDER]
    send += ["--to", "+33612345670", "--to", "+33612345699", "--json", "Hi"]
    assert main([*sim_args(sim), *send]) == 0
    sent = json.loads(capsys.readouterr().out)
    assert sent["tracked_in"] == store
    out, err = tmp_path / "out", tmp_path / "err"
    receive = ["receive", "--port", "0", "--token", TOKEN, "--store", store]
    with background(*sim_args(sim), *receive, out=out, err=err) as process:
        wait_for_text(err, "polling http://127.0.0.1:", process, 30)
        deadline = time.monotonic() + 60
        finals: dict[object, object] = {}
        while len(finals) < 2 and time.monotonic() < deadline and process.poll() is None:
            for event in printed(out):
                if event["source"] == "poll" and event["status"] in (
                    "DeliveredToTerminal",
                    "DeliveryImpossible",
                ):
                    finals[event["address"]] = event["status"]
            time.sleep(0.1)
        assert finals == {
            "tel:+33612345670": "DeliveredToTerminal",
            "tel:+33612345699": "DeliveryImpossible",
        }, err.read_text()
        assert {e["request_id"] for e in printed(out)} == {sent["request_id"]}
        assert interrupt(process) == 130
    assert sim.api_key not in err.read_text()


def test_send_store_records_the_send_and_schedules_its_poll(
    opensms_simulator: RunningSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After send --store, the store holds every recipient (source send) and the request is due
    for a poll --reconcile-after seconds later, not before."""
    db = tmp_path / "sent.db"
    argv = ["send", "--store", f"sqlite:///{db}", "--reconcile-after", "30", "--from", SENDER]
    argv += ["--to", "+33612345670", "--to", "+33612345671", "--json", "Hi"]
    before = time.time()
    assert main([*sim_args(opensms_simulator), *argv]) == 0
    request_id = json.loads(capsys.readouterr().out)["request_id"]

    async def check() -> None:
        async with SQLiteStore(db) as store:
            states = await store.get_request(request_id)
            assert sorted(s.address for s in states) == ["tel:+33612345670", "tel:+33612345671"]
            assert await store.claim_due(before + 29) == []
            due = await store.claim_due(time.time() + 31)
            assert [(p.request_id, p.sender) for p in due] == [(request_id, SENDER)]

    asyncio.run(check())


def test_receive_without_credentials_says_it_does_not_poll(tmp_path: Path) -> None:
    """Without credentials receive says it only receives, and how to make it poll."""
    out, err = tmp_path / "out", tmp_path / "err"
    store = f"sqlite:///{tmp_path / 'r.db'}"
    with background(
        "receive", "--port", "0", "--token", TOKEN, "--store", store, out=out, err=err
    ) as process:
        text = wait_for_text(err, "not polling", process, 30)
        assert "give --api-key" in text
        assert interrupt(process) == 130


# --- refused callbacks show, the token never ------------------------------------------------


def test_a_wrong_token_shows_as_a_warning_without_v(tmp_path: Path) -> None:
    """With no -v, a callback with a wrong token is a WARNING line on receive's stderr, naming
    the reason; neither token appears; SIGTERM then stops it with 0."""
    port = free_port()
    out, err = tmp_path / "out", tmp_path / "err"
    store = f"sqlite:///{tmp_path / 'r.db'}"
    with background(
        "receive", "--port", str(port), "--token", TOKEN, "--store", store, out=out, err=err
    ) as process:
        wait_for_text(err, "receiving on", process, 30)
        with httpx.Client(timeout=30, trust_env=False) as http:
            answer = http.post(
                f"http://127.0.0.1:{port}/sms/callback", json=callback("r1", token="guess-1234")
            )
        assert answer.status_code == 401
        assert answer.json() == {"error": "unauthorized", "reason": "wrong security token"}
        text = wait_for_text(err, "callback refused", process, 30)
        assert "WARNING" in text and "wrong security token" in text
        process.terminate()
        assert process.wait(timeout=30) == 0
    logs = err.read_text()
    assert TOKEN not in logs and "guess-1234" not in logs
    assert "Traceback" not in logs
