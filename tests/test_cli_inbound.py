"""``opensms inbound``, ``inbox``, ``convert`` and ``receive --inbound-token`` as a user runs them.

Real processes (``python -m opensms_async``) against the bundled simulator where the command talks
to it or serves it; ``main()`` in this process for the quick error paths. Every error is one
``error: ...`` line, no traceback: exit 2 for invalid input, 1 for a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
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

from opensms_async import Inbox
from opensms_async._cli import main
from opensms_async._inbound import InboundSmsMessage
from opensms_async.testing import RunningSimulator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_opensms_env")]

IN_TOKEN = "in-tok-5b1c"
DELIVERY_TOKEN = "dlv-tok-77aa"
NUMBER = "+32470000000"
HANDSET = "+33612345678"
LONG_TEXT = "Yes, please deliver it to the back door. " * 8  # 328 GSM-7 characters: 3 parts

SimFactory = Callable[..., RunningSimulator]


def sim_env(sim: RunningSimulator) -> dict[str, str]:
    """The variables that point a child CLI at a simulator."""
    return {"OPENSMS_BASE_URL": sim.base_url, "OPENSMS_API_KEY": sim.api_key}


def json_lines(text: str) -> list[dict[str, object]]:
    """The complete JSON lines of ``text``."""
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def printed(path: Path) -> list[dict[str, object]]:
    """The complete JSON lines a child printed to ``path`` so far."""
    return json_lines(path.read_text(errors="replace") if path.exists() else "")


# --- inbound subscription -------------------------------------------------------------------


def test_inbound_subscription_create_get_delete(opensms_simulator: RunningSimulator) -> None:
    """create subscribes the URL with the token and concat at the API; get shows it (never the
    token), --json as one document; delete removes it, and get then says there is none."""
    sim, env = opensms_simulator, sim_env(opensms_simulator)
    url = "https://me.example/sms/inbound"
    made = run_cli("inbound", "subscription", "create", url, "--token", IN_TOKEN, "--concat",
                   "false", env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert f"subscribed {url}" in made.stdout
    subscription = sim.simulator.inbound_subscription
    assert subscription is not None
    assert (subscription.url, subscription.security_token) == (url, IN_TOKEN)
    assert subscription.concat is False
    shown = run_cli("--json", "inbound", "subscription", "get", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {"subscribed": True, "url": url, "concat": False}
    assert IN_TOKEN not in made.stdout + made.stderr + shown.stdout + shown.stderr
    gone = run_cli("inbound", "subscription", "delete", env=env)
    assert gone.returncode == 0, gone.stderr
    assert sim.simulator.inbound_subscription is None
    again = run_cli("--json", "inbound", "subscription", "get", env=env)
    assert json.loads(again.stdout) == {"subscribed": False, "url": None, "concat": None}


def test_inbound_subscription_concat_left_off_and_token_from_env(
    opensms_simulator: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --concat the subscription has none (BICS's legacy behaviour); the token may come
    from OPENSMS_INBOUND_TOKEN."""
    os.environ["OPENSMS_INBOUND_TOKEN"] = IN_TOKEN
    try:
        argv = [*sim_args(opensms_simulator), "inbound", "subscription", "create"]
        assert main([*argv, "https://me.example/in"]) == 0
    finally:
        del os.environ["OPENSMS_INBOUND_TOKEN"]
    assert "concat off the wire" in capsys.readouterr().out
    subscription = opensms_simulator.simulator.inbound_subscription
    assert subscription is not None
    assert (subscription.security_token, subscription.concat) == (IN_TOKEN, None)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["https://me.example/in"], "give --token or set OPENSMS_INBOUND_TOKEN"),
        (["https://me.example/in", "--token", " "], "give --token"),
        (["http://me.example/in", "--token", IN_TOKEN], "https://"),
        (["https://me.example/in", "--token", IN_TOKEN, "--concat", "maybe"], "--concat"),
    ],
)
def test_inbound_subscription_create_refuses_bad_input(
    opensms_simulator: RunningSimulator,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    says: str,
) -> None:
    """A missing or empty token, an http URL, a --concat other than true|false: one line, exit 2,
    and nothing subscribed."""
    full = [*sim_args(opensms_simulator), "inbound", "subscription", "create", *argv]
    main_error(full, capsys, expected=2, says=says)
    assert opensms_simulator.simulator.inbound_subscription is None


