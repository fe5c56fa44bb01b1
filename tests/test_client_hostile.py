"""The client against a hostile or broken API, over real sockets: a raw asyncio server
(``hostile_server``) sends chosen bytes: 10,000-deep JSON, gzip bombs, bodies dripped a byte at
a time, absurd ``Retry-After`` headers; and inputs that cannot go on the wire are refused before
any request."""

from __future__ import annotations

import asyncio
import gzip
import json
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from hostile_server import HostileServer, Reply, Request, hostile_server

from opensms_async import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    BadRequestError,
    InvalidCallbackURLError,
    InvalidMessageError,
    InvalidSenderError,
    OpenSMSClient,
    RateLimiter,
    RateLimitError,
    ResponseTooLargeError,
    ServerError,
    ValidationError,
)
from opensms_async._retry import parse_retry_after

pytestmark = pytest.mark.integration

KEY = "hostile-key-7f3a"
SENDER = "tel:+32123456"
SURROGATE = "\udc80"
DEEP = b"[" * 10_000 + b"]" * 10_000
DEEP_ERROR = b'{"requestError": ' + DEEP + b"}"
MiB = 1024 * 1024


def send_body(request: Request, rid: str = "req-1") -> bytes:
    """A 201 body for the send ``request``, echoing its recipients and correlator."""
    sent = json.loads(request.body)["outboundSMSMessageRequest"]
    resource = f"http://api.test/outbound/tel%3A%2B32123456/requests/{rid}"
    infos = [{"address": a, "deliveryStatus": "DeliveredToNetwork"} for a in sent["address"]]
    answer = {
        "outboundSMSMessageRequest": {
            **sent,
            "resourceURL": resource,
            "deliveryInfoList": {"resourceURL": f"{resource}/deliveryInfos", "deliveryInfo": infos},
        }
    }
    return json.dumps(answer).encode()


def json_reply(status: int, body: bytes, *extra: tuple[str, str]) -> Reply:
    """A reply with a JSON content type."""
    return Reply(status, (("Content-Type", "application/json"), *extra), body)


def client_for(server: HostileServer, **kwargs: Any) -> OpenSMSClient:
    """A client of the hostile server that never sleeps between retries."""

    async def no_sleep(delay: float) -> None:
        await asyncio.sleep(0)

    kwargs.setdefault("sleep", no_sleep)
    return OpenSMSClient(api_key=KEY, base_url=server.url, **kwargs)


def answering(reply: Reply) -> Callable[[Request], Reply]:
    """A handler that gives every request the same reply."""
    return lambda request: reply


# --- item 8: deeply nested JSON is a typed error, never a RecursionError ---------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (json_reply(201, DEEP), APIResponseValidationError),
        (
            json_reply(201, b'{"outboundSMSMessageRequest": ' + DEEP + b"}"),
            APIResponseValidationError,
        ),
        (json_reply(400, DEEP_ERROR), BadRequestError),
        (json_reply(503, DEEP_ERROR), ServerError),
    ],
    ids=["2xx", "2xx-under-root", "400", "503"],
)
async def test_deeply_nested_json_is_a_typed_error(reply: Reply, expected: type[Exception]) -> None:
    """A body of 10,000 nested arrays raises the response or status error, not RecursionError."""
    async with (
        hostile_server(answering(reply)) as server,
        client_for(server, max_retries=0) as client,
    ):
        with pytest.raises(expected) as info:
            await client.send_message(SENDER, "+33612345678", "Hi")
    assert len(server.requests) == 1
    assert len(str(info.value)) < 1000  # the message quotes a bounded piece of the body


async def test_deeply_nested_json_in_a_poll_and_a_subscription() -> None:
    """Polls and subscription reads refuse a 10,000-deep body with APIResponseValidationError."""
    async with (
        hostile_server(answering(json_reply(200, DEEP))) as server,
        client_for(server) as client,
    ):
        with pytest.raises(APIResponseValidationError, match="nested too deeply"):
            await client.get_delivery_infos(SENDER, "req-1")
        with pytest.raises(APIResponseValidationError):
            await client.get_subscription()


