"""OAuth under faults, over real sockets: a revoked token refreshed once for every request it
failed, the token endpoint's 5xx and 429 retried like any call (the bundled simulator), and a
hostile token endpoint (``hostile_server``): deep JSON, a dripped answer, a gzip bomb."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator, Callable

import pytest
from hostile_server import HostileServer, Reply, Request, hostile_server

from opensms_async import (
    APIResponseValidationError,
    AuthenticationError,
    OAuthClientCredentials,
    OpenSMSClient,
    RateLimiter,
    ResponseTooLargeError,
    ServerError,
    ValidationError,
)
from opensms_async.testing import Fault, RunningSimulator, run_simulator

pytestmark = pytest.mark.integration

DEEP = b"[" * 10_000 + b"]" * 10_000
IN_FLIGHT = 32


class Sleeps:
    """The client's retry sleep: records each delay, sleeps not at all."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


def oauth_client(token_url: str, base_url: str, **kwargs: object) -> OpenSMSClient:
    """An OAuth client of ``base_url`` whose token comes from ``token_url``."""
    creds = OAuthClientCredentials(
        client_id="sim-client",
        client_secret="sim-client-secret",
        scope="sms-a2p-business-class",
        token_url=token_url,
    )
    return OpenSMSClient(oauth=creds, base_url=base_url, **kwargs)  # type: ignore[arg-type]


def token_reply(token: str) -> Reply:
    """A token endpoint's 200."""
    body = json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 3600})
    return Reply(200, (("Content-Type", "application/json"),), body.encode())


# --- item 10: one revocation, one refresh -----------------------------------------------------


class RevokingAPI:
    """Issues tok-1, tok-2, ...; holds the requests of the revoked tok-1 until ``IN_FLIGHT`` are
    in, then refuses them with 401 one by one, 20 ms apart, so that some refusals come in after
    a fresh token was fetched. Any valid token gets 404 (no subscription)."""

    def __init__(self) -> None:
        self.issued = 0
        self.valid: set[str] = set()
        self.held = 0
        self.all_in = asyncio.Event()

    async def __call__(self, request: Request) -> Reply:
        if request.path == "/oauth/token":
            self.issued += 1
            token = f"tok-{self.issued}"
            self.valid.add(token)
            return token_reply(token)
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token in self.valid:
            return Reply(404)
        self.held += 1
        place = self.held
        if self.held == IN_FLIGHT:
            self.all_in.set()
        await asyncio.wait_for(self.all_in.wait(), timeout=30)
        await asyncio.sleep(0.02 * place)
        return Reply(401)


async def test_a_revoked_token_is_fetched_again_once() -> None:
    """32 requests in flight refused with a revoked token make one token request, not one each."""
    api = RevokingAPI()
    async with hostile_server(api) as server:
        client = oauth_client(f"{server.url}/oauth/token", server.url, max_in_flight=IN_FLIGHT)
        async with client:
            assert await client.get_subscription() is None  # tok-1 fetched and cached
            api.valid.clear()  # tok-1 revoked
            async with asyncio.timeout(60):
                answers = await asyncio.gather(
                    *(client.get_subscription() for _ in range(IN_FLIGHT))
                )
    assert answers == [None] * IN_FLIGHT
    assert api.held == IN_FLIGHT
    assert api.issued == 2  # tok-1, then one refresh for the revocation


# --- item 11: the token endpoint's 5xx and 429 are retried ------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    """The bundled simulator with its token endpoint."""
    async with run_simulator(seed=3, step_delay=(0.01, 0.02)) as running:
        yield running


def sim_client(sim: RunningSimulator, sleeps: Sleeps, **kwargs: object) -> OpenSMSClient:
    """An OAuth client of the simulator, jitter at the ceiling, sleeping through ``sleeps``."""
    return oauth_client(sim.token_url, sim.base_url, sleep=sleeps, random=lambda: 1.0, **kwargs)


def token_requests(sim: RunningSimulator) -> int:
    """Requests the simulator's token endpoint received (faulted ones included)."""
    return sum(record.endpoint == "token" for record in sim.simulator.requests_log)


async def test_token_endpoint_5xx_is_retried_with_backoff(sim: RunningSimulator) -> None:
    """Two 503s from the token endpoint are retried with backoff, and the call succeeds."""
    sim.simulator.add_fault(Fault.respond(503, endpoint="token", times=2))
    sleeps = Sleeps()
    async with sim_client(sim, sleeps, max_retries=2) as client:
        assert await client.get_subscription() is None
    assert token_requests(sim) == 3
    assert sleeps.delays == [0.5, 1.0]


