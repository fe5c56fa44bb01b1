"""The whole error tree of opensms-async.

Callers catch :class:`OpenSMSError`; nothing from httpx escapes the client::

    OpenSMSError
    ├── ValidationError (also ValueError)       bad input, raised before any request
    │   ├── InvalidAddressError                 a recipient that is not E.164
    │   ├── InvalidSenderError                  neither ≤ 15 digits nor ≤ 11 GSM-7 chars
    │   ├── InvalidMessageError                 empty text, empty recipient list
    │   ├── InvalidCallbackURLError             a subscription URL that is not https://
    │   ├── InvalidBaseURLError                 an API base URL that is not absolute http(s)
    │   ├── InvalidStoreURLError                a store URL no backend understands
    │   ├── InvalidCursorError                  an event cursor this store never gave
    │   └── InvalidUpdateError                  a delivery update no store may record
    ├── APIConnectionError                      the request did not get a response
    │   └── APITimeoutError
    ├── APIResponseValidationError              a 2xx whose body is not what the API promises
    │   └── ResponseTooLargeError               a body past max_response_size (not retried)
    ├── APIStatusError (status_code, error, body, response)
    │   ├── BadRequestError          400
    │   ├── AuthenticationError      401
    │   ├── PermissionDeniedError    403
    │   ├── NotFoundError            404
    │   ├── NotAcceptableError       406  (.not_acceptable: NotAcceptableCallback)
    │   ├── RateLimitError           429  (.retry_after: seconds or None)
    │   └── ServerError              5xx
    └── StoreError                              a store that could not record or read
        └── StoreUnavailableError              its backend is unreachable (retry later)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from ._models import NotAcceptableCallback, RequestError

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "InvalidAddressError",
    "InvalidBaseURLError",
    "InvalidCallbackURLError",
    "InvalidCursorError",
    "InvalidMessageError",
    "InvalidSenderError",
    "InvalidStoreURLError",
    "InvalidUpdateError",
    "NotAcceptableError",
    "NotFoundError",
    "OpenSMSError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseTooLargeError",
    "ServerError",
    "StoreError",
    "StoreUnavailableError",
    "ValidationError",
]


class OpenSMSError(Exception):
    """Root of every error raised by opensms-async."""


class ValidationError(OpenSMSError, ValueError):
    """Input refused on the SDK's side: before any request was made, or before anything was
    recorded."""


class InvalidAddressError(ValidationError):
    """A recipient address is not an E.164 number (``+<digits>`` or ``tel:+<digits>``)."""


class InvalidSenderError(ValidationError):
    """A sender is neither a number of at most 15 digits nor at most 11 GSM-7 alphanumerics."""


class InvalidMessageError(ValidationError):
    """The message cannot be sent as given (empty text, no recipients, ...)."""


class InvalidCallbackURLError(ValidationError):
    """A subscription callback URL is not an absolute ``https://`` URL."""


class InvalidBaseURLError(ValidationError):
    """The API base URL (``base_url=`` or ``OPENSMS_BASE_URL``) is not an absolute http(s) URL."""


class InvalidStoreURLError(ValidationError):
    """A store URL names no known backend or is malformed."""


class InvalidCursorError(ValidationError):
    """An event cursor (``since=``) not of its store's form (``"42"``, ``"<ms>-<seq>"``)."""


class InvalidUpdateError(ValidationError):
    """A delivery update that no store may record; ``field`` names what is wrong.

    Raised as a :class:`~opensms_async.DeliveryUpdate` is built, whoever builds it: the receiver
    from a callback (it answers 422), the poller from a poll (it skips that entry), ``track()``
    from a send's response, or your own code before ``ingest``. So nothing of a batch holding
    one is ever recorded. ``ingest`` raises it too for anything else than a ``DeliveryUpdate``.
    """

    def __init__(self, message: str, field: str = "update") -> None:
        super().__init__(message)
        self.field = field
        """The update's field refused (``address``, ``status``...), or ``update`` for the whole."""


class APIConnectionError(OpenSMSError):
    """The request could not be completed: DNS, connect, reset, or a protocol error.

    The message names the host and the cause, e.g. ``Connection error with 127.0.0.1:8750:
    Connection refused (ConnectError)``; httpx's exception is ``__cause__``.
    """

    def __init__(self, message: str = "Connection error.", *, request: httpx.Request) -> None:
        super().__init__(message)
        self.request = request


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read, write or waiting for a pooled connection)."""

    def __init__(self, message: str = "Request timed out.", *, request: httpx.Request) -> None:
        super().__init__(message, request=request)


class APIResponseValidationError(OpenSMSError):
    """A successful response whose body does not have the documented shape."""

    def __init__(self, message: str, *, response: httpx.Response) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code


class ResponseTooLargeError(APIResponseValidationError):
    """A response (of any status) whose decoded body exceeds the client's ``max_response_size``.

    Reading stops at the limit and the connection is closed, so ``response`` has no content.
    Not retried: the same request would most likely get the same answer.
    """

    def __init__(self, message: str, *, response: httpx.Response, limit: int) -> None:
        super().__init__(message, response=response)
        self.limit = limit


class APIStatusError(OpenSMSError):
    """The API answered with a non-2xx status.

    ``error`` is the parsed OMA ``requestError`` when the body holds one, ``body`` the raw text.
    """

    status_code: int

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        body: str,
        error: RequestError | None = None,
    ) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code
        self.body = body
        self.error = error


class BadRequestError(APIStatusError):
    """400: the request is not well formed (or BICS refused it as undeliverable up front)."""

    status_code = 400


class AuthenticationError(APIStatusError):
    """401: the API key or OAuth token is missing or invalid."""

    status_code = 401


class PermissionDeniedError(APIStatusError):
    """403: the credentials do not allow this service."""

    status_code = 403


class NotFoundError(APIStatusError):
    """404: no such request, or no subscription."""

    status_code = 404


class NotAcceptableError(APIStatusError):
    """406: the subscription was refused; ``not_acceptable`` says why (``NOT_HTTPS``)."""

    status_code = 406

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        body: str,
        error: RequestError | None = None,
        not_acceptable: NotAcceptableCallback | None = None,
    ) -> None:
        super().__init__(message, response=response, body=body, error=error)
        self.not_acceptable = not_acceptable


class RateLimitError(APIStatusError):
    """429: the hourly quota is used up; ``retry_after`` is the server's hint in seconds."""

    status_code = 429

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        body: str,
        error: RequestError | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, response=response, body=body, error=error)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx: the API failed; GET and DELETE are retried, and sends under their correlator."""


class StoreError(OpenSMSError):
    """A delivery store could not record or read an update."""


class StoreUnavailableError(StoreError):
    """The store's backend is unreachable; nothing was recorded, try again later."""
