"""Turning a non-2xx response into the typed error, with secrets kept out of the message."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import httpx

from ._converter import WireFormatError, decode_json
from ._exceptions import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotAcceptableError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from ._models import NotAcceptableCallback, RequestError
from ._retry import parse_retry_after

__all__ = ["make_status_error", "parse_request_error", "redact"]

_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
}
_MAX_BODY_IN_MESSAGE = 300


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (of 4 characters or more) replaced by ``**********``."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "**********")
    return text


def parse_request_error(payload: Any) -> RequestError | None:
    """The OMA ``requestError`` of a decoded error body, or None when it has none."""
    if not isinstance(payload, dict):
        return None
    root = payload.get("requestError")
    if not isinstance(root, dict):
        return None
    for kind in ("serviceException", "policyException"):
        exc = root.get(kind)
        if isinstance(exc, dict):
            return RequestError(
                kind=kind,
                message_id=_text(exc.get("messageId")),
                text=_text(exc.get("text")),
                variables=_variables(exc.get("variables")),
            )
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _variables(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(v) for v in value if isinstance(v, str | int | float))
    return ()


def _not_acceptable(payload: Any) -> NotAcceptableCallback | None:
    if not isinstance(payload, dict):
        return None
    return NotAcceptableCallback(
        code=_text(payload.get("code")), description=_text(payload.get("description"))
    )


def make_status_error(
    response: httpx.Response, *, secrets: Iterable[str] = (), now: float | None = None
) -> APIStatusError:
    """The typed error for a non-2xx response: OMA error parsed when present, raw text kept."""
    secrets = tuple(secrets)
    body = redact(response.text, secrets)
    payload = _decode(body)
    error = parse_request_error(payload)
    message = _message(response, error, body)
    status = response.status_code
    if status == 406:
        return NotAcceptableError(
            message,
            response=response,
            body=body,
            error=error,
            not_acceptable=_not_acceptable(payload),
        )
    if status == 429:
        retry_after = parse_retry_after(
            response.headers.get("retry-after"), time.time() if now is None else now
        )
        return RateLimitError(
            message, response=response, body=body, error=error, retry_after=retry_after
        )
    if status >= 500:
        return ServerError(message, response=response, body=body, error=error)
    cls = _BY_STATUS.get(status, APIStatusError)
    return cls(message, response=response, body=body, error=error)


def _decode(body: str) -> Any:
    if not body.lstrip().startswith("{"):
        return None
    try:
        return decode_json(body)
    except WireFormatError:  # kept as raw text: malformed, or nested too deeply to decode
        return None


def _message(response: httpx.Response, error: RequestError | None, body: str) -> str:
    request = response.request
    head = (
        f"{response.status_code} {response.reason_phrase} for {request.method} {request.url.path}"
    )
    detail = str(error) if error is not None else body.strip()[:_MAX_BODY_IN_MESSAGE]
    return f"{head}: {detail}" if detail else head
