"""``OpenSMSClient``: the async client for every endpoint of the OpenSMS API."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from ._addressing import (
    check_text,
    normalize_address,
    normalize_inbound_number,
    normalize_sender,
    request_id_path_segment,
    sender_path_segment,
)
from ._aiohttp import AiohttpTransport, environment_proxies, proxy_mounts
from ._auth import ApiKeyAuth, Authenticator, OAuthClientCredentials, OAuthTokenAuth
from ._bulk import BulkResult, Message, run_bulk
from ._constants import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_RESPONSE_SIZE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    ENV_API_KEY,
    ENV_BASE_URL,
    KEEPALIVE_EXPIRY,
    USER_AGENT,
)
from ._converter import WireFormatError, decode_json, encode_json, structure, unstructure
from ._errors_map import make_status_error
from ._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    InvalidAddressError,
    InvalidBaseURLError,
    InvalidCallbackURLError,
    InvalidMessageError,
    NotFoundError,
    OpenSMSError,
    RateLimitError,
    ValidationError,
)
from ._ids import new_correlator
from ._inbound import (
    ConversionRequest,
    InboundSmsMessageList,
    InboundSubscription,
    MessageIds,
    parse_refused_ids,
)
from ._lifecycle import CLOSED, Lifecycle
from ._limiter import RateLimiter
from ._models import (
    DeliveryInfoList,
    OutboundMessageRequest,
    SendResult,
    SmsTextMessage,
    Subscription,
    request_id_from_url,
)
from ._retry import parse_retry_after, retry_delay, should_retry_status
from ._segments import count_parts
from ._telemetry import HTTP_STATUS_CODE, Call, client_calls, current_traceparent
from ._transport import Wire, attempt_deadline

__all__ = ["OpenSMSClient"]

logger = logging.getLogger("opensms_async")

T = TypeVar("T")
S = TypeVar("S", Subscription, InboundSubscription)


_URL_CACHE_SIZE = 256
"""Parsed request URLs a client keeps (see ``OpenSMSClient._url``)."""


class OpenSMSClient(Lifecycle):
    """Async client for the BICS OpenSMS API; use it as ``async with OpenSMSClient() as client``.

    Credentials: ``api_key`` (default: env ``OPENSMS_API_KEY``) sent as ``Authorization: Bearer``,
    or ``oauth=OAuthClientCredentials(...)`` for BICS SMS v3. ``base_url`` defaults to env
    ``OPENSMS_BASE_URL``, then the v1 API. Timeouts are on by default; 429, 5xx, connection errors
    and timeouts are retried up to ``max_retries`` times (sends under their ``clientCorrelator``,
    so a retried send never delivers twice). ``max_in_flight`` bounds concurrent requests: by
    default 64 over the default aiohttp transport, 16 over httpx's own (an ``http_client``, a
    ``transport`` other than an ``AiohttpTransport``, or a proxy from the environment), which
    slows down with many pooled connections; ``limiter`` adds an hourly budget shared by every
    call. ``http_client`` or ``transport`` inject the HTTP layer; a client you pass in is not
    closed by this one. ``sleep`` and ``random`` are injectable for tests.

    ``timeout`` is httpx's, per phase (connect, each read, each write, pool wait). ``deadline``
    bounds each attempt as a whole, from sending to the last byte of the answer, so a server that
    drips its answer cannot hold a call past it: seconds, default the longest of the timeouts
    (30 s by default; ``timeout=1.0`` makes it 1 s). A deadline hit is an
    :class:`APITimeoutError`, retried like any timeout (a send under its ``clientCorrelator``).
    The OAuth token fetch keeps the same deadline and size bound.

    ``max_response_size`` (default 4 MiB) is the most body bytes, counted after gzip/deflate
    decoding as they stream in, that the client reads from one answer; past it the connection is
    dropped and :class:`ResponseTooLargeError` raised (not retried).
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
        *,
        oauth: OAuthClientCredentials | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_in_flight: int | None = None,
        limiter: RateLimiter | None = None,
        deadline: float | None = None,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = random.random,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if deadline is not None and not 0.0 < deadline < math.inf:
            raise ValueError("deadline must be a finite number of seconds above 0 (or None)")
        if isinstance(max_response_size, bool) or not (
            isinstance(max_response_size, int) and max_response_size >= 1
        ):
            raise ValueError("max_response_size must be a whole number of bytes, at least 1")
        self._auth, self._secrets = _make_auth(api_key, oauth)
        self.base_url = _base_url(base_url)
        self.max_retries = max_retries
        self.limiter = limiter
        self._owns_http = http_client is None
        default = http_client is None and transport is None  # aiohttp, proxies as httpx's
        proxies = environment_proxies() if default else {}
        in_flight = (
            max_in_flight
            if max_in_flight is not None
            else _default_in_flight(transport, default, proxies)
        )
        limits = httpx.Limits(
            max_connections=in_flight,
            max_keepalive_connections=in_flight,
            keepalive_expiry=KEEPALIVE_EXPIRY,
        )
        mounts = None
        if default:
            transport = AiohttpTransport(max_connections=in_flight)
            mounts = proxy_mounts(proxies, limits)
        self._http = http_client or httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            mounts=mounts,
            limits=limits,
            headers={"User-Agent": USER_AGENT},
        )
        self._wire = Wire(
            self._http,
            deadline=deadline if deadline is not None else attempt_deadline(self._http.timeout),
            max_response_size=max_response_size,
            direct=self._owns_http,
        )
        self._in_flight = asyncio.Semaphore(in_flight)
        self._urls: dict[str, httpx.URL] = {}
        self._call = client_calls(self.base_url)  # spans and metrics, when OpenTelemetry is there
        self._sleep = sleep
        self._random = random

    def __repr__(self) -> str:
        return f"OpenSMSClient(base_url={self.base_url!r}, auth={self._auth!r})"

    async def open(self) -> None:
        """Open the HTTP client (unless it was passed in); a client opens once.

        ``async with OpenSMSClient(...) as client`` calls it. As httpx's, a client may also be
        used without opening it; once closed, it refuses every call.
        """
        await super().open()

    async def aclose(self) -> None:
        """Close the underlying HTTP client (unless it was passed in); safe to call twice."""
        await super().aclose()

    async def _open(self) -> None:
        if self._owns_http:
            await self._http.__aenter__()

    async def _aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # --- endpoints ---------------------------------------------------------------------------

    async def send_message(
        self,
        sender: str,
        to: str | Iterable[str],
        text: str,
        *,
        sender_name: str | None = None,
        client_correlator: str | None = None,
        callback_data: str | None = None,
        notify_url: str | None = None,
        asynchronous: bool | None = None,
        final_delivery: bool | None = None,
        max_retries: int | None = None,
    ) -> SendResult:
        """Send ``text`` from ``sender`` to one or more numbers; returns the request id and states.

        Recipients are normalised to ``tel:+<digits>`` (duplicates dropped, order kept). A
        ``clientCorrelator`` is generated when none is given and reused on every retry, so the
        API answers a retry with the original response instead of sending again.

        BICS v3 options, sent only when given (``None`` leaves them off the wire):
        ``asynchronous=True`` asks BICS to acknowledge before validating the message, so every
        recipient comes back ``MessageAccepted`` and a bad number only shows later, as a final
        failure in callbacks and polls; ``final_delivery=True`` asks for final states only in
        this message's delivery notifications.
        """
        sender = normalize_sender(sender)
        recipients = _recipients(to)
        if not check_text(text, "text"):
            raise InvalidMessageError("text must be a non-empty string")
        _check_optional_text(sender_name, "sender_name")
        _check_optional_text(client_correlator, "client_correlator")
        _check_optional_text(callback_data, "callback_data")
        if notify_url is not None:
            _check_https(notify_url, "notify_url")
        _check_flag(asynchronous, "asynchronous")
        _check_flag(final_delivery, "final_delivery")
        correlator = client_correlator or new_correlator()
        body = OutboundMessageRequest(
            address=list(recipients),
            sender_address=sender,
            outbound_sms_text_message=SmsTextMessage(text),
            sender_name=sender_name,
            client_correlator=correlator,
            callback_data=callback_data,
            notify_url=notify_url,
            asynchronous=asynchronous,
            final_delivery=final_delivery,
        )
        path = f"/outbound/{sender_path_segment(sender)}/requests"
        payload = {"outboundSMSMessageRequest": unstructure(body)}
        with self._call("send_message") as call:
            response = await self._request(
                call, "POST", path, json_body=payload, expected=(200, 201), max_retries=max_retries
            )
            echoed = self._parse(response, "outboundSMSMessageRequest", OutboundMessageRequest)
            result = _send_result(
                response, echoed, sender, recipients, correlator, count_parts(text)
            )
            call.request_id = result.request_id
        return result

    async def get_delivery_infos(
        self, sender: str, request_id: str, *, max_retries: int | None = None
    ) -> DeliveryInfoList:
        """The delivery info of every recipient of a request (kept by BICS for 7 days)."""
        sender = normalize_sender(sender)
        path = (
            f"/outbound/{sender_path_segment(sender)}/requests/"
            f"{request_id_path_segment(request_id)}/deliveryInfos"
        )
        with self._call("get_delivery_infos", request_id) as call:
            response = await self._request(
                call, "GET", path, expected=(200,), max_retries=max_retries
            )
            return self._parse(response, "deliveryInfoList", DeliveryInfoList)

    async def create_subscription(
        self,
        url: str,
        security_token: str,
        *,
        final_delivery: bool | None = None,
        max_retries: int | None = None,
    ) -> Subscription:
        """Subscribe ``url`` (``https://`` only) to delivery infos; an account has one subscription.

        BICS puts ``security_token`` in every callback body: give the same token to the receiver.
        """
        _check_https(url, "url")
        _check_token(security_token)
        _check_flag(final_delivery, "final_delivery")
        subscription = Subscription(
            url=url, security_token=security_token, final_delivery=final_delivery
        )
        return await self._create_callback(
            "create_subscription", "/outbound/subscriptions", subscription, max_retries
        )

    async def get_subscription(self, *, max_retries: int | None = None) -> Subscription | None:
        """The account's delivery-info subscription, or None when there is none."""
        return await self._get_callback(
            "get_subscription", "/outbound/subscriptions", Subscription, max_retries
        )

    async def delete_subscription(self, *, max_retries: int | None = None) -> None:
        """Delete the subscription; raises NotFoundError when there is none."""
        await self._delete_callback("delete_subscription", "/outbound/subscriptions", max_retries)

    # --- inbound messages (MO) and conversions: BICS v3 -------------------------------------

    async def create_inbound_subscription(
        self,
        url: str,
        security_token: str,
        concat: bool | None = None,
        *,
        max_retries: int | None = None,
    ) -> InboundSubscription:
        """Subscribe ``url`` (``https://`` only) to inbound messages; an account has one.

        BICS posts each message with ``Authorization: Bearer <security_token>`` and retries for
        up to three days. ``concat=True``: long messages come joined; ``False``: each part comes
        with its UDH fields, for the receiver to join; ``None`` (left off the wire): BICS's legacy
        behaviour, each part a message of its own without UDH fields.
        """
        _check_https(url, "url")
        _check_token(security_token)
        _check_flag(concat, "concat")
        subscription = InboundSubscription(url=url, security_token=security_token, concat=concat)
        return await self._create_callback(
            "create_inbound_subscription", "/inbound/subscriptions", subscription, max_retries
        )

    async def get_inbound_subscription(
        self, *, max_retries: int | None = None
    ) -> InboundSubscription | None:
        """The account's inbound-message subscription, or None when there is none."""
        return await self._get_callback(
            "get_inbound_subscription", "/inbound/subscriptions", InboundSubscription, max_retries
        )

    async def delete_inbound_subscription(self, *, max_retries: int | None = None) -> None:
        """Delete the inbound subscription; raises NotFoundError when there is none.

        A retried DELETE that finds nothing counts as done: the first attempt did it.
        """
        await self._delete_callback(
            "delete_inbound_subscription", "/inbound/subscriptions", max_retries
        )

    async def get_inbound_messages(
        self,
        inbound_number: str,
        max_batch_size: int | None = None,
        *,
        max_retries: int | None = None,
    ) -> InboundSmsMessageList:
        """A page of the inbox of ``inbound_number``: ``.messages`` and ``.total_pending``.

        ``inbound_number`` is an E.164 number or a short code, written as a sender number is
        (``tel:`` and ``+`` optional) and percent-encoded in the path the same way.
        ``max_batch_size`` (0 to 200) caps the page; None leaves it to BICS (20). An empty 2xx
        body reads as an empty page; one that cannot be read raises APIResponseValidationError
        with the response attached (``.response``), so what was fetched stays within reach. If
        BICS takes what it lists off the inbox, a response lost on the way loses that page: the
        inbound subscription, which BICS retries, is the durable path, polling the way to catch up.
        """
        number = normalize_inbound_number(inbound_number)
        path = f"/inbound/registrations/{sender_path_segment(number)}/messages"
        if max_batch_size is not None:
            path += f"?maxBatchSize={_batch_size(max_batch_size)}"
        with self._call("get_inbound_messages") as call:
            response = await self._request(
                call, "GET", path, expected=(200, 204), max_retries=max_retries
            )
            if not response.content.strip():
                return InboundSmsMessageList()
            return self._parse(response, "inboundSMSMessageList", InboundSmsMessageList)

    async def report_conversion(
        self,
        address: str | None = None,
        customer_reference: str | None = None,
        *,
        max_retries: int | None = None,
    ) -> None:
        """Report that a recipient converted (``POST /conversions``): give exactly one of the two.

        ``address`` is an E.164 number (``+<digits>`` or ``tel:+<digits>``); it goes on the wire
        as BICS's own example writes it, international digits without ``tel:`` or ``+``
        (``"32410300011"``). ``customer_reference`` is sent as given.
        """
        if (address is None) == (customer_reference is None):
            raise InvalidMessageError("give exactly one of address or customer_reference")
        if address is not None:
            body = ConversionRequest(address=normalize_address(address).removeprefix("tel:+"))
        else:
            reference = _non_empty(customer_reference, "customer_reference")
            body = ConversionRequest(customer_reference=reference)
        with self._call("report_conversion") as call:
            await self._request(
                call,
                "POST",
                "/conversions",
                json_body={"conversionRequest": unstructure(body)},
                expected=(200, 201, 202, 204),
                max_retries=max_retries,
            )

    async def report_conversions(
        self,
        message_ids: str | Iterable[str],
        type: str | None = None,
        *,
        max_retries: int | None = None,
    ) -> list[str]:
        """Mark messages as converted (``POST /conversionsinfos``); returns the ids BICS refused.

        ``type`` names the protocol the messages were sent with (off the wire when None). BICS's
        200 body is empty when every id was taken, else the ids that are not valid, as a JSON
        array or as ``{"message_id": [...]}``: all three are read.
        """
        ids = _message_ids(message_ids)
        if type is not None:
            _non_empty(type, "type")
        body = MessageIds(message_ids=ids, type=type)
        with self._call("report_conversions") as call:
            response = await self._request(
                call,
                "POST",
                "/conversionsinfos",
                json_body=unstructure(body),
                expected=(200, 201, 202, 204),
                max_retries=max_retries,
            )
            try:
                return parse_refused_ids(response.content)
            except WireFormatError as exc:
                message = f"{response.request.method} {response.request.url.path}: {exc}"
                raise APIResponseValidationError(message, response=response) from None

    def send_many(
        self, messages: Iterable[Message], *, concurrency: int = 16
    ) -> AsyncIterator[BulkResult]:
        """Send many messages with at most ``concurrency`` in flight; yields results as they finish.

        Every message taken from ``messages`` gets exactly one result, carrying the message and
        either ``result`` or ``error`` (whatever the send raised: an :class:`OpenSMSError`, or any
        other exception); one failure does not stop the others. Messages are read from
        ``messages`` lazily, so it may be a generator; if reading it raises, no more are taken,
        the results of those already taken are yielded, then that exception is raised.
        """
        return run_bulk(self._send_one, messages, concurrency=concurrency)

    async def _send_one(self, message: Message) -> SendResult:
        if not isinstance(message, Message):
            raise InvalidMessageError(
                f"send_many takes Message objects, not {type(message).__name__}"
            )
        return await self.send_message(
            message.sender,
            message.to,
            message.text,
            sender_name=message.sender_name,
            client_correlator=message.client_correlator,
            callback_data=message.callback_data,
            notify_url=message.notify_url,
            asynchronous=message.asynchronous,
            final_delivery=message.final_delivery,
        )

    # --- the request loop --------------------------------------------------------------------

    async def _request(
        self,
        call: Call,
        method: str,
        path: str,
        *,
        expected: tuple[int, ...],
        json_body: Mapping[str, Any] | None = None,
        max_retries: int | None = None,
        secrets: tuple[str, ...] = (),
        gone_is_done: bool = False,
    ) -> httpx.Response:
        """The answer of the API to one logical call, retried as the policy says; ``call`` is
        kept up to date (its attempt, the status of the API's last answer) for its span, its
        measurement and its log records."""
        if self._state is CLOSED:
            raise self._unusable()
        retries = self.max_retries if max_retries is None else max_retries
        content = None if json_body is None else encode_json(json_body)
        attempt = 0
        while True:
            call.attempt, call.status = attempt + 1, None
            try:
                response = await self._attempt(call, method, path, content)
            except APIConnectionError as exc:
                delay = self._delay_after(attempt, retries, None)
                if delay is None:
                    raise
                kind = type(exc).__name__
                _log_retry(
                    call, kind, "%s %s failed (%s); retry in %.2fs", method, path, kind, delay
                )
            except APIStatusError as exc:  # only the token endpoint raises one from an attempt
                delay = self._token_delay(exc, attempt, retries)
                if delay is None:
                    raise
                message = "token request answered %d; retry in %.2fs"
                _log_retry(call, type(exc).__name__, message, exc.status_code, delay)
            else:
                call.status = response.status_code
                if response.status_code in expected:
                    return response
                if gone_is_done and attempt > 0 and response.status_code == 404:
                    return response  # an earlier attempt did it and its answer was lost
                error = make_status_error(response, secrets=(*self._secrets, *secrets))
                delay = self._status_delay(error, attempt, retries)
                if delay is None:
                    raise error
                status = error.status_code
                message = "%s %s answered %d; retry in %.2fs"
                _log_retry(call, str(status), message, method, path, status, delay)
            await self._sleep(delay)
            attempt += 1

    def _delay_after(self, attempt: int, retries: int, retry_after: float | None) -> float | None:
        if attempt >= retries:
            return None
        return retry_delay(attempt, retry_after, self._random)

    def _status_delay(self, error: APIStatusError, attempt: int, retries: int) -> float | None:
        if isinstance(error, RateLimitError):
            if self.limiter is not None:
                self.limiter.pause(error.retry_after)
            return self._delay_after(attempt, retries, error.retry_after)
        if error.status_code == 401 and attempt == 0 and isinstance(self._auth, OAuthTokenAuth):
            # The token was revoked or expired early: forget it (only it, not a newer one that
            # another caller fetched meanwhile) and try again with a fresh one.
            self._auth.invalidate(error.response.request.headers.get("authorization", ""))
            return 0.0 if retries > 0 else None
        return self._retry_status(error, attempt, retries)

    def _token_delay(self, error: APIStatusError, attempt: int, retries: int) -> float | None:
        # The identity server's 429 says nothing of the API's quota: the limiter is not paused.
        if isinstance(error, RateLimitError):
            return self._delay_after(attempt, retries, error.retry_after)
        return self._retry_status(error, attempt, retries)

    def _retry_status(self, error: APIStatusError, attempt: int, retries: int) -> float | None:
        if not should_retry_status(error.status_code):
            return None
        retry_after = parse_retry_after(error.response.headers.get("retry-after"), time.time())
        return self._delay_after(attempt, retries, retry_after)

    async def _attempt(
        self, call: Call, method: str, path: str, content: bytes | None
    ) -> httpx.Response:
        if self.limiter is None:
            return await self._send(call, method, path, content)
        async with self.limiter.slot():
            return await self._send(call, method, path, content)

    async def _send(
        self, call: Call, method: str, path: str, content: bytes | None
    ) -> httpx.Response:
        async with self._in_flight:
            headers = {"Authorization": await self._auth.header(self._wire)}
            if content is not None:
                headers["Content-Type"] = "application/json"
            request = self._wire.build(method, self._url(path), content=content, headers=headers)
            started = time.perf_counter()
            response = await self._wire.send(request)
            if logger.isEnabledFor(logging.DEBUG):  # spare building the arguments otherwise
                elapsed = (time.perf_counter() - started) * 1000
                status, sent_to = response.status_code, request.url.path
                fields = call.fields()
                fields[HTTP_STATUS_CODE] = status  # this answer's (the call sets it after)
                logger.debug(
                    "%s %s -> %d in %.1f ms", method, sent_to, status, elapsed, extra=fields
                )
            return response

    def _url(self, path: str) -> httpx.URL:
        """The absolute URL of ``path``, parsed once per path: parsing is the costly part of
        building a request for httpx, and a service sends from the same few senders."""
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()  # poll paths are one per request id: never let them pile up
            url = self._urls[path] = httpx.URL(self.base_url + path)
        return url

    # --- the callback subscriptions (delivery infos, inbound messages): one shape, two paths --

    async def _create_callback(
        self, operation: str, path: str, subscription: S, max_retries: int | None
    ) -> S:
        """POST ``subscription`` to ``path``; BICS's echo of it, or it when the body is empty.

        Its security token is a secret of the call: it is kept out of every error it raises.
        """
        secrets = (subscription.security_token,)
        with self._call(operation) as call:
            response = await self._request(
                call,
                "POST",
                path,
                json_body={"callback": unstructure(subscription)},
                expected=(200, 201),
                max_retries=max_retries,
                secrets=secrets,
            )
            if not response.content:
                return subscription
            return self._parse(response, "callback", type(subscription), secrets=secrets)

    async def _get_callback(
        self, operation: str, path: str, cls: type[S], max_retries: int | None
    ) -> S | None:
        """The subscription at ``path`` read as ``cls``, or None when the account has none."""
        with self._call(operation) as call:
            try:
                response = await self._request(
                    call, "GET", path, expected=(200,), max_retries=max_retries
                )
            except NotFoundError:
                return None  # no subscription: an answer, not a failure of the call
            return self._parse(response, "callback", cls)

    async def _delete_callback(self, operation: str, path: str, max_retries: int | None) -> None:
        """DELETE the subscription at ``path``; a retry that finds it gone counts as done."""
        with self._call(operation) as call:
            await self._request(
                call,
                "DELETE",
                path,
                expected=(200, 202, 204),
                max_retries=max_retries,
                gone_is_done=True,
            )

    def _parse(
        self, response: httpx.Response, root: str, cls: type[T], *, secrets: tuple[str, ...] = ()
    ) -> T:
        try:
            payload = decode_json(response.content)
        except WireFormatError as exc:
            raise APIResponseValidationError(
                f"{response.request.method} {response.request.url.path}: the body is {exc}",
                response=response,
            ) from None
        node = payload.get(root, payload) if isinstance(payload, dict) else payload
        try:
            return structure(node, cls)
        except WireFormatError as exc:
            message = f"{response.request.method} {response.request.url.path}: {exc}"
            raise APIResponseValidationError(message, response=response) from None


