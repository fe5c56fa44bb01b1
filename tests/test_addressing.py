"""Recipient, sender and path-encoding rules of opensms_async._addressing."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opensms_async._addressing import (
    is_alphanumeric_sender,
    normalize_address,
    normalize_sender,
    sender_path_segment,
)
from opensms_async._exceptions import InvalidAddressError, InvalidSenderError, OpenSMSError

ASCII_DIGITS = "0123456789"

e164_digits = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from("123456789"),
    st.text(alphabet=ASCII_DIGITS, max_size=14),
)


def _expected_address(value: str) -> str | None:
    """An independent reading of the E.164 rule: the normalised form, or None when refused."""
    rest = value.strip()
    if rest[:4].lower() == "tel:":
        rest = rest[4:]
    digits = rest[1:]
    valid = (
        rest.startswith("+")
        and 1 <= len(digits) <= 15
        and all(c in ASCII_DIGITS for c in digits)
        and digits[0] != "0"
    )
    return "tel:+" + digits if valid else None


@pytest.mark.parametrize(
    ("given_value", "expected"),
    [
        ("+32123456789", "tel:+32123456789"),
        ("tel:+32123456789", "tel:+32123456789"),
        ("TEL:+32123456789", "tel:+32123456789"),
        ("Tel:+1", "tel:+1"),
        ("  +33612345678\n", "tel:+33612345678"),
        ("+123456789012345", "tel:+123456789012345"),
    ],
)
def test_normalize_address_accepts_e164(given_value: str, expected: str) -> None:
    """Both accepted E.164 forms normalise to ``tel:+<digits>``."""
    assert normalize_address(given_value) == expected


@pytest.mark.parametrize(
    ("given_value", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("tel:", "nothing follows 'tel:'"),
        ("0471123456", "no leading '+'"),
        ("32123456", "no leading '+'"),
        ("tel:32123456", "no leading '+'"),
        ("+", "no digits"),
        ("+32 123 456", "only digits"),
        ("+32-123-456", "only digits"),
        ("+32(0)123456", "only digits"),
        ("+3212345678a", "only digits"),
        ("+٣٢١٢٣", "only digits"),
        ("++32123", "only digits"),
        ("+0471123456", "never starts with 0"),
        ("+1234567890123456", "16 digits"),
        ("sip:+32123", "no leading '+'"),
    ],
)
def test_normalize_address_refuses_with_reason(given_value: str, reason: str) -> None:
    """A non-E.164 recipient raises InvalidAddressError saying why and what is expected."""
    with pytest.raises(InvalidAddressError) as caught:
        normalize_address(given_value)
    message = str(caught.value)
    assert reason in message
    assert repr(given_value) in message
    assert "E.164" in message


@pytest.mark.parametrize("given_value", [None, 32123, b"+32123", ["+32123"]])
def test_normalize_address_refuses_non_strings(given_value: Any) -> None:
    """A value that is not a str is refused, naming its type."""
    with pytest.raises(InvalidAddressError, match=type(given_value).__name__):
        normalize_address(given_value)


def test_address_error_truncates_long_values() -> None:
    """A huge bad value is quoted only in part, so messages stay readable."""
    with pytest.raises(InvalidAddressError) as caught:
        normalize_address("x" * 10_000)
    assert "x" * 30 in str(caught.value)
    assert len(str(caught.value)) < 400


def test_address_error_is_value_error_and_opensms_error() -> None:
    """Callers can catch address errors as ValueError or as OpenSMSError."""
    assert issubclass(InvalidAddressError, ValueError)
    assert issubclass(InvalidAddressError, OpenSMSError)


@given(digits=e164_digits, tel=st.sampled_from(["", "tel:", "TEL:", "Tel:"]))
def test_e164_round_trips_idempotently(digits: str, tel: str) -> None:
    """Any 1-15 digit E.164 number normalises the same in both forms, and stays fixed."""
    normalised = normalize_address(f"{tel}+{digits}")
    assert normalised == f"tel:+{digits}"
    assert normalize_address(normalised) == normalised


@given(value=st.text(max_size=24) | st.from_regex(r"(tel:)?\+?[0-9 ]{0,17}", fullmatch=True))
def test_address_accepted_iff_e164(value: str) -> None:
    """A string is accepted exactly when it is E.164, and every refusal is a ValueError."""
    expected = _expected_address(value)
    if expected is None:
        with pytest.raises(ValueError, match="invalid recipient"):
            normalize_address(value)
    else:
        assert normalize_address(value) == expected


@pytest.mark.parametrize(
    ("given_value", "expected"),
    [
        ("tel:12345678", "tel:12345678"),
        ("12345678", "tel:12345678"),
        ("+32123", "tel:+32123"),
        ("tel:+32123", "tel:+32123"),
        ("TEL:+32123", "tel:+32123"),
        ("  1234  ", "tel:1234"),
        ("0800", "tel:0800"),
        ("123456789012345", "tel:123456789012345"),
        ("ALPHA NUM", "ALPHA NUM"),
        (" MyShop ", "MyShop"),
        ("Shop-24/7", "Shop-24/7"),
        ("Café", "Café"),
        ("ÇA VA", "ÇA VA"),
        ("ABCDEFGHIJK", "ABCDEFGHIJK"),
        ("123 456", "123 456"),
        ("1a", "1a"),
    ],
)
def test_normalize_sender_accepts(given_value: str, expected: str) -> None:
    """Numbers gain ``tel:`` (keeping a written ``+``); alphanumerics come back stripped."""
    assert normalize_sender(given_value) == expected


@pytest.mark.parametrize(
    ("given_value", "reason"),
    [
        ("", "empty"),
        ("   \t", "empty"),
        ("1234567890123456", "16 digits"),
        ("+1234567890123456", "16 digits"),
        ("+", "no digits"),
        ("tel:", "no digits"),
        ("+0123", "never starts with 0"),
        ("tel:ACME", "digits only"),
        ("+32 123", "digits only"),
        ("ABCDEFGHIJKL", "12 characters"),
        ("Shop€", "extension table"),
        ("[Shop]", "extension table"),
        ("Shop😀", "not in the GSM-7 basic alphabet"),
        ("Señor\u00f3", "not in the GSM-7 basic alphabet"),
        ("Line\nBreak", "not in the GSM-7 basic alphabet"),
        ("١٢٣", "not in the GSM-7 basic alphabet"),
    ],
)
def test_normalize_sender_refuses_with_reason(given_value: str, reason: str) -> None:
    """An invalid sender raises InvalidSenderError saying why and what is expected."""
    with pytest.raises(InvalidSenderError) as caught:
        normalize_sender(given_value)
    message = str(caught.value)
    assert reason in message
    assert "at most 15 digits" in message
    assert "at most 11 GSM-7 characters" in message


@pytest.mark.parametrize("given_value", [None, 12345678, b"ACME"])
def test_normalize_sender_refuses_non_strings(given_value: Any) -> None:
    """A sender that is not a str is refused as a ValueError naming its type."""
    with pytest.raises(ValueError, match=type(given_value).__name__):
        normalize_sender(given_value)


@given(
    value=st.text(max_size=16)
    | st.from_regex(r"(tel:)?\+?[0-9]{1,16}", fullmatch=True)
    | st.text(alphabet="ABCxyz 0123-", min_size=1, max_size=12)
)
def test_sender_normalisation_is_idempotent(value: str) -> None:
    """A normalised sender normalises to itself, so stored and compared senders agree."""
    try:
        normalised = normalize_sender(value)
    except InvalidSenderError:
        return
    assert normalize_sender(normalised) == normalised
    assert is_alphanumeric_sender(normalised) == (not normalised.startswith("tel:"))


@pytest.mark.parametrize(
    ("sender", "expected"),
    [("ALPHA NUM", True), ("MyShop", True), ("tel:+32123", False), ("+32123", False),
     ("12345678", False), ("Shop€", False), ("", False), ("ABCDEFGHIJKL", False)],
)  # fmt: skip
def test_is_alphanumeric_sender(sender: str, expected: bool) -> None:
    """Only valid alphanumeric senders count as alphanumeric; numbers and invalid ones do not."""
    assert is_alphanumeric_sender(sender) is expected


@pytest.mark.parametrize(
    ("sender", "segment"),
    [
        ("tel:+32123456", "tel%3A%2B32123456"),
        ("tel:+12345678", "tel%3A%2B12345678"),
        ("tel:12345678", "tel%3A12345678"),
        ("ALPHA NUM", "ALPHA%20NUM"),
        ("ALPHA NUMERIC", "ALPHA%20NUMERIC"),
        ("Shop/24", "Shop%2F24"),
        ("Café", "Caf%C3%A9"),
        ("a-b_c.d~e", "a-b_c.d~e"),
    ],
)
def test_sender_path_segment_examples(sender: str, segment: str) -> None:
    """Senders are percent-encoded for the path as the spec's examples show."""
    assert sender_path_segment(sender) == segment


def test_sender_path_segment_of_normalised_sender() -> None:
    """Normalising then encoding a ``+`` number yields the spec's ``tel%3A%2B`` path form."""
    assert sender_path_segment(normalize_sender("+32123")) == "tel%3A%2B32123"


@given(value=st.text())
def test_sender_path_segment_round_trips(value: str) -> None:
    """Decoding the path segment gives back the sender, and it holds no path separator."""
    segment = sender_path_segment(value)
    assert unquote(segment) == value
    assert "/" not in segment
    assert segment.isascii()
