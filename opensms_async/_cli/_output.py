"""How the commands print: results on stdout (text, or JSON with ``--json``), notes on stderr.

Streams (``events``, ``inbox``, ``receive``) print one JSON object a line whatever ``--json``
says, so that a pipe can read them; a command's result is text for people or one JSON document
for scripts. An inbound message's line has ``"kind": "inbound"`` (a delivery event's has no
``kind``), so that ``receive``, which prints both, can be read by one pipe.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from .._inbound import InboundSmsMessage
from .._inbound_message import InboundMessage
from .._models import DeliveryInfo
from .._state import DeliveryEvent

__all__ = [
    "INBOUND_KIND",
    "Output",
    "event_json",
    "inbound_json",
    "info_json",
    "table",
    "wire_json",
]

INBOUND_KIND = "inbound"
"""The ``kind`` of an inbound message's JSON line."""


class Output:
    """Where a command prints; ``json`` is the ``--json`` option."""

    def __init__(self, *, json: bool, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.json = json
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr

    def result(self, data: Mapping[str, Any] | Sequence[Any], lines: Iterable[str] = ()) -> None:
        """A command's result: ``data`` as JSON with ``--json``, else the text ``lines``."""
        if self.json:
            self.json_line(data)
        else:
            for line in lines:
                self.line(line)

    def line(self, text: str = "") -> None:
        """A line of the result (stdout)."""
        print(text, file=self.out, flush=True)

    def json_line(self, data: object) -> None:
        """One JSON document on one line (stdout)."""
        print(json.dumps(data, ensure_ascii=False), file=self.out, flush=True)

    def note(self, text: str) -> None:
        """A line for the person watching, not for a pipe (stderr)."""
        print(text, file=self.err, flush=True)

    def event(self, event: DeliveryEvent) -> None:
        """A delivery event as a JSON line, always (streams are for pipes)."""
        self.json_line(event_json(event))

    def inbound(self, message: InboundMessage) -> None:
        """An inbound message as a JSON line, always (streams are for pipes)."""
        self.json_line(inbound_json(message))


def event_json(event: DeliveryEvent) -> dict[str, Any]:
    """An event as a flat JSON object."""
    return {
        "cursor": event.cursor,
        "request_id": event.request_id,
        "address": event.address,
        "status": str(event.status),
        "previous": None if event.previous is None else str(event.previous),
        "source": str(event.source),
        "parts_delivered": event.parts_delivered,
        "conflict": event.conflict,
        "at": event.at,
    }


def inbound_json(message: InboundMessage) -> dict[str, Any]:
    """An inbound message as the inbox yields it, as a flat JSON object (``"kind": "inbound"``)."""
    return {
        "kind": INBOUND_KIND,
        "cursor": message.cursor,
        "message_id": message.message_id,
        "sender": message.sender,
        "destination": message.destination,
        "text": message.text,
        "parts": message.parts,
        "total": message.total,
        "complete": message.complete,
        "source": str(message.source),
        "received_at": message.received_at,
        "date_time": message.date_time,
        "part_ids": list(message.part_ids),
    }


def wire_json(message: InboundSmsMessage) -> dict[str, Any]:
    """An inbound message or part as BICS listed it (a poll), as a flat JSON object."""
    return {
        "message_id": message.message_id,
        "sender": message.sender_address,
        "destination": message.destination_address,
        "text": message.message,
        "date_time": message.date_time,
        "udh_message_id": message.udh_message_id,
        "concat_part": message.concat_part,
        "concat_total": message.concat_total,
    }


def info_json(info: DeliveryInfo) -> dict[str, Any]:
    """One recipient's delivery info as a flat JSON object."""
    return {
        "address": info.address,
        "status": str(info.status),
        "final": info.is_final,
        "parts_delivered": info.parts_delivered,
        "description": info.description,
    }


def table(rows: Sequence[Sequence[str]], *, indent: str = "  ") -> list[str]:
    """Rows as aligned text columns; ``(none)`` for no rows."""
    if not rows:
        return [f"{indent}(none)"]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