def _log_retry(call: Call, error: str, message: str, *args: object) -> None:
    """A DEBUG record of a retry to come (outcome ``retry``, with the ``error.type`` of the
    attempt that failed) and the call's fields."""
    if logger.isEnabledFor(logging.DEBUG):  # spare building the fields otherwise
        logger.debug(message, *args, extra=call.fields("retry", error))


def _default_in_flight(
    transport: httpx.AsyncBaseTransport | None, default: bool, proxies: dict[str, str | None]
) -> int:
    """``max_in_flight`` when none is given: more over aiohttp, whose cost per request does not
    grow with its connections, than over httpx's own pool (a client or transport passed in, or a
    proxy from the environment), whose does."""
    over_aiohttp = isinstance(transport, AiohttpTransport) or default
    if over_aiohttp and not any(url is not None for url in proxies.values()):
        return DEFAULT_MAX_IN_FLIGHT
    return DEFAULT_MAX_CONNECTIONS


def _make_auth(
    api_key: str | None, oauth: OAuthClientCredentials | None
) -> tuple[Authenticator, tuple[str, ...]]:
    if oauth is not None:
        if api_key is not None:
            raise ValueError("Give either api_key or oauth, not both")
        return OAuthTokenAuth(oauth), (oauth.client_secret,)
    key = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
    if not key:
        raise OpenSMSError(
            f"No credentials: pass api_key=..., set {ENV_API_KEY}, "
            "or pass oauth=OAuthClientCredentials(...)"
        )
    return ApiKeyAuth(key), (key,)


