"""Unit tests of the HTTP layer of OpenSMSClient, with respx standing in for the API."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from opensms_async import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    DeliveryStatus,
    InvalidAddressError,
    InvalidCallbackURLError,
    InvalidMessageError,
    InvalidSenderError,
    Message,
    NotAcceptableError,
    NotFoundError,
    OAuthClientCredentials,
    OpenSMSClient,
    OpenSMSError,
    PermissionDeniedError,
    RateLimiter,
    RateLimitError,
    ServerError,
)

BASE = "https://api.test/smsmessaging/v1"
KEY = "key-4f9d2c7b1e"
SENDER = "tel:+32123456"
SEND_URL = f"{BASE}/outbound/tel%3A%2B32123456/requests"
RESOURCE = f"{BASE}/outbound/tel%3A%2B32123456/requests/req-1"


def send_response(
    addresses: list[str], correlator: str = "c-1", rid: str = "req-1"
) -> dict[str, Any]:
    """A 201 body as the spec shows it."""
    resource = f"{BASE}/outbound/tel%3A%2B32123456/requests/{rid}"
    return {
        "outboundSMSMessageRequest": {
            "address": addresses,
            "senderAddress": SENDER,
            "outboundSMSTextMessage": {"message": "Hello"},
            "clientCorrelator": correlator,
            "resourceURL": resource,
            "deliveryInfoList": {
                "resourceURL": resource + "/deliveryInfos",
                "deliveryInfo": [
                    {"address": a, "deliveryStatus": "DeliveredToNetwork"} for a in addresses
                ],
            },
        }
    }


class Sleeps:
    """Records the delays the client asked to sleep, without sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeps() -> Sleeps:
    """A fake sleep."""
    return Sleeps()


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """A respx router in place of the API."""
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def client(sleeps: Sleeps) -> AsyncIterator[OpenSMSClient]:
    """A client with a fake sleep and a jitter source that always picks the ceiling."""
    async with OpenSMSClient(api_key=KEY, base_url=BASE, sleep=sleeps, random=lambda: 1.0) as c:
        yield c


def sent_bodies(route: respx.Route) -> list[dict[str, Any]]:
    """The JSON bodies a route received, in order."""
    return [json.loads(call.request.content) for call in route.calls]


async def test_send_message_wire_format(client: OpenSMSClient, api: respx.MockRouter) -> None:
    """A send posts the camelCase body to the percent-encoded sender path with the bearer key."""
    route = api.post("/outbound/tel%3A%2B32123456/requests").respond(
        201,
        json=send_response(["tel:+33612345678"]),
        headers={"Location": RESOURCE},
    )
    result = await client.send_message(SENDER, ["+33612345678"], "Hello", sender_name="shop")
    request = route.calls.last.request
    assert request.url.raw_path == b"/smsmessaging/v1/outbound/tel%3A%2B32123456/requests"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = json.loads(request.content)["outboundSMSMessageRequest"]
    assert body["address"] == ["tel:+33612345678"]
    assert body["senderAddress"] == SENDER
    assert body["outboundSMSTextMessage"] == {"message": "Hello"}
    assert body["senderName"] == "shop"
    assert uuid.UUID(body["clientCorrelator"])
    assert result.request_id == "req-1"
    assert result.recipients == ("tel:+33612345678",)
    assert result.delivery_infos[0].status is DeliveryStatus.DELIVERED_TO_NETWORK
    assert result.location == RESOURCE
    assert result.parts == 1


