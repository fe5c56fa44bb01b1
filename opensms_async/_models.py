"""Wire models of the OpenSMS API: attrs classes, frozen and slotted, free of I/O.

Field names are Pythonic; the one converter in ``_converter.py`` maps them to the wire's camelCase.
A field whose wire name is not simply its camelCase form says so in ``metadata={"wire": ...}``.
Secrets are kept out of reprs with ``repr=False``.
"""

from __future__ import annotations

import enum
from typing import TypeAlias
from urllib.parse import unquote, urlsplit

import attrs

__all__ = [
    "FINAL_STATUSES",
    "DeliveryInfo",
    "DeliveryInfoList",
    "DeliveryStatus",
    "NotAcceptableCallback",
    "OutboundMessageRequest",
    "RequestError",
    "SendResult",
    "SmsTextMessage",
    "Source",
    "Status",
    "Subscription",
    "is_final",
    "request_id_from_url",
]


def _wire(name: str) -> dict[str, str]:
    return {"wire": name}


class DeliveryStatus(enum.StrEnum):
    """A recipient's delivery state, as BICS and OMA name it.

    The value is the wire string:
    ``DeliveryStatus.DELIVERED_TO_TERMINAL == "DeliveredToTerminal"``. Statuses the SDK does not
    know travel as plain ``str`` (see :data:`Status`), never rejected.
    """

    MESSAGE_ACCEPTED = "MessageAccepted"
    MESSAGE_WAITING = "MessageWaiting"
    DELIVERED_TO_NETWORK = "DeliveredToNetwork"
    DELIVERY_UNCERTAIN = "DeliveryUncertain"
    PARTIALLY_DELIVERED = "PartiallyDelivered"
    DELIVERED_TO_TERMINAL = "DeliveredToTerminal"
    DELIVERY_IMPOSSIBLE = "DeliveryImpossible"
    INVALID_SRC_ADDRESS = "InvalidSrcAddress"
    INVALID_DEST_ADDRESS = "InvalidDestAddress"
    DELIVERY_NOTIFICATION_NOT_SUPPORTED = "DeliveryNotificationNotSupported"

    @property
    def is_final(self) -> bool:
        """True when no later state can follow (delivered, or failed for good)."""
        return self in FINAL_STATUSES

    @classmethod
    def parse(cls, value: str) -> Status:
        """The member for a known wire string, else the string itself, unchanged."""
        return _STATUS_BY_VALUE.get(value, value)  # a dict lookup: cls(value) costs more


class Source(enum.StrEnum):
    """Where a delivery update came from."""

    SEND = "send"
    CALLBACK = "callback"
    POLL = "poll"


Status: TypeAlias = DeliveryStatus | str
"""A delivery status: a :class:`DeliveryStatus`, or the raw string of one the SDK does not know."""

_STATUS_BY_VALUE: dict[str, DeliveryStatus] = {status.value: status for status in DeliveryStatus}

FINAL_STATUSES = frozenset(
    {
        DeliveryStatus.DELIVERED_TO_TERMINAL,
        DeliveryStatus.DELIVERY_IMPOSSIBLE,
        DeliveryStatus.INVALID_SRC_ADDRESS,
        DeliveryStatus.INVALID_DEST_ADDRESS,
        DeliveryStatus.DELIVERY_NOTIFICATION_NOT_SUPPORTED,
    }
)


def is_final(status: Status) -> bool:
    """True for a final status; an unknown status is never final."""
    return status in FINAL_STATUSES  # a plain "DeliveredToTerminal" string counts too


def request_id_from_url(url: str | None) -> str | None:
    """The request id in a ``.../requests/<id>[/deliveryInfos]`` resource URL, else None."""
    if not url:
        return None
    try:
        path = urlsplit(url).path
    except ValueError:  # e.g. "http://[x": a malformed IPv6 host
        return None
    return request_id_in_path(path.split("/"))


def request_id_in_path(segments: list[str]) -> str | None:
    """:func:`request_id_from_url` of a URL whose path split at each ``/`` is ``segments``."""
    parts = [p for p in segments if p]
    for index in range(len(parts) - 2, -1, -1):  # from the end, decoding only what is compared
        if unquote(parts[index]) == "requests":
            return unquote(parts[index + 1]) or None
    return None


