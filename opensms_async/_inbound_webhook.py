"""Inbound messages from the wire as reassembly parts: a callback's body, or a polled page. No I/O.

BICS posts ``{"InboundSmsMessage": {...}}`` (PROTOCOL.md); the parse also takes the root name
as the list endpoint spells it (``inboundSMSMessage``) or in camel case, one object or a list
under it, a page of the list endpoint (``{"inboundSMSMessageList": {...}}``), and a bare object
with a ``messageId``. A body is taken whole or not at all: one entry that is not an inbound
message refuses it (the receiver answers 422, and BICS retries; nothing is stored).

What an entry must have: a ``messageId`` (a non-empty string of valid Unicode, at most
:data:`MAX_MESSAGE_ID` characters; a number is read as its digits), the key of dedupe. The rest
is read leniently, since a message refused here is one BICS drops after three days of retries:
text fields may be missing (then empty) or numbers (read as their digits), a text holding a lone
surrogate (legal in JSON, impossible in UTF-8) keeps the rest with U+FFFD in its place, and a UDH
field that is not an integer reads as absent, so that such a part is a message of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeGuard

from ._addressing import inbound_address
from ._exceptions import ValidationError
from ._inbound import InboundSmsMessage
from ._reassembly import Part

__all__ = [
    "MAX_ENTRIES",
    "MAX_MESSAGE_ID",
    "InboundPayloadError",
    "parse_inbound_callback",
    "part_from_wire",
]

MAX_MESSAGE_ID: Final = 256
"""Longest ``messageId`` taken (BICS's are UUIDs, 36 characters)."""
MAX_ENTRIES: Final = 1000
"""Most messages one body may carry."""

_ROOTS: Final = ("InboundSmsMessage", "inboundSMSMessage", "inboundSmsMessage")
_LIST_ROOT: Final = "inboundSMSMessageList"


class InboundPayloadError(ValidationError):
    """A JSON body that is not an inbound message the inbox can record (answered 422)."""


def parse_inbound_callback(payload: object, *, source: str = "callback") -> list[Part]:
    """The parts an inbound callback body carries; :class:`InboundPayloadError` otherwise."""
    entries = _entries(payload)
    if not entries:
        raise InboundPayloadError("not an inbound message: no InboundSmsMessage")
    if len(entries) > MAX_ENTRIES:
        raise InboundPayloadError(f"more than {MAX_ENTRIES} inbound messages in one body")
    return [_part(entry, source) for entry in entries]


def part_from_wire(message: InboundSmsMessage, *, source: str = "poll") -> Part | None:
    """A polled message as a part; None when it has no usable ``messageId`` (nor one at the end
    of its ``resourceURL``), since without one it cannot be told from its retries."""
    message_id = _message_id(message.message_id or _id_from_url(message.resource_url))
    if message_id is None:
        return None
    return Part(
        message_id,
        inbound_address(_clean(message.sender_address or "")),
        inbound_address(_clean(message.destination_address or "")),
        _clean(message.message or ""),
        message.udh_message_id,
        message.concat_part,
        message.concat_total,
        source,
        None if message.date_time is None else _clean(message.date_time),
    )


def _is_object(value: object) -> TypeGuard[Mapping[str, Any]]:
    return type(value) is dict or isinstance(value, Mapping)


def _entries(payload: object) -> list[Any]:
    """The entries under the body's root, one object or a list of them ([] for none)."""
    if not _is_object(payload):
        return []
    for name in _ROOTS:
        if name in payload:
            return _listed(payload[name])
    page = payload.get(_LIST_ROOT)
    if _is_object(page):
        return _listed(page.get("inboundSMSMessage"))
    return [payload] if "messageId" in payload else []


def _listed(value: object) -> list[Any]:
    if isinstance(value, list):
        return value
    return [value] if value is not None else []


def _part(entry: object, source: str) -> Part:
    if not _is_object(entry):
        raise InboundPayloadError("every inbound message must be a JSON object")
    message_id = _message_id(_text(entry.get("messageId"), "messageId"))
    if message_id is None:
        raise InboundPayloadError(
            f"messageId must be a non-empty string of at most {MAX_MESSAGE_ID} characters"
        )
    date_time = _text(entry.get("dateTime"), "dateTime")
    # Positional, in the order of Part's fields: once per callback, keywords cost more.
    return Part(
        message_id,
        inbound_address(_text(entry.get("senderAddress"), "senderAddress") or ""),
        inbound_address(_text(entry.get("destinationAddress"), "destinationAddress") or ""),
        _text(entry.get("message"), "message") or "",
        _integer(entry.get("udhMessageId")),
        _integer(entry.get("concatPart")),
        _integer(entry.get("concatTotal")),
        source,
        date_time,
    )


def _text(value: object, name: str) -> str | None:
    """A text field: a string (lone surrogates replaced), a number as its digits, or None."""
    if type(value) is str:
        return value if value.isascii() else _clean(value)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InboundPayloadError(f"{name} must be a string")


def _clean(value: str) -> str:
    """``value`` with each lone surrogate replaced by U+FFFD (no UTF-8 store could keep it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _message_id(value: str | None) -> str | None:
    """``value`` if it can key dedupe, else None. A replaced surrogate would make two ids one:
    an id with U+FFFD is refused (BICS's are UUIDs)."""
    if not value or len(value) > MAX_MESSAGE_ID or "\ufffd" in value:
        return None
    return value


def _integer(value: object) -> int | None:
    return value if type(value) is int else None


def _id_from_url(url: str | None) -> str | None:
    if not url:
        return None
    last = url.rstrip("/").rpartition("/")[2]
    return last or None
