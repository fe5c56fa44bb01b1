"""Wire models of BICS v3's inbound SMS (MO) and conversion endpoints: attrs, frozen, free of I/O.

Inbound messages are read leniently, because a fetch of the inbox may already have taken them off
BICS's queue: every field of :class:`InboundSmsMessage` is optional (the inbox decides what a
message without ``messageId`` is worth), ``inboundSMSMessage`` may be one object or a list, and an
integer field holding something that is not an integer (``"concatPart": "x"``) reads as absent,
so that such a part becomes a message of its own instead of failing the whole page. Text fields
stay strict (a number is read as its digits, an object is an error), as everywhere in the SDK.

The conversion bodies are what the client sends; :func:`parse_refused_ids` reads BICS's answer to
``POST /conversionsinfos``, whose documented 200 body is "empty, or the list of ids not valid".
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from ._converter import WireFormatError

__all__ = [
    "ConversionRequest",
    "InboundSmsMessage",
    "InboundSmsMessageList",
    "InboundSubscription",
    "MessageIds",
    "parse_refused_ids",
]


def _wire(name: str) -> dict[str, Any]:
    return {"wire": name}


def _lenient(name: str | None = None) -> dict[str, Any]:
    """Field metadata: an ``int | None`` that reads as None when the wire holds no integer."""
    metadata: dict[str, Any] = {"lenient": True}
    if name is not None:
        metadata["wire"] = name
    return metadata


@attrs.frozen
class InboundSubscription:
    """The account's one inbound-message subscription (``callback``).

    BICS posts each inbound message to ``url`` with ``Authorization: Bearer <security_token>``,
    retrying for up to three days. ``concat`` says how long messages come: ``True``, BICS waits
    for every part and posts the joined message; ``False``, it posts each part with its UDH fields
    (``udh_message_id``, ``concat_part``, ``concat_total``) for the receiver to join; ``None``
    (left off the wire), the legacy behaviour: every part is posted as a message of its own,
    without UDH fields.
    """

    url: str
    security_token: str = attrs.field(repr=False)
    concat: bool | None = None


@attrs.frozen
class InboundSmsMessage:
    """One inbound message or message part, as BICS posts it or lists it (``InboundSmsMessage``).

    ``message_id`` is BICS's unique id (the same on every retry of a post). ``date_time`` is the
    wire's string as given (BICS's example, ``2021-11-24T09:13:40.639``, names no time zone).
    Addresses are as BICS writes them (its examples show bare digits). ``udh_message_id`` (the
    concatenation reference, 0-255, recycled by the handset), ``concat_part`` (1-based) and
    ``concat_total`` come with the parts of a long message when the subscription has
    ``concat=False``; ``resource_url`` only in polled lists.
    """

    message_id: str | None = None
    sender_address: str | None = None
    destination_address: str | None = None
    message: str | None = None
    date_time: str | None = None
    udh_message_id: int | None = attrs.field(default=None, metadata=_lenient())
    concat_part: int | None = attrs.field(default=None, metadata=_lenient())
    concat_total: int | None = attrs.field(default=None, metadata=_lenient())
    resource_url: str | None = attrs.field(default=None, metadata=_wire("resourceURL"))


@attrs.frozen
class InboundSmsMessageList:
    """A page of an inbound number's inbox (``inboundSMSMessageList``), from a poll.

    ``total_pending`` is BICS's ``totalNumberOfPendingMessages``: the messages that can be
    fetched, this page's included (None when BICS leaves it out); ``messages_in_batch`` its
    ``numberOfMessagesInThisBatch``.
    """

    messages: list[InboundSmsMessage] = attrs.field(
        factory=list, metadata=_wire("inboundSMSMessage")
    )
    total_pending: int | None = attrs.field(
        default=None, metadata=_lenient("totalNumberOfPendingMessages")
    )
    messages_in_batch: int | None = attrs.field(
        default=None, metadata=_lenient("numberOfMessagesInThisBatch")
    )
    resource_url: str | None = attrs.field(default=None, metadata=_wire("resourceURL"))


@attrs.frozen
class ConversionRequest:
    """The body of ``POST /conversions`` (``conversionRequest``): one of the two is given."""

    address: str | None = None
    customer_reference: str | None = None


@attrs.frozen
class MessageIds:
    """The body of ``POST /conversionsinfos`` (BICS's ``MessageIdsDTO``, sent without a root)."""

    message_ids: list[str] = attrs.field(metadata=_wire("message_id"))
    type: str | None = None


def parse_refused_ids(content: bytes) -> list[str]:
    """The ids BICS refused, from the 200 body of ``POST /conversionsinfos``.

    Three shapes are read: an empty body (nothing refused; JSON ``null`` counts as empty too), a
    JSON array of ids, and ``{"message_id": [...]}`` (the request's own shape; other keys are
    ignored). Ids written as numbers are read as their digits. Anything else raises
    :class:`WireFormatError`.
    """
    if not content.strip():
        return []
    try:
        payload = json.loads(content)
    except (ValueError, RecursionError):
        raise WireFormatError("the refused ids are not JSON") from None
    if isinstance(payload, dict) and "message_id" in payload:
        payload = payload["message_id"]
    if payload is None:
        return []
    if not isinstance(payload, list):
        raise WireFormatError(
            'expected an empty body, a JSON array of ids or {"message_id": [...]}, '
            f"got a JSON {type(payload).__name__}"
        )
    return [_refused_id(item) for item in payload]


def _refused_id(item: object) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, int | float) and not isinstance(item, bool):
        return str(item)
    raise WireFormatError(f"a refused id must be a string, not a JSON {type(item).__name__}")
