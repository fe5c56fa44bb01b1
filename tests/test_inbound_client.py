"""Unit tests of the inbound and conversion methods of OpenSMSClient, with respx as the API."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from opensms_async import (
    APIResponseValidationError,
    BadRequestError,
    InboundSmsMessage,
    InboundSubscription,
    InvalidAddressError,
    InvalidCallbackURLError,
    InvalidMessageError,
    NotFoundError,
    OAuthClientCredentials,
    OpenSMSClient,
    PermissionDeniedError,
    ValidationError,
)

BASE = "https://api.test/sms/v3"
KEY = "key-4f9d2c7b1e"
TOKEN = "in-tok-5e8a1c"
SUBSCRIPTIONS = "/inbound/subscriptions"
NUMBER = "tel:+32470000000"
MESSAGES = "/inbound/registrations/tel%3A%2B32470000000/messages"
RAW_MESSAGES = b"/sms/v3" + MESSAGES.encode()
PART = {
    "dateTime": "2021-11-24T09:13:40.639",
    "destinationAddress": "32470000000",
    "senderAddress": "32470000001",
    "messageId": "m-1",
    "message": "Hello ",
    "udhMessageId": 7,
    "concatPart": 1,
    "concatTotal": 2,
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


def body_of(route: respx.Route) -> Any:
    """The JSON body of the last request a route received."""
    return json.loads(route.calls.last.request.content)


def page(*messages: dict[str, Any], pending: int | None = None) -> dict[str, Any]:
    """A 200 body of the inbox, in the InboundSMSMessageList shape."""
    body: dict[str, Any] = {
        "inboundSMSMessage": list(messages),
        "numberOfMessagesInThisBatch": len(messages),
    }
    if pending is not None:
        body["totalNumberOfPendingMessages"] = pending
    return {"inboundSMSMessageList": body}


# -- the inbound subscription ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("concat", "expected"),
    [(None, {}), (False, {"concat": False}), (True, {"concat": True})],
)
async def test_create_inbound_subscription_wire_body(
    client: OpenSMSClient,
    api: respx.MockRouter,
    concat: bool | None,
    expected: dict[str, Any],
) -> None:
    """The callback wrapper carries url and token, and concat only when it is given."""
    callback = {"url": "https://me.test/in", "securityToken": TOKEN, **expected}
    route = api.post(SUBSCRIPTIONS).respond(201, json={"callback": callback})
    sub = await client.create_inbound_subscription("https://me.test/in", TOKEN, concat)
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert body_of(route) == {"callback": callback}
    assert sub == InboundSubscription("https://me.test/in", TOKEN, concat)
    assert TOKEN not in repr(sub)


async def test_create_inbound_subscription_with_an_empty_answer(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """A 201 without a body returns the subscription as sent."""
    api.post(SUBSCRIPTIONS).respond(201)
    sub = await client.create_inbound_subscription("https://me.test/in", TOKEN, concat=False)
    assert sub == InboundSubscription("https://me.test/in", TOKEN, False)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"url": "http://me.test/in"}, InvalidCallbackURLError),
        ({"url": "https://"}, InvalidCallbackURLError),
        ({"url": "me.test/in"}, InvalidCallbackURLError),
        ({"security_token": ""}, InvalidMessageError),
        ({"concat": "yes"}, InvalidMessageError),
        ({"concat": 1}, InvalidMessageError),
    ],
)
async def test_create_inbound_subscription_refuses_bad_input_before_any_request(
    client: OpenSMSClient, api: respx.MockRouter, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    """A non-https URL, an empty token or a non-bool concat fail client-side, with no request."""
    route = api.post(SUBSCRIPTIONS).respond(201)
    args: dict[str, Any] = {"url": "https://me.test/in", "security_token": TOKEN, **kwargs}
    with pytest.raises(error):
        await client.create_inbound_subscription(**args)
    assert route.call_count == 0


async def test_inbound_token_never_leaks(
    api: respx.MockRouter, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    """The security token stays out of error messages, bodies and DEBUG logs, even if echoed."""
    caplog.set_level(logging.DEBUG)
    api.post(SUBSCRIPTIONS).respond(400, text=f"bad token {TOKEN}")
    async with OpenSMSClient(api_key=KEY, base_url=BASE, sleep=sleeps) as c:
        with pytest.raises(BadRequestError) as bad:
            await c.create_inbound_subscription("https://me.test/in", TOKEN)
    texts = [str(bad.value), bad.value.body, repr(bad.value)]
    texts += [r.getMessage() for r in caplog.records]
    assert not [text for text in texts if TOKEN in text or KEY in text]


async def test_malformed_subscription_answer_does_not_show_the_token(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """A 201 of the wrong shape is APIResponseValidationError, and its message hides the token."""
    api.post(SUBSCRIPTIONS).respond(201, json={"callback": {"url": TOKEN}})
    with pytest.raises(APIResponseValidationError) as info:
        await client.create_inbound_subscription("https://me.test/in", TOKEN)
    assert TOKEN not in str(info.value)


async def test_get_inbound_subscription(client: OpenSMSClient, api: respx.MockRouter) -> None:
    """The subscription is read from the callback wrapper, concat included; 404 is None."""
    callback = {"url": "https://me.test/in", "securityToken": TOKEN, "concat": True}
    api.get(SUBSCRIPTIONS).mock(
        side_effect=[httpx.Response(200, json={"callback": callback}), httpx.Response(404)]
    )
    assert await client.get_inbound_subscription() == InboundSubscription(
        "https://me.test/in", TOKEN, True
    )
    assert await client.get_inbound_subscription() is None


async def test_delete_inbound_subscription(client: OpenSMSClient, api: respx.MockRouter) -> None:
    """DELETE succeeds on 204; a first 404 is NotFoundError."""
    route = api.delete(SUBSCRIPTIONS).mock(side_effect=[httpx.Response(204), httpx.Response(404)])
    await client.delete_inbound_subscription()
    with pytest.raises(NotFoundError):
        await client.delete_inbound_subscription()
    assert route.call_count == 2


async def test_retried_delete_that_finds_nothing_is_done(
    client: OpenSMSClient, api: respx.MockRouter, sleeps: Sleeps
) -> None:
    """A DELETE whose answer was lost, retried and answered 404, counts as done."""
    api.delete(SUBSCRIPTIONS).mock(side_effect=[httpx.ReadError("lost"), httpx.Response(404)])
    await client.delete_inbound_subscription()
    assert len(sleeps.delays) == 1


# -- polling the inbox ----------------------------------------------------------------------


async def test_get_inbound_messages_path_and_page(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """The number is percent-encoded in the path, no maxBatchSize by default, messages typed."""
    second = {**PART, "messageId": "m-2", "message": "world", "concatPart": 2}
    route = api.get(MESSAGES).respond(200, json=page(PART, second, pending=7))
    result = await client.get_inbound_messages(NUMBER)
    request = route.calls.last.request
    assert request.url.raw_path == RAW_MESSAGES
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert result.total_pending == 7
    assert result.messages_in_batch == 2
    first = result.messages[0]
    assert isinstance(first, InboundSmsMessage)
    assert (first.message_id, first.message, first.udh_message_id) == ("m-1", "Hello ", 7)
    assert (first.concat_part, first.concat_total) == (1, 2)
    assert first.date_time == "2021-11-24T09:13:40.639"
    assert [m.message_id for m in result.messages] == ["m-1", "m-2"]


@pytest.mark.parametrize(
    ("number", "raw"),
    [
        ("+32470000000", b"tel%3A%2B32470000000"),
        ("TEL:+32470000000", b"tel%3A%2B32470000000"),
        ("8850", b"tel%3A8850"),
        ("tel:8850", b"tel%3A8850"),
    ],
)
async def test_inbound_number_is_encoded_as_the_sender_is(
    client: OpenSMSClient, api: respx.MockRouter, number: str, raw: bytes
) -> None:
    """E.164 numbers and short codes are normalised and percent-encoded like a sender."""
    route = api.get(url__regex=r".*/messages$").respond(200, json=page())
    await client.get_inbound_messages(number)
    assert route.calls.last.request.url.raw_path == b"/sms/v3/inbound/registrations/" + raw + (
        b"/messages"
    )


@pytest.mark.parametrize("size", [0, 1, 50, 200])
async def test_max_batch_size_goes_in_the_query(
    client: OpenSMSClient, api: respx.MockRouter, size: int
) -> None:
    """A batch size from 0 to 200 is sent as maxBatchSize."""
    route = api.get(MESSAGES).respond(200, json=page())
    await client.get_inbound_messages(NUMBER, max_batch_size=size)
    assert route.calls.last.request.url.raw_path == RAW_MESSAGES + f"?maxBatchSize={size}".encode()


@pytest.mark.parametrize("size", [-1, 201, 10_000, True, False, 1.5, "20"])
async def test_bad_batch_size_fails_before_any_request(
    client: OpenSMSClient, api: respx.MockRouter, size: Any
) -> None:
    """Outside 0..200, not an int, or a bool: ValidationError, and nothing is fetched."""
    route = api.get(url__regex=".*").respond(200, json=page())
    with pytest.raises(ValidationError, match="max_batch_size"):
        await client.get_inbound_messages(NUMBER, max_batch_size=size)
    assert route.call_count == 0


@pytest.mark.parametrize("number", ["SHOP", "+0470", "tel:", "", "1" * 16, "+32 470", None])
async def test_bad_inbound_number_fails_before_any_request(
    client: OpenSMSClient, api: respx.MockRouter, number: Any
) -> None:
    """An alphanumeric name, a malformed or overlong number: InvalidAddressError, no request."""
    route = api.get(url__regex=".*").respond(200, json=page())
    with pytest.raises(InvalidAddressError, match="inbound number"):
        await client.get_inbound_messages(number)
    assert route.call_count == 0


@pytest.mark.parametrize("response", [httpx.Response(200), httpx.Response(204)])
async def test_an_empty_answer_is_an_empty_page(
    client: OpenSMSClient, api: respx.MockRouter, response: httpx.Response
) -> None:
    """A 200 or 204 without a body reads as no messages, total unknown."""
    api.get(MESSAGES).mock(return_value=response)
    result = await client.get_inbound_messages(NUMBER)
    assert (result.messages, result.total_pending) == ([], None)


@pytest.mark.parametrize(
    "content",
    [b"<html>", b'{"inboundSMSMessageList": {"inboundSMSMessage": [7]}}', b"[1]"],
)
async def test_a_malformed_page_is_a_response_error(
    client: OpenSMSClient, api: respx.MockRouter, content: bytes
) -> None:
    """A 200 that is not JSON or not a page raises APIResponseValidationError."""
    api.get(MESSAGES).respond(200, content=content)
    with pytest.raises(APIResponseValidationError):
        await client.get_inbound_messages(NUMBER)


async def test_polling_is_retried_after_a_server_error(
    client: OpenSMSClient, api: respx.MockRouter, sleeps: Sleeps
) -> None:
    """503 and connection errors are retried with backoff, then the page is returned."""
    route = api.get(MESSAGES).mock(
        side_effect=[
            httpx.Response(503),
            httpx.ConnectError("refused"),
            httpx.Response(200, json=page(PART, pending=1)),
        ]
    )
    result = await client.get_inbound_messages(NUMBER, max_batch_size=5)
    assert [m.message_id for m in result.messages] == ["m-1"]
    assert route.call_count == 3
    assert sleeps.delays == [0.5, 1.0]


async def test_polling_with_oauth_uses_the_bearer_token(sleeps: Sleeps) -> None:
    """With OAuth client credentials the inbox is polled with the issued access token."""
    oauth = OAuthClientCredentials(
        "cid", "secret-7f3e9a", scope="sms", token_url="https://idm.test/t"
    )
    with respx.mock(assert_all_called=False) as router:
        router.post("https://idm.test/t").respond(
            200, json={"access_token": "at-1", "expires_in": 60}
        )
        route = router.get(BASE + MESSAGES).respond(200, json=page())
        async with OpenSMSClient(oauth=oauth, base_url=BASE, sleep=sleeps) as c:
            await c.get_inbound_messages(NUMBER)
    assert route.calls.last.request.headers["authorization"] == "Bearer at-1"


# -- conversions ----------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["+32410300011", "tel:+32410300011", " TEL:+32410300011 "])
async def test_report_conversion_sends_the_address_as_bics_example_does(
    client: OpenSMSClient, api: respx.MockRouter, address: str
) -> None:
    """The address is validated as E.164 and sent as bare international digits."""
    route = api.post("/conversions").respond(200)
    await client.report_conversion(address=address)
    assert body_of(route) == {"conversionRequest": {"address": "32410300011"}}


async def test_report_conversion_by_customer_reference(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """A customer reference is sent as given, alone in the conversionRequest wrapper."""
    route = api.post("/conversions").respond(200)
    await client.report_conversion(customer_reference="order 42")
    assert body_of(route) == {"conversionRequest": {"customerReference": "order 42"}}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, InvalidMessageError),
        ({"address": "+331", "customer_reference": "r"}, InvalidMessageError),
        ({"address": "0612345678"}, InvalidAddressError),
        ({"address": "tel:+33 6"}, InvalidAddressError),
        ({"customer_reference": ""}, InvalidMessageError),
        ({"customer_reference": 42}, InvalidMessageError),
    ],
)
async def test_report_conversion_refuses_bad_input_before_any_request(
    client: OpenSMSClient, api: respx.MockRouter, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    """Neither or both, a non-E.164 address, an empty reference: refused, with no request."""
    route = api.post(url__regex=".*").respond(200)
    with pytest.raises(error):
        await client.report_conversion(**kwargs)
    assert route.call_count == 0


async def test_report_conversion_errors_and_retries(
    client: OpenSMSClient, api: respx.MockRouter, sleeps: Sleeps
) -> None:
    """403 (service not allowed) raises PermissionDeniedError; a 503 first is retried."""
    api.post("/conversions").mock(side_effect=[httpx.Response(503), httpx.Response(403)])
    with pytest.raises(PermissionDeniedError):
        await client.report_conversion(address="+32410300011")
    assert sleeps.delays == [0.5]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, {"message_id": ["id-1", "id-2"]}),
        ({"type": "SMS"}, {"message_id": ["id-1", "id-2"], "type": "SMS"}),
    ],
)
async def test_report_conversions_wire_body(
    client: OpenSMSClient, api: respx.MockRouter, kwargs: dict[str, Any], expected: dict[str, Any]
) -> None:
    """The ids go bare under message_id (BICS's MessageIdsDTO), type only when given."""
    route = api.post("/conversionsinfos").respond(200)
    assert await client.report_conversions(["id-1", "id-2", "id-1"], **kwargs) == []
    assert body_of(route) == expected


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, content=b""),
        httpx.Response(204),
        httpx.Response(200, json=["id-2"]),
        httpx.Response(200, json={"message_id": ["id-2"]}),
    ],
)
async def test_report_conversions_reads_every_answer_shape(
    client: OpenSMSClient, api: respx.MockRouter, response: httpx.Response
) -> None:
    """Empty body, array of ids or {"message_id": [...]}: the refused ids come back as a list."""
    api.post("/conversionsinfos").mock(return_value=response)
    refused = await client.report_conversions(["id-1", "id-2"])
    assert refused == ([] if not response.content else ["id-2"])


