"""``InboundMessage``, what ``Inbox.messages()`` yields, and its form in a store's log (pure).

A store logs each message the reassembly rules yield (:class:`~._reassembly.Assembled`) under a
cursor; :func:`logged` gives it that cursor. Stores that keep the log outside this process
(SQLite, Redis) keep each message as one compact JSON array, :func:`encode` and :func:`decode`;
the Redis store's Lua script writes the same array (``_inbound_redis_scripts``), received time
included as the decimal text the caller gave, so that it reads back as the same float.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from ._reassembly import Assembled, Part
from ._state import Source

__all__ = [
    "InboundMessage",
    "build_message",
    "decode",
    "encode",
    "encode_single",
    "logged",
    "logged_single",
]


@attrs.frozen
class InboundMessage:
    """One inbound SMS as the inbox yields it: whole, or what came of it within the window.

    ``message_id`` is BICS's ``messageId`` (of part 1 for a joined message, of the lowest part
    present for an incomplete one); ``sender`` and ``destination`` are ``tel:+<digits>`` for
    numbers (BICS writes bare digits), other values as BICS gave them; ``text`` the parts' texts
    in part order, with no separator. ``received_at`` is when its first part was received (Unix
    seconds, the inbox's clock). ``parts`` counts the parts present, ``total`` those announced (1
    for a message that came whole), ``complete`` says whether all came (False: the
    ``reassembly_timeout`` passed first). ``source`` says how its first part came
    (``"callback"`` or ``"poll"``). ``cursor`` is opaque and increasing within a store: pass it
    back as ``messages(since=...)`` to resume after it. ``part_ids`` are the ``messageId`` s of
    its parts, in part order; ``date_time`` BICS's ``dateTime`` of its first part, as given.
    """

    message_id: str
    sender: str
    destination: str
    text: str
    received_at: float
    parts: int
    complete: bool
    source: Source
    cursor: str
    total: int = 1
    part_ids: tuple[str, ...] = ()
    date_time: str | None = None


# InboundMessage's slot descriptors, in field order: attrs' __init__ of a frozen class sets each
# field through ``object.__setattr__``; the descriptors set the slot directly, for the stores'
# hot path (one message per inbound callback). tests/test_inbound_message.py keeps it equal.
_new_object = object.__new__
(_set_message_id, _set_sender, _set_destination, _set_text, _set_received_at, _set_parts,
 _set_complete, _set_source, _set_cursor, _set_total, _set_part_ids, _set_date_time) = (
    InboundMessage.__dict__[field.name].__set__ for field in attrs.fields(InboundMessage)
)  # fmt: skip
_SOURCES = {source.value: source for source in Source}
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def build_message(
    message_id: str,
    sender: str,
    destination: str,
    text: str,
    received_at: float,
    parts: int,
    complete: bool,
    source: Source,
    cursor: str,
    total: int,
    part_ids: tuple[str, ...],
    date_time: str | None,
) -> InboundMessage:
    """``InboundMessage(...)`` with every field given in order, cheaper to build."""
    message: InboundMessage = _new_object(InboundMessage)
    _set_message_id(message, message_id)
    _set_sender(message, sender)
    _set_destination(message, destination)
    _set_text(message, text)
    _set_received_at(message, received_at)
    _set_parts(message, parts)
    _set_complete(message, complete)
    _set_source(message, source)
    _set_cursor(message, cursor)
    _set_total(message, total)
    _set_part_ids(message, part_ids)
    _set_date_time(message, date_time)
    return message


def logged_single(part: Part, received_at: float, cursor: str) -> InboundMessage:
    """A part that came whole (no reassembly: :func:`~._reassembly.single`), as logged."""
    mid = part.message_id
    return build_message(
        mid, part.sender, part.destination, part.text, received_at, 1, True,
        _SOURCES[part.source], cursor, 1, (mid,), part.date_time,
    )  # fmt: skip


def encode_single(part: Part, received_at: float) -> str:
    """:func:`encode` of :func:`~._reassembly.single` ``(part, received_at)``, without it."""
    mid = part.message_id
    return _ENCODER.encode(
        [mid, part.sender, part.destination, part.text, repr(float(received_at)), 1, 1, True,
         [mid], part.source, part.date_time]
    )  # fmt: skip


def logged(message: Assembled, cursor: str) -> InboundMessage:
    """``message`` as logged under ``cursor``."""
    return build_message(
        message.message_id, message.sender, message.destination, message.text,
        message.received_at, message.parts, message.complete, _SOURCES[message.source], cursor,
        message.total, message.part_ids, message.date_time,
    )  # fmt: skip


def encode(message: Assembled) -> str:
    """The log's JSON array for ``message``: id, sender, destination, text, received_at, parts,
    total, complete, part ids, source, date_time."""
    row = [
        message.message_id,
        message.sender,
        message.destination,
        message.text,
        repr(float(message.received_at)),
        message.parts,
        message.total,
        message.complete,
        list(message.part_ids),
        message.source,
        message.date_time,
    ]
    return _ENCODER.encode(row)


def decode(cursor: str, raw: str | bytes) -> InboundMessage:
    """The message a log entry holds (as :func:`encode` or the Lua script wrote it)."""
    row: list[Any] = json.loads(raw)
    mid, sender, destination, text, at, parts, total, complete, ids, source, date_time = row
    return build_message(
        mid, sender, destination, text, float(at), int(parts), bool(complete), _SOURCES[source],
        cursor, int(total), tuple(ids) if isinstance(ids, list) else (),  # cjson: {} for none
        date_time,
    )  # fmt: skip
