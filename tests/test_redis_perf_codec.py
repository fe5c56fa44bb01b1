"""The Redis codec's fast paths give what its general paths give (``_redis_codec``)."""

from __future__ import annotations

import math

import pytest

from opensms_async import DeliveryUpdate
from opensms_async._models import DeliveryStatus
from opensms_async._state import Source
from opensms_async.stores import _redis_codec as codec


@pytest.mark.parametrize("value", [0.0, -0.0, 1.5, 1700000000.123456, 1e-300, 5e300, 3, True])
def test_number_writes_the_exact_decimal_of_any_finite_number(value: float) -> None:
    """A received_at of any finite float or int travels as the decimal Python reads back."""
    if isinstance(value, bool):
        with pytest.raises(TypeError):
            codec.number(value, "at")
        return
    assert float(codec.number(value, "at")) == float(value)
    assert codec.number(value, "at") == repr(float(value))


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_number_refuses_a_float_that_is_not_finite(value: float) -> None:
    """An infinite or NaN time never reaches the merge script."""
    with pytest.raises(ValueError, match="finite"):
        codec.number(value, "received_at")


def test_events_from_rows_give_the_update_source_as_its_member() -> None:
    """Every event built from the merge reply carries the Source member of its update."""
    updates = [
        DeliveryUpdate("r1", "tel:+33600000001", "DeliveredToNetwork", source=source)
        for source in Source
    ]
    rows = [
        [i + 1, f"1-{i}", None, ["DeliveredToNetwork", None, None, None, False, "1.5"]]
        for i in range(len(updates))
    ]
    events = codec.events_from_rows(updates, rows)
    assert [event.source for event in events] == list(Source)
    assert all(type(event.source) is Source for event in events)
    assert all(event.status is DeliveryStatus.DELIVERED_TO_NETWORK for event in events)
