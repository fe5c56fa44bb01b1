"""The JSON of the simulator's inbound and conversion endpoints, as pure functions.

Requests are checked against BICS's OpenAPI schemas (``InboundCallback``, ``ConversionRequest``,
``MessageIdsDTO``, the ``maxBatchSize`` parameter); each check names the first part that breaks
them, for the 400's service exception. OpenAPI 3.0 makes nothing nullable unless it says so, so
``"concat": null`` is refused like any other value of the wrong type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs

from .._inbound import ConversionRequest, InboundSubscription, MessageIds

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MAX_BATCH_SIZE",
    "InboundPart",
    "InjectedInbound",
    "RefusalFormat",
    "inbound_list_body",
    "inbound_subscription_body",
    "joined_body",
    "parse_batch_size",
    "parse_conversion",
    "parse_inbound_callback",
    "parse_message_ids",
    "part_body",
    "refused_body",
    "wire_address",
]

DEFAULT_BATCH_SIZE = 20
MAX_BATCH_SIZE = 200
RefusalFormat = Literal["array", "object"]
"""How the simulator lists refused conversion ids: ``["id"]`` or ``{"message_id": ["id"]}``."""

_INTEGER = re.compile(r"[0-9]{1,4}")
_CONVERSION_ADDRESS = re.compile(r"(?:tel:)?\+?[0-9]{1,15}")


@attrs.frozen
class InboundPart:
    """One SMS of an injected message: its BICS ``messageId``, text and 1-based number."""

    message_id: str
    text: str
    number: int


@attrs.frozen
class InjectedInbound:
    """A message a handset sent to one of the account's numbers (:meth:`Simulator.inject_inbound`).

    ``sender`` and ``destination`` are as BICS writes them (digits, no ``tel:`` or ``+``, as in
    its examples); ``text`` is the whole text, ``parts`` its SMS, split as a handset splits it;
    ``reference`` the concatenation reference (None for a message of one SMS). ``concat`` is the
    inbound subscription's setting when the message came (None: absent, or no subscription),
    ``posted`` whether it went to a subscription, ``polled`` whether it went to the inbox.
    """

    sender: str
    destination: str
    text: str
    date_time: str
    parts: tuple[InboundPart, ...]
    reference: int | None = None
    concat: bool | None = None
    posted: bool = False
    polled: bool = True

    @property
    def message_id(self) -> str:
        """The id of the first part: the id of the message once joined."""
        return self.parts[0].message_id

    @property
    def message_ids(self) -> tuple[str, ...]:
        """The ids of every part, in part order."""
        return tuple(part.message_id for part in self.parts)


def wire_address(value: str) -> str:
    """A number as BICS writes it in inbound messages: digits only (``tel:`` and ``+`` dropped).

    A value that is not a number (an alphanumeric name) is kept as given.
    """
    stripped = value.strip()
    bare = stripped[4:] if stripped.lower().startswith("tel:") else stripped
    bare = bare.removeprefix("+")
    return bare if bare.isdigit() else stripped


def _head(message: InjectedInbound, message_id: str, text: str) -> dict[str, Any]:
    return {
        "dateTime": message.date_time,
        "destinationAddress": message.destination,
        "senderAddress": message.sender,
        "messageId": message_id,
        "message": text,
    }


def part_body(message: InjectedInbound, part: InboundPart, *, udh: bool) -> dict[str, Any]:
    """One part as an ``InboundSmsMessage``; with ``udh``, a part of a long message says which."""
    body = _head(message, part.message_id, part.text)
    if udh and message.reference is not None:
        body |= {
            "udhMessageId": message.reference,
            "concatPart": part.number,
            "concatTotal": len(message.parts),
        }
    return body


def joined_body(message: InjectedInbound) -> dict[str, Any]:
    """The whole message as one ``InboundSmsMessage`` (``concat=true``), under its first id."""
    return _head(message, message.message_id, message.text)


def inbound_list_body(
    messages: Sequence[Mapping[str, Any]], *, total: int, resource_url: str
) -> dict[str, Any]:
    """A page of the inbox in the ``InboundSMSMessageList`` shape, under its root name."""
    return {
        "inboundSMSMessageList": {
            "inboundSMSMessage": list(messages),
            "numberOfMessagesInThisBatch": len(messages),
            "totalNumberOfPendingMessages": total,
            "resourceURL": resource_url,
        }
    }


def parse_batch_size(values: Sequence[str]) -> int | None:
    """``maxBatchSize`` from the query's values: the default when absent, None when invalid."""
    if not values:
        return DEFAULT_BATCH_SIZE
    if len(values) > 1 or not _INTEGER.fullmatch(values[0]):
        return None  # repeated, empty (allowEmptyValue: false), signed or not an integer
    size = int(values[0])
    return size if size <= MAX_BATCH_SIZE else None


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _absolute_url(value: object) -> bool:
    # Any absolute URL is well formed; whether it is https is a separate answer (406).
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.scheme) and bool(parts.netloc)


def parse_inbound_callback(body: object) -> InboundSubscription | None:
    """The subscription in ``{"callback": {...}}`` (``InboundCallback``), or None if malformed."""
    callback = body.get("callback") if isinstance(body, Mapping) else None
    if not isinstance(callback, Mapping):
        return None
    url, token = callback.get("url"), callback.get("securityToken")
    if not _absolute_url(url) or not _text(token):
        return None
    concat = callback.get("concat")
    if "concat" in callback and not isinstance(concat, bool):
        return None
    return InboundSubscription(url=str(url), security_token=str(token), concat=concat)


def inbound_subscription_body(subscription: InboundSubscription) -> dict[str, Any]:
    """``{"callback": {...}}`` as the API echoes and returns it (``concat`` only when set)."""
    callback: dict[str, Any] = {
        "url": subscription.url,
        "securityToken": subscription.security_token,
    }
    if subscription.concat is not None:
        callback["concat"] = subscription.concat
    return {"callback": callback}


def parse_conversion(body: object) -> ConversionRequest | None:
    """The ``conversionRequest``: at least one of address and customerReference, as strings."""
    request = body.get("conversionRequest") if isinstance(body, Mapping) else None
    if not isinstance(request, Mapping):
        return None
    address, reference = request.get("address"), request.get("customerReference")
    if "address" in request and not (
        isinstance(address, str) and _CONVERSION_ADDRESS.fullmatch(address)
    ):
        return None
    if "customerReference" in request and not _text(reference):
        return None
    if address is None and reference is None:
        return None
    return ConversionRequest(address=address, customer_reference=reference)


def parse_message_ids(body: object) -> MessageIds | None:
    """The ``MessageIdsDTO``: a required ``message_id`` array of strings, an optional ``type``."""
    if not isinstance(body, Mapping):
        return None
    ids, kind = body.get("message_id"), body.get("type")
    if not isinstance(ids, list) or not all(_text(item) for item in ids):
        return None
    if "type" in body and not isinstance(kind, str):
        return None
    return MessageIds(message_ids=list(ids), type=kind)


def refused_body(refused: Sequence[str], form: RefusalFormat) -> bytes:
    """The 200 body of ``/conversionsinfos``: empty when none is refused, else the refused ids."""
    if not refused:
        return b""
    payload: object = list(refused) if form == "array" else {"message_id": list(refused)}
    return json.dumps(payload).encode()