# --- item 9: strings that cannot be encoded are refused before any request -------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"text": f"Hi {SURROGATE}"}, InvalidMessageError),
        ({"sender_name": f"shop{SURROGATE}"}, InvalidMessageError),
        ({"client_correlator": f"c-{SURROGATE}"}, InvalidMessageError),
        ({"callback_data": f"order{SURROGATE}"}, InvalidMessageError),
        ({"notify_url": f"https://me.example/{SURROGATE}"}, InvalidCallbackURLError),
        ({"sender": f"SHOP{SURROGATE}"}, InvalidSenderError),
        ({"to": [f"+3361234567{SURROGATE}"]}, ValidationError),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else value.__name__,
)
async def test_lone_surrogates_in_a_send_are_refused_before_any_request(
    kwargs: dict[str, Any], expected: type[Exception]
) -> None:
    """A lone surrogate in any string of a send is a ValidationError; nothing is sent."""
    arguments: dict[str, Any] = {"sender": SENDER, "to": "+33612345678", "text": "Hi", **kwargs}
    async with (
        hostile_server(lambda r: json_reply(201, send_body(r))) as server,
        client_for(server) as client,
    ):
        with pytest.raises(expected) as info:
            await client.send_message(**arguments)
        assert isinstance(info.value, ValidationError)
        await client.send_message(SENDER, "+33612345678", "Hi")  # the client still works
    assert len(server.requests) == 1


async def test_lone_surrogates_elsewhere_are_refused_before_any_request() -> None:
    """Subscription URL and token and a polled request id with a lone surrogate are refused."""
    async with (
        hostile_server(answering(json_reply(200, b"{}"))) as server,
        client_for(server) as client,
    ):
        with pytest.raises(InvalidCallbackURLError):
            await client.create_subscription(f"https://me.example/{SURROGATE}", "tok-1234")
        with pytest.raises(InvalidMessageError) as info:
            await client.create_subscription("https://me.example/cb", f"s3cr3t{SURROGATE}")
        assert "s3cr3t" not in str(info.value)  # a secret is never quoted
        with pytest.raises(InvalidMessageError):
            await client.get_delivery_infos(SENDER, f"req-{SURROGATE}")
    assert server.requests == []


def test_credentials_that_cannot_travel_are_refused_at_once() -> None:
    """An API key that is not printable ASCII is refused on construction, without quoting it."""
    for key in (f"key-{SURROGATE}-123", "clé-secrète-1", "key\r\nX-Injected: 1"):
        with pytest.raises(ValidationError) as info:
            OpenSMSClient(api_key=key, base_url="https://api.test")
        assert key not in str(info.value)


# --- item 12: dot segments never leave their path segment -----------------------------------


@pytest.mark.parametrize("sender", [".", "..", " .. "])
async def test_dot_segment_senders_are_refused(sender: str) -> None:
    """'.' and '..' as a sender are refused for sends and polls: httpx would drop them."""
    async with (
        hostile_server(answering(json_reply(200, b"{}"))) as server,
        client_for(server) as client,
    ):
        with pytest.raises(InvalidSenderError, match="path segment"):
            await client.send_message(sender, "+33612345678", "Hi")
        with pytest.raises(InvalidSenderError, match="path segment"):
            await client.get_delivery_infos(sender, "req-1")
    assert server.requests == []


@pytest.mark.parametrize("request_id", [".", "..", ""])
async def test_dot_segment_request_ids_are_refused(request_id: str) -> None:
    """'.', '..' (and '') as a request id are refused before any request."""
    async with (
        hostile_server(answering(json_reply(200, b"{}"))) as server,
        client_for(server) as client,
    ):
        with pytest.raises(InvalidMessageError):
            await client.get_delivery_infos(SENDER, request_id)
    assert server.requests == []


async def test_request_ids_and_senders_stay_one_segment() -> None:
    """Slashes, dots and '...' stay inside their segment, percent-encoded where needed."""
    body = json.dumps({"deliveryInfoList": {"deliveryInfo": []}}).encode()
    async with (
        hostile_server(answering(json_reply(200, body))) as server,
        client_for(server) as client,
    ):
        await client.get_delivery_infos("...", "a/../b")
        await client.get_delivery_infos(SENDER, "..x")
    assert [r.path for r in server.requests] == [
        "/outbound/.../requests/a%2F..%2Fb/deliveryInfos",
        "/outbound/tel%3A%2B32123456/requests/..x/deliveryInfos",
    ]


