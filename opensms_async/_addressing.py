"""Recipient and sender rules of the OpenSMS API, free of I/O.

Recipients are E.164 numbers and travel as ``tel:+<digits>``. A sender is either a number or
short code of at most 15 digits (``tel:`` and ``+`` optional, as in the spec's ``tel:12345678``)
or an alphanumeric name of at most 11 characters from the GSM-7 basic table. The sender is also
a path segment of the API's URLs, percent-encoded there, and so is a request id: ``.`` and ``..``
are refused as either, since a URL library removes such "dot segments" however they are encoded
(RFC 3986 5.2.4) and the request would go to another endpoint. An inbound number (the number whose
inbox is polled) follows the sender rule for numbers, and only that one: it is never alphanumeric.
Every string that goes on the wire must be encodable as UTF-8 (no lone surrogate):
:func:`check_text`.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from ._exceptions import (
    InvalidAddressError,
    InvalidMessageError,
    InvalidSenderError,
    ValidationError,
)
from ._segments import GSM7_BASIC, GSM7_EXTENSION

__all__ = [
    "check_text",
    "inbound_address",
    "is_alphanumeric_sender",
    "normalize_address",
    "normalize_inbound_number",
    "normalize_sender",
    "request_id_path_segment",
    "sender_path_segment",
]

MAX_E164_DIGITS = 15
"""Longest E.164 number, country code included (ITU-T E.164)."""

MAX_ALPHANUMERIC_SENDER = 11
"""Longest alphanumeric sender the spec allows."""

_E164_RE = re.compile(r"(?i:tel:)?\+([1-9][0-9]{0,14})")
_INBOUND_NUMBER_RE = re.compile(r"(?i:tel:)?\+?([1-9][0-9]{0,14})")
_NUMERIC_SENDER_RE = re.compile(r"(?i:tel:)?(\+(?=[1-9]))?([0-9]{1,15})")
_TEL_RE = re.compile(r"(?i:tel:)")
_DOT_SEGMENTS = (".", "..")
_DIGITS_RE = re.compile(r"[0-9]+")

# Line breaks are in the basic table but make no sense in a sender name.
_SENDER_CHARS = GSM7_BASIC - {"\n", "\r"}

_ADDRESS_EXPECTED = (
    "expected an E.164 number as '+<digits>' or 'tel:+<digits>' "
    "(country code first, 1 to 15 digits, no spaces or separators)"
)
_SENDER_EXPECTED = (
    "expected a number of at most 15 digits ('tel:' and '+' optional) "
    "or at most 11 GSM-7 characters (letters, digits, space, basic punctuation)"
)


def _shown(value: object) -> str:
    """The value's repr, cut to about 40 characters for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _strip_tel(value: str) -> str:
    match = _TEL_RE.match(value)
    return value[match.end() :] if match else value


def _address_problem(value: str) -> str:
    """Why ``value`` (stripped, not matching E.164) is refused, in a few words."""
    rest = _strip_tel(value)
    if not rest:
        return "nothing follows 'tel:'" if value else "it is empty"
    if not rest.startswith("+"):
        return "it has no leading '+' (a national number needs its country code, e.g. '+32...')"
    digits = rest[1:]
    if not _DIGITS_RE.fullmatch(digits):
        return "only digits may follow the '+'" if digits else "it has no digits after the '+'"
    if digits.startswith("0"):
        return "a country code never starts with 0"
    return f"it has {len(digits)} digits, more than {MAX_E164_DIGITS}"


def normalize_address(value: str) -> str:
    """A recipient as ``tel:+<digits>``, from ``+<digits>`` or ``tel:+<digits>``.

    The ``tel:`` prefix is case-insensitive and surrounding whitespace is ignored. Raises
    :class:`InvalidAddressError` (a ``ValueError``) for anything that is not E.164.
    """
    if not isinstance(value, str):
        raise InvalidAddressError(
            f"invalid recipient {_shown(value)}: its type is {type(value).__name__}, not str; "
            f"{_ADDRESS_EXPECTED}"
        )
    stripped = value.strip()
    match = _E164_RE.fullmatch(stripped)
    if match is None:
        problem = _address_problem(stripped)
        raise InvalidAddressError(
            f"invalid recipient {_shown(value)}: {problem}; {_ADDRESS_EXPECTED}"
        )
    return "tel:+" + match.group(1)


def _sender_error(value: object, problem: str) -> InvalidSenderError:
    return InvalidSenderError(f"invalid sender {_shown(value)}: {problem}; {_SENDER_EXPECTED}")


def _numeric_problem(value: str) -> str:
    """Why ``value``, written as a number (digits, '+' or 'tel:'), is refused."""
    rest = _strip_tel(value)
    digits = rest.removeprefix("+")
    if not digits:
        return "it has no digits"
    if not _DIGITS_RE.fullmatch(digits):
        return "a sender written with 'tel:' or '+' must be digits only"
    if rest.startswith("+") and digits.startswith("0"):
        return "a country code never starts with 0"
    return f"it has {len(digits)} digits, more than {MAX_E164_DIGITS}"


def _alphanumeric_problem(value: str) -> str | None:
    """Why ``value`` is not a valid alphanumeric sender, or None when it is one."""
    if value in _DOT_SEGMENTS:
        return "'.' and '..' cannot be a URL path segment"
    for char in value:
        if char in GSM7_EXTENSION:
            return (
                f"{char!r} is in the GSM-7 extension table (it costs two septets); "
                "senders allow basic-table characters only"
            )
        if char not in _SENDER_CHARS:
            return f"{char!r} is not in the GSM-7 basic alphabet"
    if len(value) > MAX_ALPHANUMERIC_SENDER:
        return f"it has {len(value)} characters, more than {MAX_ALPHANUMERIC_SENDER}"
    return None