async def test_token_endpoint_429_waits_its_retry_after(sim: RunningSimulator) -> None:
    """A 429 with Retry-After from the token endpoint waits that long, without pausing the
    API's limiter (another server's quota)."""
    sim.simulator.add_fault(Fault.respond(429, retry_after=7, endpoint="token"))
    sleeps = Sleeps()
    limiter = RateLimiter(requests_per_hour=100)
    async with sim_client(sim, sleeps, limiter=limiter) as client:
        assert await client.get_subscription() is None
        assert limiter.paused_for == 0
    assert sleeps.delays == [7.0]
    assert token_requests(sim) == 2


async def test_token_endpoint_failures_end_after_max_retries(sim: RunningSimulator) -> None:
    """A token endpoint that keeps failing raises ServerError after max_retries retries."""
    sim.simulator.add_fault(Fault.respond(502, endpoint="token", times=None))
    sleeps = Sleeps()
    async with sim_client(sim, sleeps, max_retries=2) as client:
        with pytest.raises(ServerError, match="Token request refused with 502"):
            await client.get_subscription()
    assert token_requests(sim) == 3
    assert not any(record.endpoint == "subscription" for record in sim.simulator.requests_log)


async def test_refused_client_credentials_are_not_retried(sim: RunningSimulator) -> None:
    """A 401 from the token endpoint (wrong secret) raises at once: retrying cannot help."""
    creds = OAuthClientCredentials("sim-client", "wrong-secret-1", "sms", sim.token_url)
    client = OpenSMSClient(oauth=creds, base_url=sim.base_url, sleep=Sleeps())
    async with client:
        with pytest.raises(AuthenticationError) as info:
            await client.get_subscription()
    assert "wrong-secret-1" not in str(info.value)
    assert token_requests(sim) == 1


# --- a hostile token endpoint -----------------------------------------------------------------


def token_endpoint(reply: Reply) -> Callable[[Request], Reply]:
    """A server whose token endpoint gives ``reply`` and whose API answers 404."""
    return lambda request: reply if request.path == "/oauth/token" else Reply(404)


async def call_through(server: HostileServer, **kwargs: object) -> object:
    """get_subscription through an OAuth client of ``server`` (no retries unless given)."""
    kwargs.setdefault("max_retries", 0)
    async with oauth_client(f"{server.url}/oauth/token", server.url, **kwargs) as client:
        return await client.get_subscription()


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(200, (("Content-Type", "application/json"),), DEEP), APIResponseValidationError),
        (Reply(400, (("Content-Type", "application/json"),), DEEP), AuthenticationError),
        (Reply(200, body=b'{"access_token": "a\\r\\nb"}'), APIResponseValidationError),
        (
            Reply(200, body=b'{"access_token": "t", "expires_in": 1e999}'),
            APIResponseValidationError,
        ),
    ],
    ids=["deep-200", "deep-400", "token-with-crlf", "infinite-lifetime"],
)
async def test_a_hostile_token_answer_is_a_typed_error(
    reply: Reply, expected: type[Exception]
) -> None:
    """Deep JSON, a token that cannot go in a header or no finite lifetime: a typed error."""
    async with hostile_server(token_endpoint(reply)) as server:
        with pytest.raises(expected):
            await call_through(server)
    assert [r.path for r in server.requests] == ["/oauth/token"]


async def test_a_dripped_token_answer_hits_the_deadline_and_is_retried() -> None:
    """A token answer dripped a byte at a time ends at the deadline and the fetch is retried."""
    fetches: list[Request] = []

    def handler(request: Request) -> Reply:
        if request.path != "/oauth/token":
            return Reply(404)
        fetches.append(request)
        reply = token_reply("tok-1")
        drip = 0.3 if len(fetches) == 1 else None
        return Reply(reply.status, reply.headers, b" " * 100 + reply.body, drip=drip)

    async with hostile_server(handler) as server:
        async with asyncio.timeout(15):  # 30 s of drip without a deadline
            answer = await call_through(server, deadline=1.0, max_retries=1, sleep=Sleeps())
    assert answer is None
    assert len(fetches) == 2


async def test_a_gzip_bomb_from_the_token_endpoint_is_refused() -> None:
    """The token endpoint's answer is held to max_response_size too, counted inflated."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    bomb = b"".join(packer.compress(bytes(1024 * 1024)) for _ in range(16)) + packer.flush()
    reply = Reply(200, (("Content-Encoding", "gzip"),), bomb)
    async with hostile_server(token_endpoint(reply)) as server:
        with pytest.raises(ResponseTooLargeError):
            await call_through(server)
    assert [r.path for r in server.requests] == ["/oauth/token"]


def test_credentials_that_cannot_travel_are_refused_at_once() -> None:
    """OAuth credentials with a lone surrogate are refused on construction, unquoted."""
    with pytest.raises(ValidationError) as info:
        OAuthClientCredentials("id", "s3cr3t\udc80", "sms")
    assert "s3cr3t" not in str(info.value)