# --- item 2: one long Retry-After never freezes the shared limiter ---------------------------


class FakeTime:
    """A monotonic clock and a sleep that only advances it, recording every wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        """The fake monotonic time."""
        return self.now

    async def sleep(self, delay: float) -> None:
        """Record ``delay`` and advance the clock by it."""
        self.waits.append(delay)
        self.now += delay


@pytest.mark.parametrize(
    "retry_after", ["86400", "1e999", "inf", "nan", "Fri, 31 Dec 9999 23:59:59 GMT"]
)
async def test_a_refused_retry_after_is_not_everyones_wait(retry_after: str) -> None:
    """After a 429 whose Retry-After the call refuses, the limiter holds others at most 60 s."""
    answers = iter([Reply(429, (("Retry-After", retry_after),))])

    def handler(request: Request) -> Reply:
        return next(answers, Reply(404))

    time = FakeTime()
    limiter = RateLimiter(requests_per_hour=1000, clock=time.clock, sleep=time.sleep)
    async with (
        hostile_server(handler) as server,
        client_for(server, limiter=limiter, max_retries=0) as client,
    ):
        with pytest.raises(RateLimitError):
            await client.get_subscription()
        assert 0 < limiter.paused_for <= 60.0
        assert await client.get_subscription() is None  # after the bounded pause
    assert time.waits and all(0 < wait <= 60.0 for wait in time.waits)
    assert len(server.requests) == 2


def test_parse_retry_after_is_always_finite() -> None:
    """Retry-After values that are no finite number of seconds read as no header."""
    for value in ("1e999", "inf", "-inf", "nan", "Infinity"):
        assert parse_retry_after(value, 0.0) is None
    assert parse_retry_after("7", 0.0) == 7.0
    assert parse_retry_after("-3", 0.0) == 0.0


def test_limiter_pauses_are_bounded() -> None:
    """RateLimiter.pause never holds callers past max_pause, whatever it is given."""
    time = FakeTime()
    limiter = RateLimiter(clock=time.clock, max_pause=30.0, default_pause=10.0)
    for seconds in (86400.0, float("inf"), float("nan"), None, -5.0):
        limiter.pause(seconds)
        assert 0.0 <= limiter.paused_for <= 30.0
    with pytest.raises(ValueError, match="max_pause"):
        RateLimiter(max_pause=float("inf"))


# --- item 13: the deadline bounds a whole attempt ---------------------------------------------


async def test_a_dripped_answer_hits_the_deadline() -> None:
    """An answer dripped a byte every 0.3 s ends a timeout=1.0 call as APITimeoutError."""
    dripped = Reply(200, (("Content-Type", "application/json"),), b" " * 100 + b"{}", drip=0.3)
    async with (
        hostile_server(answering(dripped)) as server,
        client_for(server, timeout=1.0, max_retries=0) as client,
    ):
        async with asyncio.timeout(15):  # 30 s of drip without a deadline
            with pytest.raises(APITimeoutError):
                await client.get_subscription()
    assert len(server.requests) == 1


async def test_a_send_past_its_deadline_is_retried_under_its_correlator() -> None:
    """A send whose answer stalls is retried after the deadline with the same correlator."""
    seen: list[Request] = []

    def handler(request: Request) -> Reply:
        seen.append(request)
        body = send_body(request)
        drip = 0.3 if len(seen) == 1 else None
        return Reply(201, (("Content-Type", "application/json"),), body, drip=drip)

    async with (
        hostile_server(handler) as server,
        client_for(server, timeout=5.0, deadline=1.0, max_retries=1) as client,
    ):
        async with asyncio.timeout(15):
            sent = await client.send_message(SENDER, "+33612345678", "Hi")
    correlators = [
        json.loads(r.body)["outboundSMSMessageRequest"]["clientCorrelator"] for r in seen
    ]
    assert len(correlators) == 2 and correlators[0] == correlators[1] == sent.client_correlator
    assert len(server.requests) == 2


def test_the_deadline_defaults_to_the_longest_timeout() -> None:
    """deadline defaults to the longest httpx timeout; an explicit one wins; bad ones refused."""
    assert OpenSMSClient(api_key=KEY)._wire.deadline == 30.0
    assert OpenSMSClient(api_key=KEY, timeout=1.0)._wire.deadline == 1.0
    assert OpenSMSClient(api_key=KEY, timeout=None)._wire.deadline is None
    assert OpenSMSClient(api_key=KEY, deadline=7.5)._wire.deadline == 7.5
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="deadline"):
            OpenSMSClient(api_key=KEY, deadline=bad)


# --- item 15: the size of an answer is bounded, counted on decoded bytes ----------------------


def gzip_bomb(mebibytes: int = 254) -> tuple[bytes, int]:
    """About ``mebibytes`` KiB of gzip that inflate to that many MiB of zeros (built piecewise)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(MiB)
    bomb = b"".join(packer.compress(zeros) for _ in range(mebibytes)) + packer.flush()
    return bomb, mebibytes * MiB


