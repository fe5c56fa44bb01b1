"""Credentials: a static API key (v1/v2) or OAuth2 client credentials (BICS SMS v3).

Secrets live in :class:`Secret`, whose repr and str never show the value.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import httpx

from ._addressing import check_text
from ._constants import DEFAULT_TOKEN_URL
from ._converter import WireFormatError, decode_json
from ._exceptions import (
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    OpenSMSError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from ._retry import parse_retry_after
from ._telemetry import client_calls
from ._transport import Wire

__all__ = ["ApiKeyAuth", "Authenticator", "OAuthClientCredentials", "OAuthTokenAuth", "Secret"]

_REFRESH_MARGIN = 60.0
"""Refresh a token this long before it expires (or at 90% of its life, if shorter)."""


@attrs.frozen(repr=False)
class Secret:
    """A string that never shows itself in a repr, str, log line or error message."""

    value: str

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


def _wire_text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_text(value, attribute.name, ValidationError)


@attrs.frozen
class OAuthClientCredentials:
    """OAuth2 client-credentials settings for BICS SMS v3.

    ``scope`` is the product scope, e.g. ``"sms-a2p-business-class"``; ``"sms"`` is prepended.
    Each field must be a string UTF-8 can encode (else :class:`ValidationError`, at once).
    """

    client_id: str = attrs.field(validator=_wire_text)
    client_secret: str = attrs.field(repr=False, validator=_wire_text)
    scope: str = attrs.field(validator=_wire_text)
    token_url: str = attrs.field(default=DEFAULT_TOKEN_URL, validator=_wire_text)

    @property
    def scopes(self) -> str:
        """The scope string sent to the identity server (``sms <product scope>``)."""
        parts = self.scope.split()
        return " ".join(parts if "sms" in parts else ["sms", *parts])


class Authenticator(Protocol):
    """What the client asks for the ``Authorization`` header value of each request."""

    async def header(self, wire: Wire) -> str:
        """The header value, e.g. ``Bearer ...``."""
        ...

    def invalidate(self, refused: str) -> None:
        """Forget the credential of header value ``refused`` (answered 401), if still cached."""


def _header_safe(value: str) -> bool:
    """True for a non-empty header value httpx can send: printable ASCII (RFC 9110 VCHAR, SP)."""
    return bool(value) and value.isascii() and value.isprintable()


class ApiKeyAuth:
    """A static API key sent as ``Authorization: Bearer <key>``."""

    def __init__(self, api_key: str) -> None:
        if not isinstance(api_key, str) or not _header_safe(api_key):
            # The key itself never goes into the message.
            raise ValidationError("api_key must be printable ASCII (it travels in a header)")
        self._header = Secret(f"Bearer {api_key}")

    def __repr__(self) -> str:
        return "ApiKeyAuth(api_key='**********')"

    async def header(self, wire: Wire) -> str:
        """The static header."""
        return self._header.value

    def invalidate(self, refused: str) -> None:
        """Nothing to refresh for a static key."""


class OAuthTokenAuth:
    """Fetches, caches and refreshes a client-credentials access token.

    Concurrent callers share one fetch and its outcome: the first takes the lock and fetches;
    those that waited meanwhile take its token, or raise its error, without fetching again.
    A 401 drops the cached token only if it is the one refused, so the late 401s of requests
    sent with a revoked token never discard the fresh one: one revocation, one refresh.
    """

    def __init__(
        self,
        credentials: OAuthClientCredentials,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.credentials = credentials
        self._clock = clock
        self._token: Secret | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self._fetches = 0  # fetches that ended (with a token or an error), to share the outcome
        self._failure: OpenSMSError | None = None  # how the last one that ended failed, if it did
        self._call = client_calls(credentials.token_url)  # a span per fetch, under the call's

    def __repr__(self) -> str:
        return f"OAuthTokenAuth(client_id={self.credentials.client_id!r})"

    async def header(self, wire: Wire) -> str:
        """``Bearer <token>``, fetching a new token when there is none or it is about to expire."""
        token = self._token
        if token is None or self._clock() >= self._refresh_at:
            token = await self._refresh(wire)
        return f"Bearer {token.value}"

    def invalidate(self, refused: str) -> None:
        """Drop the cached token if ``refused`` (the header a 401 answered) carried it.

        A newer token, fetched since that request left, stays: it was not refused.
        """
        token = self._token
        if token is not None and refused == f"Bearer {token.value}":
            self._token = None

    async def _refresh(self, wire: Wire) -> Secret:
        seen = self._fetches
        async with self._lock:
            if self._fetches != seen:  # a fetch ended while this caller waited: share its outcome
                if self._failure is not None:
                    raise self._failure
                if self._token is not None:
                    return self._token
            try:
                token, lifetime = await self._fetch(wire)
            except OpenSMSError as exc:
                self._failure, self._fetches = exc, self._fetches + 1
                raise
            self._failure, self._fetches = None, self._fetches + 1
            self._token = token
            self._refresh_at = self._clock() + max(
                0.0, min(lifetime - _REFRESH_MARGIN, lifetime * 0.9)
            )
            return token

    async def _fetch(self, wire: Wire) -> tuple[Secret, float]:
        creds = self.credentials
        form = {
            "grant_type": "client_credentials",
            "scope": creds.scopes,
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
        }
        with self._call("fetch_token") as call:
            call.attempt = 1  # retried, if at all, as an attempt of the API call that needed it
            request = wire.build("POST", creds.token_url, headers={}, data=form)
            response = await wire.send(request)
            call.status = response.status_code
            return _parse_token(response)


def _parse_token(response: httpx.Response) -> tuple[Secret, float]:
    if response.status_code != 200:
        raise _token_error(response)
    try:
        payload = decode_json(response.content)
        token = payload["access_token"]
        lifetime = float(payload.get("expires_in", 300))
    except (WireFormatError, ValueError, KeyError, TypeError, AttributeError):
        raise APIResponseValidationError(
            "The token endpoint answered 200 without an access_token", response=response
        ) from None
    if not isinstance(token, str) or not _header_safe(token):
        raise APIResponseValidationError(
            "The token endpoint gave an empty token, or one that cannot go in a header",
            response=response,
        )
    if not math.isfinite(lifetime):
        raise APIResponseValidationError(
            "The token endpoint gave no finite expires_in", response=response
        )
    return Secret(token), lifetime


def _token_error(response: httpx.Response) -> APIStatusError:
    # The body of a token error may echo the request; keep only the OAuth error code.
    code = _oauth_error_code(response)
    message = f"Token request refused with {response.status_code}" + (f" ({code})" if code else "")
    if response.status_code == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
        return RateLimitError(message, response=response, body="", retry_after=retry_after)
    if response.status_code >= 500:
        return ServerError(message, response=response, body="")
    return AuthenticationError(message, response=response, body="")


def _oauth_error_code(response: httpx.Response) -> str | None:
    try:
        payload = decode_json(response.content)
    except WireFormatError:
        return None
    code = payload.get("error") if isinstance(payload, dict) else None
    return code if isinstance(code, str) and code.isidentifier() else None
