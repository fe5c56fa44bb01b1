"""The simulator's inbound numbers, inbound subscription and conversions, over real sockets.

Driven with plain httpx first (what the simulator answers, checked against BICS's OpenAPI), then
with the SDK client end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi import schema_errors
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opensms_async import (
    InboundSubscription,
    NotFoundError,
    OAuthClientCredentials,
    OpenSMSClient,
    count_segments,
)
from opensms_async._reassembly import Assembled, Part, add_part, group_key
from opensms_async._segments import split_segments
from opensms_async.testing import (
    BICS_RETRY_DELAYS,
    ConversionReport,
    Fault,
    RunningSimulator,
    run_simulator,
    serve,
)

pytestmark = pytest.mark.integration

NUMBER = "+32470000000"
NUMBER_PATH = "tel%3A%2B32470000000"
MESSAGES = f"/inbound/registrations/{NUMBER_PATH}/messages"
HANDSET = "+32470000001"
TOKEN = "in-tok-r2k5hq3"
LONG = "".join(f"{i:03d} " for i in range(100))  # 400 GSM-7 characters: 3 parts
FAST: dict[str, Any] = {"seed": 11, "step_delay": (0.01, 0.02), "inbound_retry_time_scale": 1e-4}


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    """A simulator with fast retries, owning NUMBER."""
    async with run_simulator(inbound_numbers=(NUMBER,), **FAST) as running:
        yield running


@pytest.fixture
async def api(sim: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    """Plain httpx with the simulator's API key."""
    headers = {"Authorization": f"Bearer {sim.api_key}"}
    async with httpx.AsyncClient(base_url=sim.base_url, headers=headers, timeout=30) as client:
        yield client


@attrs.define
class Receiver:
    """A receiver on a real socket that records every post and answers ``statuses`` in turn."""

    url: str = ""
    posts: list[tuple[dict[str, str], Any]] = attrs.field(factory=list)
    statuses: list[int] = attrs.field(factory=list)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The InboundSmsMessage of each post, in arrival order."""
        return [body["InboundSmsMessage"] for _, body in self.posts]


@contextlib.asynccontextmanager
async def receiver(*statuses: int) -> AsyncIterator[Receiver]:
    """Serve a Receiver; after the given statuses it answers 204."""
    box = Receiver(statuses=list(statuses))

    async def endpoint(request: Request) -> Response:
        box.posts.append((dict(request.headers), await request.json()))
        status = box.statuses.pop(0) if box.statuses else 204
        return Response(status_code=status)

    app = Starlette(routes=[Route("/in", endpoint, methods=["POST"])])
    async with serve(app) as server:
        box.url = f"{server.url}/in"
        yield box


async def subscribe(api: httpx.AsyncClient, **extra: Any) -> httpx.Response:
    """Create the inbound subscription with plain httpx."""
    callback = {"url": "https://me.example/in", "securityToken": TOKEN, **extra}
    return await api.post("/inbound/subscriptions", json={"callback": callback})


async def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait (bounded) until another task or thread makes ``condition`` true."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - state changed by the simulator's tasks
            await asyncio.sleep(0.01)


def page_of(response: httpx.Response) -> dict[str, Any]:
    """The inboundSMSMessageList of a poll, checked against the spec's schema."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["inboundSMSMessageList"]
    assert schema_errors(body, "InboundSMSMessageList") == []
    return body


# -- how a handset splits a text ------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=700) | st.text(alphabet="ab€{😀é", max_size=400))
def test_texts_are_split_as_they_are_counted(text: str) -> None:
    """A text splits into exactly count_segments' parts, each within capacity, joined unchanged."""
    parts = split_segments(text)
    count = count_segments(text)
    assert len(parts) == count.parts
    assert "".join(parts) == text.replace("\t", "    ").replace("\b", "")
    for part in parts:
        assert count_segments(part).units <= count.per_part


def test_retry_schedule_is_bics_own() -> None:
    """2 min x5 in the first 10 min, 1 h x2, then 6 h until 3 days: 18 retries."""
    assert BICS_RETRY_DELAYS == (120.0,) * 5 + (3600.0,) * 2 + (21600.0,) * 11
    assert sum(BICS_RETRY_DELAYS) <= 3 * 86400 < sum(BICS_RETRY_DELAYS) + 21600


