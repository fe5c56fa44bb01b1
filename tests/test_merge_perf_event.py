"""``build_event`` (the stores' fast ``DeliveryEvent`` constructor) and the memory store's merge
loop, which writes it out: what they hand out is a ``DeliveryEvent`` in every respect a user can
observe, never the draft it was built on."""

from __future__ import annotations

import copy
import pickle
import weakref

import attrs
import pytest
from store_helpers import ADDR, REQ

from opensms_async._models import DeliveryStatus as S
from opensms_async._state import DeliveryEvent, DeliveryUpdate, Source, build_event
from opensms_async.stores.memory import MemoryStore

FIELDS = ("7", "req-1", "tel:+33612345678", S.DELIVERED_TO_TERMINAL, S.MESSAGE_WAITING,
          Source.CALLBACK, 2, 3, True, 1_700_000_000.5)  # fmt: skip
NAMES = [field.name for field in attrs.fields(DeliveryEvent)]


def test_built_event_is_of_type_delivery_event_with_no_instance_dict() -> None:
    """An event from a store is exactly a DeliveryEvent (type checks, isinstance, no __dict__)."""
    event = build_event(*FIELDS)
    assert type(event) is DeliveryEvent
    assert event.__class__ is DeliveryEvent
    assert not hasattr(event, "__dict__")
    assert attrs.astuple(event, recurse=False) == FIELDS


@pytest.mark.parametrize("name", NAMES)
def test_every_field_of_a_built_event_is_frozen(name: str) -> None:
    """No field of an event can be set or deleted, as for one built by DeliveryEvent(...)."""
    event = build_event(*FIELDS)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(event, name, "x")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        delattr(event, name)
    assert getattr(event, name) == FIELDS[NAMES.index(name)]


def test_built_event_can_be_weakly_referenced_copied_pickled_and_evolved() -> None:
    """Events work with weakref, copy, pickle and attrs.evolve, equal to the constructor's."""
    event = build_event(*FIELDS)
    reference = DeliveryEvent(*FIELDS)
    assert weakref.ref(event)() is event
    for other in (copy.copy(event), copy.deepcopy(event), pickle.loads(pickle.dumps(event))):  # noqa: S301 (our own bytes)
        assert type(other) is DeliveryEvent
        assert other == event == reference
        assert hash(other) == hash(event) == hash(reference)
    evolved = attrs.evolve(event, cursor="8")
    assert type(evolved) is DeliveryEvent and evolved.cursor == "8" and evolved.at == event.at
    assert {event, reference} == {event}
    assert repr(event) == repr(reference)


def test_built_events_are_independent_objects() -> None:
    """Two events built one after the other share no state: each keeps its own fields."""
    first = build_event(*FIELDS)
    second = build_event("8", *FIELDS[1:3], S.DELIVERY_IMPOSSIBLE, None, Source.POLL,
                         None, None, False, 0.0)  # fmt: skip
    assert first.cursor == "7" and first.status is S.DELIVERED_TO_TERMINAL and first.conflict
    assert second.cursor == "8" and second.previous is None and second.source is Source.POLL
    assert first != second


async def test_memory_store_hands_out_delivery_events_equal_to_the_constructors() -> None:
    """The memory store writes build_event out in its merge loop: what it returns and publishes
    is a frozen DeliveryEvent, field for field the constructor's, the same object for both."""
    published: list[DeliveryEvent] = []
    async with MemoryStore() as store:
        store.listen(published.extend)
        updates = [
            DeliveryUpdate(REQ, ADDR, S.MESSAGE_WAITING, Source.POLL, sms_parts=3,
                           sender="tel:+3212345", received_at=1.5),
            DeliveryUpdate(REQ, ADDR, S.PARTIALLY_DELIVERED, Source.CALLBACK,
                           parts_delivered=2, received_at=2.5),
            DeliveryUpdate(REQ, ADDR, S.DELIVERED_TO_TERMINAL, received_at=3.5),
            DeliveryUpdate(REQ, ADDR, S.DELIVERY_IMPOSSIBLE, received_at=4.5),
        ]  # fmt: skip
        events = await store.apply_events(updates)
    expected = [
        DeliveryEvent("1", REQ, ADDR, S.MESSAGE_WAITING, None, Source.POLL, None, 3, False, 1.5),
        DeliveryEvent("2", REQ, ADDR, S.PARTIALLY_DELIVERED, S.MESSAGE_WAITING,
                      Source.CALLBACK, 2, 3, False, 2.5),
        DeliveryEvent("3", REQ, ADDR, S.DELIVERED_TO_TERMINAL, S.PARTIALLY_DELIVERED,
                      Source.CALLBACK, None, 3, False, 3.5),
    ]  # fmt: skip
    assert [attrs.astuple(e, recurse=False) for e in events] == [
        attrs.astuple(e, recurse=False) for e in expected
    ]
    assert events == expected and [hash(e) for e in events] == [hash(e) for e in expected]
    assert all(type(event) is DeliveryEvent for event in events)
    assert all(a is b for a, b in zip(published, events, strict=True)) and published
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        events[0].cursor = "9"  # type: ignore[misc]
    assert repr(events[1]) == repr(expected[1])
