"""What :class:`~opensms_async.stores.redis.RedisStore` sends to Redis and reads back (no I/O).

Everything is checked in Python before a script runs: a Lua script that fails half-way keeps
the writes it already made, so a malformed update must never reach one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from .._exceptions import InvalidCursorError
from .._models import DeliveryStatus
from .._state import DeliveryEvent, DeliveryState, DeliveryUpdate, Source, build_event
from ._base import PendingRequest

__all__ = [
    "Keys",
    "cursor_key",
    "encode_update",
    "event_from_entry",
    "events_from_rows",
    "number",
    "pending_from_row",
    "range_entries",
    "read_entries",
    "state_from_fields",
    "state_from_json",
    "text",
]

_MAX_COUNT: Final = 2**31
"""Part counts travel as Lua numbers; far below where those (and cjson) stop being exact."""

_STREAM_ID: Final = re.compile(r"([0-9]+)-([0-9]+)")
_MAX_ID_PART: Final = 2**64


@attrs.frozen
class Keys:
    """The names of the keys of one prefix (see the layout in ``redis.py``)."""

    prefix: str

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    @property
    def pending(self) -> str:
        return f"{self.prefix}:pending"

    @property
    def expiry(self) -> str:
        return f"{self.prefix}:expiry"

    @property
    def layout(self) -> str:
        return f"{self.prefix}:layout"

    def state(self, request_id: str) -> str:
        return f"{self.prefix}:state:{request_id}"

    def entry(self, request_id: str) -> str:
        return f"{self.pending}:{request_id}"


def text(value: bytes | str) -> str:
    """A reply value as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else value


