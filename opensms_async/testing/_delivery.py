"""How a simulated message travels: its delivery timeline per recipient, planned at send time.

Pure and seeded: given the same random source, a send produces the same timeline. The simulator
then only compares the clock with the timeline, so a poll needs no background task.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import attrs

from .._models import DeliveryStatus, Status
from .._segments import count_segments

__all__ = [
    "STATUS_CODES",
    "DeliveryRules",
    "SentMessage",
    "Transition",
    "count_parts",
    "delivery_info",
    "plan_transitions",
    "state_at",
]

S = DeliveryStatus

STATUS_CODES: dict[DeliveryStatus, int] = {
    S.MESSAGE_ACCEPTED: 12,
    S.DELIVERED_TO_NETWORK: 6,
    S.PARTIALLY_DELIVERED: 13,
    S.DELIVERED_TO_TERMINAL: 2,
    S.DELIVERY_UNCERTAIN: 7,
    S.DELIVERY_IMPOSSIBLE: 3,
    S.INVALID_SRC_ADDRESS: 10,
    S.INVALID_DEST_ADDRESS: 11,
}
"""``deliveryStatusCode`` per status, from the DeliveryState description of BICS's v3 OpenAPI."""


def count_parts(text: str) -> int:
    """SMS parts for ``text`` (GSM-7 160/153 or UCS-2 70/67), as BICS would bill them."""
    return count_segments(text).parts


@attrs.frozen
class DeliveryRules:
    """Which recipients fail or go uncertain, and how long each step takes (seconds)."""

    failing_suffixes: tuple[str, ...]
    uncertain_suffixes: tuple[str, ...]
    step_delay: tuple[float, float]

    def fails(self, address: str) -> bool:
        """True when the number ends in one of ``failing_suffixes``."""
        return _ends_with(address, self.failing_suffixes)

    def goes_uncertain(self, address: str) -> bool:
        """True when the number ends in one of ``uncertain_suffixes``."""
        return _ends_with(address, self.uncertain_suffixes)


def _ends_with(address: str, suffixes: Sequence[str]) -> bool:
    return any(suffix and address.endswith(suffix) for suffix in suffixes)


@attrs.frozen
class Transition:
    """A recipient reaches ``status`` ``at`` seconds after the send."""

    at: float
    status: DeliveryStatus
    parts_delivered: int


def _steps(
    address: str, parts: int, rules: DeliveryRules, accepted_first: bool
) -> list[tuple[DeliveryStatus, int]]:
    # An asynchronous send is acknowledged before validation: MessageAccepted, then as usual.
    steps = [(S.MESSAGE_ACCEPTED, 0)] if accepted_first else []
    steps.append((S.DELIVERED_TO_NETWORK, 0))
    if rules.goes_uncertain(address):
        steps.append((S.DELIVERY_UNCERTAIN, 0))
    if rules.fails(address):
        steps.append((S.DELIVERY_IMPOSSIBLE, 0))
        return steps
    # BICS v3: one PartiallyDelivered per part that arrives before the last one.
    steps.extend((S.PARTIALLY_DELIVERED, delivered) for delivered in range(1, parts))
    steps.append((S.DELIVERED_TO_TERMINAL, parts))
    return steps


def plan_transitions(
    address: str,
    parts: int,
    rules: DeliveryRules,
    rng: random.Random,
    *,
    accepted_first: bool = False,
) -> tuple[Transition, ...]:
    """The timeline of one recipient: its first state at once, then one step per delay.

    The first state is DeliveredToNetwork, or MessageAccepted with ``accepted_first`` (an
    asynchronous send), which then takes one more step, so one more draw from ``rng``.
    """
    at = 0.0
    timeline = []
    for index, (status, delivered) in enumerate(_steps(address, parts, rules, accepted_first)):
        if index:
            at += rng.uniform(*rules.step_delay)
        timeline.append(Transition(at, status, delivered))
    return tuple(timeline)


def state_at(timeline: Sequence[Transition], elapsed: float) -> Transition:
    """The last transition reached ``elapsed`` seconds after the send."""
    current = timeline[0]
    for transition in timeline:
        if transition.at > elapsed:
            break
        current = transition
    return current


def _status_code(status: Status) -> int | None:
    known = DeliveryStatus.parse(str(status))
    return STATUS_CODES.get(known) if isinstance(known, DeliveryStatus) else None


def delivery_info(
    address: str,
    status: Status,
    parts_delivered: int | None,
    callback_data: str | None = None,
    *,
    status_code: int | None = None,
) -> dict[str, Any]:
    """One ``deliveryInfo`` entry in the BICS v3 shape.

    ``deliveryStatusCode`` is ``status_code``, else the code BICS gives ``status`` (none for a
    status outside its table); ``smsPartsDeliveredToTerminal`` is left out when None.
    """
    info: dict[str, Any] = {"address": address, "deliveryStatus": str(status)}
    code = _status_code(status) if status_code is None else status_code
    if code is not None:
        info["deliveryStatusCode"] = code
    if parts_delivered is not None:
        info["smsPartsDeliveredToTerminal"] = parts_delivered
    if callback_data is not None:
        info["callbackData"] = callback_data
    return info


@attrs.frozen
class SentMessage:
    """A message the simulator accepted and sent (a correlator replay is not a new one)."""

    request_id: str
    sender: str
    addresses: tuple[str, ...]
    text: str
    parts: int
    client_correlator: str
    resource_url: str
    created_at: float
    callback_data: str | None = None
    notify_url: str | None = None
    asynchronous: bool = False
    """Sent with ``asynchronous: true``: acknowledged ``MessageAccepted``, validated later."""
    final_delivery: bool | None = None
    """The send's own ``finalDelivery``, when it gave one."""
    timelines: dict[str, tuple[Transition, ...]] = attrs.field(factory=dict, repr=False)

    @property
    def final_after(self) -> float:
        """Seconds after the send when the last recipient reaches its final state."""
        return max(timeline[-1].at for timeline in self.timelines.values())
