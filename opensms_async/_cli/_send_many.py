"""``opensms send-many FILE``: every message of a CSV or JSON-lines file, resumable.

See ``_bulk_file`` for why a re-run never sends a row twice.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from .._bulk import BulkResult, Message
from .._limiter import RateLimiter
from ._base import EXIT_FAILED, EXIT_USAGE, CommandError, Commands, make_client
from ._bulk_file import (
    BadRowError,
    ResultsFile,
    Row,
    correlator_for,
    detect_format,
    read_rows,
    results_path,
)
from ._output import Output
from ._progress import make_progress

__all__ = ["register"]

_DESCRIPTION = """\
Send every message of FILE: CSV with a header line (sender,recipient,text; the sender column may
be left out with --from; several recipients separated by ';'), or JSON lines
({"sender": ..., "recipient": "+33..." or [...], "text": ...}).

Each result is appended to the results file (JSON lines: row, correlator, request_id or error)
as it comes. Run the same command again to resume: rows the results file records as sent are
skipped, and the rest are sent under the same clientCorrelator as before (derived from the
campaign and the row), which BICS answers with the original response for 24 h instead of sending
again, so a row in flight when a run was stopped is not sent twice. To send the same file again
as a new campaign, give a new --results file and a --campaign name."""


def register(commands: Commands) -> None:
    """Add ``send-many``."""
    parser = commands.add(
        "send-many",
        run=_send_many,
        help="send the messages of a CSV or JSON-lines file (resumable)",
        description=_DESCRIPTION,
    )
    parser.add_argument("file", type=Path, help="CSV (.csv) or JSON lines (any other name)")
    parser.add_argument("--from", dest="sender", help="sender of the rows that name none")
    parser.add_argument("--format", choices=["csv", "jsonl"], help="default: by the extension")
    parser.add_argument(
        "--results", type=Path, metavar="PATH", help="results file (default: FILE.results.jsonl)"
    )
    parser.add_argument(
        "--campaign",
        help="name that keeps correlators apart from other sends of the same rows "
        "(default: kept in the results file; for a new one, FILE's absolute path)",
    )
    parser.add_argument(
        "--concurrency", type=_positive_int, default=8, help="sends in flight at once"
    )
    parser.add_argument(
        "--per-hour", type=_positive_int, metavar="N", help="at most N sends an hour (a quota)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress display on stderr")


def _positive_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of 1 or more, not {text!r}")
    return int(text)


@attrs.define
class _Tally:
    rows: int
    skipped: int
    sent: int = 0
    failed: int = 0


async def _send_many(args: argparse.Namespace, out: Output) -> int:
    path: Path = args.file
    fmt = detect_format(path, args.format)
    results = ResultsFile(results_path(path, args.results))
    try:
        # Reading the file whole first finds a bad row before anything is sent.
        campaign, rows, todo = await asyncio.to_thread(_prepare, args, path, fmt, results)
    except BadRowError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    limiter = RateLimiter(requests_per_hour=args.per_hour) if args.per_hour else None
    client = make_client(args, limiter=limiter)
    tally = _Tally(rows=rows, skipped=rows - todo)
    started = time.monotonic()
    progress = make_progress(out.err, todo, enabled=not args.no_progress)
    pending = _Pending(path, fmt, args.sender, campaign, results.sent)
    try:
        async with client:
            await _run(client, pending, args.concurrency, results, tally, progress)
    except asyncio.CancelledError:
        progress.close()
        out.note(
            f"interrupted after {tally.sent} sent, {tally.failed} failed: run the same command "
            "again to resume (rows already sent are skipped)"
        )
        raise
    finally:
        progress.close()
        results.close()
    _summary(out, tally, results.path, time.monotonic() - started)
    return EXIT_FAILED if tally.failed else 0


def _prepare(
    args: argparse.Namespace, path: Path, fmt: Any, results: ResultsFile
) -> tuple[str, int, int]:
    """The campaign, the rows and the rows still to send; the results file open for appending."""
    results.load()
    campaign = _campaign(args, results, path)
    rows, todo = _count(path, fmt, args.sender, results.sent)
    results.open(campaign, path.resolve())
    return campaign, rows, todo


def _campaign(args: argparse.Namespace, results: ResultsFile, path: Path) -> str:
    recorded = results.campaign
    if args.campaign and recorded and args.campaign != recorded:
        raise CommandError(
            f"{results.path} belongs to campaign {recorded!r}: give a new --results file "
            f"for campaign {args.campaign!r}",
            EXIT_USAGE,
        )
    return str(args.campaign or recorded or path.resolve())


def _count(path: Path, fmt: Any, sender: str | None, sent: set[str]) -> tuple[int, int]:
    """Rows in the file, and rows still to send (BadRowError for a bad row, or none)."""
    rows = todo = 0
    for row in read_rows(path, fmt, sender):
        rows += 1
        todo += row.fingerprint not in sent
    if rows == 0:
        raise BadRowError(f"{path}: no messages in it")
    return rows, todo


class _Pending:
    """The rows still to send, as messages; remembers which row each correlator belongs to."""

    def __init__(self, path: Path, fmt: Any, sender: str | None, campaign: str, sent: set[str]):
        self._rows = read_rows(path, fmt, sender)
        self._campaign = campaign
        self._sent = sent
        self.rows: dict[str, Row] = {}

    def messages(self) -> Iterator[Message]:
        """The messages of the rows not sent yet, each under its row's correlator."""
        for row in self._rows:
            if row.fingerprint in self._sent:
                continue
            correlator = correlator_for(self._campaign, row.fingerprint)
            self.rows[correlator] = row
            yield Message(row.sender, row.recipients, row.text, client_correlator=correlator)


async def _run(
    client: Any,
    pending: _Pending,
    concurrency: int,
    results: ResultsFile,
    tally: _Tally,
    progress: Any,
) -> None:
    async for item in client.send_many(pending.messages(), concurrency=concurrency):
        correlator = item.message.client_correlator
        row = pending.rows.pop(correlator)
        results.write(_record(row, correlator, item))
        if item.ok:
            tally.sent += 1
        else:
            tally.failed += 1
        progress.advance(item.ok)


def _record(row: Row, correlator: str, item: BulkResult) -> dict[str, Any]:
    record: dict[str, Any] = {
        "row": row.number,
        "fingerprint": row.fingerprint,
        "correlator": correlator,
        "recipients": list(row.recipients),
    }
    if item.result is not None:
        record["request_id"] = item.result.request_id
    else:
        error = item.error
        record["error"] = " ".join(str(error).split()) or type(error).__name__
        record["error_type"] = type(error).__name__
    return record


def _summary(out: Output, tally: _Tally, results: Path, seconds: float) -> None:
    data = {
        "rows": tally.rows,
        "sent": tally.sent,
        "failed": tally.failed,
        "skipped": tally.skipped,
        "results": str(results),
        "seconds": round(seconds, 3),
    }
    lines = [
        f"{tally.rows} rows: {tally.sent} sent, {tally.failed} failed, "
        f"{tally.skipped} skipped (sent by an earlier run) in {seconds:.1f} s",
        f"results in {results}",
    ]
    if tally.failed:
        lines.append(
            f"failed rows are tried again by the same command; see why with: grep error {results}"
        )
    out.result(data, lines)