def test_inbound_subscription_delete_of_none_is_one_line(
    opensms_simulator: RunningSimulator,
) -> None:
    """Deleting a subscription that does not exist fails (exit 1) with one line (real process)."""
    result = run_cli("inbound", "subscription", "delete", env=sim_env(opensms_simulator))
    assert_cli_error(result, expected=1, says="404")


# --- inbound poll ---------------------------------------------------------------------------


def test_inbound_poll_prints_the_fetched_parts(opensms_simulator: RunningSimulator) -> None:
    """A message waiting in the number's inbox (no subscription) is fetched and printed, each
    part a JSON line with its UDH fields; --max-batch-size caps the page; stderr counts them."""
    sim, env = opensms_simulator, sim_env(opensms_simulator)
    injected = sim.simulator.inject_inbound(HANDSET, NUMBER, LONG_TEXT)
    assert len(injected.parts) == 3
    first = run_cli("--json", "inbound", "poll", NUMBER, "--max-batch-size", "2", env=env)
    assert first.returncode == 0, first.stderr
    lines = json_lines(first.stdout)
    assert [line["concat_part"] for line in lines] == [1, 2]
    assert lines[0]["message_id"] == injected.parts[0].message_id
    assert lines[0]["sender"] == "33612345678" and lines[0]["destination"] == "32470000000"
    assert {line["concat_total"] for line in lines} == {3}
    assert "2 message(s) fetched; BICS counted 3 pending" in first.stderr
    rest = run_cli("inbound", "poll", f"tel:{NUMBER}", env=env)
    assert rest.returncode == 0, rest.stderr
    assert "part 3/3" in rest.stdout and injected.parts[2].message_id in rest.stdout
    assert "1 message(s) fetched" in rest.stderr


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["inbound", "poll", NUMBER, "--max-batch-size", "201"], "from 0 to 200"),
        (["inbound", "poll", NUMBER, "--max-batch-size", "-1"], "--max-batch-size"),
        (["inbound", "poll", "not a number"], "not a number"),
        (["inbound", "poll"], "number"),
    ],
)
def test_inbound_poll_refuses_bad_input(
    opensms_simulator: RunningSimulator,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    says: str,
) -> None:
    """A page size outside 0..200, a number that is none, no number: one line, exit 2."""
    main_error([*sim_args(opensms_simulator), *argv], capsys, expected=2, says=says)


def test_inbound_poll_of_an_unknown_number_is_one_line(
    opensms_simulator: RunningSimulator,
) -> None:
    """A number the account does not have is the API's 404: one line, exit 1 (real process)."""
    result = run_cli("inbound", "poll", "+32470999999", env=sim_env(opensms_simulator))
    assert_cli_error(result, expected=1, says="404")


# --- convert --------------------------------------------------------------------------------


def test_convert_reports_an_address_or_a_reference(opensms_simulator: RunningSimulator) -> None:
    """convert --address sends the number as BICS's example writes it (digits); --reference is
    sent as given; both are what the API recorded."""
    env = sim_env(opensms_simulator)
    by_address = run_cli("convert", "--address", HANDSET, env=env)
    assert by_address.returncode == 0, by_address.stderr
    assert f"conversion reported for address {HANDSET}" in by_address.stdout
    by_reference = run_cli("--json", "convert", "--reference", "order-42", env=env)
    assert by_reference.returncode == 0, by_reference.stderr
    assert json.loads(by_reference.stdout) == {
        "reported": True,
        "address": None,
        "customer_reference": "order-42",
    }
    reports = opensms_simulator.simulator.conversions
    assert [(r.address, r.customer_reference) for r in reports] == [
        ("33612345678", None),
        (None, "order-42"),
    ]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["convert"], "one of the arguments --address --reference is required"),
        (["convert", "--address", HANDSET, "--reference", "r"], "not allowed with"),
        (["convert", "--address", "0612345678"], "'0612345678'"),
        (["convert", "--reference", " "], "must not be empty"),
    ],
)
def test_convert_refuses_bad_input(
    opensms_simulator: RunningSimulator,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    says: str,
) -> None:
    """Neither or both of --address and --reference, a number that is not E.164, an empty
    reference: one line, exit 2, and nothing reported."""
    main_error([*sim_args(opensms_simulator), *argv], capsys, expected=2, says=says)
    assert opensms_simulator.simulator.conversions == []


# --- inbox ----------------------------------------------------------------------------------


