"""``opensms send-many FILE``: resumable bulk sending that never sends a row twice."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import assert_cli_error, background, interrupt, main_error, run_cli, wait_for_text

from opensms_async import OpenSMSClient
from opensms_async._cli import main
from opensms_async._cli._bulk_file import correlator_for, read_rows
from opensms_async._cli._progress import eta_text
from opensms_async.testing import Fault, RunningSimulator, run_simulator_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_opensms_env")]

SENDER = "tel:+3212345678"
ROWS = 40


@pytest.fixture
def sim() -> Iterator[RunningSimulator]:
    """A simulator in a background thread (reachable from child processes)."""
    with run_simulator_in_thread(seed=5) as running:
        yield running


def numbers(count: int = ROWS) -> list[str]:
    """Distinct French mobile numbers."""
    return [f"+336{n:08d}" for n in range(10_000, 10_000 + count)]


def write_csv(path: Path, recipients: list[str], *, sender: bool = True) -> Path:
    """A CSV file, one message per recipient."""
    header = "sender,recipient,text" if sender else "recipient,text"
    lines = [header]
    for n, number in enumerate(recipients, start=1):
        row = f'{number},"Hello {n}, your code is {1000 + n}"'
        lines.append(f"{SENDER},{row}" if sender else row)
    path.write_text("\n".join(lines) + "\n")
    return path


def env_for(sim: RunningSimulator) -> dict[str, str]:
    """The environment that points the CLI at ``sim``."""
    return {"OPENSMS_API_KEY": sim.api_key, "OPENSMS_BASE_URL": sim.base_url}


def results(path: Path) -> list[dict[str, object]]:
    """The records of a results file (its header line left out)."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [record for record in records if "campaign" not in record]


def assert_each_sent_once(sim: RunningSimulator, recipients: list[str]) -> None:
    """The simulator sent exactly one message to each recipient, and no other."""
    counts = sim.simulator.messages_per_recipient
    assert {number: counts[f"tel:{number}"] for number in recipients} == dict.fromkeys(
        recipients, 1
    )
    assert sim.simulator.sends == len(recipients)


def held_sends(sim: RunningSimulator, slow: Fault) -> int:
    """Sends the slow fault has taken that the simulator has not finished answering yet."""
    return slow.hits - sum(record.endpoint == "send" for record in sim.simulator.requests_log)


