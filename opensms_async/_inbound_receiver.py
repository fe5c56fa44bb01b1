"""The receiver's inbound endpoint: BICS's inbound-message callbacks into an :class:`Inbox`.

The token first, then the body: BICS sends the subscription's token as ``Authorization: Bearer
<token>`` (never in the body), so a wrong or missing one is refused (401) before a byte of the
body is read. Then the body (413 over the limit), JSON (400), an inbound message with a
``messageId`` (422: nothing stored, see :mod:`opensms_async._inbound_webhook`), and the record:
204 once the inbox's store has recorded every part (a duplicate included: it is recorded already,
and a 2xx stops BICS's retries), 503 when it could not, or not within the record deadline (BICS
retries inbound messages for three days, so a 503 loses nothing). Never 500.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import Receive, Scope

from ._inbound_webhook import InboundPayloadError, parse_inbound_callback
from ._inbox import Inbox
from ._reassembly import Part
from ._receiving import (
    NO_TOKEN,
    WRONG_TOKEN,
    Endpoint,
    Refusal,
)
from ._telemetry import INBOUND_SPAN
from ._telemetry_receiver import DUPLICATE, INVALID, ReceiverTelemetry, inbound_callbacks
from ._webhook import encode_token, token_matches

__all__ = ["InboundEndpoint"]

_NOT_INBOUND = Refusal(422, "not_inbound", "not an inbound message with a messageId", INVALID)
_DUPLICATE = Refusal(204, "", "", DUPLICATE)
"""A 204 like any other, whose outcome (its span's, its count's) says it was recorded already."""


class InboundEndpoint(Endpoint):
    """The raw ASGI endpoint behind the inbound route (see :class:`~._receiving.Endpoint`).

    ``tokens`` are the inbound subscription's security tokens: any of them is accepted (several
    while rotating, since BICS retries with the old one for days), each compared in constant time.
    """

    what = "inbound message"
    operation = "inbound"

    def __init__(
        self,
        inbox: Inbox,
        tokens: Sequence[str],
        *,
        max_body_size: int,
        record_deadline: float,
    ) -> None:
        if not tokens or not all(isinstance(t, str) and t for t in tokens):
            raise ValueError(
                "An inbound receiver needs a non-empty security token; it never accepts all."
            )
        super().__init__(
            max_body_size=max_body_size,
            record_deadline=record_deadline,
            telemetry=ReceiverTelemetry(INBOUND_SPAN, inbound_callbacks),
        )
        self._inbox = inbox
        self._tokens = [encode_token(t) for t in tokens]

    def __repr__(self) -> str:
        return f"InboundEndpoint(tokens={len(self._tokens)}, max_body_size={self._max})"

    async def _handle(self, scope: Scope, receive: Receive) -> Refusal | None:
        """None once the message is recorded, else the refusal to answer."""
        headers = dict(scope["headers"])
        presented = _bearer(headers.get(b"authorization"))
        if not token_matches(presented, self._tokens):
            return self._refused(scope, NO_TOKEN if presented is None else WRONG_TOKEN)
        payload = await self._read_json(scope, headers, receive)
        if type(payload) is Refusal:
            return payload
        try:
            parts = parse_inbound_callback(payload)
        except InboundPayloadError as exc:
            return self._refused(scope, _NOT_INBOUND, exc)
        # As the delivery receiver does: the parts are all the record needs, and a body held
        # while the store records (SQLite's group commit, a Redis round trip) is held for
        # nothing by every callback waiting at once (BICS retries inbound ones in bursts).
        del payload, headers
        return await self._record(self._ingest, parts)

    async def _ingest(self, parts: Sequence[Part]) -> Refusal | None:
        """Record ``parts`` through the inbox's own record step (the one its poller is handed),
        whose :class:`~opensms_async.stores.inbound.Received` tells a duplicate apart."""
        received = await self._inbox._receive(parts)
        return _DUPLICATE if parts and received.duplicates == len(parts) else None


def _bearer(authorization: bytes | None) -> bytes | None:
    """The token of ``Authorization: Bearer <token>``; None when there is no such header."""
    if authorization and authorization[:7].lower() == b"bearer ":
        return authorization[7:].strip()
    return None
