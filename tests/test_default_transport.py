"""The client's promises on its default transport (aiohttp under httpx), over real sockets.

``test_client_hostile.py`` and ``test_oauth_faults.py`` run on the default transport too (the
deadline against a dripped answer, the gzip bomb, the size bound, the codings); here: that the
default really is aiohttp, TLS verification, redirects, connection errors, timeouts, retries, the
limits on requests in flight, the injection of ``http_client`` and ``transport``, respx, and
proxies from the environment.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from hostile_server import Reply, Request, hostile_server

from opensms_async import (
    AiohttpTransport,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    OpenSMSClient,
    RateLimiter,
    ResponseTooLargeError,
)
from opensms_async._aiohttp import httpx_transport_patched

pytestmark = pytest.mark.integration

KEY = "transport-key-5c1e"
SENDER = "tel:+32123456"
TO = "+33612345678"
DATA = Path(__file__).parent / "data"
NO_SUBSCRIPTION = Reply(404)


def send_body(request: Request, rid: str = "req-1") -> bytes:
    """A 201 body for the send ``request``, echoing its recipients and correlator."""
    sent = json.loads(request.body)["outboundSMSMessageRequest"]
    resource = f"http://api.test/outbound/tel%3A%2B32123456/requests/{rid}"
    infos = [{"address": a, "deliveryStatus": "DeliveredToNetwork"} for a in sent["address"]]
    answer = {"outboundSMSMessageRequest": {**sent, "resourceURL": resource}}
    answer["outboundSMSMessageRequest"]["deliveryInfoList"] = {"deliveryInfo": infos}
    return json.dumps(answer).encode()


def sent(request: Request) -> Reply:
    """The API's 201 for a send."""
    return Reply(201, (("Content-Type", "application/json"),), send_body(request))


def correlator(request: Request) -> str:
    """The clientCorrelator of a send request."""
    return str(json.loads(request.body)["outboundSMSMessageRequest"]["clientCorrelator"])


async def no_sleep(delay: float) -> None:
    """Retry at once."""
    await asyncio.sleep(0)


def client_for(url: str, **kwargs: Any) -> OpenSMSClient:
    """A default client of ``url`` that retries without sleeping."""
    kwargs.setdefault("sleep", no_sleep)
    return OpenSMSClient(api_key=KEY, base_url=url, **kwargs)


def answering(reply: Reply) -> Callable[[Request], Reply]:
    """A handler giving every request the same reply."""
    return lambda request: reply


# --- the default is aiohttp -------------------------------------------------------------------


async def test_the_default_transport_is_aiohttp() -> None:
    """With neither http_client nor transport, requests go over aiohttp, not httpcore."""
    async with hostile_server(sent) as server, client_for(server.url) as client:
        transport = client._http._transport
        assert isinstance(transport, AiohttpTransport)
        assert not httpx_transport_patched()
        result = await client.send_message(SENDER, TO, "Hi")
        assert transport._session is not None and transport._fallback is None
        assert result.request_id == "req-1"
    assert transport._session is None  # closed with the client
    request = server.requests[0]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["user-agent"] == "opensms-async"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept-encoding"] == "gzip, deflate"
    assert request.path == "/outbound/tel%3A%2B32123456/requests"  # sent as encoded


# --- TLS ----------------------------------------------------------------------------------------


