"""The JSON the simulator reads and writes, as pure functions (no I/O, no state).

Optional fields are checked against BICS's OpenAPI types when present: ``null`` is a wrong type
like any other (OpenAPI 3.0 makes nothing nullable unless it says so), refused with a 400, never
stored nor echoed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import SplitResult, quote, urlsplit

from .._constants import DEFAULT_BASE_URL
from .._models import DeliveryStatus, Status, Subscription
from ._delivery import STATUS_CODES, delivery_info

__all__ = [
    "NOT_HTTPS",
    "callback_body",
    "delivery_callback_body",
    "invalid_send_field",
    "parse_callback",
    "send_response_body",
    "service_exception",
    "subscription_body",
]

NOT_HTTPS = {"code": "NOT_HTTPS", "description": "The callback URL must be an https:// URL."}
"""The 406 body of a subscription whose callback URL is not https (``NotAcceptableCallback``)."""

_ADDRESS = re.compile(r"tel:\+[0-9]{1,15}")
_OPTIONAL_TEXT = ("senderName", "clientCorrelator", "callbackData", "notifyURL")
_OPTIONAL_FLAGS = ("asynchronous", "finalDelivery")


def service_exception(part: str) -> dict[str, Any]:
    """The OMA error body of a 400: which message part was invalid."""
    return {
        "requestError": {
            "serviceException": {
                "messageId": "SVC0002",
                "text": "Invalid input value for message part %1",
                "variables": [part],
            }
        }
    }


def invalid_send_field(body: object) -> str | None:
    """The first invalid part of a send request body, or None when it is valid."""
    request = body.get("outboundSMSMessageRequest") if isinstance(body, Mapping) else None
    if not isinstance(request, Mapping):
        return "outboundSMSMessageRequest"
    checks = (
        ("address", _valid_addresses(request.get("address"))),
        ("senderAddress", _non_empty_text(request.get("senderAddress"))),
        ("outboundSMSTextMessage", _valid_text(request.get("outboundSMSTextMessage"))),
        *((name, _optional(request, name, str)) for name in _OPTIONAL_TEXT),
        *((name, _optional(request, name, bool)) for name in _OPTIONAL_FLAGS),
        ("notifyURL", _is_http_url(request.get("notifyURL", "http://ok"))),
    )
    return next((name for name, valid in checks if not valid), None)


def _optional(request: Mapping[str, Any], name: str, kind: type) -> bool:
    """True when an optional field is absent or of its type (``null`` is not)."""
    return name not in request or isinstance(request[name], kind)


def _valid_addresses(value: object) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(a, str) and _ADDRESS.fullmatch(a) for a in value)
    )


def _non_empty_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _valid_text(value: object) -> bool:
    return isinstance(value, Mapping) and _non_empty_text(value.get("message"))


def _split(value: object) -> SplitResult | None:
    """``value`` split as a URL, or None for a non-string or a malformed one (``http://[x``)."""
    if not isinstance(value, str):
        return None
    try:
        return urlsplit(value)
    except ValueError:
        return None


def _is_http_url(value: object) -> bool:
    parts = _split(value)
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.netloc)


def send_response_body(
    request: Mapping[str, Any],
    *,
    resource_url: str,
    client_correlator: str,
    addresses: Sequence[str],
    parts: int,
    status: DeliveryStatus = DeliveryStatus.DELIVERED_TO_NETWORK,
) -> dict[str, Any]:
    """The 201 body: the request echoed, plus its resource URL and first delivery infos.

    Every recipient is reported in ``status``: ``MessageAccepted`` for an asynchronous send.
    """
    code = STATUS_CODES[status]
    infos = [
        {"address": a, "deliveryStatus": status.value, "deliveryStatusCode": code}
        for a in addresses
    ]
    echoed = {key: value for key, value in request.items() if key != "deliveryInfoList"}
    echoed |= {
        "clientCorrelator": client_correlator,
        "resourceURL": resource_url,
        "deliveryInfoList": {
            "resourceURL": f"{resource_url}/deliveryInfos",
            "smsParts": parts,
            "deliveryInfo": infos,
        },
    }
    return {"outboundSMSMessageRequest": echoed}


def callback_body(
    *,
    resource_url: str,
    parts: int,
    info: dict[str, Any],
    security_token: str | None,
) -> dict[str, Any]:
    """A delivery callback in the BICS shape: one recipient's new state, token in the body."""
    infos: dict[str, Any] = {}
    if security_token is not None:
        infos["securityToken"] = security_token
    infos |= {"resourceURL": resource_url, "smsParts": parts, "deliveryInfo": [info]}
    return {"deliveryInfoList": infos}


def delivery_callback_body(
    request_id: str,
    address: str,
    status: Status,
    *,
    security_token: str | None = None,
    sender: str = "tel:+32123456",
    base_url: str = DEFAULT_BASE_URL,
    parts: int = 1,
    parts_delivered: int | None = None,
    status_code: int | None = None,
    callback_data: str | None = None,
) -> dict[str, Any]:
    """The JSON body BICS posts to a delivery-info subscription: one recipient's new state.

    For tests of code that receives callbacks (``httpx.post(url, json=body)``)::

        {"deliveryInfoList": {"securityToken": ..., "smsParts": 1,
            "resourceURL": "<base_url>/outbound/<sender>/requests/<request_id>/deliveryInfos",
            "deliveryInfo": [{"address": ..., "deliveryStatus": ..., "deliveryStatusCode": 2}]}}

    The request id and the sender travel in ``resourceURL`` (percent-encoded), as BICS sends
    them. ``deliveryStatusCode`` is ``status_code``, else BICS's code for ``status`` (none for a
    status outside its table). ``securityToken`` is left out when None (a test then presents the
    token as ``Authorization: Bearer``), ``smsPartsDeliveredToTerminal`` and ``callbackData``
    when None. Values are written as given, unchecked, so that a test can build odd ones too.
    """
    resource_url = (
        f"{base_url.rstrip('/')}/outbound/{quote(sender, safe='')}"
        f"/requests/{quote(request_id, safe='')}/deliveryInfos"
    )
    info = delivery_info(address, status, parts_delivered, callback_data, status_code=status_code)
    return callback_body(
        resource_url=resource_url, parts=parts, info=info, security_token=security_token
    )


def parse_callback(body: object) -> Subscription | None:
    """The subscription in ``{"callback": {...}}``, or None when the body is malformed."""
    callback = body.get("callback") if isinstance(body, Mapping) else None
    if not isinstance(callback, Mapping):
        return None
    url, token = callback.get("url"), callback.get("securityToken")
    final = callback.get("finalDelivery")
    if not _is_absolute_url(url) or not _non_empty_text(token):
        return None
    if "finalDelivery" in callback and not isinstance(final, bool):
        return None  # null too: OpenAPI 3.0 makes nothing nullable unless it says so
    return Subscription(url=str(url), security_token=str(token), final_delivery=final)


def _is_absolute_url(value: object) -> bool:
    # Any absolute URL is well formed; whether it is https is a separate answer (406).
    parts = _split(value)
    return parts is not None and bool(parts.scheme) and bool(parts.netloc)


def subscription_body(subscription: Subscription) -> dict[str, Any]:
    """``{"callback": {...}}`` as the API echoes and returns it."""
    callback: dict[str, Any] = {
        "url": subscription.url,
        "securityToken": subscription.security_token,
    }
    if subscription.final_delivery is not None:
        callback["finalDelivery"] = subscription.final_delivery
    return {"callback": callback}
