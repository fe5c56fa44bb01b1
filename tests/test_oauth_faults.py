"""OAuth under faults, over real sockets: a hostile token endpoint (``hostile_server``): deep
JSON, a token that cannot go in a header, a dripped answer, a gzip bomb."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable

import pytest
from hostile_server import HostileServer, Reply, Request, hostile_server

from opensms_async import (
    APIResponseValidationError,
    AuthenticationError,
    OAuthClientCredentials,
    OpenSMSClient,
    ResponseTooLargeError,
    ValidationError,
)

pytestmark = pytest.mark.integration

DEEP = b"[" * 10_000 + b"]" * 10_000


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
