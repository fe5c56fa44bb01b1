"""Delivery states and the merge rule, as tables and one pure function (no I/O).

BICS posts callbacks with no retry, in any order, possibly twice; polls and replicas race with
them. Every store applies :func:`merge` to decide what an incoming update does, so that any order
of arrival converges to the same state:

* a state only advances to a higher rank (``_RANK``); a late ``DeliveredToNetwork`` never
  overwrites ``DeliveredToTerminal``;
* ``PartiallyDelivered`` (and any non-final status) advances within its rank by parts delivered
  (an absent count ranks as zero);
  a final status is reached once: a repeat with a higher part count updates it without an event;
* two different finals contradict each other: the higher in ``_FINAL_ORDER`` wins, whatever
  arrived first, and the state is flagged ``conflict``;
* unknown statuses rank below every known one; between two unknowns, the first stays.

A duplicate or a stale update changes nothing and emits no event.
"""

from __future__ import annotations

import enum

import attrs

from ._gate import admit
from ._models import DeliveryStatus, Source, Status, is_final

__all__ = [
    "DeliveryEvent",
    "DeliveryState",
    "DeliveryUpdate",
    "EventDraft",
    "MergeOutcome",
    "MergeResult",
    "Source",
    "build_event",
    "merge",
    "new_update",
    "rank",
]

S = DeliveryStatus

_RANK: dict[Status, int] = {
    S.MESSAGE_ACCEPTED: 1,
    S.MESSAGE_WAITING: 2,
    S.DELIVERED_TO_NETWORK: 3,
    S.DELIVERY_UNCERTAIN: 4,
    S.PARTIALLY_DELIVERED: 5,
    # The finals share one rank; _FINAL_ORDER breaks ties between contradicting finals.
    S.DELIVERY_NOTIFICATION_NOT_SUPPORTED: 6,
    S.INVALID_SRC_ADDRESS: 6,
    S.INVALID_DEST_ADDRESS: 6,
    S.DELIVERY_IMPOSSIBLE: 6,
    S.DELIVERED_TO_TERMINAL: 6,
}
_UNKNOWN_RANK = 0

_FINAL_ORDER: dict[Status, int] = {
    S.DELIVERY_NOTIFICATION_NOT_SUPPORTED: 1,
    S.INVALID_SRC_ADDRESS: 2,
    S.INVALID_DEST_ADDRESS: 3,
    S.DELIVERY_IMPOSSIBLE: 4,
    S.DELIVERED_TO_TERMINAL: 5,
}


class MergeOutcome(enum.StrEnum):
    """What an incoming update did to the stored state."""

    APPLIED = "applied"
    """The state advanced (or the pair was first seen): an event is emitted."""
    DUPLICATE = "duplicate"
    """The same status and parts as stored: nothing changes."""
    STALE = "stale"
    """Lower than what is stored: nothing changes."""
    CONFLICT = "conflict"
    """A final contradicting a different stored final: the fixed order decides, flagged."""


class _WeakReferable:
    """The ``__weakref__`` slot of :class:`DeliveryUpdate` and :class:`DeliveryEvent`, in a base
    of its own.

    CPython 3.11 refuses a ``__class__`` assignment between two classes whose own slots include
    ``__weakref__``; with the slot in a shared base, ``new_update`` and ``build_event`` can build
    on a draft (:class:`_UpdateDraft`, :class:`_EventDraft`) and hand out the frozen class.
    """

    __slots__ = ("__weakref__",)


@attrs.frozen(weakref_slot=False)  # weak-referenceable still: see _WeakReferable
class DeliveryUpdate(_WeakReferable):
    """One observation of a recipient's status: from a callback, a poll, the send response or
    your own code.

    Canonical by construction, whoever builds it (the receiver, the poller, ``track()``, you):
    the fields pass the gate of :mod:`opensms_async._gate`, so ``"+33612345678"`` is stored as
    ``"tel:+33612345678"``, a known status string becomes its :class:`DeliveryStatus`, and a
    field no store should keep (an address that is not E.164, a status over 64 characters, a
    negative part count...) raises :class:`~opensms_async.InvalidUpdateError` naming it.
    """

    request_id: str
    address: str
    status: Status
    source: Source = Source.CALLBACK
    parts_delivered: int | None = None
    sms_parts: int | None = None
    status_code: int | None = None
    sender: str | None = None
    """The sender the request was made with; the poller needs it for the deliveryInfos path."""
    received_at: float = 0.0
    """Unix time the update was observed."""

    def __attrs_post_init__(self) -> None:
        canonical = admit(
            self.request_id, self.address, self.status, self.source, self.parts_delivered,
            self.sms_parts, self.status_code, self.sender, self.received_at,
        )  # fmt: skip
        if canonical is not None:  # rare: the common update is canonical as given
            for name, value in zip(_UPDATE_FIELDS, canonical, strict=True):
                object.__setattr__(self, name, value)


