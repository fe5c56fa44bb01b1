"""InboundMessage and the parse of inbound bodies: pure rules, no I/O."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opensms_async import InboundMessage, InboundSmsMessage, Source
from opensms_async._addressing import inbound_address
from opensms_async._inbound_message import (
    build_message,
    decode,
    encode,
    encode_single,
    logged,
    logged_single,
)
from opensms_async._inbound_webhook import (
    InboundPayloadError,
    parse_inbound_callback,
    part_from_wire,
)
from opensms_async._reassembly import Part, single

TEXT = st.text(max_size=30)


@given(
    mid=TEXT, text=TEXT, at=st.floats(0, 2e9), source=st.sampled_from(["callback", "poll"]),
    date_time=st.none() | TEXT,
)  # fmt: skip
def test_the_fast_builders_equal_the_attrs_constructor(
    mid: str, text: str, at: float, source: str, date_time: str | None
) -> None:
    """build_message, logged_single and encode_single give what the plain path gives."""
    part = Part(mid, "tel:+1", "tel:+2", text, source=source, date_time=date_time)
    whole = single(part, at)
    expected = InboundMessage(
        mid, "tel:+1", "tel:+2", text, at, 1, True, Source(source), "7", 1, (mid,), date_time
    )
    assert build_message(*attrs.astuple(expected, recurse=False)) == expected
    assert logged(whole, "7") == logged_single(part, at, "7") == expected
    assert encode_single(part, at) == encode(whole)
    assert decode("7", encode(whole)) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("32470000000", "tel:+32470000000"),
        ("+32470000000", "tel:+32470000000"),
        (" tel:+32470000000 ", "tel:+32470000000"),
        ("TEL:32470000000", "tel:+32470000000"),
        ("8888", "tel:+8888"),
        ("0470123456", "0470123456"),
        ("ACME", "ACME"),
        ("1234567890123456", "1234567890123456"),
        ("", ""),
    ],
)
def test_inbound_addresses_take_one_form(given: str, expected: str) -> None:
    """Bare digits (BICS's form), +digits and tel: are one number; anything else as given."""
    assert inbound_address(given) == expected


def test_every_accepted_body_shape_reads_the_same() -> None:
    """BICS's root, the list's spelling, a list under it, a page, a bare object: the same part."""
    entry = {"messageId": "a", "senderAddress": "1", "destinationAddress": "2", "message": "hi"}
    shapes = [
        {"InboundSmsMessage": entry},
        {"inboundSMSMessage": entry},
        {"inboundSmsMessage": [entry]},
        {"inboundSMSMessageList": {"inboundSMSMessage": [entry]}},
        entry,
    ]
    parsed = [parse_inbound_callback(shape) for shape in shapes]
    assert all(p == parsed[0] for p in parsed)
    assert parsed[0] == [Part("a", "tel:+1", "tel:+2", "hi")]


def test_fields_are_read_leniently_but_the_id_strictly() -> None:
    """Numbers as digits, a lone surrogate replaced, a bad UDH field absent; no id: refused."""
    (part,) = parse_inbound_callback(
        {"InboundSmsMessage": {"messageId": 12, "message": "a\ud800b", "senderAddress": 3247,
                               "concatPart": "x", "concatTotal": 2, "udhMessageId": 1}}
    )  # fmt: skip
    assert (part.message_id, part.text, part.sender) == ("12", "a\ufffdb", "tel:+3247")
    assert (part.reference, part.number, part.total) == (1, None, 2)
    bads: tuple[object, ...] = (
        {"InboundSmsMessage": {"message": "no id"}},
        {"InboundSmsMessage": {"messageId": "x" * 257}},
        {"InboundSmsMessage": {"messageId": "\ud800"}},
        {"InboundSmsMessage": {"messageId": "a", "message": {"no": "object"}}},
        {"InboundSmsMessage": []},
        {"InboundSmsMessage": [{"messageId": "a"}] * 1001},
        ["not", "an", "object"],
    )
    for bad in bads:
        with pytest.raises(InboundPayloadError):
            parse_inbound_callback(bad)


def test_a_polled_message_without_id_takes_the_one_of_its_resource_url() -> None:
    """A listed message without messageId is named by its resourceURL; without either, None."""
    url = "https://api/inbound/registrations/tel%3A%2B32/messages/abc-123"
    named = part_from_wire(InboundSmsMessage(message="hi", resource_url=url))
    assert named is not None and (named.message_id, named.source) == ("abc-123", "poll")
    assert part_from_wire(InboundSmsMessage(message="hi")) is None
