"""``MergeMemo``: the merge rule replayed from a table, for the in-process stores (pure, no I/O).

What :func:`~opensms_async._state.merge` does to a stored state depends only on its *shape*,
``(status, parts_delivered, sms_parts, sender, conflict)``, and on the update's status, parts,
sender and source: never on the pair or the times. So each combination is merged once, by
``merge`` itself on a stand-in pair, and then replayed from a dict. Shapes are interned, so the
recipients in one state share one tuple.

A state shape holds its status as a plain ``str``, never as a :class:`DeliveryStatus` member:
a tuple of plain values is one the garbage collector stops tracking, and so is the row that holds
it. A store of a million recipients then costs the collector nothing
(:func:`state_from_shape` turns the status back into the enum member when a state is read).
"""

from __future__ import annotations

from typing import Final, TypeAlias, TypeVar

import attrs

from .._models import DeliveryStatus, Status
from .._state import DeliveryState, DeliveryUpdate, MergeResult, Source, merge

__all__ = ["EventShape", "MergeMemo", "StateShape", "Step", "state_from_shape"]

StateShape: TypeAlias = tuple[str, int | None, int | None, str | None, bool]
"""``(status, parts_delivered, sms_parts, sender, conflict)``, in DeliveryState's field order."""
EventShape: TypeAlias = tuple[Status, Status | None, Source, int | None, int | None, bool]
"""``(status, previous, source, parts_delivered, sms_parts, conflict)``, in DeliveryEvent's
field order, so that events are built positionally."""

_MAX_ENTRIES: Final = 65_536
"""Interned shapes and steps kept at most; past that (odd unknown statuses), nothing more is."""

# The probe pair and times: merge must carry them through untouched. The pair is a canonical one
# (the update's gate admits it) that is never stored: the probe merges on no store.
_PROBE_REQUEST, _PROBE_ADDRESS = "opensms-merge-memo-probe", "tel:+999999999999999"
_KEEP_TIME, _TAKE_TIME = -1.0, -2.0

_T = TypeVar("_T", bound=tuple[object, ...])


def state_from_shape(
    request_id: str, address: str, shape: StateShape, updated_at: float
) -> DeliveryState:
    """The :class:`DeliveryState` of a pair stored as ``shape``."""
    text, parts, sms_parts, sender, conflict = shape
    status = DeliveryStatus.parse(text)
    return DeliveryState(
        request_id, address, status, parts, sms_parts, sender, conflict, updated_at
    )


class Step:
    """What merging one kind of update into one stored shape does, for any pair at any time.

    ``shape`` is the state shape afterwards, ``changed`` whether it differs from the stored one,
    ``event_shape`` the logged event's (None when the state does not advance); ``takes_time``
    says whether ``updated_at`` becomes the update's ``received_at`` (an advance) or stays.
    """

    __slots__ = ("changed", "event_shape", "shape", "takes_time")

    def __init__(
        self,
        changed: bool,
        shape: StateShape,
        event_shape: EventShape | None,
        takes_time: bool,
    ) -> None:
        self.changed = changed
        self.shape = shape
        self.event_shape = event_shape
        self.takes_time = takes_time


class MergeMemo:
    """:func:`~opensms_async._state.merge`, memoised on what it reads.

    One per store (no module-level cache); both tables are bounded. ``steps`` maps
    ``(shape, status, parts_delivered, sms_parts, sender, source)`` to the known steps: a hot
    loop may look there first and call :meth:`step` on a miss.
    """

    __slots__ = ("_shapes", "steps")

    def __init__(self) -> None:
        self._shapes: dict[tuple[object, ...], tuple[object, ...]] = {}
        self.steps: dict[tuple[object, ...], Step] = {}

    def step(self, shape: StateShape | None, update: DeliveryUpdate) -> Step:
        """What merging ``update`` into a state of ``shape`` (None: never seen) does."""
        key = (shape, update.status, update.parts_delivered, update.sms_parts, update.sender,
               update.source)  # fmt: skip
        step = self.steps.get(key)
        if step is None:
            step = self._learn(shape, update)
            if len(self.steps) < _MAX_ENTRIES:
                self.steps[key] = step
        return step

    def shape(self, shape: StateShape) -> StateShape:
        """The interned (shared) copy of a state shape."""
        return self._intern(shape)

    def _learn(self, shape: StateShape | None, update: DeliveryUpdate) -> Step:
        result = _probe(shape, update)
        state, previous = result.state, result.previous
        event_shape = None
        if result.advanced:
            event_shape = self._intern(
                (
                    DeliveryStatus.parse(state.status),
                    None if previous is None else DeliveryStatus.parse(previous),
                    update.source,
                    state.parts_delivered,
                    state.sms_parts,
                    state.conflict,
                )
            )
        state_shape = self._intern(
            (
                str.__str__(state.status),  # a plain str, even for an enum member (see above)
                state.parts_delivered,
                state.sms_parts,
                state.sender,
                state.conflict,
            )
        )
        return Step(result.changed, state_shape, event_shape, state.updated_at == _TAKE_TIME)

    def _intern(self, shape: _T) -> _T:
        if len(self._shapes) >= _MAX_ENTRIES:
            return shape
        # A shape's fields are hashable and compare by value; the stored object is the same type.
        return self._shapes.setdefault(shape, shape)  # type: ignore[return-value]


def _probe(shape: StateShape | None, update: DeliveryUpdate) -> MergeResult:
    """``merge`` itself on a stand-in pair, with times that show what it does with them."""
    current = (
        None
        if shape is None
        else state_from_shape(_PROBE_REQUEST, _PROBE_ADDRESS, shape, _KEEP_TIME)
    )
    probe = attrs.evolve(
        update, request_id=_PROBE_REQUEST, address=_PROBE_ADDRESS, received_at=_TAKE_TIME
    )
    result = merge(current, probe)
    state = result.state
    if (state.request_id, state.address) != (_PROBE_REQUEST, _PROBE_ADDRESS) or (
        state.updated_at not in (_KEEP_TIME, _TAKE_TIME)
    ):
        # merge grew a dependency on the pair or the time: this memo would be wrong.
        raise RuntimeError("merge() no longer fits MergeMemo; update it")
    return result
