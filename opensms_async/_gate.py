"""The one gate every delivery update passes: what a store may record, field by field. Pure.

:class:`~opensms_async._state.DeliveryUpdate` calls :func:`admit` when it is built, so that an
update is canonical by construction, whoever builds it: the receiver from a callback, the poller
from a poll, ``track()`` from a send, or a user calling ``ingest`` (or a store) directly. Each
gets the same guarantees, and one that no store should keep is refused with
:class:`InvalidUpdateError` (naming the field) before anything can record it.

What canonical means, field by field:

* ``request_id``: a non-empty string of at most :data:`MAX_REQUEST_ID` characters, valid Unicode
  (no lone surrogate, which JSON allows and no UTF-8 store can keep), no control character;
* ``address``: an E.164 number as ``tel:+<digits>`` (``+33...`` and ``TEL:+33...`` become it);
* ``status``: a :class:`DeliveryStatus` when known, else the string as received: non-empty, at
  most :data:`MAX_STATUS` characters, valid Unicode;
* ``source``: a :class:`Source` (its string value becomes the member);
* ``parts_delivered``, ``sms_parts``: None or a whole number from 0 to :data:`MAX_PARTS`;
* ``status_code``: None or a 32-bit integer; ``sender``: None or as ``normalize_sender`` writes it;
* ``received_at``: a finite float (a whole number becomes one).

The common update, canonical as given, passes with a chain of cheap tests and no allocation;
building an update is where this costs, once, and ``ingest`` pays nothing for it
(``bench/bench_merge.py`` ingests updates built beforehand).
"""

from __future__ import annotations

import math
import re
from typing import Final, TypeAlias

from ._addressing import normalize_address, normalize_sender
from ._exceptions import InvalidUpdateError
from ._models import DeliveryStatus, Source, Status

__all__ = ["MAX_PARTS", "MAX_REQUEST_ID", "MAX_STATUS", "Fields", "admit"]

MAX_REQUEST_ID: Final = 256
"""Longest request id admitted (BICS's are UUIDs; a ``callbackData`` standing in is short too)."""
MAX_STATUS: Final = 64
"""Longest status admitted (the longest BICS status has 32 characters)."""
MAX_PARTS: Final = 10_000
"""Highest part count admitted (a long SMS has a few parts)."""

Fields: TypeAlias = tuple[
    str, str, Status, Source, "int | None", "int | None", "int | None", "str | None", float
]
"""An update's fields in ``DeliveryUpdate``'s order: request id, address, status, source, parts
delivered, SMS parts, status code, sender, received at."""

_INT32: Final = 2**31
_ADDRESS: Final = re.compile(r"tel:\+[1-9][0-9]{0,14}")
_NUMERIC_SENDER: Final = re.compile(r"tel:\+?[0-9]{1,15}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SOURCES: Final = frozenset(source.value for source in Source)
_SHOWN: Final = 40


def admit(
    request_id: object,
    address: object,
    status: object,
    source: object,
    parts_delivered: object,
    sms_parts: object,
    status_code: object,
    sender: object,
    received_at: object,
) -> Fields | None:
    """None when every field is canonical already (the common case); else the canonical
    fields (:data:`Fields`). Raises :class:`InvalidUpdateError` naming the first field refused."""
    if (
        type(request_id) is str
        and 0 < len(request_id) <= MAX_REQUEST_ID
        and request_id.isascii()
        and request_id.isprintable()  # for ASCII: no control character
        and type(address) is str
        and _ADDRESS.fullmatch(address) is not None
        and type(status) is DeliveryStatus
        and type(source) is Source
        and (
            parts_delivered is None
            or (type(parts_delivered) is int and 0 <= parts_delivered <= MAX_PARTS)
        )
        and (sms_parts is None or (type(sms_parts) is int and 0 <= sms_parts <= MAX_PARTS))
        and (status_code is None or (type(status_code) is int and -_INT32 <= status_code < _INT32))
        and (
            sender is None
            or (type(sender) is str and _NUMERIC_SENDER.fullmatch(sender) and sender[4:6] != "+0")
            or _canonical_sender(sender)  # an alphanumeric one (or a bad one: refused below)
        )
        and type(received_at) is float
        and received_at - received_at == 0.0  # finite: inf - inf and nan - nan are nan
    ):
        return None
    return (
        _request_id(request_id),
        _address(address),
        _status(status),
        _source(source),
        _count(parts_delivered, "parts_delivered"),
        _count(sms_parts, "sms_parts"),
        _status_code(status_code),
        None if sender is None else _sender(sender),
        _received_at(received_at),
    )


def _canonical_sender(sender: object) -> bool:
    """True when ``normalize_sender`` would write ``sender`` as it is (a numeric sender matches
    ``_NUMERIC_SENDER`` without ``+0``: a country code never starts with 0)."""
    if type(sender) is not str:
        return False
    try:
        return normalize_sender(sender) == sender
    except ValueError:
        return False


def _refused(field: str, problem: str) -> InvalidUpdateError:
    return InvalidUpdateError(f"invalid delivery update: {field} {problem}", field)


def _shown(value: str) -> str:
    """A value for an error message: its repr, cut short (a refused value may be huge)."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 3]}... ({len(value)} characters)"


def _text(value: object, field: str, longest: int) -> str:
    """A non-empty string of at most ``longest`` characters that UTF-8 can encode."""
    if not isinstance(value, str):
        raise _refused(field, f"must be a string, not {type(value).__name__}")
    if not value:
        raise _refused(field, "must not be empty")
    if len(value) > longest:
        raise _refused(field, f"has {len(value)} characters, more than {longest}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problem = f"is not valid Unicode text (a lone surrogate): {_shown(value)}"
            raise _refused(field, problem) from None
    return str(value)  # the same object for a str, a plain str for a subclass


def _request_id(value: object) -> str:
    text = _text(value, "request_id", MAX_REQUEST_ID)
    if _CONTROL.search(text):
        raise _refused("request_id", f"contains a control character: {_shown(text)}")
    return text


def _address(value: object) -> str:
    if not isinstance(value, str):
        raise _refused("address", f"must be a string, not {type(value).__name__}")
    if type(value) is str and _ADDRESS.fullmatch(value):
        return value
    try:
        return normalize_address(value)
    except ValueError as exc:
        raise _refused("address", f"is not E.164: {exc}") from None


def _status(value: object) -> Status:
    if type(value) is DeliveryStatus:
        return value
    return DeliveryStatus.parse(_text(value, "status", MAX_STATUS))


def _source(value: object) -> Source:
    if type(value) is Source:
        return value
    if isinstance(value, str) and value in _SOURCES:
        return Source(value)
    raise _refused("source", f"must be one of {', '.join(map(repr, sorted(_SOURCES)))}")


def _count(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PARTS:
        raise _refused(field, f"must be None or a whole number from 0 to {MAX_PARTS}")
    return int(value)


def _status_code(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -_INT32 <= value < _INT32:
        raise _refused("status_code", "must be None or a 32-bit integer")
    return int(value)


def _sender(value: object) -> str:
    if not isinstance(value, str):
        raise _refused("sender", f"must be a string or None, not {type(value).__name__}")
    try:
        return normalize_sender(value)
    except ValueError as exc:
        raise _refused("sender", f"is not valid: {exc}") from None


def _received_at(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refused("received_at", f"must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise _refused("received_at", f"must be finite, not {value!r}")
    return float(value)