def _base_url(base_url: str | None) -> str:
    url = check_text(
        base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL,
        "base_url",
        InvalidBaseURLError,
    )
    if not _is_http_url(url):
        source = "base_url" if base_url else f"base_url (from {ENV_BASE_URL})"
        raise InvalidBaseURLError(
            f"{source} must be an absolute http:// or https:// URL such as "
            f"'https://opensms.api.bics.com/smsmessaging/v1', got {url[:80]!r}"
        )
    return url.rstrip("/")


def _is_http_url(url: str) -> bool:
    if any(char.isspace() for char in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of 0-65535
        httpx.URL(url)  # what every request will parse: refuse now what would fail then
    except (ValueError, httpx.InvalidURL):
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _recipients(to: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(to, str):
        items = [to]
    elif isinstance(to, Iterable):
        items = list(to)
    else:
        raise InvalidAddressError(
            f"to must be a number or an iterable of numbers, not {type(to).__name__}"
        )
    recipients = tuple(dict.fromkeys(normalize_address(item) for item in items))
    if not recipients:
        raise InvalidMessageError("to must name at least one recipient")
    return recipients


def _check_optional_text(value: str | None, name: str) -> None:
    if value is not None:
        check_text(value, name)


def _check_https(url: str, name: str) -> None:
    check_text(url, name, InvalidCallbackURLError)
    try:
        parts = urlsplit(url)
        valid = parts.scheme == "https" and bool(parts.hostname)
    except ValueError:  # e.g. "https://[x": a malformed IPv6 host
        valid = False
    if not valid:
        raise InvalidCallbackURLError(f"{name} must be an absolute https:// URL, got {url[:80]!r}")


def _check_flag(value: object, name: str) -> None:
    if value is not None and not isinstance(value, bool):
        raise InvalidMessageError(f"{name} must be True, False or None, got {type(value).__name__}")


def _check_token(security_token: object) -> None:
    if not check_text(security_token, "security_token"):
        raise InvalidMessageError("security_token must be a non-empty string")


MAX_INBOUND_BATCH = 200
"""The largest ``maxBatchSize`` BICS allows when polling an inbox."""


def _batch_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INBOUND_BATCH:
        shown = repr(value) if isinstance(value, int) else type(value).__name__
        raise ValidationError(
            f"max_batch_size must be an int from 0 to {MAX_INBOUND_BATCH} or None, got {shown}"
        )
    return value


def _non_empty(value: object, name: str) -> str:
    if not check_text(value, name).strip():
        raise InvalidMessageError(f"{name} must be a non-empty string")
    return str(value)


def _message_ids(message_ids: str | Iterable[str]) -> list[str]:
    if isinstance(message_ids, str):
        items: list[object] = [message_ids]
    elif isinstance(message_ids, Iterable):
        items = list(message_ids)
    else:
        raise InvalidMessageError(
            f"message_ids must be a list of ids, not {type(message_ids).__name__}"
        )
    ids = list(dict.fromkeys(_non_empty(item, "each message id") for item in items))
    if not ids:
        raise InvalidMessageError("message_ids must name at least one id")
    return ids


def _send_result(
    response: httpx.Response,
    echoed: OutboundMessageRequest,
    sender: str,
    recipients: tuple[str, ...],
    correlator: str,
    parts: int,
) -> SendResult:
    location = response.headers.get("location")
    request_id = request_id_from_url(echoed.resource_url) or request_id_from_url(location)
    if request_id is None:
        raise APIResponseValidationError(
            "The send response names no request id (no resourceURL nor Location)", response=response
        )
    infos = echoed.delivery_info_list.delivery_infos if echoed.delivery_info_list else []
    return SendResult(
        request_id=request_id,
        sender=sender,
        resource_url=echoed.resource_url or location,
        delivery_infos=infos,
        recipients=recipients,
        client_correlator=echoed.client_correlator or correlator,
        parts=parts,
        location=location,
        traceparent=current_traceparent(),  # the send's span: it is current here
    )