def _looks_numeric(value: str) -> bool:
    return value.startswith("+") or bool(_TEL_RE.match(value)) or bool(_DIGITS_RE.fullmatch(value))


def normalize_sender(value: str) -> str:
    """A sender in its canonical form, for the URL path and for comparisons.

    Numbers and short codes become ``tel:`` + (``+`` if written) + digits: ``+32123`` ->
    ``tel:+32123``, ``12345678`` -> ``tel:12345678``. A value starting with ``tel:`` or ``+``
    is always read as a number. Alphanumeric senders (at least one non-digit) come back as given,
    minus surrounding whitespace. Raises :class:`InvalidSenderError` (a ``ValueError``).
    """
    if not isinstance(value, str):
        problem = f"its type is {type(value).__name__}, not str"
        raise _sender_error(value, problem)
    stripped = value.strip()
    if not stripped:
        raise _sender_error(value, "it is empty")
    if _looks_numeric(stripped):
        match = _NUMERIC_SENDER_RE.fullmatch(stripped)
        if match is None:
            raise _sender_error(value, _numeric_problem(stripped))
        return "tel:" + (match.group(1) or "") + match.group(2)
    problem = _alphanumeric_problem(stripped)
    if problem is not None:
        raise _sender_error(value, problem)
    return stripped


_INBOUND_EXPECTED = (
    "expected an E.164 number ('+<digits>', 'tel:' optional) or a short code of at most 15 digits"
)


def normalize_inbound_number(value: str) -> str:
    """An inbound number in its canonical form, as :func:`normalize_sender` writes numbers.

    ``+32470000000`` -> ``tel:+32470000000``, ``tel:1234`` -> ``tel:1234``. Raises
    :class:`InvalidAddressError` (a ``ValueError``) for anything else, an alphanumeric name
    included: nobody can send to one.
    """
    stripped = value.strip() if isinstance(value, str) else None
    match = _NUMERIC_SENDER_RE.fullmatch(stripped) if stripped is not None else None
    if match is None:
        raise InvalidAddressError(
            f"invalid inbound number {_shown(value)}: {_inbound_problem(value)}; "
            f"{_INBOUND_EXPECTED}"
        )
    return "tel:" + (match.group(1) or "") + match.group(2)


def _inbound_problem(value: object) -> str:
    if not isinstance(value, str):
        return f"its type is {type(value).__name__}, not str"
    stripped = value.strip()
    if not stripped:
        return "it is empty"
    if not _looks_numeric(stripped):
        return "it is not a number"
    return _numeric_problem(stripped)


def inbound_address(value: str) -> str:
    """An address of an inbound message in the form the inbox keeps and compares.

    BICS writes inbound numbers as bare international digits (``"32470000000"``): a number of 1
    to 15 digits not starting with 0, with or without ``tel:`` and ``+``, becomes
    ``tel:+<digits>`` (a short code too, since bare digits cannot tell one apart). Anything else
    (a name, a national number starting with 0) is kept as given, minus surrounding whitespace:
    an inbound message is never refused for its address.
    """
    if value.isascii() and value.isdigit() and len(value) <= 15 and value[0] != "0":
        return "tel:+" + value  # BICS's form, once or twice per inbound callback: no regex
    stripped = value.strip()
    match = _INBOUND_NUMBER_RE.fullmatch(stripped)
    return stripped if match is None else "tel:+" + match.group(1)


def is_alphanumeric_sender(sender: str) -> bool:
    """True when ``sender`` is a valid alphanumeric sender, False for a number or invalid value."""
    if not isinstance(sender, str):
        return False
    stripped = sender.strip()
    return bool(stripped) and not _looks_numeric(stripped) and not _alphanumeric_problem(stripped)


def sender_path_segment(sender: str) -> str:
    """The (normalised) sender percent-encoded for the URL path.

    Every byte outside RFC 3986's unreserved set is encoded: ``tel:+32123`` ->
    ``tel%3A%2B32123``, ``ALPHA NUM`` -> ``ALPHA%20NUM``.
    """
    return quote(sender, safe="")


def request_id_path_segment(request_id: object) -> str:
    """A request id percent-encoded for the URL path, as one segment.

    Raises :class:`InvalidMessageError` for a non-string, an empty id, ``.`` or ``..``, or one
    that cannot be encoded (a lone surrogate).
    """
    request_id = check_text(request_id, "request_id")
    if not request_id or request_id in _DOT_SEGMENTS:
        raise InvalidMessageError(f"request_id {_shown(request_id)} cannot be a URL path segment")
    return quote(request_id, safe="")


def check_text(value: object, name: str, error: type[ValidationError] = InvalidMessageError) -> str:
    """``value``, if it is a string that UTF-8 can encode (no lone surrogate), else ``error``.

    Lone surrogates (``"\\ud800"``) are legal in a Python ``str`` but in no UTF-8 byte string;
    refused here, before any request, instead of failing as ``UnicodeEncodeError`` on the way
    out. The message names the position, never the value (which may be a secret).
    """
    if not isinstance(value, str):
        raise error(f"{name} must be a string, not {type(value).__name__}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise error(
                f"{name} is not valid Unicode: a lone surrogate at index {exc.start} "
                "(UTF-8 cannot encode it)"
            ) from None
    return value
