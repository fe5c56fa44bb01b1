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
from ._receiving import (
    CLIENT_GONE,
    NO_TOKEN,
    NOT_JSON,
    WRONG_TOKEN,
    BodyTooLarge,
    ClientGone,
    Endpoint,
    Refusal,
    logger,
    parse_json,
)
from ._webhook import encode_token, token_matches

__all__ = ["InboundEndpoint"]

_NOT_INBOUND = Refusal(422, "not_inbound", "not an inbound message with a messageId")


class InboundEndpoint(Endpoint):
    """The raw ASGI endpoint behind the inbound route (see :class:`~._receiving.Endpoint`).

    ``tokens`` are the inbound subscription's security tokens: any of them is accepted (several
    while rotating, since BICS retries with the old one for days), each compared in constant time.
    """

    what = "inbound message"

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
        super().__init__(max_body_size=max_body_size, record_deadline=record_deadline)
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
        try:
            body = await self._read(headers, receive)
        except BodyTooLarge:
            return self._refused(scope, self._too_large)
        except ClientGone:
            logger.info("inbound message abandoned: the sender closed the connection mid-body")
            return CLIENT_GONE  # nobody reads this answer
        try:
            payload = parse_json(body)
        except (ValueError, RecursionError):
            return self._refused(scope, NOT_JSON)
        try:
            parts = parse_inbound_callback(payload)
        except InboundPayloadError as exc:
            return self._refused(scope, _NOT_INBOUND, exc)
        return await self._record(self._inbox.ingest_parts, parts)


def _bearer(authorization: bytes | None) -> bytes | None:
    """The token of ``Authorization: Bearer <token>``; None when there is no such header."""
    if authorization and authorization[:7].lower() == b"bearer ":
        return authorization[7:].strip()
    return None
