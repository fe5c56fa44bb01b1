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

from ._reassembly import Assembled
from ._state import Source

__all__ = ["InboundMessage", "decode", "encode", "logged"]


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


def logged(message: Assembled, cursor: str) -> InboundMessage:
    """``message`` as logged under ``cursor``."""
    return InboundMessage(
        message_id=message.message_id,
        sender=message.sender,
        destination=message.destination,
        text=message.text,
        received_at=message.received_at,
        parts=message.parts,
        complete=message.complete,
        source=Source(message.source),
        cursor=cursor,
        total=message.total,
        part_ids=message.part_ids,
        date_time=message.date_time,
    )


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
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def decode(cursor: str, raw: str | bytes) -> InboundMessage:
    """The message a log entry holds (as :func:`encode` or the Lua script wrote it)."""
    row: list[Any] = json.loads(raw)
    mid, sender, destination, text, at, parts, total, complete, ids, source, date_time = row
    return InboundMessage(
        message_id=mid,
        sender=sender,
        destination=destination,
        text=text,
        received_at=float(at),
        parts=int(parts),
        complete=bool(complete),
        source=Source(source),
        cursor=cursor,
        total=int(total),
        part_ids=tuple(ids) if isinstance(ids, list) else (),  # Lua's cjson: {} for no ids
        date_time=date_time,
    )