@attrs.frozen
class SmsTextMessage:
    """The text of an outbound message (``outboundSMSTextMessage``)."""

    message: str


@attrs.frozen
class DeliveryInfo:
    """The delivery state of one recipient (``deliveryInfo``)."""

    address: str
    status: DeliveryStatus | str = attrs.field(metadata=_wire("deliveryStatus"))
    status_code: int | None = attrs.field(default=None, metadata=_wire("deliveryStatusCode"))
    parts_delivered: int | None = attrs.field(
        default=None, metadata=_wire("smsPartsDeliveredToTerminal")
    )
    parts_undeliverable: int | None = attrs.field(
        default=None, metadata=_wire("smsPartsUndeliverable")
    )
    parts_uncertain: int | None = attrs.field(default=None, metadata=_wire("smsPartsUncertain"))
    callback_data: str | None = None
    description: str | None = None

    @property
    def is_final(self) -> bool:
        """True when this recipient's state can no longer change."""
        return is_final(self.status)


@attrs.frozen
class DeliveryInfoList:
    """The delivery infos of one request (``deliveryInfoList``), polled or posted to a callback."""

    delivery_infos: list[DeliveryInfo] = attrs.field(factory=list, metadata=_wire("deliveryInfo"))
    resource_url: str | None = attrs.field(default=None, metadata=_wire("resourceURL"))
    sms_parts: int | None = None
    security_token: str | None = attrs.field(default=None, repr=False)

    @property
    def request_id(self) -> str | None:
        """The request id taken from ``resource_url``, when there is one."""
        return request_id_from_url(self.resource_url)


@attrs.frozen
class OutboundMessageRequest:
    """The body of a send request and of its response (``outboundSMSMessageRequest``)."""

    address: list[str]
    sender_address: str
    outbound_sms_text_message: SmsTextMessage = attrs.field(
        metadata=_wire("outboundSMSTextMessage")
    )
    sender_name: str | None = None
    client_correlator: str | None = None
    callback_data: str | None = None
    notify_url: str | None = attrs.field(default=None, metadata=_wire("notifyURL"))
    asynchronous: bool | None = None
    final_delivery: bool | None = None
    resource_url: str | None = attrs.field(default=None, metadata=_wire("resourceURL"))
    delivery_info_list: DeliveryInfoList | None = None


@attrs.frozen
class SendResult:
    """What ``send_message`` returns: the request id and one delivery info per recipient.

    ``recipients`` are the normalised ``tel:+<digits>`` addresses, in the order they were sent;
    ``parts`` is the number of SMS segments each recipient is charged for.
    """

    request_id: str
    sender: str
    resource_url: str | None
    delivery_infos: list[DeliveryInfo]
    recipients: tuple[str, ...]
    client_correlator: str
    parts: int = 1
    location: str | None = None
    traceparent: str | None = attrs.field(default=None, eq=False, repr=False)
    """The W3C ``traceparent`` of the send's span (``opensms.send_message``) when OpenTelemetry
    traced it: :meth:`DeliveryTracker.track` keeps it, so that the spans of the request's
    callbacks and polls link to the send. Not part of equality."""


@attrs.frozen
class Subscription:
    """The account's one delivery-info subscription (``callback``)."""

    url: str
    security_token: str = attrs.field(repr=False)
    final_delivery: bool | None = None


@attrs.frozen
class NotAcceptableCallback:
    """Why a subscription was refused with 406, e.g. ``code="NOT_HTTPS"``."""

    code: str | None = None
    description: str | None = None


@attrs.frozen
class RequestError:
    """An OMA ``requestError``: a service or policy exception with its message id and text."""

    kind: str
    message_id: str | None = None
    text: str | None = None
    variables: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = self.text or ""
        for index, value in enumerate(self.variables, start=1):
            text = text.replace(f"%{index}", value)
        return f"{self.message_id}: {text}" if self.message_id else text