# -- the inbound subscription ---------------------------------------------------------------


async def test_inbound_subscription_lifecycle(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """Created (https only, concat kept), read, replaced, deleted, and 404 when absent."""
    path = "/inbound/subscriptions"
    assert (await api.get(path)).status_code == 404
    plain = await api.post(
        path, json={"callback": {"url": "http://me.example/in", "securityToken": "t"}}
    )
    assert (plain.status_code, plain.json()["code"]) == (406, "NOT_HTTPS")
    created = await subscribe(api, concat=False)
    assert created.status_code == 201
    assert created.json() == {
        "callback": {"url": "https://me.example/in", "securityToken": TOKEN, "concat": False}
    }
    assert schema_errors(created.json()["callback"], "InboundCallback") == []
    assert sim.simulator.inbound_subscription == InboundSubscription(
        "https://me.example/in", TOKEN, False
    )
    await subscribe(api)
    current = await api.get(path)
    assert current.json() == {"callback": {"url": "https://me.example/in", "securityToken": TOKEN}}
    assert (await api.delete(path)).status_code == 204
    assert (await api.delete(path)).status_code == 404
    assert sim.simulator.subscription is None  # the delivery subscription is another one


@pytest.mark.parametrize(
    "callback",
    [
        {"url": "https://me.example/in"},
        {"securityToken": TOKEN},
        {"url": "https://me.example/in", "securityToken": ""},
        {"url": "https://me.example/in", "securityToken": TOKEN, "concat": None},
        {"url": "https://me.example/in", "securityToken": TOKEN, "concat": "true"},
        {"url": "https://me.example/in", "securityToken": 5},
        {"url": "not a url", "securityToken": TOKEN},
    ],
)
async def test_malformed_inbound_subscription_is_400(
    sim: RunningSimulator, api: httpx.AsyncClient, callback: dict[str, Any]
) -> None:
    """A callback that breaks InboundCallback (null concat included) is refused and not stored."""
    response = await api.post("/inbound/subscriptions", json={"callback": callback})
    assert response.status_code == 400
    assert response.json()["requestError"]["serviceException"]["variables"] == ["callback"]
    assert sim.simulator.inbound_subscription is None


# -- polling --------------------------------------------------------------------------------


async def test_polled_messages_have_the_spec_shape_and_udh_fields(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """Without a subscription, messages wait in the inbox; long ones as parts with UDH fields."""
    short = sim.simulator.inject_inbound(HANDSET, NUMBER, "Hi", date_time="2021-11-24T09:13:40.639")
    long = sim.simulator.inject_inbound(HANDSET, f"tel:{NUMBER}", LONG)
    assert not short.posted and long.polled
    assert len(long.parts) == 3
    page = page_of(await api.get(MESSAGES))
    assert page["numberOfMessagesInThisBatch"] == 4
    assert page["totalNumberOfPendingMessages"] == 4
    assert page["resourceURL"] == f"{sim.base_url}{MESSAGES}"
    first, *parts = page["inboundSMSMessage"]
    assert first == {
        "dateTime": "2021-11-24T09:13:40.639",
        "destinationAddress": "32470000000",
        "senderAddress": "32470000001",
        "messageId": short.message_id,
        "message": "Hi",
        "resourceURL": f"{sim.base_url}{MESSAGES}/{short.message_id}",
    }
    assert [(p["concatPart"], p["concatTotal"]) for p in parts] == [(1, 3), (2, 3), (3, 3)]
    assert {p["udhMessageId"] for p in parts} == {long.reference}
    assert "".join(p["message"] for p in parts) == LONG
    assert [p["messageId"] for p in parts] == list(long.message_ids)


async def test_a_poll_consumes_in_batches(sim: RunningSimulator, api: httpx.AsyncClient) -> None:
    """maxBatchSize pages the queue; the total counts what is pending, this page included."""
    for index in range(5):
        sim.simulator.inject_inbound(HANDSET, NUMBER, f"m{index}")
    seen = []
    for expected_total, expected_size in [(5, 2), (3, 2), (1, 1), (0, 0)]:
        page = page_of(await api.get(MESSAGES, params={"maxBatchSize": 2}))
        assert page["totalNumberOfPendingMessages"] == expected_total
        assert page["numberOfMessagesInThisBatch"] == expected_size
        seen += [m["message"] for m in page["inboundSMSMessage"]]
    assert seen == [f"m{index}" for index in range(5)]
    assert sim.simulator.inbox_size(NUMBER) == 0


async def test_default_batch_is_twenty_and_zero_only_counts(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """Without maxBatchSize a poll returns 20; maxBatchSize=0 returns none and takes none."""
    for index in range(25):
        sim.simulator.inject_inbound(HANDSET, NUMBER, f"m{index}")
    counted = page_of(await api.get(MESSAGES, params={"maxBatchSize": 0}))
    assert (counted["numberOfMessagesInThisBatch"], counted["totalNumberOfPendingMessages"]) == (
        0,
        25,
    )
    assert page_of(await api.get(MESSAGES))["numberOfMessagesInThisBatch"] == 20
    assert sim.simulator.inbox_size(NUMBER) == 5


async def test_an_inbox_that_keeps_what_it_lists() -> None:
    """With inbox_consumes=False every poll lists the oldest messages again."""
    async with (
        run_simulator(inbox_consumes=False, **FAST) as sim,
        httpx.AsyncClient(
            base_url=sim.base_url, headers={"Authorization": f"Bearer {sim.api_key}"}
        ) as api,
    ):
        for index in range(3):
            sim.simulator.inject_inbound(HANDSET, NUMBER, f"m{index}")
        pages = [page_of(await api.get(MESSAGES, params={"maxBatchSize": 2})) for _ in range(2)]
    assert pages[0] == pages[1]
    assert [m["message"] for m in pages[0]["inboundSMSMessage"]] == ["m0", "m1"]
    assert pages[0]["totalNumberOfPendingMessages"] == 3


@pytest.mark.parametrize("path", [NUMBER_PATH, "%2B32470000000", "32470000000", "tel:+32470000000"])
async def test_the_number_may_be_written_any_way(
    sim: RunningSimulator, api: httpx.AsyncClient, path: str
) -> None:
    """tel:+, + or bare digits, encoded or not: one inbox."""
    sim.simulator.inject_inbound(HANDSET, NUMBER, "Hi")
    page = page_of(await api.get(f"/inbound/registrations/{path}/messages"))
    assert [m["message"] for m in page["inboundSMSMessage"]] == ["Hi"]


@pytest.mark.parametrize(
    "query",
    [
        "maxBatchSize=-1",
        "maxBatchSize=201",
        "maxBatchSize=abc",
        "maxBatchSize=",
        "maxBatchSize=1.5",
        "maxBatchSize=1&maxBatchSize=2",
        "maxBatchSize=%2B5",
    ],
)
async def test_bad_batch_size_is_400(
    sim: RunningSimulator, api: httpx.AsyncClient, query: str
) -> None:
    """maxBatchSize outside 0..200, not an integer, empty or repeated: 400, nothing taken."""
    sim.simulator.inject_inbound(HANDSET, NUMBER, "Hi")
    response = await api.get(f"{MESSAGES}?{query}")
    assert response.status_code == 400
    assert sim.simulator.inbox_size(NUMBER) == 1


async def test_another_number_is_404(api: httpx.AsyncClient) -> None:
    """Polling a number the account does not own is a 404."""
    response = await api.get("/inbound/registrations/tel%3A%2B32470000099/messages")
    assert (response.status_code, response.content) == (404, b"")


async def test_new_endpoints_require_the_api_key(sim: RunningSimulator) -> None:
    """Every inbound and conversion endpoint answers an empty 401 without credentials."""
    async with httpx.AsyncClient(base_url=sim.base_url) as anonymous:
        responses = [
            await anonymous.get(MESSAGES),
            await anonymous.get("/inbound/subscriptions"),
            await anonymous.post("/conversions", json={"conversionRequest": {"address": "32"}}),
            await anonymous.post("/conversionsinfos", json={"message_id": ["a"]}),
        ]
    assert [(r.status_code, r.content) for r in responses] == [(401, b"")] * 4
    assert sim.simulator.conversions == []


# -- posting to the subscription ------------------------------------------------------------


@pytest.mark.parametrize("concat", [True, False, None])
async def test_posts_follow_the_subscription_concat(
    sim: RunningSimulator, api: httpx.AsyncClient, concat: bool | None
) -> None:
    """concat true: one joined post; false: parts with UDH fields; absent: parts without."""
    extra = {} if concat is None else {"concat": concat}
    async with receiver() as box:
        await subscribe(api, **extra)
        sim.simulator.route_inbound_to(box.url)
        message = sim.simulator.inject_inbound(HANDSET, NUMBER, LONG)
        await sim.simulator.settle(timeout=30)
    assert message.posted and not message.polled
    assert sim.simulator.inbox_size(NUMBER) == 0
    for headers, body in box.posts:
        assert headers["authorization"] == f"Bearer {TOKEN}"
        assert headers["content-type"] == "application/json; charset=UTF-8"
        assert list(body) == ["InboundSmsMessage"]
        assert schema_errors(body["InboundSmsMessage"], "InboundSmsMessage") == []
    bodies = box.bodies
    if concat is True:
        assert [(b["messageId"], b["message"]) for b in bodies] == [(message.message_id, LONG)]
        assert "concatPart" not in bodies[0]
        return
    assert sorted(b["messageId"] for b in bodies) == sorted(message.message_ids)
    if concat is False:
        ordered = sorted(bodies, key=lambda b: b["concatPart"])
        assert "".join(b["message"] for b in ordered) == LONG
        assert {(b["udhMessageId"], b["concatTotal"]) for b in bodies} == {(message.reference, 3)}
    else:
        assert not any("udhMessageId" in b or "concatPart" in b for b in bodies)


async def test_parts_are_posted_shuffled_with_a_seeded_order() -> None:
    """concat=false parts come in a shuffled order, the same for the same seed."""
    orders = []
    for _ in range(2):
        async with run_simulator(**FAST) as sim, receiver() as box:
            sim.simulator.inbound_target = box.url
            await _subscribe_with(sim, concat=False)
            message = sim.simulator.inject_inbound(HANDSET, NUMBER, LONG * 2)
            await sim.simulator.settle(timeout=30)
        number_of = {part.message_id: part.number for part in message.parts}
        orders.append([number_of[b["messageId"]] for b in box.bodies])
    assert orders[0] == orders[1]
    assert orders[0] != sorted(orders[0])


async def test_failed_posts_are_retried_until_acknowledged(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """Non-2xx answers are retried on BICS's schedule; the retries keep the original token."""
    async with receiver(503, 500) as box:
        await subscribe(api)
        sim.simulator.route_inbound_to(box.url)
        message = sim.simulator.inject_inbound(HANDSET, NUMBER, "Hi")
        await eventually(lambda: len(box.posts) >= 1)
        await subscribe(api, securityToken="new-token-123")  # BICS retries with the old one
        await sim.simulator.settle(timeout=30)
    attempts = sim.simulator.inbound_attempts
    assert [(a.message_id, a.attempt, a.outcome, a.status_code) for a in attempts] == [
        (message.message_id, 0, "retrying", 503),
        (message.message_id, 1, "retrying", 500),
        (message.message_id, 2, "acknowledged", 204),
    ]
    assert {headers["authorization"] for headers, _ in box.posts} == {f"Bearer {TOKEN}"}


async def test_an_unreachable_receiver_is_retried_then_abandoned() -> None:
    """Connection errors are retried 18 times over (scaled) three days, then given up."""
    async with run_simulator(inbound_retry_time_scale=1e-6, **_without_scale(FAST)) as sim:
        async with serve(Starlette()) as gone:
            closed = gone.url  # nothing listens there once the block ends
        sim.simulator.route_inbound_to(f"{closed}/in")
        await _subscribe_with(sim)
        sim.simulator.inject_inbound(HANDSET, NUMBER, "Hi")
        await sim.simulator.settle(timeout=30)
    attempts = sim.simulator.inbound_attempts
    assert len(attempts) == len(BICS_RETRY_DELAYS) + 1
    assert [a.outcome for a in attempts] == ["retrying"] * len(BICS_RETRY_DELAYS) + ["abandoned"]
    assert all(a.error == "ConnectError" for a in attempts)


async def test_duplicate_rate_posts_each_message_twice() -> None:
    """With inbound_duplicate_rate=1 every post is sent twice, under the same messageId."""
    async with run_simulator(inbound_duplicate_rate=1.0, **FAST) as sim, receiver() as box:
        sim.simulator.route_inbound_to(box.url)
        await _subscribe_with(sim, concat=False)
        message = sim.simulator.inject_inbound(HANDSET, NUMBER, LONG)
        await sim.simulator.settle(timeout=30)
    assert sorted(b["messageId"] for b in box.bodies) == sorted(message.message_ids * 2)
    assert sorted(a.copy for a in sim.simulator.inbound_attempts) == [0, 0, 0, 1, 1, 1]


async def test_both_ways_with_inbox_with_subscription(sim: RunningSimulator) -> None:
    """inbox_with_subscription keeps posted messages in the inbox too."""
    sim.simulator.inbox_with_subscription = True
    async with receiver() as box:
        sim.simulator.route_inbound_to(box.url)
        await _subscribe_with(sim, concat=False)
        message = sim.simulator.inject_inbound(HANDSET, NUMBER, LONG)
        await sim.simulator.settle(timeout=30)
    assert message.posted and message.polled
    assert len(box.posts) == 3
    assert sim.simulator.inbox_size(NUMBER) == 3


def test_references_recycle_after_255() -> None:
    """Long messages take references 0, 1, ... 255, then 0 again; a given one is used as is."""
    from opensms_async.testing import Simulator

    simulator = Simulator(seed=1)
    references = [simulator.inject_inbound(HANDSET, NUMBER, LONG).reference for _ in range(257)]
    assert references == [*range(256), 0]
    assert simulator.inject_inbound(HANDSET, NUMBER, "short").reference is None
    assert simulator.inject_inbound(HANDSET, NUMBER, LONG, reference=9).reference == 9
    assert simulator.inject_inbound(HANDSET, NUMBER, LONG).reference == 1
    with pytest.raises(ValueError, match="reference"):
        simulator.inject_inbound(HANDSET, NUMBER, LONG, reference=256)
    with pytest.raises(ValueError, match="text"):
        simulator.inject_inbound(HANDSET, NUMBER, "")


def test_injecting_from_the_test_thread_posts_on_the_simulator_loop(
    opensms_simulator_factory: Callable[..., RunningSimulator],
) -> None:
    """inject_inbound is safe from a sync test while the simulator runs in its own thread."""
    sink = opensms_simulator_factory()  # a server that logs what it gets (and answers 401)
    running = opensms_simulator_factory(inbound_retry_time_scale=0.0)
    with httpx.Client(
        base_url=running.base_url, headers={"Authorization": f"Bearer {running.api_key}"}
    ) as api:
        callback = {"url": "https://me.example/in", "securityToken": TOKEN}
        assert api.post("/inbound/subscriptions", json={"callback": callback}).status_code == 201
    running.simulator.route_inbound_to(f"{sink.base_url}/conversions")
    message = running.simulator.inject_inbound(HANDSET, NUMBER, "Hi")
    for _ in range(1000):  # bounded: 10 s at most
        if running.simulator.is_settled:
            break
        time.sleep(0.01)
    attempts = running.simulator.inbound_attempts
    assert [(a.message_id, a.status_code) for a in attempts] == [(message.message_id, 401)] * 19
    assert attempts[-1].outcome == "abandoned"
    posts = [r for r in sink.simulator.requests_log if r.endpoint == "conversion"]
    assert [(r.method, r.status) for r in posts] == [("POST", 401)] * 19


# -- conversions ----------------------------------------------------------------------------


async def test_conversions_are_recorded(sim: RunningSimulator, api: httpx.AsyncClient) -> None:
    """A valid conversionRequest is answered 200 with an empty body and kept in sim.conversions."""
    by_address = await api.post(
        "/conversions", json={"conversionRequest": {"address": "32410300011"}}
    )
    by_reference = await api.post(
        "/conversions", json={"conversionRequest": {"customerReference": "order-42"}}
    )
    assert [(r.status_code, r.content) for r in (by_address, by_reference)] == [(200, b"")] * 2
    assert sim.simulator.conversions == [
        ConversionReport("conversions", address="32410300011"),
        ConversionReport("conversions", customer_reference="order-42"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"address": "32410300011"},
        {"conversionRequest": {}},
        {"conversionRequest": {"address": None}},
        {"conversionRequest": {"address": "call me"}},
        {"conversionRequest": {"address": 32410300011}},
        {"conversionRequest": {"customerReference": ""}},
        {"conversionRequest": {"customerReference": ["a"]}},
        {"conversionRequest": "32410300011"},
    ],
)
async def test_malformed_conversion_is_400(
    sim: RunningSimulator, api: httpx.AsyncClient, body: Any
) -> None:
    """A body that breaks ConversionRequest (or names neither field) is 400 and not recorded."""
    response = await api.post("/conversions", json=body)
    assert response.status_code == 400
    assert sim.simulator.conversions == []


@pytest.mark.parametrize(
    ("form", "expected"), [("array", ["nope-1"]), ("object", {"message_id": ["nope-1"]})]
)
async def test_conversion_infos_answer_the_refused_ids(
    sim: RunningSimulator, api: httpx.AsyncClient, form: str, expected: Any
) -> None:
    """Ids naming no sent request are refused, listed in the configured shape; else empty 200."""
    sim.simulator.conversion_refusal_format = form  # type: ignore[assignment]
    sent = await api.post(
        "/outbound/tel%3A%2B3212345/requests",
        json={
            "outboundSMSMessageRequest": {
                "address": ["tel:+33612345678"],
                "senderAddress": "tel:+3212345",
                "outboundSMSTextMessage": {"message": "Hi"},
            }
        },
    )
    request_id = sent.headers["location"].rsplit("/", 1)[1]
    mixed = await api.post("/conversionsinfos", json={"message_id": [request_id, "nope-1"]})
    clean = await api.post("/conversionsinfos", json={"message_id": [request_id], "type": "SMS"})
    assert (mixed.status_code, mixed.json()) == (200, expected)
    assert (clean.status_code, clean.content) == (200, b"")
    assert sim.simulator.conversions == [
        ConversionReport(
            "conversionsinfos", message_ids=(request_id, "nope-1"), refused=("nope-1",)
        ),
        ConversionReport("conversionsinfos", message_ids=(request_id,), type="SMS"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"message_id": "a"},
        {"message_id": [1]},
        {"message_id": [""]},
        {"message_id": None},
        {"message_id": ["a"], "type": None},
        {"message_id": ["a"], "type": 3},
        ["a"],
    ],
)
async def test_malformed_conversion_infos_is_400(
    sim: RunningSimulator, api: httpx.AsyncClient, body: Any
) -> None:
    """A body that breaks MessageIdsDTO is 400 and not recorded."""
    response = await api.post("/conversionsinfos", json=body)
    assert response.status_code == 400
    assert sim.simulator.conversions == []


async def test_conversions_forbidden_is_403(sim: RunningSimulator, api: httpx.AsyncClient) -> None:
    """conversions_forbidden answers both endpoints 403, as for a key without the role."""
    sim.simulator.conversions_forbidden = True
    one = await api.post("/conversions", json={"conversionRequest": {"address": "32410300011"}})
    many = await api.post("/conversionsinfos", json={"message_id": ["a"]})
    assert (one.status_code, many.status_code) == (403, 403)
    assert sim.simulator.conversions == []


# -- the SDK client end to end --------------------------------------------------------------


def client_for(sim: RunningSimulator) -> OpenSMSClient:
    """A client pointed at the simulator."""
    return OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url)


async def _subscribe_with(sim: RunningSimulator, concat: bool | None = None) -> None:
    async with client_for(sim) as client:
        await client.create_inbound_subscription("https://me.example/in", TOKEN, concat)


def _without_scale(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "inbound_retry_time_scale"}


async def test_client_manages_the_inbound_subscription(sim: RunningSimulator) -> None:
    """create, get and delete against the simulator; get is None and delete raises when gone."""
    async with client_for(sim) as client:
        created = await client.create_inbound_subscription("https://me.example/in", TOKEN, False)
        assert created == InboundSubscription("https://me.example/in", TOKEN, False)
        assert await client.get_inbound_subscription() == created
        assert sim.simulator.inbound_subscription == created
        await client.delete_inbound_subscription()
        assert await client.get_inbound_subscription() is None
        with pytest.raises(NotFoundError):
            await client.delete_inbound_subscription()


async def test_client_polls_the_inbox_and_the_parts_reassemble(sim: RunningSimulator) -> None:
    """get_inbound_messages returns typed parts that the reassembly rules join into the text."""
    short = sim.simulator.inject_inbound(HANDSET, NUMBER, "Hi")
    long = sim.simulator.inject_inbound(HANDSET, NUMBER, LONG)
    async with client_for(sim) as client:
        first = await client.get_inbound_messages(NUMBER, max_batch_size=2)
        rest = await client.get_inbound_messages(f"tel:{NUMBER}")
        empty = await client.get_inbound_messages(NUMBER, max_batch_size=200)
    assert (first.total_pending, rest.total_pending, empty.total_pending) == (4, 2, 0)
    assert first.messages[0].message_id == short.message_id
    assert empty.messages == []
    parts = [m for m in first.messages + rest.messages if m.message_id != short.message_id]
    group, joined = None, list[Assembled]()
    for index, message in enumerate(reversed(parts)):
        part = Part(
            message.message_id or "",
            message.sender_address or "",
            message.destination_address or "",
            message.message or "",
            message.udh_message_id,
            message.concat_part,
            message.concat_total,
        )
        assert group_key(part) is not None
        outcome = add_part(group, part, float(index))
        group, joined = outcome.group, joined + list(outcome.messages)
    assert [(m.message_id, m.text, m.complete) for m in joined] == [(long.message_id, LONG, True)]


async def test_client_poll_survives_a_server_error(sim: RunningSimulator) -> None:
    """A 503 before the poll is processed is retried and the page arrives, nothing lost."""
    sim.simulator.inject_inbound(HANDSET, NUMBER, "Hi")
    sim.simulator.add_fault(Fault.respond(503, endpoint="inbound_messages"))
    async with client_for(sim) as client:
        page = await client.get_inbound_messages(NUMBER)
    assert [m.message for m in page.messages] == ["Hi"]
    statuses = [r.status for r in sim.simulator.requests_log if r.endpoint == "inbound_messages"]
    assert statuses == [503, 200]


async def test_client_poll_of_an_unknown_number_is_not_found(sim: RunningSimulator) -> None:
    """Polling a number the account does not own raises NotFoundError."""
    async with client_for(sim) as client:
        with pytest.raises(NotFoundError):
            await client.get_inbound_messages("+32470000099")


async def test_client_reports_conversions(sim: RunningSimulator) -> None:
    """report_conversion and report_conversions reach the simulator; refused ids come back."""
    async with client_for(sim) as client:
        sent = await client.send_message("tel:+3212345", "+33612345678", "Hi")
        await client.report_conversion(address="tel:+32410300011")
        await client.report_conversion(customer_reference="order-42")
        assert await client.report_conversions([sent.request_id]) == []
        assert await client.report_conversions([sent.request_id, "nope"], type="SMS") == ["nope"]
        sim.simulator.conversion_refusal_format = "object"
        assert await client.report_conversions(["nope"]) == ["nope"]
    assert sim.simulator.conversions == [
        ConversionReport("conversions", address="32410300011"),
        ConversionReport("conversions", customer_reference="order-42"),
        ConversionReport("conversionsinfos", message_ids=(sent.request_id,)),
        ConversionReport(
            "conversionsinfos", message_ids=(sent.request_id, "nope"), type="SMS", refused=("nope",)
        ),
        ConversionReport("conversionsinfos", message_ids=("nope",), refused=("nope",)),
    ]


async def test_client_with_oauth_polls_the_inbox(sim: RunningSimulator) -> None:
    """The inbox is reachable with OAuth client credentials too."""
    sim.simulator.inject_inbound(HANDSET, NUMBER, "Hi")
    oauth = OAuthClientCredentials(
        sim.client_id, sim.client_secret, scope="sms-a2p-ott", token_url=sim.token_url
    )
    async with OpenSMSClient(oauth=oauth, base_url=sim.base_url) as client:
        page = await client.get_inbound_messages(NUMBER)
    assert [m.message for m in page.messages] == ["Hi"]