def server_tls() -> ssl.SSLContext:
    """The TLS context of a server with a self-signed certificate for 127.0.0.1."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(DATA / "selfsigned.pem", DATA / "selfsigned.key")
    return context


async def test_tls_is_verified_by_default() -> None:
    """A server whose certificate no CA signed is refused: APIConnectionError, nothing sent."""
    async with (
        hostile_server(sent, tls=server_tls()) as server,
        client_for(server.url, max_retries=1) as client,
    ):
        with pytest.raises(APIConnectionError, match="ConnectError") as info:
            await client.send_message(SENDER, TO, "Hi")
    assert not isinstance(info.value, APITimeoutError)
    assert server.requests == []


async def test_tls_with_a_trusted_certificate() -> None:
    """AiohttpTransport(verify=...) trusts a given CA: the same server then answers."""
    trusted = ssl.create_default_context(cafile=str(DATA / "selfsigned.pem"))
    async with (
        hostile_server(sent, tls=server_tls()) as server,
        client_for(server.url, transport=AiohttpTransport(verify=trusted)) as client,
    ):
        result = await client.send_message(SENDER, TO, "Hi")
    assert result.request_id == "req-1"
    assert len(server.requests) == 1


# --- redirects never carry the key elsewhere -----------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_not_followed(status: int) -> None:
    """A redirect to another host is an APIStatusError; the other host sees nothing (no key)."""
    async with hostile_server(sent) as elsewhere:
        redirect = Reply(status, (("Location", f"{elsewhere.url}/steal"),))
        async with (
            hostile_server(answering(redirect)) as server,
            client_for(server.url) as client,
        ):
            with pytest.raises(APIStatusError) as info:
                await client.send_message(SENDER, TO, "Hi")
            with pytest.raises(APIStatusError):
                await client.get_delivery_infos(SENDER, "req-1")
    assert info.value.status_code == status
    assert KEY not in str(info.value)
    assert elsewhere.requests == []
    assert len(server.requests) == 2  # not retried either


# --- connection errors are typed, and retried under the correlator -------------------------------


async def test_a_refused_connection_is_a_typed_error() -> None:
    """Nothing listening: APIConnectionError after max_retries retries, never an aiohttp error."""
    async with hostile_server(sent) as server:
        url = server.url  # the port is free again once the server is gone
    async with client_for(url, max_retries=2) as client:
        with pytest.raises(APIConnectionError, match="ConnectError"):
            await client.send_message(SENDER, TO, "Hi")


@pytest.mark.parametrize(
    "reply",
    [
        Reply(201, (("Content-Length", "5000"),), b'{"outbound', close=True),
        Reply(raw=b"NOT HTTP AT ALL\r\n\r\n"),
        Reply(raw=b"HTTP/1.1 201 Created\r\nContent-Length: x\r\n\r\n{}"),
        Reply(raw=b""),
    ],
    ids=["cut-body", "garbage", "bad-length", "closed-silently"],
)
async def test_broken_answers_are_retried_under_the_correlator(reply: Reply) -> None:
    """A cut body, garbage or a silent close is an APIConnectionError, retried with the same
    correlator; the retry's answer is the send's result."""
    answers = iter([reply])

    def handler(request: Request) -> Reply:
        return next(answers, None) or sent(request)

    async with hostile_server(handler) as server, client_for(server.url) as client:
        result = await client.send_message(SENDER, TO, "Hi")
    assert len(server.requests) == 2
    assert correlator(server.requests[0]) == correlator(server.requests[1])
    assert result.client_correlator == correlator(server.requests[0])


async def test_a_broken_answer_past_the_retries_is_typed() -> None:
    """When every answer is garbage the caller gets APIConnectionError, nothing else."""
    garbage = Reply(raw=b"\x00\xff garbage\r\n\r\n")
    async with (
        hostile_server(answering(garbage)) as server,
        client_for(server.url, max_retries=1) as client,
    ):
        with pytest.raises(APIConnectionError) as info:
            await client.get_subscription()
    assert type(info.value) is APIConnectionError
    assert len(server.requests) == 2


async def test_a_server_error_is_retried_under_the_correlator() -> None:
    """A 503 then a 201: two requests with one correlator, one result."""
    answers = iter([Reply(503)])

    def handler(request: Request) -> Reply:
        return next(answers, None) or sent(request)

    async with hostile_server(handler) as server, client_for(server.url) as client:
        result = await client.send_message(SENDER, TO, "Hi")
    assert [correlator(r) for r in server.requests] == [result.client_correlator] * 2


# --- timeouts -------------------------------------------------------------------------------------


async def test_a_silent_server_times_out() -> None:
    """A server that reads the request and never answers: APITimeoutError after httpx's read
    timeout (0.5 s), once per attempt, well before the 60 s deadline."""

    async def silent(request: Request) -> Reply:
        await asyncio.sleep(120)
        return NO_SUBSCRIPTION

    timeout = httpx.Timeout(5.0, read=0.5)
    async with (
        hostile_server(silent) as server,
        client_for(server.url, timeout=timeout, deadline=60.0, max_retries=1) as client,
    ):
        async with asyncio.timeout(30):  # 2 x 0.5 s on the read timeout; 120 s on the deadline
            with pytest.raises(APITimeoutError):
                await client.get_subscription()
    assert len(server.requests) == 2


async def test_the_deadline_is_not_an_outer_cancellation() -> None:
    """Cancelling a call from outside cancels it (CancelledError), not an APITimeoutError, and
    a deadline hit leaves the caller's task uncancelled."""

    arrived = asyncio.Event()

    async def silent(request: Request) -> Reply:
        arrived.set()
        await asyncio.sleep(60)
        return NO_SUBSCRIPTION

    async with (
        hostile_server(silent) as server,
        client_for(server.url, deadline=60.0) as patient,
        client_for(server.url, deadline=0.3) as client,
    ):
        call = asyncio.create_task(patient.get_subscription())
        await asyncio.wait_for(arrived.wait(), 30)  # in flight, far from its deadline
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        with pytest.raises(APITimeoutError):
            await client.get_subscription()
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0


# --- bounds on what is in flight ------------------------------------------------------------------


class Holding:
    """A handler that counts requests in flight, holding each a moment."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    async def __call__(self, request: Request) -> Reply:
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.sleep(0.05)
        self.now -= 1
        return sent(request)


async def test_max_in_flight_bounds_the_connections() -> None:
    """32 concurrent sends with max_in_flight=4: never more than 4 at the server."""
    holding = Holding()
    async with hostile_server(holding) as server, client_for(server.url, max_in_flight=4) as client:
        await asyncio.gather(*(client.send_message(SENDER, TO, "Hi") for _ in range(32)))
    assert len(server.requests) == 32
    assert holding.most == 4


async def test_the_default_client_holds_64_requests_in_flight() -> None:
    """80 concurrent sends with the defaults: 64 at the server at once over aiohttp (its cost
    per request does not grow with its connections), 16 over httpx's own transport."""
    for transport, most in ((None, 64), (httpx.AsyncHTTPTransport(), 16)):
        holding = Holding()
        async with (
            hostile_server(holding) as server,
            client_for(server.url, transport=transport) as client,
        ):
            await asyncio.gather(*(client.send_message(SENDER, TO, "Hi") for _ in range(80)))
        assert holding.most == most


