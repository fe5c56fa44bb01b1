"""Who may call the simulated API: the API key or an issued OAuth token, within the hourly quota."""

from __future__ import annotations

import base64
import collections
import hmac
import secrets
from collections.abc import Callable
from urllib.parse import parse_qs, unquote_plus

import attrs

__all__ = ["AccessControl", "TokenRequest", "parse_token_request"]

_HOUR = 3600.0


@attrs.frozen
class TokenRequest:
    """A client-credentials token request, from the form or HTTP Basic authentication."""

    grant_type: str
    client_id: str
    client_secret: str = attrs.field(repr=False)
    scope: str | None


def parse_token_request(body: bytes, authorization: str | None) -> TokenRequest:
    """Read ``application/x-www-form-urlencoded`` fields; Basic credentials win over the form."""
    form = {k: v[0] for k, v in parse_qs(body.decode("latin-1"), keep_blank_values=True).items()}
    client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
    basic = _basic_credentials(authorization)
    if basic is not None:
        client_id, client_secret = basic
    return TokenRequest(
        grant_type=form.get("grant_type", ""),
        client_id=client_id,
        client_secret=client_secret,
        scope=form.get("scope"),
    )


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, a non-ASCII header (read as latin-1), bad UTF-8
        return None
    user, _, password = decoded.partition(":")
    # RFC 6749 2.3.1: both parts are form-encoded before going into the Basic header.
    return unquote_plus(user), unquote_plus(password)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class AccessControl:
    """Issues and checks bearer tokens and counts requests against an hourly quota."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tokens: dict[str, float] = {}
        self._recent: collections.deque[float] = collections.deque()
        self.tokens_issued = 0

    def issue_token(self, lifetime: float) -> str:
        """A new access token, accepted until ``lifetime`` seconds from now."""
        token = secrets.token_urlsafe(24)
        self._tokens[token] = self._clock() + lifetime
        self.tokens_issued += 1
        return token

    def client_is_valid(self, request: TokenRequest, client_id: str, client_secret: str) -> bool:
        """True when the request carries the configured client credentials."""
        return _same(request.client_id, client_id) & _same(request.client_secret, client_secret)

    def bearer_is_valid(self, authorization: str | None, api_key: str) -> bool:
        """True for ``Bearer <api key>`` or ``Bearer <unexpired issued token>``."""
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            return False
        if _same(credential, api_key):
            return True
        expires = self._tokens.get(credential)
        return expires is not None and self._clock() < expires

    def within_quota(self, quota: int | None) -> bool:
        """Count one request against ``quota`` per hour; False (not counted) when it is used up."""
        now = self._clock()
        while self._recent and self._recent[0] <= now - _HOUR:
            self._recent.popleft()
        if quota is not None and len(self._recent) >= quota:
            return False
        self._recent.append(now)
        return True
