"""The gate every delivery update passes as it is built (``_gate.py``, pure): what it admits,
how it writes it, and what it refuses, field by field, with a clear error that never echoes a
huge value."""

from __future__ import annotations

import functools
from typing import Any

import attrs
import pytest

from opensms_async import (
    DeliveryInfo,
    DeliveryStatus,
    DeliveryUpdate,
    InvalidUpdateError,
    SendResult,
    Source,
    ValidationError,
)
from opensms_async._gate import admit
from opensms_async._updates import updates_from_infos, updates_from_send

S = DeliveryStatus
CANONICAL: dict[str, Any] = {
    "request_id": "4c27e3a8-0f4d-4d2e-9a51-0d3c5e6f7a8b",
    "address": "tel:+33612345678",
    "status": S.DELIVERED_TO_NETWORK,
    "source": Source.CALLBACK,
    "parts_delivered": None,
    "sms_parts": 1,
    "status_code": 2,
    "sender": "tel:+32123",
    "received_at": 1_700_000_000.5,
}


def update(**fields: Any) -> DeliveryUpdate:
    """A canonical callback update, with ``fields`` replaced."""
    return DeliveryUpdate(**{**CANONICAL, **fields})


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"sender": None, "sms_parts": None, "status_code": None},
        {"sender": "Acme Corp", "source": Source.POLL, "parts_delivered": 3},
        {"sender": "tel:12345678", "status_code": -1},
    ],
)
def test_a_canonical_update_keeps_the_very_values_given(fields: dict[str, Any]) -> None:
    """Fields already canonical pass as they are (the gate answers None: nothing to change),
    and the update holds the very objects given."""
    values = {**CANONICAL, **fields}
    assert admit(*values.values()) is None
    built = DeliveryUpdate(**values)
    assert all(getattr(built, name) is value for name, value in values.items())


@pytest.mark.parametrize("form", ["+33612345678", "TEL:+33612345678", " tel:+33612345678 "])
def test_an_address_is_written_tel_plus_digits(form: str) -> None:
    """Every accepted form of a number is stored as ``tel:+<digits>``, the rest unchanged."""
    assert update(address=form) == update()


def test_a_known_status_string_becomes_its_member_and_an_unknown_one_is_kept() -> None:
    """``"DeliveredToTerminal"`` becomes ``DeliveryStatus.DELIVERED_TO_TERMINAL``; a status the
    SDK does not know is kept as the string received."""
    assert update(status="DeliveredToTerminal").status is S.DELIVERED_TO_TERMINAL
    assert update(status="SomethingNew").status == "SomethingNew"


def test_other_fields_take_their_canonical_types() -> None:
    """A source given as its string becomes the member; a whole-number time becomes a float; a
    sender is written as ``normalize_sender`` writes it; ``attrs.evolve`` passes the gate too."""
    built = update(source="poll", received_at=12, sender="+32123")
    assert built.source is Source.POLL
    assert type(built.received_at) is float and built.received_at == 12.0
    assert built.sender == "tel:+32123"
    assert attrs.evolve(built, address="+331").address == "tel:+331"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("request_id", ""),
        ("request_id", None),
        ("request_id", "r" * 257),
        ("request_id", "req\n1"),
        ("request_id", "req\x00"),
        ("request_id", "r\x85é"),
        ("request_id", "\ud800"),
        ("address", "nonsense"),
        ("address", "0612345678"),
        ("address", None),
        ("address", ["tel:+331"]),
        ("status", ""),
        ("status", None),
        ("status", "X" * 5000),
        ("status", "Delivered\udfff"),
        ("status", 3),
        ("parts_delivered", -1),
        ("parts_delivered", 10_001),
        ("parts_delivered", True),
        ("parts_delivered", "3"),
        ("parts_delivered", 1.5),
        ("sms_parts", -2),
        ("status_code", 2**31),
        ("status_code", False),
        ("status_code", "2"),
        ("sender", "not a valid sender name at all"),
        ("sender", "tel:+0123"),
        ("sender", 5),
        ("source", "carrier pigeon"),
        ("source", None),
        ("received_at", float("nan")),
        ("received_at", float("inf")),
        ("received_at", "now"),
        ("received_at", True),
    ],
)
def test_a_bad_field_is_refused_by_name(field: str, value: object) -> None:
    """Each field no store should keep raises InvalidUpdateError (a ValidationError, so a
    ValueError) naming it, in a short message even when the value is huge."""
    with pytest.raises(InvalidUpdateError) as info:
        update(**{field: value})
    assert info.value.field == field
    assert isinstance(info.value, ValidationError) and isinstance(info.value, ValueError)
    assert field in str(info.value) and len(str(info.value)) < 400


def test_updates_from_infos_carry_the_infos_as_answered() -> None:
    """A poll's infos become one update each, fields as the API answered them (canonical)."""
    infos = [DeliveryInfo("+331", S.DELIVERED_TO_TERMINAL, status_code=0, parts_delivered=2)]
    [got] = updates_from_infos(
        "req-1", infos, source=Source.POLL, sms_parts=2, sender="tel:+32123", received_at=5.0
    )
    assert got == DeliveryUpdate(
        "req-1", "tel:+331", S.DELIVERED_TO_TERMINAL, Source.POLL, 2, 2, 0, "tel:+32123", 5.0
    )


def test_updates_from_infos_refuse_or_skip_a_bad_info() -> None:
    """An info the gate refuses raises, or, when the caller asks to be told, is skipped."""
    infos = [DeliveryInfo("+331", "X" * 65), DeliveryInfo("+332", S.DELIVERED_TO_TERMINAL)]
    given = functools.partial(
        updates_from_infos, source=Source.POLL, sms_parts=None, sender=None, received_at=1.0
    )
    with pytest.raises(InvalidUpdateError, match="status"):
        given("req-1", infos)
    skipped: list[str] = []
    [kept] = given("req-1", infos, refused=lambda info, exc: skipped.append(info.address))
    assert kept.address == "tel:+332" and skipped == ["+331"]


def test_updates_from_send_give_each_recipient_its_state() -> None:
    """A send gives each recipient the state its response named (matched in any address form),
    and ``MessageAccepted`` to a recipient it named none for."""
    sent = SendResult(
        request_id="req-1",
        sender="tel:+32123",
        resource_url=None,
        delivery_infos=[DeliveryInfo("+331", S.DELIVERED_TO_NETWORK), DeliveryInfo("junk", "X")],
        recipients=("tel:+331", "tel:+332"),
        client_correlator="c",
        parts=2,
    )
    first, second = updates_from_send(sent, 9.0)
    assert (first.address, first.status, first.source) == (
        "tel:+331",
        S.DELIVERED_TO_NETWORK,
        "send",
    )
    assert (second.address, second.status, second.sms_parts) == ("tel:+332", S.MESSAGE_ACCEPTED, 2)