async def test_send_leaves_unset_bics_options_off_the_wire(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """Without asynchronous/final_delivery the body has neither key (BICS defaults apply)."""
    route = api.post(SEND_URL).respond(201, json=send_response(["tel:+331"]))
    await client.send_message(SENDER, "+331", "Hi")
    body = sent_bodies(route)[0]["outboundSMSMessageRequest"]
    assert "asynchronous" not in body
    assert "finalDelivery" not in body


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"asynchronous": True}, {"asynchronous": True}),
        ({"final_delivery": True}, {"finalDelivery": True}),
        (
            {"asynchronous": False, "final_delivery": False},
            {"asynchronous": False, "finalDelivery": False},
        ),
    ],
)
async def test_send_puts_given_bics_options_on_the_wire(
    client: OpenSMSClient, api: respx.MockRouter, kwargs: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Each option given, True or False, is sent under its camelCase name and no other is."""
    route = api.post(SEND_URL).respond(201, json=send_response(["tel:+331"]))
    await client.send_message(SENDER, "+331", "Hi", **kwargs)
    body = sent_bodies(route)[0]["outboundSMSMessageRequest"]
    assert {k: body[k] for k in ("asynchronous", "finalDelivery") if k in body} == expected


async def test_asynchronous_send_reports_message_accepted(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """An asynchronous send's MessageAccepted infos come back as DeliveryStatus members."""
    answer = send_response(["tel:+331", "tel:+332"])
    for info in answer["outboundSMSMessageRequest"]["deliveryInfoList"]["deliveryInfo"]:
        info |= {"deliveryStatus": "MessageAccepted", "deliveryStatusCode": 12}
    route = api.post(SEND_URL).respond(201, json=answer)
    result = await client.send_message(SENDER, ["+331", "+332"], "Hi", asynchronous=True)
    assert sent_bodies(route)[0]["outboundSMSMessageRequest"]["asynchronous"] is True
    assert [(i.status, i.status_code, i.is_final) for i in result.delivery_infos] == [
        (DeliveryStatus.MESSAGE_ACCEPTED, 12, False),
        (DeliveryStatus.MESSAGE_ACCEPTED, 12, False),
    ]


async def test_send_message_alphanumeric_sender_path(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """An alphanumeric sender travels percent-encoded in the path (ALPHA%20NUM)."""
    route = api.post(url__regex=r".*/requests$").respond(201, json=send_response(["tel:+331"]))
    await client.send_message("ALPHA NUM", "+331", "Hi")
    assert route.calls.last.request.url.raw_path.endswith(b"/outbound/ALPHA%20NUM/requests")


async def test_send_reports_parts_and_dedupes_recipients(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """Duplicate recipients go out once and the result says how many SMS parts the text takes."""
    route = api.post(SEND_URL).respond(201, json=send_response(["tel:+331", "tel:+332"]))
    result = await client.send_message(SENDER, ["+331", "tel:+332", "+331"], "x" * 161)
    assert sent_bodies(route)[0]["outboundSMSMessageRequest"]["address"] == ["tel:+331", "tel:+332"]
    assert result.parts == 2


async def test_request_id_from_location_when_body_has_none(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """The request id falls back to the Location header."""
    body = send_response(["tel:+331"])
    del body["outboundSMSMessageRequest"]["resourceURL"]
    api.post(SEND_URL).respond(201, json=body, headers={"Location": RESOURCE})
    assert (await client.send_message(SENDER, "+331", "Hi")).request_id == "req-1"


async def test_send_without_request_id_is_a_response_error(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """A 201 that names no request id raises APIResponseValidationError."""
    body = send_response(["tel:+331"])
    del body["outboundSMSMessageRequest"]["resourceURL"]
    api.post(SEND_URL).respond(201, json=body)
    with pytest.raises(APIResponseValidationError, match="request id"):
        await client.send_message(SENDER, "+331", "Hi")


async def test_retried_send_reuses_the_correlator(
    client: OpenSMSClient, api: respx.MockRouter, sleeps: Sleeps
) -> None:
    """Every retry of a send carries the same clientCorrelator and the same body."""
    route = api.post(SEND_URL).mock(
        side_effect=[
            httpx.Response(503),
            httpx.ReadError("reset"),
            httpx.Response(201, json=send_response(["tel:+331"])),
        ]
    )
    await client.send_message(SENDER, "+331", "Hi")
    bodies = sent_bodies(route)
    assert len(bodies) == 3
    assert bodies[0] == bodies[1] == bodies[2]
    assert sleeps.delays == [0.5, 1.0]


async def test_given_correlator_is_sent(client: OpenSMSClient, api: respx.MockRouter) -> None:
    """A caller's own correlator is used as is."""
    route = api.post(SEND_URL).respond(201, json=send_response(["tel:+331"], correlator="mine"))
    result = await client.send_message(SENDER, "+331", "Hi", client_correlator="mine")
    assert sent_bodies(route)[0]["outboundSMSMessageRequest"]["clientCorrelator"] == "mine"
    assert result.client_correlator == "mine"


async def test_backoff_schedule_and_give_up(
    client: OpenSMSClient, api: respx.MockRouter, sleeps: Sleeps
) -> None:
    """5xx are retried max_retries times with exponential backoff, then ServerError is raised."""
    route = api.get("/outbound/subscriptions").respond(502, text="bad gateway")
    with pytest.raises(ServerError) as info:
        await client.get_subscription(max_retries=4)
    assert route.call_count == 5
    assert sleeps.delays == [0.5, 1.0, 2.0, 4.0]
    assert info.value.status_code == 502
    assert info.value.body == "bad gateway"


async def test_full_jitter_uses_the_random_source(api: respx.MockRouter, sleeps: Sleeps) -> None:
    """Backoff delays are uniform below the exponential ceiling."""
    api.get("/outbound/subscriptions").respond(500)
    async with OpenSMSClient(
        api_key=KEY, base_url=BASE, sleep=sleeps, random=lambda: 0.25, max_retries=2
    ) as c:
        with pytest.raises(ServerError):
            await c.get_subscription()
    assert sleeps.delays == [0.125, 0.25]


async def test_retry_after_seconds_is_honoured(
    client: OpenSMSClient, api: respx.MockRouter, sleeps: Sleeps
) -> None:
    """A 429 with Retry-After: 7 waits 7 s before the retry."""
    api.get("/outbound/subscriptions").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(
                200, json={"callback": {"url": "https://x.test/cb", "securityToken": "t"}}
            ),
        ]
    )
    sub = await client.get_subscription()
    assert sub is not None and sub.url == "https://x.test/cb"
    assert sleeps.delays == [7.0]


async def test_retry_after_http_date_is_honoured(
    client: OpenSMSClient, api: respx.MockRouter, sleeps: Sleeps
) -> None:
    """A Retry-After given as an HTTP-date waits until that moment."""
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    api.get("/outbound/subscriptions").mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": when}), httpx.Response(404)]
    )
    assert await client.get_subscription() is None
    assert 15 < sleeps.delays[0] <= 21


async def test_retry_after_beyond_the_cap_raises_at_once(
    client: OpenSMSClient, api: respx.MockRouter, sleeps: Sleeps
) -> None:
    """A Retry-After longer than the cap raises RateLimitError instead of blocking."""
    route = api.get("/outbound/subscriptions").respond(429, headers={"Retry-After": "3600"})
    with pytest.raises(RateLimitError) as info:
        await client.get_subscription()
    assert info.value.retry_after == 3600
    assert route.call_count == 1
    assert sleeps.delays == []


async def test_client_errors_are_not_retried(client: OpenSMSClient, api: respx.MockRouter) -> None:
    """A 400 is raised on the first answer."""
    route = api.post(SEND_URL).respond(400)
    with pytest.raises(BadRequestError):
        await client.send_message(SENDER, "+331", "Hi")
    assert route.call_count == 1


async def test_max_retries_zero_per_client(api: respx.MockRouter, sleeps: Sleeps) -> None:
    """max_retries=0 on the client means one attempt."""
    route = api.get("/outbound/subscriptions").respond(503)
    async with OpenSMSClient(api_key=KEY, base_url=BASE, max_retries=0, sleep=sleeps) as c:
        with pytest.raises(ServerError):
            await c.get_subscription()
    assert route.call_count == 1


async def test_connection_errors_become_typed(client: OpenSMSClient, api: respx.MockRouter) -> None:
    """Transport failures raise APIConnectionError / APITimeoutError, never a raw httpx error."""
    api.get("/outbound/subscriptions").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(APIConnectionError) as info:
        await client.get_subscription()
    assert not isinstance(info.value, APITimeoutError)
    api.get("/outbound/subscriptions").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(APITimeoutError):
        await client.get_subscription()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (500, ServerError),
        (503, ServerError),
    ],
)
async def test_status_maps_to_error_class(
    client: OpenSMSClient, api: respx.MockRouter, status: int, error: type[Exception]
) -> None:
    """Each documented status raises its own subclass carrying status_code and the raw body."""
    api.get(url__regex=r".*/deliveryInfos$").respond(status, text="")
    with pytest.raises(error) as info:
        await client.get_delivery_infos(SENDER, "req-1", max_retries=0)
    assert getattr(info.value, "status_code", None) == status
    assert isinstance(info.value, OpenSMSError)