_UPDATE_FIELDS = tuple(field.name for field in attrs.fields(DeliveryUpdate))


class _UpdateDraft(_WeakReferable):
    """A :class:`DeliveryUpdate` being built by :func:`new_update`: the same slots over the same
    base (the same layout), with ``object``'s ``__setattr__`` (see :class:`_EventDraft`)."""

    __slots__ = _UPDATE_FIELDS
    request_id: str
    address: str
    status: Status
    source: Source
    parts_delivered: int | None
    sms_parts: int | None
    status_code: int | None
    sender: str | None
    received_at: float


def new_update(
    request_id: str,
    address: str,
    status: Status,
    source: Source,
    parts_delivered: int | None,
    sms_parts: int | None,
    status_code: int | None,
    sender: str | None,
    received_at: float,
) -> DeliveryUpdate:
    """``DeliveryUpdate(...)`` with every field given in order, cheaper to build: the receiver
    builds one per callback.

    The same gate (a field refused raises the same :class:`InvalidUpdateError`) and the same
    frozen object. attrs' frozen ``__init__`` sets each field through ``object.__setattr__`` and
    its post-init reads them all back for the gate: here the gate sees the arguments, and a
    canonical update (the common case) is filled as a draft, then made a ``DeliveryUpdate``.
    ``tests/test_state.py`` keeps it equal to the attrs constructor.
    """
    if admit(
        request_id, address, status, source, parts_delivered, sms_parts, status_code, sender,
        received_at,
    ) is not None:  # fmt: skip
        # Rare: a field to normalise. The constructor does it (and runs the gate again).
        return DeliveryUpdate(
            request_id, address, status, source, parts_delivered, sms_parts, status_code, sender,
            received_at,
        )  # fmt: skip
    update = _UpdateDraft()
    update.request_id = request_id
    update.address = address
    update.status = status
    update.source = source
    update.parts_delivered = parts_delivered
    update.sms_parts = sms_parts
    update.status_code = status_code
    update.sender = sender
    update.received_at = received_at
    update.__class__ = DeliveryUpdate  # type: ignore[assignment]
    return update  # type: ignore[return-value]


@attrs.frozen
class DeliveryState:
    """The merged state of one recipient of one request."""

    request_id: str
    address: str
    status: Status
    parts_delivered: int | None = None
    sms_parts: int | None = None
    sender: str | None = None
    conflict: bool = False
    """True once two different final statuses were reported for this recipient."""
    updated_at: float = 0.0
    """Unix time the status last advanced (first sighting included)."""

    @property
    def is_final(self) -> bool:
        """True when no later state can follow."""
        return is_final(self.status)


@attrs.frozen(weakref_slot=False)  # weak-referenceable still: see _WeakReferable
class DeliveryEvent(_WeakReferable):
    """A state advance, as ``tracker.events()`` yields it.

    ``cursor`` is opaque and increasing within a store: pass it back as ``events(since=...)``.
    ``previous`` is the status before this advance (None for a first sighting).
    """

    cursor: str
    request_id: str
    address: str
    status: Status
    previous: Status | None
    source: Source
    parts_delivered: int | None = None
    sms_parts: int | None = None
    conflict: bool = False
    at: float = 0.0

    @property
    def is_final(self) -> bool:
        """True when this event brought the recipient to a final status."""
        return is_final(self.status)


class _EventDraft(_WeakReferable):
    """A :class:`DeliveryEvent` being built: the same slots over the same base, so the same
    layout, but ``object``'s ``__setattr__``.

    attrs freezes ``DeliveryEvent`` with a ``__setattr__`` that raises, and CPython then sets a
    slot only through a generic attribute lookup and a descriptor call (about 0.1 µs each here);
    on a class with ``object``'s ``__setattr__`` a slot store is one specialised instruction.
    ``build_event`` fills a draft, then makes it a ``DeliveryEvent`` (CPython checks that the
    layouts match, and raises otherwise). A draft is never handed out.
    """

    __slots__ = tuple(field.name for field in attrs.fields(DeliveryEvent))
    cursor: str
    request_id: str
    address: str
    status: Status
    previous: Status | None
    source: Source
    parts_delivered: int | None
    sms_parts: int | None
    conflict: bool
    at: float


EventDraft = _EventDraft
"""The draft ``build_event`` fills, for a store's loop that writes ``build_event`` out (the
memory store's merge): fill every field, then set ``__class__`` to :class:`DeliveryEvent`."""


def build_event(
    cursor: str,
    request_id: str,
    address: str,
    status: Status,
    previous: Status | None,
    source: Source,
    parts_delivered: int | None,
    sms_parts: int | None,
    conflict: bool,
    at: float,
) -> DeliveryEvent:
    """``DeliveryEvent(...)`` with every field given in order, cheaper to build.

    The same frozen object (equal, hashable, immutable, weak-referenceable); for stores building
    events by the hundred thousand (one per state advance, shared by every consumer of
    ``events()``: ``bench/bench_merge.py``). ``tests/test_state.py`` keeps it equal to the attrs
    constructor.
    """
    event = _EventDraft()  # cheaper here than object.__new__(_EventDraft)
    event.cursor = cursor
    event.request_id = request_id
    event.address = address
    event.status = status
    event.previous = previous
    event.source = source
    event.parts_delivered = parts_delivered
    event.sms_parts = sms_parts
    event.conflict = conflict
    event.at = at
    event.__class__ = DeliveryEvent  # type: ignore[assignment]
    return event  # type: ignore[return-value]


