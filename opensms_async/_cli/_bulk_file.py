"""The files of ``opensms send-many``: rows in (CSV or JSON lines), results out (JSON lines).

No printing here. What makes a re-run safe:

* each row has a *fingerprint*: a hash of its sender, its (normalised) recipients, its text and
  how many identical rows came before it, so it does not change when other rows are added,
  removed or moved;
* its ``clientCorrelator`` is a hash of the *campaign* and the fingerprint; the campaign is
  ``--campaign`` or else the input file's absolute path, and is kept in the results file's first
  line, so a re-run (even of the file moved with its results) sends under the same correlators.
  BICS answers a repeated correlator with the original response for 24 h instead of sending
  again: a row in flight when a run was killed is not sent twice;
* a row whose fingerprint the results file records as sent is skipped without any request.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, TypeAlias

import attrs

from .._addressing import normalize_address
from .._exceptions import ValidationError

__all__ = [
    "BadRowError",
    "Format",
    "ResultsFile",
    "Row",
    "correlator_for",
    "detect_format",
    "read_rows",
    "results_path",
]

Format: TypeAlias = Literal["csv", "jsonl"]
_RECIPIENT_SEPARATORS = ";"
_CORRELATOR_PREFIX = "osm-"
_RECIPIENT_COLUMNS = ("recipient", "recipients", "to")
_SENDER_COLUMNS = ("sender", "from")


class BadRowError(ValueError):
    """A row the file cannot mean as a message (no recipient, no text, not JSON)."""


@attrs.frozen
class Row:
    """One message of the file; ``number`` counts the messages from 1 (headers and blank lines
    not counted), ``fingerprint`` identifies it across re-runs (see the module docstring)."""

    number: int
    sender: str
    recipients: tuple[str, ...]
    text: str
    fingerprint: str


def detect_format(path: Path, given: str | None) -> Format:
    """``--format`` if given, else by extension: ``.csv`` is CSV, anything else JSON lines."""
    if given is not None:
        return "csv" if given == "csv" else "jsonl"
    return "csv" if path.suffix.lower() in (".csv", ".tsv") else "jsonl"


def results_path(path: Path, given: Path | None) -> Path:
    """``--results`` if given, else ``FILE.results.jsonl`` next to the input."""
    return given if given is not None else path.with_name(path.name + ".results.jsonl")


def read_rows(path: Path, fmt: Format, default_sender: str | None) -> Iterator[Row]:
    """The messages of the file, in order, each with its fingerprint; :class:`BadRowError`
    (naming the row) for one that is not a message. Streams: the file is never held whole."""
    seen: collections.Counter[bytes] = collections.Counter()
    raw = _csv_rows(path) if fmt == "csv" else _json_rows(path)
    for number, (where, fields) in enumerate(raw, start=1):
        sender, recipients, text = _message(fields, default_sender, where)
        base = _digest(sender, *_normalised(recipients), text)
        occurrence = seen[base]
        seen[base] += 1
        fingerprint = hashlib.sha256(base + str(occurrence).encode()).hexdigest()[:32]
        yield Row(number, sender, recipients, text, fingerprint)


def correlator_for(campaign: str, fingerprint: str) -> str:
    """The ``clientCorrelator`` of a row: the same for the same campaign and row, every run."""
    digest = hashlib.sha256(f"{campaign}\0{fingerprint}".encode()).hexdigest()[:32]
    return _CORRELATOR_PREFIX + digest


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).digest()


def _normalised(recipients: tuple[str, ...]) -> list[str]:
    out = []
    for recipient in recipients:
        try:
            out.append(normalize_address(recipient))
        except ValidationError:
            out.append(recipient)  # the send will refuse it; its fingerprint is still stable
    return out


def _csv_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with _open(path) as handle:
        dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
        reader = csv.DictReader(handle, dialect=dialect)
        if reader.fieldnames is None:
            return
        header = [name.strip().lower() for name in reader.fieldnames]
        if not any(name in header for name in _RECIPIENT_COLUMNS) or "text" not in header:
            raise BadRowError(
                f"{path}: the first line must name the columns: sender,recipient,text "
                f"(sender may be left out with --from), not {','.join(reader.fieldnames)}"
            )
        reader.fieldnames = header
        for record in reader:
            if not any(
                (value or "").strip() for value in record.values() if isinstance(value, str)
            ):
                continue  # a blank line
            yield f"{path}, line {reader.line_num}", record


def _json_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with _open(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {line_number}"
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise BadRowError(f"{where}: not JSON ({exc})") from None
            if not isinstance(record, dict):
                raise BadRowError(f"{where}: a JSON object is needed, not {type(record).__name__}")
            yield where, record


def _open(path: Path) -> IO[str]:
    try:
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise BadRowError(f"cannot read {path}: {exc.strerror or exc}") from None


def _message(
    fields: dict[str, Any], default_sender: str | None, where: str
) -> tuple[str, tuple[str, ...], str]:
    sender = _first(fields, _SENDER_COLUMNS) or default_sender
    if not isinstance(sender, str) or not sender.strip():
        raise BadRowError(f"{where}: no sender (add a sender column, or give --from)")
    recipients = _recipients(_first(fields, _RECIPIENT_COLUMNS))
    if not recipients:
        raise BadRowError(f"{where}: no recipient")
    text = fields.get("text")
    if not isinstance(text, str) or not text:
        raise BadRowError(f"{where}: no text")
    return sender.strip(), recipients, text


def _first(fields: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = fields.get(name)
        if value not in (None, ""):
            return value
    return None


def _recipients(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = value.split(_RECIPIENT_SEPARATORS)
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = value
    else:
        return ()
    return tuple(item.strip() for item in items if item.strip())


# --- results ------------------------------------------------------------------------------------


class ResultsFile:
    """The results file: a header line (the campaign), then one JSON line per row sent or failed.

    Read whole when opened (the fingerprints already sent); each result is written and flushed
    as it comes, so a killed run loses at most the rows in flight, which the correlators cover.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.campaign: str | None = None
        self.sent: set[str] = set()
        """Fingerprints of the rows recorded as sent."""
        self._handle: IO[str] | None = None

    def load(self) -> None:
        """Read what an earlier run recorded (nothing if the file does not exist)."""
        try:
            handle = self.path.open(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise BadRowError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        with handle:
            for line in handle:
                self._take(line)

    def _take(self, line: str) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return  # a line cut short by a kill: its row is sent again, under its correlator
        if not isinstance(record, dict):
            return
        if "campaign" in record and self.campaign is None:
            self.campaign = str(record["campaign"])
        elif record.get("request_id") and isinstance(record.get("fingerprint"), str):
            self.sent.add(record["fingerprint"])

    def open(self, campaign: str, source: Path) -> None:
        """Open for appending; a new file starts with its header line."""
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        try:
            self._handle = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise BadRowError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        if fresh:
            self.write({"campaign": campaign, "file": str(source), "started": time.time()})
        elif self._ends_mid_line():
            self._handle.write("\n")  # after a kill mid-line: the next record starts afresh

    def _ends_mid_line(self) -> bool:
        with self.path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"

    def write(self, record: dict[str, Any]) -> None:
        """Append one record and flush it to the OS."""
        if self._handle is None:
            raise RuntimeError("the results file is not open")
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        """Sync and close; idempotent."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