def number(value: float, name: str) -> str:
    """A finite float as the exact decimal string Redis and Lua read back to the same double."""
    if type(value) is float and math.isfinite(value):  # the hot path: every update's time
        return repr(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, not {value!r}")
    return repr(float(value))


def cursor_key(cursor: str) -> tuple[int, int]:
    """``(ms, seq)`` of a stream id ``"<ms>-<seq>"``; :class:`InvalidCursorError` otherwise."""
    match = _STREAM_ID.fullmatch(cursor) if isinstance(cursor, str) else None
    if match is None:
        raise InvalidCursorError(f"malformed event cursor: {cursor!r} (expected '<ms>-<seq>')")
    ms, seq = int(match[1]), int(match[2])
    if ms >= _MAX_ID_PART or seq >= _MAX_ID_PART:
        raise InvalidCursorError(f"malformed event cursor: {cursor!r} (out of range)")
    return ms, seq


# --- updates -> script arguments --------------------------------------------------------------


def encode_update(update: DeliveryUpdate) -> list[object]:
    """The JSON-ready fields of an update, minus the key index; raises for a malformed update."""
    return [
        _string(update.request_id, "request_id"),
        _string(update.address, "address"),
        _string(update.status, "status"),
        str(Source(update.source)),
        _count(update.parts_delivered, "parts_delivered"),
        _count(update.sms_parts, "sms_parts"),
        None if update.sender is None else _string(update.sender, "sender"),
        number(update.received_at, "received_at"),
    ]


def _string(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    value.encode()  # a lone surrogate cannot travel as UTF-8: refuse it here
    return str(value)


def _count(value: object, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
    if not -_MAX_COUNT < value < _MAX_COUNT:
        raise ValueError(f"{name} is out of range: {value!r}")
    return int(value)


# --- replies -> attrs -------------------------------------------------------------------------


def state_from_json(request_id: str, address: str, raw: bytes | str) -> DeliveryState:
    """A stored state (the JSON array the merge script writes) as a :class:`DeliveryState`."""
    return state_from_fields(request_id, address, json.loads(raw))


def state_from_fields(request_id: str, address: str, fields: Sequence[Any]) -> DeliveryState:
    """A state from its ``[status, parts, sms_parts, sender, conflict, at]`` array."""
    status, parts, sms_parts, sender, conflict, at = fields
    return DeliveryState(
        request_id=request_id,
        address=address,
        status=DeliveryStatus.parse(status),
        parts_delivered=parts,
        sms_parts=sms_parts,
        sender=sender,
        conflict=bool(conflict),
        updated_at=float(at),
    )


def events_from_rows(updates: Sequence[DeliveryUpdate], rows: Any) -> list[DeliveryEvent]:
    """The events the merge script logged for ``updates``, oldest first, from its reply rows
    ``[index of the update from 1, stream id, previous or None, state]``.

    Raises ValueError for rows that do not fit ``updates`` (a reply this version did not write).
    """
    if not rows:  # [], or {}: how cjson encodes an empty table
        return []
    if not isinstance(rows, list):
        raise ValueError("the merge script answered something else than a list")
    events = []
    for index, stream_id, previous, fields in rows:
        if not (isinstance(index, int) and 1 <= index <= len(updates)):
            raise ValueError(f"the merge script answered an update index out of range: {index!r}")
        update = updates[index - 1]
        status, parts, sms_parts, _, conflict, at = fields
        before = None if previous is None else DeliveryStatus.parse(previous)
        # status, previous, source, parts_delivered, sms_parts, conflict, at
        event = build_event(
            text(stream_id), update.request_id, update.address, DeliveryStatus.parse(status),
            before, _SOURCES.get(update.source) or Source(update.source), parts, sms_parts,
            bool(conflict), float(at),
        )  # fmt: skip
        events.append(event)
    return events


def event_from_entry(stream_id: bytes | str, fields: Mapping[Any, Any]) -> DeliveryEvent:
    """A stream entry written by the merge script as a :class:`DeliveryEvent`.

    Every live consumer of a Redis store reads events this way (``bench_receiver.py``, Redis):
    the fields are decoded in one pass (the client answers bytes, or text when it decodes
    responses), and the event built positionally (:func:`build_event`).
    """
    if fields and isinstance(next(iter(fields)), bytes):
        values = {key.decode(): value.decode() for key, value in fields.items()}
    else:
        values = {text(key): text(value) for key, value in fields.items()}
    get = values.get
    previous, parts, sms_parts, source = (
        get("previous"), get("parts_delivered"), get("sms_parts"), values["source"]
    )  # fmt: skip
    return build_event(
        text(stream_id), values["request_id"], values["address"],
        DeliveryStatus.parse(values["status"]),
        None if previous is None else DeliveryStatus.parse(previous),
        _SOURCES.get(source) or Source(source),
        None if parts is None else int(parts), None if sms_parts is None else int(sms_parts),
        values["conflict"] == "1", float(values["at"]),
    )  # fmt: skip


_SOURCES: Final = {source.value: source for source in Source}


def range_entries(reply: Any) -> list[tuple[Any, Any]]:
    """The ``(id, fields)`` entries of an XRANGE, XREVRANGE or XAUTOCLAIM list."""
    return [(entry[0], entry[1]) for entry in reply or ()]


def read_entries(reply: Any) -> list[tuple[Any, Any]]:
    """The ``(id, fields)`` entries of an XREAD or XREADGROUP reply on one stream.

    RESP2 answers ``[[stream, entries]]``, RESP3 ``{stream: [entries]}``. Entries trimmed away
    while pending in a group come back with empty fields.
    """
    if not reply:
        return []
    if isinstance(reply, Mapping):
        [entries] = reply.values()
        if entries and isinstance(entries[0], list):
            entries = entries[0]
        return range_entries(entries)
    return range_entries(reply[0][1])


def pending_from_row(row: Sequence[bytes | str]) -> PendingRequest:
    """One row of the claim script's reply as :class:`PendingRequest` (its sixth value, the
    traceparent, "" for none)."""
    request_id, sender, tracked_at, next_poll_at, attempts, traceparent = (text(v) for v in row)
    return PendingRequest(
        request_id=request_id,
        sender=sender,
        tracked_at=float(tracked_at),
        next_poll_at=float(next_poll_at),
        attempts=int(attempts),
        traceparent=traceparent or None,
    )