def _record(db: Path, *message_ids: str) -> None:
    """Record one-part messages in the SQLite store at ``db``, as a receiver's Inbox would."""

    async def record() -> None:
        async with Inbox(store=f"sqlite:///{db}") as inbox:
            wire = [
                InboundSmsMessage(mid, "33612345678", "32470000000", f"text {mid}", None)
                for mid in message_ids
            ]
            await inbox.ingest(wire)

    asyncio.run(record())


def test_inbox_prints_the_log_and_resumes_after_a_cursor(tmp_path: Path) -> None:
    """inbox prints every logged message once, oldest first, as JSON lines with kind inbound;
    --since CURSOR prints only what came after it (real processes)."""
    db = tmp_path / "in.db"
    _record(db, "m-1", "m-2", "m-3")
    store = f"sqlite:///{db}"
    everything = run_cli("inbox", "--store", store)
    assert everything.returncode == 0, everything.stderr
    lines = json_lines(everything.stdout)
    assert [line["message_id"] for line in lines] == ["m-1", "m-2", "m-3"]
    assert {line["kind"] for line in lines} == {"inbound"}
    assert lines[0]["sender"] == "tel:+33612345678" and lines[0]["text"] == "text m-1"
    assert lines[0]["complete"] is True and lines[0]["source"] == "callback"
    later = run_cli("inbox", "--since", str(lines[0]["cursor"]), env={"OPENSMS_STORE": store})
    assert [line["message_id"] for line in json_lines(later.stdout)] == ["m-2", "m-3"]


def test_inbox_follow_prints_new_messages(tmp_path: Path) -> None:
    """inbox --follow keeps printing what another process logs after it started; Ctrl-C is 130."""
    db = tmp_path / "in.db"
    _record(db, "m-1")
    out, err = tmp_path / "out", tmp_path / "err"
    with background("inbox", "--store", f"sqlite:///{db}", "--follow", out=out, err=err) as proc:
        wait_for_text(out, '"m-1"', proc, 30)
        _record(db, "m-2")
        wait_for_text(out, '"m-2"', proc, 30)
        assert interrupt(proc) == 130
    assert [line["message_id"] for line in printed(out)] == ["m-1", "m-2"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["inbox", "--store", "sqlite:///missing.db"], "no SQLite store at"),
        (["inbox", "--store", "memory://"], "memory:// store starts empty"),
        (["inbox", "--store", "mysql://x"], "unknown store URL"),
        (["inbox", "--store", "sqlite:///in.db", "--since", "abc"], "--since"),
    ],
)
def test_inbox_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    """A SQLite file that is not there (never created), a memory store, an unknown scheme, a
    malformed cursor: one line, exit 2."""
    _record(tmp_path / "in.db", "m-1")
    main_error(argv, capsys, expected=2, says=says)
    assert not (tmp_path / "missing.db").exists()


# --- receive --inbound-token ----------------------------------------------------------------


def _wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_receive_serves_inbound_and_prints_each_message_once_and_whole(
    opensms_simulator_factory: SimFactory, tmp_path: Path
) -> None:
    """receive --token T --inbound-token I: a reply in three shuffled parts (concat=false), each
    posted twice, is printed once, joined, with kind inbound; a delivery event of the same run
    has no kind; the inbound messages are in the store for `opensms inbox`."""
    sim = opensms_simulator_factory(seed=3, inbound_duplicate_rate=1.0)
    port = free_port()
    out, err = tmp_path / "out", tmp_path / "err"
    store = f"sqlite:///{tmp_path / 'r.db'}"
    receive = ["receive", "--port", str(port), "--store", store, "--token", DELIVERY_TOKEN]
    receive += ["--inbound-token", "old-tok-1", "--inbound-token", IN_TOKEN]
    env = sim_env(sim)
    with background(*receive, out=out, err=err, env=env) as process:
        text = wait_for_text(err, "receiving inbound messages on", process, 30)
        assert f"http://127.0.0.1:{port}/sms/inbound" in text
        assert f"http://127.0.0.1:{port}/sms/callback" in text
        made = run_cli("inbound", "subscription", "create", "https://me.example/sms/inbound",
                       "--token", IN_TOKEN, "--concat", "false", env=env)  # fmt: skip
        assert made.returncode == 0, made.stderr
        sim.simulator.route_inbound_to(f"http://127.0.0.1:{port}/sms/inbound")
        injected = sim.simulator.inject_inbound(HANDSET, NUMBER, LONG_TEXT)
        with httpx.Client(timeout=30, trust_env=False) as http:
            answer = http.post(
                f"http://127.0.0.1:{port}/sms/callback",
                json={
                    "deliveryInfoList": {
                        "securityToken": DELIVERY_TOKEN,
                        "resourceURL": "https://x.example/smsmessaging/v1/outbound/"
                        "tel%3A%2B3212345678/requests/r1/deliveryInfos",
                        "deliveryInfo": [
                            {"address": HANDSET, "deliveryStatus": "DeliveredToTerminal"}
                        ],
                    }
                },
            )
        assert answer.status_code == 204, answer.text
        _wait_for(lambda: len(printed(out)) >= 2 and sim.simulator.is_settled)
        assert interrupt(process) == 130
    acknowledged = [a for a in sim.simulator.inbound_attempts if a.outcome == "acknowledged"]
    assert len(acknowledged) == 6  # three parts, each posted twice
    inbound = [line for line in printed(out) if line.get("kind") == "inbound"]
    events = [line for line in printed(out) if "kind" not in line]
    assert len(inbound) == 1, printed(out)
    assert inbound[0]["text"] == LONG_TEXT
    assert inbound[0]["message_id"] == injected.message_id
    assert (inbound[0]["parts"], inbound[0]["total"], inbound[0]["complete"]) == (3, 3, True)
    assert [e["request_id"] for e in events] == ["r1"]
    logs = err.read_text()
    assert IN_TOKEN not in logs and "Traceback" not in logs
    stored = run_cli("inbox", "--store", store)
    assert [line["message_id"] for line in json_lines(stored.stdout)] == [injected.message_id]


