"""Where delivery updates come from: the API's delivery infos (a poll) and a send's response.

One mapping for both, so that a poll and ``track()`` describe a recipient alike; the webhook maps
callbacks itself (from raw JSON, for speed). Every update built here passes the gate
(``_gate.py``) as it is built. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ._addressing import normalize_address
from ._exceptions import InvalidUpdateError
from ._models import DeliveryInfo, DeliveryStatus, SendResult, Source
from ._state import DeliveryUpdate

__all__ = ["Refused", "updates_from_infos", "updates_from_send"]

Refused = Callable[[DeliveryInfo, InvalidUpdateError], None]
"""Told of an info the gate refused (and skipped), when skipping is wanted over refusing all."""


def updates_from_infos(
    request_id: str,
    infos: Sequence[DeliveryInfo],
    *,
    source: Source,
    sms_parts: int | None,
    sender: str | None,
    received_at: float,
    refused: Refused | None = None,
) -> list[DeliveryUpdate]:
    """One update per delivery info of a request, as the API answered it.

    An info the gate refuses raises :class:`InvalidUpdateError`; with ``refused``, it is handed
    to ``refused`` and skipped instead (a poll: one malformed entry must not hide the others).
    """
    updates = []
    for info in infos:
        try:
            update = DeliveryUpdate(
                request_id, info.address, info.status, source, info.parts_delivered, sms_parts,
                info.status_code, sender, received_at,
            )  # fmt: skip
        except InvalidUpdateError as exc:
            if refused is None:
                raise
            refused(info, exc)
            continue
        updates.append(update)
    return updates


def updates_from_send(sent: SendResult, received_at: float) -> list[DeliveryUpdate]:
    """One update per recipient of a send: the state its response gave the recipient, or
    ``MessageAccepted`` when it gave none. Raises :class:`InvalidUpdateError` for a state the
    gate refuses."""
    by_address: dict[str, DeliveryInfo] = {}
    for info in sent.delivery_infos:
        try:
            by_address[normalize_address(info.address)] = info
        except ValueError:
            continue  # no recipient of the send has this address: nobody to give it to
    infos = [
        by_address.get(address) or DeliveryInfo(address, DeliveryStatus.MESSAGE_ACCEPTED)
        for address in sent.recipients
    ]
    return updates_from_infos(
        sent.request_id,
        infos,
        source=Source.SEND,
        sms_parts=sent.parts,
        sender=sent.sender,
        received_at=received_at,
    )