@attrs.frozen
class MergeResult:
    """The state after an update, and what the update did.

    ``state`` is the stored state unchanged (the same object) when ``changed`` is False.
    ``advanced`` is True when the status or parts moved up: exactly then an event is logged.
    """

    state: DeliveryState
    outcome: MergeOutcome
    previous: Status | None
    advanced: bool
    changed: bool


def rank(status: Status) -> int:
    """The rank of a status: 0 for unknown strings, then accepted < ... < final."""
    return _RANK.get(status, _UNKNOWN_RANK)


def merge(current: DeliveryState | None, update: DeliveryUpdate) -> MergeResult:
    """Apply ``update`` to ``current`` (None when the pair was never seen)."""
    if current is None:
        return MergeResult(_first(update), MergeOutcome.APPLIED, None, advanced=True, changed=True)
    filled = _fill(current, update)
    if current.status == update.status:
        return _same_status(filled, current, update)
    if _contradicts(current.status, update.status):
        return _conflict(filled, current, update)
    if rank(update.status) > rank(current.status):
        return _advance(filled, update, MergeOutcome.APPLIED)
    # Lower, or an unknown status meeting another one: the first unknown stays.
    return _unchanged(filled, current, MergeOutcome.STALE)


def _same_status(
    filled: DeliveryState, current: DeliveryState, update: DeliveryUpdate
) -> MergeResult:
    incoming, stored = _parts(update.parts_delivered), _parts(current.parts_delivered)
    if incoming > stored and not current.is_final:
        return _advance(filled, update, MergeOutcome.APPLIED)
    # Final is final: a repeat with more parts updates the count without an event.
    lower = incoming < stored and not current.is_final
    outcome = MergeOutcome.STALE if lower else MergeOutcome.DUPLICATE
    return _unchanged(_more_parts(filled, update), current, outcome)


def _parts(parts: int | None) -> int:
    # An absent count is no count: the same as zero parts delivered.
    return 0 if parts is None else parts


def _first(update: DeliveryUpdate) -> DeliveryState:
    return DeliveryState(
        request_id=update.request_id,
        address=update.address,
        status=update.status,
        parts_delivered=update.parts_delivered,
        sms_parts=update.sms_parts,
        sender=update.sender,
        updated_at=update.received_at,
    )


def _fill(current: DeliveryState, update: DeliveryUpdate) -> DeliveryState:
    # A stale update may still teach us the sender or part count we did not know.
    sender = current.sender if current.sender is not None else update.sender
    parts = current.sms_parts if current.sms_parts is not None else update.sms_parts
    if sender is current.sender and parts is current.sms_parts:
        return current
    return attrs.evolve(current, sender=sender, sms_parts=parts)


def _more_parts(filled: DeliveryState, update: DeliveryUpdate) -> DeliveryState:
    parts = update.parts_delivered
    if parts is None or (filled.parts_delivered is not None and filled.parts_delivered >= parts):
        return filled
    return attrs.evolve(filled, parts_delivered=parts)


def _contradicts(stored: Status, incoming: Status) -> bool:
    return stored != incoming and stored in _FINAL_ORDER and incoming in _FINAL_ORDER


def _unchanged(filled: DeliveryState, current: DeliveryState, outcome: MergeOutcome) -> MergeResult:
    return MergeResult(
        filled, outcome, current.status, advanced=False, changed=filled is not current
    )


def _advance(filled: DeliveryState, update: DeliveryUpdate, outcome: MergeOutcome) -> MergeResult:
    state = attrs.evolve(
        filled,
        status=update.status,
        parts_delivered=update.parts_delivered,
        updated_at=update.received_at,
    )
    if update.parts_delivered is None and filled.status == update.status:
        state = attrs.evolve(state, parts_delivered=filled.parts_delivered)
    return MergeResult(state, outcome, filled.status, advanced=True, changed=True)


def _conflict(filled: DeliveryState, current: DeliveryState, update: DeliveryUpdate) -> MergeResult:
    wins = _FINAL_ORDER[update.status] > _FINAL_ORDER[filled.status]
    flagged = filled if filled.conflict else attrs.evolve(filled, conflict=True)
    if wins:
        result = _advance(flagged, update, MergeOutcome.CONFLICT)
        return attrs.evolve(result, previous=filled.status)
    return MergeResult(
        flagged,
        MergeOutcome.CONFLICT,
        filled.status,
        advanced=False,
        changed=flagged is not current,
    )
