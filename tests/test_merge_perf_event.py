"""``build_event`` (the stores' fast ``DeliveryEvent`` constructor): what it hands out is a
``DeliveryEvent`` in every respect a user can observe, never the draft it was built on."""

from __future__ import annotations

import copy
import pickle
import weakref

import attrs
import pytest

from opensms_async._models import DeliveryStatus as S
from opensms_async._state import DeliveryEvent, Source, build_event

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