async def test_oma_request_error_is_parsed(client: OpenSMSClient, api: respx.MockRouter) -> None:
    """An OMA requestError body is parsed into error.message_id and a readable message."""
    api.post(SEND_URL).respond(
        400,
        json={
            "requestError": {
                "serviceException": {
                    "messageId": "SVC0002",
                    "text": "Invalid input value for message part %1",
                    "variables": ["address"],
                }
            }
        },
    )
    with pytest.raises(BadRequestError) as info:
        await client.send_message(SENDER, "+331", "Hi")
    assert info.value.error is not None
    assert info.value.error.message_id == "SVC0002"
    assert "Invalid input value for message part address" in str(info.value)


async def test_not_acceptable_carries_the_reason(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """406 on subscribe raises NotAcceptableError with the parsed NotAcceptableCallback."""
    api.post("/outbound/subscriptions").respond(
        406, json={"code": "NOT_HTTPS", "description": "callback must be https"}
    )
    with pytest.raises(NotAcceptableError) as info:
        await client.create_subscription("https://me.test/cb", "tok-123456")
    assert info.value.not_acceptable is not None
    assert info.value.not_acceptable.code == "NOT_HTTPS"


async def test_subscription_round_trip(client: OpenSMSClient, api: respx.MockRouter) -> None:
    """create, get and delete speak the callback wrapper; get returns None on 404."""
    cb = {"callback": {"url": "https://me.test/cb", "securityToken": "tok-123456"}}
    create = api.post("/outbound/subscriptions").respond(201, json=cb)
    sub = await client.create_subscription("https://me.test/cb", "tok-123456")
    assert json.loads(create.calls.last.request.content) == cb
    assert sub.security_token == "tok-123456"
    assert "tok-123456" not in repr(sub)
    api.get("/outbound/subscriptions").respond(404)
    assert await client.get_subscription() is None
    delete = api.delete("/outbound/subscriptions").respond(204)
    await client.delete_subscription()
    assert delete.call_count == 1


async def test_delete_whose_answer_was_lost_succeeds(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """A DELETE retried after a lost answer that then finds nothing counts as done."""
    api.delete("/outbound/subscriptions").mock(
        side_effect=[httpx.ReadError("lost"), httpx.Response(404)]
    )
    await client.delete_subscription()


async def test_delete_of_nothing_raises_not_found(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """A first DELETE answered 404 raises NotFoundError."""
    api.delete("/outbound/subscriptions").respond(404)
    with pytest.raises(NotFoundError):
        await client.delete_subscription()


async def test_delivery_infos_are_parsed(client: OpenSMSClient, api: respx.MockRouter) -> None:
    """deliveryInfos keep v3 fields and unknown statuses as strings."""
    route = api.get(url__regex=r".*/deliveryInfos$").respond(
        200,
        json={
            "deliveryInfoList": {
                "resourceURL": RESOURCE + "/deliveryInfos",
                "smsParts": 3,
                "deliveryInfo": [
                    {
                        "address": "tel:+331",
                        "deliveryStatus": "PartiallyDelivered",
                        "deliveryStatusCode": 13,
                        "smsPartsDeliveredToTerminal": 2,
                        "newField": True,
                    },
                    {"address": "tel:+332", "deliveryStatus": "SomethingNew"},
                ],
            }
        },
    )
    infos = await client.get_delivery_infos("tel:+32123456", "req/1")
    assert route.calls.last.request.url.raw_path.endswith(b"/requests/req%2F1/deliveryInfos")
    assert infos.sms_parts == 3
    assert infos.delivery_infos[0].parts_delivered == 2
    assert infos.delivery_infos[0].status is DeliveryStatus.PARTIALLY_DELIVERED
    assert infos.delivery_infos[1].status == "SomethingNew"
    assert not infos.delivery_infos[1].is_final


async def test_malformed_success_body_is_a_typed_error(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """A 200 that is not JSON, or lacks required fields, raises APIResponseValidationError."""
    api.get(url__regex=r".*/deliveryInfos$").respond(200, text="<html>")
    with pytest.raises(APIResponseValidationError):
        await client.get_delivery_infos(SENDER, "r")
    api.get(url__regex=r".*/deliveryInfos$").respond(
        200, json={"deliveryInfoList": {"deliveryInfo": [{"address": "tel:+1"}]}}
    )
    with pytest.raises(APIResponseValidationError, match="DeliveryInfo"):
        await client.get_delivery_infos(SENDER, "r")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"to": []}, InvalidMessageError),
        ({"to": ["0612345678"]}, InvalidAddressError),
        ({"to": ["+33 6 12"]}, InvalidAddressError),
        ({"sender": "TOOLONGSENDER1"}, InvalidSenderError),
        ({"sender": "1234567890123456"}, InvalidSenderError),
        ({"text": ""}, InvalidMessageError),
        ({"notify_url": "http://me.test/cb"}, InvalidCallbackURLError),
        ({"asynchronous": "yes"}, InvalidMessageError),
        ({"final_delivery": 1}, InvalidMessageError),
    ],
)
async def test_bad_input_fails_before_any_request(
    client: OpenSMSClient, api: respx.MockRouter, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    """Invalid sends raise a ValueError subclass and make no request."""
    route = api.post(url__regex=".*").respond(201, json=send_response(["tel:+331"]))
    args: dict[str, Any] = {"sender": SENDER, "to": ["+331"], "text": "Hi", **kwargs}
    with pytest.raises(error) as info:
        await client.send_message(**args)
    assert isinstance(info.value, ValueError)
    assert route.call_count == 0


@pytest.mark.parametrize("url", ["http://me.test/cb", "ftp://me.test", "https://", "me.test/cb"])
async def test_subscription_url_must_be_https(
    client: OpenSMSClient, api: respx.MockRouter, url: str
) -> None:
    """A non-https callback URL is refused client-side."""
    route = api.post("/outbound/subscriptions").respond(201)
    with pytest.raises(InvalidCallbackURLError):
        await client.create_subscription(url, "tok-123456")
    assert route.call_count == 0


async def test_secrets_never_leak(
    api: respx.MockRouter, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    """API key and security token stay out of reprs, error messages and DEBUG logs."""
    token = "tok-secret-98765"
    caplog.set_level(logging.DEBUG)
    api.post("/outbound/subscriptions").respond(400, text=f"bad token {token} for key {KEY}")
    api.get("/outbound/subscriptions").mock(side_effect=httpx.ConnectError(f"boom {KEY}"))
    async with OpenSMSClient(api_key=KEY, base_url=BASE, sleep=sleeps) as c:
        with pytest.raises(BadRequestError) as bad:
            await c.create_subscription("https://me.test/cb", token)
        with pytest.raises(APIConnectionError) as conn:
            await c.get_subscription()
        texts = [repr(c), str(bad.value), bad.value.body, str(conn.value), repr(conn.value)]
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        assert KEY not in text
        assert token not in text


async def test_oauth_token_is_shared_and_cached(sleeps: Sleeps) -> None:
    """Concurrent calls share one token fetch, and the token is reused until near expiry."""
    with respx.mock(assert_all_called=False) as router:
        token_route = router.post("https://idm.test/token").respond(
            200, json={"access_token": "at-1", "expires_in": 3600, "token_type": "Bearer"}
        )
        api_route = router.get(f"{BASE}/outbound/subscriptions").respond(404)
        creds = OAuthClientCredentials(
            "cid", "csecret-77", "sms-a2p-business-class", token_url="https://idm.test/token"
        )
        async with OpenSMSClient(oauth=creds, base_url=BASE, sleep=sleeps) as c:
            await asyncio.gather(*(c.get_subscription() for _ in range(10)))
        assert token_route.call_count == 1
        form = dict(
            pair.split("=", 1)
            for pair in token_route.calls.last.request.content.decode().split("&")
        )
        assert form["grant_type"] == "client_credentials"
        assert form["scope"] == "sms+sms-a2p-business-class"
        assert {c.request.headers["authorization"] for c in api_route.calls} == {"Bearer at-1"}
        assert "csecret-77" not in repr(creds)


async def test_oauth_token_refreshed_on_401(sleeps: Sleeps) -> None:
    """A 401 with a cached token fetches a new token once and retries."""
    with respx.mock(assert_all_called=False) as router:
        router.post("https://idm.test/token").mock(
            side_effect=[
                httpx.Response(200, json={"access_token": "old", "expires_in": 3600}),
                httpx.Response(200, json={"access_token": "new", "expires_in": 3600}),
            ]
        )
        router.get(f"{BASE}/outbound/subscriptions").mock(
            side_effect=lambda request: httpx.Response(
                404 if request.headers["authorization"] == "Bearer new" else 401
            )
        )
        creds = OAuthClientCredentials(
            "cid", "sec-123456", "sms-a2p-ott", token_url="https://idm.test/token"
        )
        async with OpenSMSClient(oauth=creds, base_url=BASE, sleep=sleeps) as c:
            assert await c.get_subscription() is None


async def test_oauth_refused_credentials(sleeps: Sleeps) -> None:
    """Refused client credentials raise AuthenticationError without echoing the secret."""
    with respx.mock(assert_all_called=False) as router:
        router.post("https://idm.test/token").respond(
            401, json={"error": "invalid_client", "error_description": "secret sec-abcdef wrong"}
        )
        creds = OAuthClientCredentials(
            "cid", "sec-abcdef", "sms-a2p-ott", token_url="https://idm.test/token"
        )
        async with OpenSMSClient(oauth=creds, base_url=BASE, sleep=sleeps) as c:
            with pytest.raises(AuthenticationError) as info:
                await c.get_subscription()
    assert "invalid_client" in str(info.value)
    assert "sec-abcdef" not in str(info.value)


async def test_limiter_pauses_everyone_after_429(api: respx.MockRouter, sleeps: Sleeps) -> None:
    """After a 429 with Retry-After the shared limiter holds the next call for that long."""
    now = [1000.0]

    async def limiter_sleep(delay: float) -> None:
        await sleeps(delay)
        now[0] += delay

    limiter = RateLimiter(requests_per_hour=100, clock=lambda: now[0], sleep=limiter_sleep)
    api.get("/outbound/subscriptions").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "30"}), httpx.Response(404)]
    )
    async with OpenSMSClient(
        api_key=KEY, base_url=BASE, limiter=limiter, sleep=sleeps, max_retries=0
    ) as c:
        with pytest.raises(RateLimitError):
            await c.get_subscription()
        assert limiter.paused_for == 30
        assert await c.get_subscription() is None
    assert sleeps.delays == [30.0]