@pytest.mark.parametrize("content", [b"<html>", b'{"refused": ["x"]}', b'"id-2"', b"[{}]"])
async def test_report_conversions_odd_answer_is_a_response_error(
    client: OpenSMSClient, api: respx.MockRouter, content: bytes
) -> None:
    """Any other 200 body raises APIResponseValidationError, with the response attached."""
    api.post("/conversionsinfos").respond(200, content=content)
    with pytest.raises(APIResponseValidationError) as info:
        await client.report_conversions(["id-1"])
    assert info.value.response.content == content


async def test_report_conversions_takes_one_id_as_a_string(
    client: OpenSMSClient, api: respx.MockRouter
) -> None:
    """A single id given as a string is one id, not its characters."""
    route = api.post("/conversionsinfos").respond(200)
    await client.report_conversions("id-1")
    assert body_of(route) == {"message_id": ["id-1"]}


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(([],), {}), ((["a", ""],), {}), (([1],), {}), ((7,), {}), ((["a"],), {"type": ""})],
)
async def test_report_conversions_refuses_bad_input_before_any_request(
    client: OpenSMSClient, api: respx.MockRouter, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """No ids, an empty or non-string id, or an empty type: InvalidMessageError, no request."""
    route = api.post(url__regex=".*").respond(200)
    with pytest.raises(InvalidMessageError):
        await client.report_conversions(*args, **kwargs)
    assert route.call_count == 0


async def test_inbound_methods_on_a_closed_client_raise(api: respx.MockRouter) -> None:
    """After close, every new method raises RuntimeError instead of sending."""
    route = api.route().respond(200)
    async with OpenSMSClient(api_key=KEY, base_url=BASE) as c:
        pass
    calls = [
        c.get_inbound_subscription(),
        c.delete_inbound_subscription(),
        c.get_inbound_messages(NUMBER),
        c.report_conversion(address="+331"),
        c.report_conversions(["a"]),
        c.create_inbound_subscription("https://me.test/in", TOKEN),
    ]
    for call in calls:
        with pytest.raises(RuntimeError, match="closed"):
            await call
    assert route.call_count == 0
