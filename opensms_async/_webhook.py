"""Delivery callbacks without the web framework: token check on bytes, body -> updates. No I/O.

Accepted shapes (PROTOCOL.md): BICS's ``{"deliveryInfoList": {...}}`` with the token inside, the
OMA ``{"deliveryInfoNotification": {...}}``, and a bare object of either kind; ``deliveryInfo`` may
be one object or a list. A payload is taken whole or not at all: one entry that cannot be
attributed, or with a field the update's gate refuses, refuses it.
"""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias, TypeGuard
from urllib.parse import unquote, urlsplit

from ._addressing import normalize_sender
from ._exceptions import ValidationError
from ._models import DeliveryStatus, request_id_from_url, request_id_in_path
from ._state import DeliveryUpdate, Source, new_update

__all__ = [
    "CallbackPayloadError",
    "UrlIds",
    "cached_url_ids",
    "callback_root",
    "encode_token",
    "find_token",
    "parse_callback",
    "parse_url_ids",
    "token_in",
    "token_matches",
    "updates_in",
]

_MAX_ENTRIES = 1000
_CACHED_URL = 512
"""Longest resource URL whose ids are cached (BICS's are about 100 characters)."""
_CACHED_SENDER = 64
"""Longest sender path segment memoised (``tel%3A%2B`` and 15 digits is 24 characters; an
alphanumeric sender of 11 characters, each percent-encoded, 33)."""


class CallbackPayloadError(ValidationError):
    """A JSON body that is not a delivery-info callback the SDK can attribute (answered 422)."""


def encode_token(token: str) -> bytes:
    """A token as the bytes compared; lone surrogates (legal in JSON) must not crash the check."""
    return token.encode("utf-8", "surrogatepass")


def token_matches(presented: bytes | None, accepted: Sequence[bytes]) -> bool:
    """True when ``presented`` equals one of ``accepted``, in time independent of the contents.

    Every accepted token is compared (no early exit), each with ``hmac.compare_digest`` on bytes.
    """
    if presented is None:
        presented = b""
    matched = False
    for token in accepted:
        matched |= hmac.compare_digest(presented, token)
    return matched and presented != b""


def find_token(payload: object, authorization: bytes | None) -> bytes | None:
    """The token in the body (``deliveryInfoList.securityToken``), else from ``Bearer`` auth."""
    return token_in(callback_root(payload), authorization)


def token_in(root: Mapping[str, Any] | None, authorization: bytes | None) -> bytes | None:
    """:func:`find_token` of a payload whose :func:`callback_root` is ``root``."""
    token = None if root is None else root.get("securityToken")
    if isinstance(token, str):
        return encode_token(token)
    if token is not None:
        return b""  # present but not a string: wrong, never a crash
    if authorization and authorization[:7].lower() == b"bearer ":
        return authorization[7:].strip()
    return None


def parse_callback(
    payload: object, *, received_at: float, url_ids: UrlIds | None = None
) -> list[DeliveryUpdate]:
    """The updates a callback body carries; :class:`CallbackPayloadError` when it is not one.

    This is the structural parse only (where the entries are, which request and sender they are
    for): each field goes into its update as received, and the update's gate (``_gate.py``)
    checks and normalises it as the update is built, raising
    :class:`~opensms_async.InvalidUpdateError` (also a ``ValidationError``) for a bad one.
    """
    return updates_in(callback_root(payload), received_at=received_at, url_ids=url_ids)


def updates_in(
    root: Mapping[str, Any] | None, *, received_at: float, url_ids: UrlIds | None = None
) -> list[DeliveryUpdate]:
    """:func:`parse_callback` of a payload whose :func:`callback_root` is ``root`` (the receiver
    finds the root once, for the token and for the updates)."""
    if root is None:
        raise CallbackPayloadError("not a delivery-info callback: no deliveryInfoList/deliveryInfo")
    entries = _entries(root)
    url = _resource_url(root)
    request_id, sender = (url_ids or parse_url_ids)(url) if url else (None, None)
    request_id = request_id or _text(root.get("callbackData"))
    sms_parts = root.get("smsParts")
    if len(entries) == 1:  # most callbacks: no comprehension (a frame of its own on 3.11)
        return [_update(entries[0], request_id, sender, sms_parts, received_at)]
    return [_update(entry, request_id, sender, sms_parts, received_at) for entry in entries]


def _is_object(value: object) -> TypeGuard[Mapping[str, Any]]:
    # json.loads makes dicts: test for one before the ABC check, which is the slow one.
    return type(value) is dict or isinstance(value, Mapping)


def callback_root(payload: object) -> Mapping[str, Any] | None:
    """The object of a callback body holding its entries (and token), or None for a body that
    is no delivery-info callback."""
    if not _is_object(payload):
        return None
    for key in ("deliveryInfoList", "deliveryInfoNotification"):
        inner = payload.get(key)
        if _is_object(inner):
            return inner
    if "deliveryInfo" in payload or "deliveryStatus" in payload:
        return payload
    return None