def test_a_proxy_from_the_environment_keeps_16_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over a proxy of the environment (httpx's own transport) the default is 16 in flight; a
    NO_PROXY entry alone keeps aiohttp's 64, and so does an AiohttpTransport passed in."""
    from opensms_async._client import _default_in_flight

    assert _default_in_flight(None, True, {"all://": "http://proxy.invalid:3128"}) == 16
    assert _default_in_flight(None, True, {"all://localhost": None}) == 64
    assert _default_in_flight(AiohttpTransport(), False, {}) == 64
    assert _default_in_flight(httpx.AsyncHTTPTransport(), False, {}) == 16
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    client = OpenSMSClient(api_key=KEY, base_url="https://api.invalid")
    assert client._in_flight._value == 16  # the bound it chose


async def test_the_transport_bounds_its_pool() -> None:
    """AiohttpTransport(max_connections=2) behind a plain httpx client: 2 requests at a time."""
    holding = Holding()
    transport = AiohttpTransport(max_connections=2)
    async with hostile_server(holding) as server, httpx.AsyncClient(transport=transport) as http:
        url = f"{server.url}/outbound/tel%3A%2B32123456/requests"
        body = {"outboundSMSMessageRequest": {"address": [TO], "senderAddress": SENDER}}
        answers = await asyncio.gather(*(http.post(url, json=body) for _ in range(8)))
    assert [answer.status_code for answer in answers] == [201] * 8
    assert holding.most == 2


async def test_the_limiter_bounds_concurrency() -> None:
    """A shared RateLimiter(max_concurrency=2) holds 16 concurrent sends to 2 at a time."""
    holding = Holding()
    limiter = RateLimiter(max_concurrency=2)
    async with hostile_server(holding) as server, client_for(server.url, limiter=limiter) as client:
        await asyncio.gather(*(client.send_message(SENDER, TO, "Hi") for _ in range(16)))
    assert holding.most == 2


async def test_a_refused_answer_leaves_the_client_working() -> None:
    """After a body refused past max_response_size, the next call gets its answer (the cut
    connection is not reused)."""
    answers = iter([Reply(200, (), b" " * 10_000)])

    def handler(request: Request) -> Reply:
        return next(answers, None) or NO_SUBSCRIPTION

    async with (
        hostile_server(handler) as server,
        client_for(server.url, max_response_size=4096) as client,
    ):
        with pytest.raises(ResponseTooLargeError):
            await client.get_subscription()
        assert await client.get_subscription() is None


# --- injection, respx, proxies --------------------------------------------------------------------


async def test_an_injected_http_client_is_used_whole_and_left_open() -> None:
    """http_client=: its event hooks and headers apply, and closing the SDK leaves it open."""
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request.url.raw_path.decode())

    async with hostile_server(sent) as server:
        http = httpx.AsyncClient(headers={"X-Team": "ops"}, event_hooks={"request": [hook]})
        async with client_for(server.url, http_client=http) as client:
            await client.send_message(SENDER, TO, "Hi")
        assert not http.is_closed
        await http.aclose()
    assert seen == ["/outbound/tel%3A%2B32123456/requests"]
    assert server.requests[0].headers["x-team"] == "ops"


async def test_an_injected_transport_is_used() -> None:
    """transport=: every request goes to it (here httpx's MockTransport)."""
    paths: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(404)

    transport = httpx.MockTransport(handle)
    async with client_for("https://api.test", transport=transport) as client:
        assert await client.get_subscription() is None
    assert paths == ["/outbound/subscriptions"]


@pytest.mark.parametrize("using", ["httpcore", "httpx"])
async def test_respx_intercepts_the_default_client(using: str) -> None:
    """respx.mock (either mocker) answers a default client's requests; nothing reaches aiohttp."""
    with respx.mock(base_url="https://api.test", using=using) as router:
        router.get("/outbound/subscriptions").respond(
            200, json={"callback": {"url": "https://me.example/cb", "securityToken": "t-1"}}
        )
        async with client_for("https://api.test") as client:
            subscription = await client.get_subscription()
            transport = client._http._transport
            assert isinstance(transport, AiohttpTransport) and transport._session is None
    assert subscription is not None and subscription.url == "https://me.example/cb"
    assert not httpx_transport_patched()


async def test_a_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY is honoured as httpx honours it: the proxy gets the absolute URL."""
    async with hostile_server(answering(NO_SUBSCRIPTION)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with client_for("http://api.test") as client:
            assert await client.get_subscription() is None
    assert [r.path for r in proxy.requests] == ["http://api.test/outbound/subscriptions"]