async def test_a_gzip_bomb_is_refused_within_a_few_megabytes() -> None:
    """A 254 KiB gzip answer (260 MB inflated) raises ResponseTooLargeError; memory stays small."""
    bomb, inflated = gzip_bomb()
    reply = Reply(200, (("Content-Type", "application/json"), ("Content-Encoding", "gzip")), bomb)
    async with hostile_server(answering(reply)) as server, client_for(server) as client:
        tracemalloc.start()
        try:
            with pytest.raises(ResponseTooLargeError) as info:
                await client.get_subscription()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    print(f"gzip bomb: {len(bomb)} B inflating to {inflated} B; client peak {peak / MiB:.1f} MiB")
    assert info.value.limit == 4 * MiB
    assert isinstance(info.value, APIResponseValidationError)
    assert peak < 16 * MiB
    assert len(server.requests) == 1  # not retried


@pytest.mark.parametrize("status", [200, 400, 503])
async def test_the_size_bound_applies_to_every_status(status: int) -> None:
    """A body past max_response_size is refused whatever the status, and never retried."""
    reply = Reply(status, (("Content-Type", "application/json"),), b" " * 5000 + b"{}")
    async with (
        hostile_server(answering(reply)) as server,
        client_for(server, max_response_size=4096) as client,
    ):
        with pytest.raises(ResponseTooLargeError, match="4096 bytes"):
            await client.get_subscription()
    assert len(server.requests) == 1


async def test_an_answer_within_the_bound_is_read() -> None:
    """An answer of exactly max_response_size bytes is read as usual."""
    body = json.dumps({"callback": {"url": "https://me.example/cb", "securityToken": "t-12"}})
    reply = Reply(200, (("Content-Type", "application/json"),), body.encode())
    async with (
        hostile_server(answering(reply)) as server,
        client_for(server, max_response_size=len(body)) as client,
    ):
        subscription = await client.get_subscription()
    assert subscription is not None and subscription.url == "https://me.example/cb"


def deflate_raw(data: bytes) -> bytes:
    """Deflate without the zlib header, as some servers send ``deflate``."""
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", deflate_raw),
        ("deflate, gzip", lambda data: gzip.compress(zlib.compress(data))),
        ("identity", lambda data: data),
    ],
)
async def test_encoded_answers_are_decoded(coding: str, encode: Callable[[bytes], bytes]) -> None:
    """gzip and deflate answers (and stacked codings) decode to the same result as plain ones."""

    def handler(request: Request) -> Reply:
        headers = (("Content-Type", "application/json"), ("Content-Encoding", coding))
        return Reply(201, headers, encode(send_body(request, rid="r" * 5000)))

    async with hostile_server(handler) as server, client_for(server) as client:
        sent = await client.send_message(SENDER, "+33612345678", "Hi")
    assert sent.request_id == "r" * 5000
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"


async def test_a_corrupt_gzip_answer_is_a_connection_error() -> None:
    """A gzip body that does not inflate is an APIConnectionError (as httpx reports it), retried."""
    reply = Reply(200, (("Content-Encoding", "gzip"),), b"\x1f\x8bnot gzip at all")
    async with (
        hostile_server(answering(reply)) as server,
        client_for(server, max_retries=1) as client,
    ):
        with pytest.raises(APIConnectionError, match="DecodingError"):
            await client.get_subscription()
    assert len(server.requests) == 2