def _entries(root: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = root.get("deliveryInfo", root if "deliveryStatus" in root else None)
    items = raw if isinstance(raw, list) else [raw] if _is_object(raw) else None
    if not items:
        raise CallbackPayloadError("deliveryInfo must be a non-empty object or list")
    if len(items) > _MAX_ENTRIES:
        raise CallbackPayloadError(f"more than {_MAX_ENTRIES} deliveryInfo entries")
    for item in items:
        if not _is_object(item):
            raise CallbackPayloadError("every deliveryInfo entry must be an object")
    return items


def _resource_url(root: Mapping[str, Any]) -> str | None:
    url = _text(root.get("resourceURL"))
    if url:
        return url
    links = root.get("link")
    for link in links if isinstance(links, list) else [links]:
        if _is_object(link) and isinstance(link.get("href"), str):
            return str(link["href"])
    return None


UrlIds: TypeAlias = Callable[[str], tuple[str | None, str | None]]


def parse_url_ids(url: str) -> tuple[str | None, str | None]:
    """The request id and the sender in a resource URL (each None when absent)."""
    return _url_ids(url, _sender)


def cached_url_ids(maxsize: int = 1024) -> UrlIds:
    """:func:`parse_url_ids` memoised (for URLs up to 512 characters): every recipient of a
    request has its callbacks posted with the same URL. The senders are memoised apart (the few
    an account sends from): a request to one recipient, whose URL comes once or twice, then
    costs no decoding and no check of its sender. Each receiver owns one, no module state."""
    senders = functools.lru_cache(maxsize=64)(_sender)

    def sender(segment: str) -> str | None:
        return senders(segment) if len(segment) <= _CACHED_SENDER else _sender(segment)

    def parse(url: str) -> tuple[str | None, str | None]:
        return _url_ids(url, sender)

    cached = functools.lru_cache(maxsize=maxsize)(parse)

    def url_ids(url: str) -> tuple[str | None, str | None]:
        return cached(url) if len(url) <= _CACHED_URL else parse(url)

    return url_ids


def _url_ids(url: str, sender: Callable[[str], str | None]) -> tuple[str | None, str | None]:
    """``(request_id_from_url(url), the sender after /outbound/)``, from one split of the path."""
    path = _plain_http_path(url)
    if path is None:
        try:
            path = urlsplit(url).path
        except ValueError:  # e.g. "http://[x": a malformed IPv6 host
            return None, None
    segments = path.split("/")
    try:
        named = sender(segments[segments.index("outbound") + 1])
    except (ValueError, IndexError):
        named = None
    return request_id_in_path(segments), named


_PLAIN_HTTP_URL = re.compile(r"https?://[^/?#\[\]\\]*(/[^?#\\]*)?")
"""A URL whose path ``urlsplit`` would find as it is: http(s), no query, fragment, IPv6 host or
backslash (the URL is checked to be printable ASCII apart)."""


def _plain_http_path(url: str) -> str | None:
    """``urlsplit(url).path`` for a plain ``http(s)://host/path`` URL (a resource URL as BICS
    writes it), found without ``urlsplit`` and its cache; None for any other URL."""
    if not (url.isascii() and url.isprintable()) or " " in url:
        return None
    match = _PLAIN_HTTP_URL.fullmatch(url)
    return None if match is None else match[1] or ""


def _sender(segment: str) -> str | None:
    """The sender a resource URL's path segment names (percent-encoded), normalised; None when
    it names none."""
    try:
        return normalize_sender(unquote(segment))
    except ValueError:
        return None


def _update(
    entry: Mapping[str, Any],
    request_id: str | None,
    sender: str | None,
    sms_parts: object,
    received_at: float,
) -> DeliveryUpdate:
    """One entry as an update, its fields as received: the update's gate checks them."""
    if "resourceURL" in entry:  # rare: an entry naming its own request
        request_id = request_id_from_url(_text(entry["resourceURL"])) or request_id
    request_id = request_id or _text(entry.get("callbackData"))
    if not request_id:
        raise CallbackPayloadError("no request id: no resourceURL, link or callbackData")
    status = entry.get("deliveryStatus")
    # DeliveryUpdate(...) built cheaper (new_update), in the order of its fields.
    return new_update(
        request_id,
        entry.get("address"),  # type: ignore[arg-type]  # the gate refuses what is not a str
        DeliveryStatus.parse(status) if type(status) is str else status,  # type: ignore[arg-type]
        Source.CALLBACK,  # source
        entry.get("smsPartsDeliveredToTerminal"),  # parts_delivered
        sms_parts,  # type: ignore[arg-type]
        _code(entry.get("deliveryStatusCode")),  # status_code
        sender,
        received_at,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _code(value: object) -> int | None:
    # A status code is informative only: keep it when it is a sane integer, ignore it otherwise.
    if isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31:
        return value
    return None