def test_killed_mid_run_and_resumed_sends_each_message_exactly_once(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    """SIGKILL in the middle of a run, then the same command again: every row sent once,
    the rows in flight at the kill answered by correlator replay, the finished ones skipped."""
    recipients = numbers()
    csv_file = write_csv(tmp_path / "campaign.csv", recipients)
    slow = sim.simulator.add_fault(Fault.slow(0.3, endpoint="send", times=None))
    command = ["send-many", str(csv_file), "--concurrency", "4"]
    out, err = tmp_path / "out", tmp_path / "err"
    results_file = tmp_path / "campaign.csv.results.jsonl"
    with background(*command, out=out, err=err, env=env_for(sim)) as process:
        while len(results(results_file) if results_file.exists() else []) < 8:
            wait_for_text(results_file, "request_id", process, 30)
        deadline = time.monotonic() + 30
        while held_sends(sim, slow) == 0:  # kill it while the simulator holds a send of it
            assert process.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    done_before = len(results(results_file))
    assert done_before < ROWS
    sim.simulator.clear_faults()
    rerun = run_cli(*command, env=env_for(sim))
    assert rerun.returncode == 0, rerun.stderr
    summary = rerun.stdout
    assert f"{ROWS} rows:" in summary
    assert f"{done_before} skipped" in summary
    assert_each_sent_once(sim, recipients)
    sent = {record["row"] for record in results(results_file) if record.get("request_id")}
    assert sent == set(range(1, ROWS + 1))


def test_rows_sent_by_a_killed_run_but_not_recorded_are_replayed_not_resent(
    sim: RunningSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows a killed run had sent (the API has them) but never recorded are sent again under
    the same correlators: BICS answers with the original response, nothing is sent twice."""
    recipients = numbers(6)
    csv_file = write_csv(tmp_path / "inflight.csv", recipients)
    campaign = str(csv_file.resolve())
    rows = list(read_rows(csv_file, "csv", None))

    async def send_first_three() -> None:  # what the killed run got through
        async with OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client:
            for row in rows[:3]:
                correlator = correlator_for(campaign, row.fingerprint)
                await client.send_message(
                    row.sender, row.recipients, row.text, client_correlator=correlator
                )

    asyncio.run(send_first_three())
    argv = ["--api-key", sim.api_key, "--base-url", sim.base_url, "send-many", str(csv_file)]
    assert main(argv) == 0
    assert "6 rows: 6 sent" in capsys.readouterr().out
    assert_each_sent_once(sim, recipients)
    assert sim.simulator.replays == 3


def test_dropped_answers_are_retried_under_the_row_correlator(
    sim: RunningSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sends processed but whose answer was lost are retried and replayed, never sent twice."""
    recipients = numbers(12)
    csv_file = write_csv(tmp_path / "drops.csv", recipients)
    sim.simulator.add_fault(Fault.drop_response(endpoint="send", times=3))
    argv = ["--api-key", sim.api_key, "--base-url", sim.base_url, "send-many", str(csv_file)]
    assert main(argv) == 0, capsys.readouterr().err
    assert_each_sent_once(sim, recipients)
    assert sim.simulator.replays == 3


def test_a_run_after_a_complete_one_sends_nothing(
    sim: RunningSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Running a finished file again makes no request: every row is skipped."""
    csv_file = write_csv(tmp_path / "done.csv", numbers(5))
    argv = ["--api-key", sim.api_key, "--base-url", sim.base_url, "--json", "send-many"]
    assert main([*argv, str(csv_file)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["sent"], first["skipped"]) == (5, 0)
    requests = len(sim.simulator.requests_log)
    assert main([*argv, str(csv_file)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["sent"], again["skipped"], again["rows"]) == (0, 5, 5)
    assert len(sim.simulator.requests_log) == requests


def test_moved_with_its_results_the_file_still_resumes(
    sim: RunningSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The campaign is kept in the results file: a file moved with it is not sent again."""
    recipients = numbers(4)
    first = write_csv(tmp_path / "a.csv", recipients)
    argv = ["--api-key", sim.api_key, "--base-url", sim.base_url, "send-many", "--no-progress"]
    assert main([*argv, str(first)]) == 0
    moved = tmp_path / "moved"
    moved.mkdir()
    first.rename(moved / "a.csv")
    (tmp_path / "a.csv.results.jsonl").rename(moved / "a.csv.results.jsonl")
    assert main([*argv, str(moved / "a.csv")]) == 0
    assert "0 sent" in capsys.readouterr().out
    assert_each_sent_once(sim, recipients)


def test_failed_rows_are_recorded_and_tried_again(
    sim: RunningSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row the API or the validation refuses is a result with its error (exit 1); the next
    run tries it again and skips the sent ones."""
    csv_file = write_csv(tmp_path / "mixed.csv", [*numbers(3), "0612"])
    argv = ["--api-key", sim.api_key, "--base-url", sim.base_url, "send-many", str(csv_file)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "3 sent, 1 failed" in out
    failed = [r for r in results(tmp_path / "mixed.csv.results.jsonl") if "error" in r]
    assert failed[0]["row"] == 4
    assert failed[0]["error_type"] == "InvalidAddressError"
    assert str(failed[0]["correlator"]).startswith("osm-")
    assert main(argv) == 1
    assert "0 sent, 1 failed, 3 skipped" in capsys.readouterr().out


def test_json_lines_with_a_default_sender(
    sim: RunningSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON lines rows may list several recipients; --from fills in a missing sender."""
    rows = [
        {"recipient": ["+33612345670", "+33612345671"], "text": "Hi both"},
        {"recipient": "+33612345672", "text": "Hi", "sender": "tel:+3299"},
        {},
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows[:2]) + "\n\n")
    argv = ["--api-key", sim.api_key, "--base-url", sim.base_url, "send-many", str(path)]
    assert main([*argv, "--from", SENDER]) == 0
    assert "2 rows: 2 sent" in capsys.readouterr().out
    senders = sorted(m.sender for m in sim.simulator.messages)
    assert senders == ["tel:+3212345678", "tel:+3299"]


@pytest.mark.parametrize(
    ("content", "name", "says"),
    [
        (
            '{"sender": "S", "recipient": "+3361", "text": "a"}\nnot json\n',
            "b.jsonl",
            "line 2: not JSON",
        ),
        ('{"sender": "S", "recipient": "+33612345678"}\n', "notext.jsonl", "line 1: no text"),
        ("[1, 2]\n", "list.jsonl", "a JSON object is needed"),
        ("phone,message\n+33612345678,hi\n", "cols.csv", "must name the columns"),
        ("recipient,text\n+33612345678,hi\n", "nosender.csv", "no sender"),
        ("", "empty.csv", "no messages"),
    ],
)
def test_a_bad_file_is_one_line_and_sends_nothing(
    sim: RunningSimulator,
    tmp_path: Path,
    content: str,
    name: str,
    says: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A file with a row that is no message is refused whole, naming the row: exit 2."""
    path = tmp_path / name
    path.write_text(content)
    argv = ["--api-key", sim.api_key, "--base-url", sim.base_url, "send-many", str(path)]
    main_error(argv, capsys, expected=2, says=says)
    assert sim.simulator.sends == 0


def test_a_missing_file_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """send-many on a file that is not there says so, exit 2."""
    main_error(["--api-key", "k", "send-many", "nope.csv"], capsys, expected=2, says="cannot read")


def test_progress_lines_and_summary_off_a_terminal(sim: RunningSimulator, tmp_path: Path) -> None:
    """Not on a terminal, progress is plain lines on stderr; the summary is on stdout."""
    csv_file = write_csv(tmp_path / "p.csv", numbers(20))
    result = run_cli("send-many", str(csv_file), env=env_for(sim))
    assert result.returncode == 0, result.stderr
    progress = result.stderr.splitlines()
    assert progress[-1].startswith("sent 20/20 (100%), 0 failed")
    assert "ETA" in progress[0]
    assert len(progress) <= 10
    assert "20 rows: 20 sent, 0 failed, 0 skipped" in result.stdout


def test_ctrl_c_stops_send_many_with_130_and_resumes(sim: RunningSimulator, tmp_path: Path) -> None:
    """Ctrl-C mid-run exits 130 with a note on how to resume; the next run finishes the job."""
    recipients = numbers(30)
    csv_file = write_csv(tmp_path / "c.csv", recipients)
    sim.simulator.add_fault(Fault.slow(0.2, endpoint="send", times=None))
    out, err = tmp_path / "out", tmp_path / "err"
    command = ["send-many", str(csv_file), "--concurrency", "2"]
    with background(*command, out=out, err=err, env=env_for(sim)) as process:
        wait_for_text(tmp_path / "c.csv.results.jsonl", "request_id", process, 30)
        assert interrupt(process) == 130
    assert "Traceback" not in err.read_text()
    assert "run the same command again to resume" in err.read_text()
    sim.simulator.clear_faults()
    assert run_cli(*command, env=env_for(sim)).returncode == 0
    assert_each_sent_once(sim, recipients)


def test_campaign_mismatch_is_refused(
    sim: RunningSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --campaign other than the one in the results file is refused: it would resend."""
    csv_file = write_csv(tmp_path / "m.csv", numbers(2))
    argv = ["--api-key", sim.api_key, "--base-url", sim.base_url, "send-many", str(csv_file)]
    assert main([*argv, "--campaign", "monday"]) == 0
    capsys.readouterr()
    main_error([*argv, "--campaign", "tuesday"], capsys, expected=2, says="belongs to campaign")


def test_fingerprints_survive_inserted_rows(tmp_path: Path) -> None:
    """A row's fingerprint (so its correlator) does not change when rows are added before it,
    and two identical rows get two different ones."""
    before = write_csv(tmp_path / "before.csv", ["+33612345670", "+33612345671", "+33612345671"])
    after = tmp_path / "after.csv"
    lines = before.read_text().splitlines()
    after.write_text("\n".join([lines[0], f"{SENDER},+33699999999,new", *lines[1:]]) + "\n")
    old = [row.fingerprint for row in read_rows(before, "csv", None)]
    new = [row.fingerprint for row in read_rows(after, "csv", None)]
    assert len(set(old)) == 3
    assert new[1:] == old
    assert correlator_for("c", old[0]) == correlator_for("c", old[0]) != correlator_for("d", old[0])


def test_eta_text() -> None:
    """The ETA is the time left at the pace so far."""
    assert eta_text(0, 10, 5.0) == "?"
    assert eta_text(5, 10, 5.0) == "0:00:05"
    assert eta_text(1, 3601, 1.0) == "1:00:00"


def test_a_results_file_cut_mid_line_is_read(sim: RunningSimulator, tmp_path: Path) -> None:
    """A kill in the middle of writing a result leaves half a line: it is ignored (the row is
    sent again under its correlator) and the next record starts on a new line."""
    csv_file = write_csv(tmp_path / "cut.csv", numbers(3))
    assert run_cli("send-many", str(csv_file), env=env_for(sim)).returncode == 0
    results_file = tmp_path / "cut.csv.results.jsonl"
    lines = results_file.read_text().splitlines()
    results_file.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
    result = run_cli("send-many", str(csv_file), env=env_for(sim))
    assert result.returncode == 0, result.stderr
    assert "1 sent, 0 failed, 2 skipped" in result.stdout
    assert_each_sent_once(sim, numbers(3))
    assert sim.simulator.replays == 1
    assert all(json.loads(line) for line in results_file.read_text().splitlines()[-1:])
    assert_cli_error(
        run_cli("send-many", str(tmp_path / "absent.csv"), env=env_for(sim)),
        expected=2,
        says="cannot read",
    )