def test_receive_inbound_only_from_the_environment(tmp_path: Path) -> None:
    """With only OPENSMS_INBOUND_TOKEN (no delivery token) receive serves inbound alone: a post
    with the token is recorded and printed, a wrong Bearer is 401, the callback route is 404."""
    port = free_port()
    out, err = tmp_path / "out", tmp_path / "err"
    store = f"sqlite:///{tmp_path / 'r.db'}"
    env = {"OPENSMS_INBOUND_TOKEN": IN_TOKEN}
    receive = ["receive", "--port", str(port), "--store", store, "--inbound-path", "/in"]
    with background(*receive, out=out, err=err, env=env) as process:
        text = wait_for_text(err, "receiving inbound messages on", process, 30)
        assert f"127.0.0.1:{port}/in" in text and "/sms/callback" not in text
        body = {
            "InboundSmsMessage": {
                "messageId": "mo-1",
                "senderAddress": "33612345678",
                "destinationAddress": "32470000000",
                "message": "STOP",
                "dateTime": "2021-11-24T09:13:40.639",
            }
        }
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=30, trust_env=False) as http:
            wrong = http.post(f"{url}/in", json=body, headers={"Authorization": "Bearer nope"})
            right = http.post(
                f"{url}/in", json=body, headers={"Authorization": f"Bearer {IN_TOKEN}"}
            )
            again = http.post(
                f"{url}/in", json=body, headers={"Authorization": f"Bearer {IN_TOKEN}"}
            )
            callback = http.post(f"{url}/sms/callback", json={})
        assert (wrong.status_code, right.status_code, again.status_code) == (401, 204, 204)
        assert callback.status_code == 404
        wait_for_text(out, '"mo-1"', process, 30)
        process.terminate()
        assert process.wait(timeout=30) == 0
    lines = printed(out)
    assert [(line["kind"], line["message_id"], line["text"]) for line in lines] == [
        ("inbound", "mo-1", "STOP")
    ]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["receive"], "or --inbound-token"),
        (["receive", "--inbound-token", ""], "must not be empty"),
        (["receive", "--inbound-token", "t", "--inbound-path", "in"], "a path starts with '/'"),
        (
            ["receive", "--token", "a", "--inbound-token", "b", "--inbound-path", "/sms/callback"],
            "--path and --inbound-path must differ",
        ),
    ],
)
def test_receive_refuses_bad_inbound_options(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    """No token at all, an empty inbound token, a path without '/', one path for both routes:
    one line, exit 2."""
    main_error(argv, capsys, expected=2, says=says)


def test_receive_help_shows_the_inbound_defaults() -> None:
    """--help names the inbound options, their variable and the default path."""
    result = run_cli("receive", "--help")
    text = " ".join(result.stdout.split())
    assert "--inbound-token TOKEN" in text and "OPENSMS_INBOUND_TOKEN" in text
    assert "(default: /sms/inbound)" in text