async def test_limiter_hourly_budget() -> None:
    """The hourly budget admits N requests, then waits until the oldest leaves the window."""
    now = [0.0]
    waited: list[float] = []

    async def sleep(delay: float) -> None:
        waited.append(delay)
        now[0] += delay

    limiter = RateLimiter(requests_per_hour=3, clock=lambda: now[0], sleep=sleep)
    for step in range(4):
        async with limiter.slot():
            now[0] += 1.0 if step < 3 else 0.0
    assert waited == [3600.0 - 3.0]


async def test_send_many_bounds_concurrency_and_reports_each(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """send_many keeps at most `concurrency` sends in flight and yields one result per message."""
    active = 0
    peak = 0

    async def respond(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        body = json.loads(request.content)["outboundSMSMessageRequest"]
        if body["address"] == ["tel:+339"]:
            return httpx.Response(400)
        return httpx.Response(201, json=send_response(body["address"], rid=body["address"][0]))

    api.post(SEND_URL).mock(side_effect=respond)
    messages = (Message(SENDER, f"+33{i}", "Hi") for i in range(10))
    results = [r async for r in client.send_many(messages, concurrency=3)]
    assert len(results) == 10
    assert peak == 3
    failed = [r for r in results if not r.ok]
    assert len(failed) == 1 and isinstance(failed[0].error, BadRequestError)
    assert failed[0].message.to == "+339"


async def test_send_many_passes_every_option_of_a_message(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """A Message's notify URL, callback data and BICS v3 flags reach the wire as send_message's."""
    bodies: list[dict[str, Any]] = []

    def respond(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)["outboundSMSMessageRequest"]
        bodies.append(body)
        return httpx.Response(201, json=send_response(body["address"]))

    api.post(SEND_URL).mock(side_effect=respond)
    message = Message(
        SENDER,
        "+331",
        "Hi",
        callback_data="order-7",
        notify_url="https://me.example/cb",
        asynchronous=True,
        final_delivery=False,
    )
    [result] = [r async for r in client.send_many([message])]
    assert result.ok
    [body] = bodies
    assert (body["callbackData"], body["notifyURL"]) == ("order-7", "https://me.example/cb")
    assert (body["asynchronous"], body["finalDelivery"]) == (True, False)


async def test_request_urls_are_right_and_their_cache_stays_bounded(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """Each poll goes to its own request's URL, and polling 300 request ids (one parsed URL
    each) grows the client's URL cache no further than its bound."""
    from opensms_async._client import _URL_CACHE_SIZE

    seen: list[str] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"deliveryInfoList": {"deliveryInfo": []}})

    api.get(url__regex=r".*/deliveryInfos$").mock(side_effect=respond)
    for i in range(300):
        await client.get_delivery_infos(SENDER, f"req-{i}")
    await client.get_delivery_infos(SENDER, "req-7")
    assert seen[7] == seen[-1] == f"{SEND_URL}/req-7/deliveryInfos"
    assert len(set(seen)) == 300
    assert 0 < len(client._urls) <= _URL_CACHE_SIZE


async def test_lifecycle(api: respx.MockRouter) -> None:
    """A client opens once, closes twice safely, refuses calls once closed, spares given clients."""
    http = httpx.AsyncClient()
    client = OpenSMSClient(api_key=KEY, base_url=BASE, http_client=http)
    async with client:
        with pytest.raises(RuntimeError):
            await client.__aenter__()
    await client.aclose()
    with pytest.raises(RuntimeError):
        await client.get_subscription()
    assert not http.is_closed
    await http.aclose()


def test_configuration_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENSMS_API_KEY and OPENSMS_BASE_URL configure a client; no key is a clear error."""
    monkeypatch.setenv("OPENSMS_API_KEY", "env-key-123")
    monkeypatch.setenv("OPENSMS_BASE_URL", "https://other.test/sms/v3/")
    client = OpenSMSClient()
    assert client.base_url == "https://other.test/sms/v3"
    assert "env-key-123" not in repr(client)
    monkeypatch.delenv("OPENSMS_API_KEY")
    with pytest.raises(OpenSMSError, match="OPENSMS_API_KEY"):
        OpenSMSClient()


def test_timeouts_are_on_by_default() -> None:
    """A default client has finite connect and read timeouts."""
    client = OpenSMSClient(api_key=KEY)
    timeout = client._http.timeout
    assert timeout.connect is not None and timeout.read is not None
