"""The OpenSMS simulator over real sockets, driven with plain httpx (not the SDK client)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opensms_async.testing import Fault, RunningSimulator, Simulator, run_simulator, serve

pytestmark = pytest.mark.integration

SENDER = "tel:+3212345"
REQUESTS = "/outbound/tel%3A%2B3212345/requests"
FINAL = {"DeliveredToTerminal", "DeliveryImpossible"}
FAST: dict[str, Any] = {"seed": 7, "step_delay": (0.01, 0.03)}


def send_body(*addresses: str, text: str = "Hello", **extra: Any) -> dict[str, Any]:
    request = {
        "address": list(addresses),
        "senderAddress": SENDER,
        "outboundSMSTextMessage": {"message": text},
        **extra,
    }
    return {"outboundSMSMessageRequest": request}


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with run_simulator(**FAST) as running:
        yield running


@pytest.fixture
async def api(sim: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {sim.api_key}"}
    async with httpx.AsyncClient(base_url=sim.base_url, headers=headers, timeout=30) as client:
        yield client


@contextlib.asynccontextmanager
async def receiver(status: int = 204) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A callback receiver on a real socket that keeps every JSON body it is posted."""
    bodies: list[dict[str, Any]] = []

    async def endpoint(request: Request) -> Response:
        bodies.append(await request.json())
        return Response(status_code=status)

    app = Starlette(routes=[Route("/cb", endpoint, methods=["POST"])])
    async with serve(app) as server:
        yield f"{server.url}/cb", bodies


async def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polling state another thread may change
            await asyncio.sleep(0.01)


async def poll_until_final(api: httpx.AsyncClient, location: str) -> dict[str, Any]:
    async with asyncio.timeout(30.0):
        while True:
            response = await api.get(f"{location}/deliveryInfos")
            infos: dict[str, Any] = response.json()["deliveryInfoList"]
            if all(i["deliveryStatus"] in FINAL for i in infos["deliveryInfo"]):
                return infos
            await asyncio.sleep(0.02)


async def subscribe(api: httpx.AsyncClient, url: str = "https://me.example/cb") -> None:
    callback = {"url": url, "securityToken": "r2k5hq3"}
    response = await api.post("/outbound/subscriptions", json={"callback": callback})
    assert response.status_code == 201


def statuses(bodies: list[dict[str, Any]], address: str) -> list[str]:
    infos = [b["deliveryInfoList"]["deliveryInfo"][0] for b in bodies]
    return [i["deliveryStatus"] for i in infos if i["address"] == address]


# -- authentication ---------------------------------------------------------------------------


async def test_wrong_or_missing_key_is_401_with_empty_body(sim: RunningSimulator) -> None:
    """Requests without the API key are refused with BICS's empty 401 and never processed."""
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        missing = await client.post(REQUESTS, json=send_body("tel:+33612345678"))
        wrong = await client.get("/outbound/subscriptions", headers={"Authorization": "Bearer x"})
    assert (missing.status_code, missing.content) == (401, b"")
    assert wrong.status_code == 401
    assert sim.simulator.sends == 0


async def test_oauth_token_is_issued_and_accepted_until_it_expires() -> None:
    """Client credentials buy a bearer token that works until expires_in, and issues are counted."""
    now = [0.0]
    async with (
        run_simulator(token_ttl=60, clock=lambda: now[0]) as sim,
        httpx.AsyncClient() as client,
    ):
        form = {
            "grant_type": "client_credentials",
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "scope": "sms sms-a2p-business-class",
        }
        token = (await client.post(sim.token_url, data=form)).json()
        assert (token["token_type"], token["expires_in"]) == ("Bearer", 60)
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        ok = await client.get(f"{sim.base_url}/outbound/subscriptions", headers=headers)
        now[0] = 60.0
        expired = await client.get(f"{sim.base_url}/outbound/subscriptions", headers=headers)
        bad = await client.post(sim.token_url, data=form | {"client_secret": "nope"})
    assert (ok.status_code, expired.status_code) == (404, 401)
    assert (bad.status_code, bad.json()) == (401, {"error": "invalid_client"})
    assert sim.simulator.tokens_issued == 1


# -- sending ----------------------------------------------------------------------------------


async def test_send_answers_201_with_location_and_echoed_request(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """A send is echoed with its resourceURL, the Location header and one deliveryInfo each."""
    body = send_body("tel:+33612345678", "tel:+33612345679", senderName="shop")
    response = await api.post(REQUESTS, json=body)
    assert response.status_code == 201
    sent = response.json()["outboundSMSMessageRequest"]
    request_id = response.headers["location"].rsplit("/", 1)[-1]
    assert sent["resourceURL"] == response.headers["location"]
    assert sent["resourceURL"] == f"{sim.base_url}{REQUESTS}/{request_id}"
    assert sent["senderName"] == "shop"
    assert sent["clientCorrelator"]
    assert sent["deliveryInfoList"]["resourceURL"] == f"{sent['resourceURL']}/deliveryInfos"
    infos = sent["deliveryInfoList"]["deliveryInfo"]
    assert [(i["address"], i["deliveryStatus"]) for i in infos] == [
        ("tel:+33612345678", "DeliveredToNetwork"),
        ("tel:+33612345679", "DeliveredToNetwork"),
    ]
    assert sim.simulator.message(request_id).addresses == ("tel:+33612345678", "tel:+33612345679")


@pytest.mark.parametrize(
    "request_fields",
    [
        {"address": ["+33612345678"]},
        {"address": []},
        {"outboundSMSTextMessage": {}},
        {"asynchronous": "true"},
        {"finalDelivery": 1},
    ],
)
async def test_invalid_send_is_400_with_a_service_exception(
    sim: RunningSimulator, api: httpx.AsyncClient, request_fields: dict[str, Any]
) -> None:
    """A malformed send is refused with an OMA SVC0002 body naming the bad part."""
    body = send_body("tel:+33612345678")
    body["outboundSMSMessageRequest"] |= request_fields
    response = await api.post(REQUESTS, json=body)
    assert response.status_code == 400
    exception = response.json()["requestError"]["serviceException"]
    assert exception["messageId"] == "SVC0002"
    assert exception["variables"] == [next(iter(request_fields))]
    assert sim.simulator.sends == 0


async def test_same_correlator_replays_the_original_response_without_sending(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """A second send under the same clientCorrelator returns the first answer and sends nothing."""
    body = send_body("tel:+33612345678", clientCorrelator="order-42")
    first = await api.post(REQUESTS, json=body)
    again = await api.post(REQUESTS, json=body)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"]
    assert sim.simulator.sends == 1
    assert sim.simulator.messages_per_recipient["tel:+33612345678"] == 1


# -- delivery progression ---------------------------------------------------------------------


async def test_recipients_progress_to_their_final_state(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """Polling sees each recipient reach a final state; a number ending in 99 fails."""
    response = await api.post(REQUESTS, json=send_body("tel:+33612345678", "tel:+33612345699"))
    location = response.headers["location"]
    infos = await poll_until_final(api, location)
    final = {
        i["address"]: (i["deliveryStatus"], i["deliveryStatusCode"]) for i in infos["deliveryInfo"]
    }
    assert final == {
        "tel:+33612345678": ("DeliveredToTerminal", 2),
        "tel:+33612345699": ("DeliveryImpossible", 3),
    }
    request_id = location.rsplit("/", 1)[-1]
    assert sim.simulator.state_of(request_id, "+33612345678") == "DeliveredToTerminal"


async def test_unknown_request_id_is_404(api: httpx.AsyncClient) -> None:
    """Polling a request id the API never issued answers 404."""
    response = await api.get(f"{REQUESTS}/no-such-id/deliveryInfos")
    assert response.status_code == 404


async def test_poll_from_another_sender_is_404(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """A request id polled under another sender is unknown, encoded or not in the path."""
    response = await api.post(REQUESTS, json=send_body("tel:+33612345678"))
    request_id = response.headers["location"].rsplit("/", 1)[-1]
    other = await api.get(f"/outbound/tel%3A%2B3299999/requests/{request_id}/deliveryInfos")
    bare = await api.get(f"/outbound/%2B3212345/requests/{request_id}/deliveryInfos")
    encoded = await api.get(f"{REQUESTS}/{request_id}/deliveryInfos")
    plain = await api.get(f"/outbound/tel:+3212345/requests/{request_id}/deliveryInfos")
    assert (other.status_code, other.content) == (404, b"")
    assert bare.status_code == 404
    assert plain.request.url.raw_path.startswith(b"/outbound/tel:+3212345/")
    assert (encoded.status_code, plain.status_code) == (200, 200)
    resource = f"{response.headers['location']}/deliveryInfos"
    assert plain.json()["deliveryInfoList"]["resourceURL"] == resource


async def test_plain_sender_path_send_is_polled_under_the_encoded_one(
    api: httpx.AsyncClient,
) -> None:
    """A send to /outbound/tel:+3212345/requests is the same sender as tel%3A%2B3212345."""
    response = await api.post("/outbound/tel:+3212345/requests", json=send_body("tel:+331"))
    request_id = response.headers["location"].rsplit("/", 1)[-1]
    assert response.headers["location"].endswith(f"{REQUESTS}/{request_id}")
    assert (await api.get(f"{REQUESTS}/{request_id}/deliveryInfos")).status_code == 200


async def test_asynchronous_send_accepts_every_recipient_and_validates_later() -> None:
    """asynchronous: true answers MessageAccepted (12) for all; a bad number fails only later."""
    now = [0.0]
    async with (
        run_simulator(clock=lambda: now[0], **FAST) as sim,
        httpx.AsyncClient(base_url=sim.base_url, headers=_auth(sim)) as api,
    ):
        body = send_body("tel:+33612345678", "tel:+33612345699", asynchronous=True)
        response = await api.post(REQUESTS, json=body)
        location = response.headers["location"]
        at_once = (await api.get(f"{location}/deliveryInfos")).json()["deliveryInfoList"]
        now[0] = 10.0
        later = (await api.get(f"{location}/deliveryInfos")).json()["deliveryInfoList"]
    sent = response.json()["outboundSMSMessageRequest"]
    assert response.status_code == 201
    assert sent["asynchronous"] is True
    assert [
        (i["address"], i["deliveryStatus"], i["deliveryStatusCode"])
        for i in sent["deliveryInfoList"]["deliveryInfo"]
    ] == [
        ("tel:+33612345678", "MessageAccepted", 12),
        ("tel:+33612345699", "MessageAccepted", 12),
    ]
    assert {i["deliveryStatus"] for i in at_once["deliveryInfo"]} == {"MessageAccepted"}
    assert [(i["deliveryStatus"], i["deliveryStatusCode"]) for i in later["deliveryInfo"]] == [
        ("DeliveredToTerminal", 2),
        ("DeliveryImpossible", 3),
    ]


async def test_asynchronous_send_callbacks_start_with_message_accepted(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """Each recipient's callbacks run MessageAccepted, DeliveredToNetwork, then its final state."""
    async with receiver() as (url, bodies):
        await subscribe(api)
        sim.simulator.route_callbacks_to(url)
        body = send_body("tel:+33612345678", "tel:+33612345699", asynchronous=True)
        location = (await api.post(REQUESTS, json=body)).headers["location"]
        await sim.simulator.settle(timeout=30)
    assert statuses(bodies, "tel:+33612345678") == [
        "MessageAccepted",
        "DeliveredToNetwork",
        "DeliveredToTerminal",
    ]
    assert statuses(bodies, "tel:+33612345699") == [
        "MessageAccepted",
        "DeliveredToNetwork",
        "DeliveryImpossible",
    ]
    timeline = sim.simulator.message(location.rsplit("/", 1)[-1]).timelines["tel:+33612345678"]
    assert (timeline[0].at, timeline[0].status) == (0.0, "MessageAccepted")
    assert timeline[1].at > 0.0


async def test_asynchronous_false_is_an_ordinary_send(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """asynchronous: false is echoed and answers DeliveredToNetwork, with no MessageAccepted."""
    response = await api.post(REQUESTS, json=send_body("tel:+331", asynchronous=False))
    sent = response.json()["outboundSMSMessageRequest"]
    assert sent["asynchronous"] is False
    assert sent["deliveryInfoList"]["deliveryInfo"][0]["deliveryStatus"] == "DeliveredToNetwork"
    timeline = sim.simulator.messages[0].timelines["tel:+331"]
    assert "MessageAccepted" not in [t.status for t in timeline]


async def test_multipart_message_is_partially_delivered_part_by_part(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """A three-part message goes PartiallyDelivered 1, 2, then DeliveredToTerminal with 3 parts."""
    async with receiver() as (url, bodies):
        await subscribe(api)
        sim.simulator.route_callbacks_to(url)
        response = await api.post(REQUESTS, json=send_body("tel:+33612345678", text="x" * 400))
        infos = await poll_until_final(api, response.headers["location"])
        await sim.simulator.settle(timeout=30)
    assert infos["smsParts"] == 3
    assert infos["deliveryInfo"][0]["smsPartsDeliveredToTerminal"] == 3
    steps = [b["deliveryInfoList"]["deliveryInfo"][0] for b in bodies]
    assert [(s["deliveryStatus"], s["smsPartsDeliveredToTerminal"]) for s in steps] == [
        ("DeliveredToNetwork", 0),
        ("PartiallyDelivered", 1),
        ("PartiallyDelivered", 2),
        ("DeliveredToTerminal", 3),
    ]


# -- subscriptions ----------------------------------------------------------------------------


async def test_subscription_lifecycle(api: httpx.AsyncClient) -> None:
    """Subscriptions are created (https only), read, replaced, deleted, and 404 when absent."""
    path = "/outbound/subscriptions"
    assert (await api.get(path)).status_code == 404
    plain = await api.post(
        path, json={"callback": {"url": "http://me.example/cb", "securityToken": "t"}}
    )
    assert (plain.status_code, plain.json()["code"]) == (406, "NOT_HTTPS")
    assert (
        await api.post(path, json={"callback": {"url": "https://me.example"}})
    ).status_code == 400
    await subscribe(api, "https://old.example/cb")
    await subscribe(api, "https://new.example/cb")
    current = await api.get(path)
    assert current.json() == {
        "callback": {"url": "https://new.example/cb", "securityToken": "r2k5hq3"}
    }
    assert (await api.delete(path)).status_code == 204
    assert (await api.delete(path)).status_code == 404


# -- callbacks --------------------------------------------------------------------------------


async def test_callbacks_carry_each_state_in_the_bics_shape(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """Each state change is posted as a deliveryInfoList holding the subscription's token."""
    async with receiver() as (url, bodies):
        await subscribe(api)
        sim.simulator.route_callbacks_to(url)
        body = send_body("tel:+33612345678", callbackData="ref-1")
        location = (await api.post(REQUESTS, json=body)).headers["location"]
        await sim.simulator.settle(timeout=30)
    assert statuses(bodies, "tel:+33612345678") == ["DeliveredToNetwork", "DeliveredToTerminal"]
    infos = bodies[-1]["deliveryInfoList"]
    assert infos["securityToken"] == "r2k5hq3"
    assert infos["resourceURL"] == f"{location}/deliveryInfos"
    assert infos["smsParts"] == 1
    assert infos["deliveryInfo"] == [
        {
            "address": "tel:+33612345678",
            "deliveryStatus": "DeliveredToTerminal",
            "deliveryStatusCode": 2,
            "smsPartsDeliveredToTerminal": 1,
            "callbackData": "ref-1",
        }
    ]
    assert sim.simulator.callbacks_acknowledged == 2


async def test_notify_url_takes_precedence_over_the_subscription(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """A send's notifyURL receives its callbacks, even when a subscription exists."""
    async with receiver() as (sub_url, sub_bodies), receiver() as (notify_url, notify_bodies):
        await subscribe(api)
        sim.simulator.route_callbacks_to(sub_url)
        await api.post(REQUESTS, json=send_body("tel:+33612345678", notifyURL=notify_url))
        await sim.simulator.settle(timeout=30)
    assert statuses(notify_bodies, "tel:+33612345678")[-1] == "DeliveredToTerminal"
    assert sub_bodies == []


async def test_final_delivery_subscription_gets_only_final_states(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """A subscription with finalDelivery=true is posted the final state only."""
    async with receiver() as (url, bodies):
        callback = {"url": "https://me.example/cb", "securityToken": "t", "finalDelivery": True}
        await api.post("/outbound/subscriptions", json={"callback": callback})
        sim.simulator.route_callbacks_to(url)
        await api.post(REQUESTS, json=send_body("tel:+33612345678", "tel:+33612345699"))
        await sim.simulator.settle(timeout=30)
    assert sorted(statuses(bodies, a)[0] for a in ("tel:+33612345678", "tel:+33612345699")) == [
        "DeliveredToTerminal",
        "DeliveryImpossible",
    ]
    assert len(bodies) == 2


async def test_send_final_delivery_overrides_the_subscription(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """A send's finalDelivery decides for its own callbacks: true limits them, false lifts it."""
    async with receiver() as (url, bodies), receiver() as (notify_url, notify_bodies):
        callback = {"url": "https://me.example/cb", "securityToken": "t", "finalDelivery": True}
        await api.post("/outbound/subscriptions", json={"callback": callback})
        sim.simulator.route_callbacks_to(url)
        await api.post(REQUESTS, json=send_body("tel:+331", finalDelivery=False))
        final_only = send_body("tel:+332", notifyURL=notify_url, finalDelivery=True)
        await api.post(REQUESTS, json=final_only)
        await sim.simulator.settle(timeout=30)
    assert statuses(bodies, "tel:+331") == ["DeliveredToNetwork", "DeliveredToTerminal"]
    assert statuses(notify_bodies, "tel:+332") == ["DeliveredToTerminal"]


async def test_send_final_delivery_limits_a_subscription_that_wants_every_state(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """A send with finalDelivery=true gets only its final state, though the subscription (no
    finalDelivery) takes every state of other sends."""
    async with receiver() as (url, bodies):
        await subscribe(api)
        sim.simulator.route_callbacks_to(url)
        await api.post(REQUESTS, json=send_body("tel:+331", finalDelivery=True))
        await api.post(REQUESTS, json=send_body("tel:+332"))
        await sim.simulator.settle(timeout=30)
    assert statuses(bodies, "tel:+331") == ["DeliveredToTerminal"]
    assert statuses(bodies, "tel:+332") == ["DeliveredToNetwork", "DeliveredToTerminal"]


async def test_uncertain_number_goes_through_delivery_uncertain(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """A number ending in 98 is DeliveryUncertain before it is delivered."""
    async with receiver() as (url, bodies):
        await subscribe(api)
        sim.simulator.route_callbacks_to(url)
        await api.post(REQUESTS, json=send_body("tel:+33612345698"))
        await sim.simulator.settle(timeout=30)
    assert statuses(bodies, "tel:+33612345698") == [
        "DeliveredToNetwork",
        "DeliveryUncertain",
        "DeliveredToTerminal",
    ]


async def test_drop_rate_one_sends_no_callback() -> None:
    """With callback_drop_rate=1.0 every callback is lost on purpose, and recorded as dropped."""
    async with run_simulator(callback_drop_rate=1.0, **FAST) as sim, receiver() as (url, bodies):
        sim.simulator.route_callbacks_to(url)
        async with httpx.AsyncClient(base_url=sim.base_url, headers=_auth(sim)) as api:
            await subscribe(api)
            await api.post(REQUESTS, json=send_body("tel:+33612345678"))
        await sim.simulator.settle(timeout=30)
    assert bodies == []
    assert (sim.simulator.callbacks_dropped, sim.simulator.callbacks_attempted) == (2, 0)


async def test_duplicate_rate_one_posts_every_callback_twice() -> None:
    """With callback_duplicate_rate=1.0 the receiver gets each state twice."""
    async with (
        run_simulator(callback_duplicate_rate=1.0, **FAST) as sim,
        receiver() as (
            url,
            bodies,
        ),
    ):
        sim.simulator.route_callbacks_to(url)
        async with httpx.AsyncClient(base_url=sim.base_url, headers=_auth(sim)) as api:
            await subscribe(api)
            await api.post(REQUESTS, json=send_body("tel:+33612345678"))
        await sim.simulator.settle(timeout=30)
    assert sorted(statuses(bodies, "tel:+33612345678")) == [
        "DeliveredToNetwork",
        "DeliveredToNetwork",
        "DeliveredToTerminal",
        "DeliveredToTerminal",
    ]


async def test_failed_callbacks_are_lost_not_retried() -> None:
    """A receiver answering 500 loses each callback: one attempt each, recorded as failed."""
    async with run_simulator(**FAST) as sim, receiver(status=500) as (url, bodies):
        sim.simulator.route_callbacks_to(url)
        async with httpx.AsyncClient(base_url=sim.base_url, headers=_auth(sim)) as api:
            await subscribe(api)
            await api.post(REQUESTS, json=send_body("tel:+33612345678"))
        await sim.simulator.settle(timeout=30)
    assert len(bodies) == 2
    assert (sim.simulator.callbacks_failed, sim.simulator.callbacks_acknowledged) == (2, 0)


async def test_seeded_runs_plan_the_same_callbacks() -> None:
    """Two simulators with one seed plan identical schedules; jitter can put a final first."""
    config: dict[str, Any] = {
        "callback_jitter": 0.5,
        "callback_duplicate_rate": 0.3,
        "callback_drop_rate": 0.2,
    }
    plans = []
    for seed in (11, 11, 12):
        simulator = Simulator(seed=seed, **config)
        # Planning needs no lifespan: the app is driven in-process here, and nothing is posted.
        transport = httpx.ASGITransport(app=simulator.app)
        headers = {"Authorization": f"Bearer {simulator.api_key}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://sim", headers=headers
        ) as api:
            for n in range(10):
                await api.post(REQUESTS, json=send_body(f"tel:+3361234560{n}"))
        planned = simulator.planned_callbacks
        plans.append([(p.address, p.status, p.delay, p.copy, p.dropped) for p in planned])
    assert plans[0] == plans[1]
    assert plans[0] != plans[2]
    first_seen: dict[str, str] = {}
    for address, status, *_ in sorted(plans[0], key=lambda p: p[2]):
        first_seen.setdefault(address, status)
    assert "DeliveredToTerminal" in first_seen.values()


async def _planned(seed: int, asynchronous: list[bool]) -> list[tuple[Any, ...]]:
    """The callbacks a simulator plans for one send per flag (driven in-process, not posted)."""
    simulator = Simulator(seed=seed, callback_jitter=0.5, callback_duplicate_rate=0.3)
    transport = httpx.ASGITransport(app=simulator.app)
    headers = {"Authorization": f"Bearer {simulator.api_key}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sim", headers=headers
    ) as api:
        for n, flag in enumerate(asynchronous):
            extra: dict[str, Any] = {"asynchronous": True} if flag else {}
            await api.post(REQUESTS, json=send_body(f"tel:+3361234560{n}", **extra))
    return [(p.address, p.status, p.delay, p.copy) for p in simulator.planned_callbacks]


async def test_seeded_asynchronous_sends_plan_the_same_callbacks() -> None:
    """One seed and the same sends plan the same callbacks, asynchronous sends included."""
    flags = [True, False, True]
    first, again = await _planned(11, flags), await _planned(11, flags)
    assert first == again
    accepted = [p for p in first if p[1] == "MessageAccepted"]
    assert {p[0] for p in accepted} == {"tel:+33612345600", "tel:+33612345602"}


async def test_asynchronous_send_leaves_other_sends_plans_unchanged() -> None:
    """An asynchronous send between ordinary ones does not change what the ordinary ones plan."""
    mixed = await _planned(5, [False, True, False])
    plain = await _planned(5, [False, False, False])
    ordinary = ("tel:+33612345600", "tel:+33612345602")
    assert [p for p in mixed if p[0] in ordinary] == [p for p in plain if p[0] in ordinary]
    assert [p for p in mixed if p[0] == "tel:+33612345601"] != [
        p for p in plain if p[0] == "tel:+33612345601"
    ]


# -- faults -----------------------------------------------------------------------------------


async def test_429_fault_carries_retry_after(sim: RunningSimulator, api: httpx.AsyncClient) -> None:
    """A 429 fault answers with Retry-After and does not send; the next request goes through."""
    sim.simulator.add_fault(Fault.respond(429, retry_after=2, endpoint="send"))
    limited = await api.post(REQUESTS, json=send_body("tel:+33612345678"))
    passed = await api.post(REQUESTS, json=send_body("tel:+33612345678"))
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "2")
    assert passed.status_code == 201
    assert sim.simulator.sends == 1


async def test_503_fault_applies_only_to_its_endpoint_and_count(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """A 503 fault on polls leaves sends alone and is used up after `times` requests."""
    sim.simulator.add_fault(Fault.respond(503, endpoint="poll", times=2))
    location = (await api.post(REQUESTS, json=send_body("tel:+33612345678"))).headers["location"]
    codes = [(await api.get(f"{location}/deliveryInfos")).status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    assert [r.status for r in sim.simulator.requests_log] == [201, 503, 503, 200]


async def test_slow_fault_times_the_client_out_but_still_sends(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """A slow answer makes the client time out, yet the message is sent afterwards."""
    sim.simulator.add_fault(Fault.slow(1.0, endpoint="send"))
    with pytest.raises(httpx.ReadTimeout):
        await api.post(REQUESTS, json=send_body("tel:+33612345678"), timeout=0.1)
    await eventually(lambda: sim.simulator.sends == 1)


async def test_dropped_connection_sends_nothing(
    sim: RunningSimulator, api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A connection dropped before processing is a client-side connection error and no send."""
    sim.simulator.add_fault(Fault.drop(endpoint="send"))
    with caplog.at_level(logging.WARNING), pytest.raises(httpx.RemoteProtocolError):
        await api.post(REQUESTS, json=send_body("tel:+33612345678"))
    assert sim.simulator.sends == 0
    assert sim.simulator.requests_log[-1].status is None
    assert not [r for r in caplog.records if r.name.startswith("uvicorn")]


async def test_dropped_response_sends_once_and_the_retry_is_replayed(
    sim: RunningSimulator, api: httpx.AsyncClient
) -> None:
    """Process-then-drop sends the message; a retry under the correlator replays, never resends."""
    sim.simulator.add_fault(Fault.drop_response(endpoint="send"))
    body = send_body("tel:+33612345678", clientCorrelator="retry-me")
    with pytest.raises(httpx.RemoteProtocolError):
        await api.post(REQUESTS, json=body)
    assert sim.simulator.sends == 1
    retried = await api.post(REQUESTS, json=body)
    assert retried.status_code == 201
    request_id = retried.headers["location"].rsplit("/", 1)[-1]
    assert sim.simulator.messages[0].request_id == request_id
    assert (sim.simulator.sends, sim.simulator.replays) == (1, 1)
    assert sim.simulator.messages_per_recipient["tel:+33612345678"] == 1


async def test_hourly_quota_answers_429_once_used_up() -> None:
    """Requests beyond hourly_quota are refused with 429."""
    async with (
        run_simulator(hourly_quota=2) as sim,
        httpx.AsyncClient(base_url=sim.base_url, headers=_auth(sim)) as api,
    ):
        codes = [(await api.get("/outbound/subscriptions")).status_code for _ in range(3)]
    assert codes == [404, 404, 429]


async def test_base_path_prefixes_every_endpoint_and_resource_url() -> None:
    """With base_path set, the API and its resourceURLs live under it."""
    async with run_simulator(base_path="/smsmessaging/v1") as sim:
        assert sim.base_url.endswith("/smsmessaging/v1")
        async with httpx.AsyncClient(base_url=sim.base_url, headers=_auth(sim)) as api:
            response = await api.post(REQUESTS, json=send_body("tel:+33612345678"))
            polled = await api.get(f"{response.headers['location']}/deliveryInfos")
    assert response.headers["location"].startswith(f"{sim.base_url}/outbound/")
    assert polled.status_code == 200


async def test_serve_raises_when_the_app_fails_to_start() -> None:
    """serve() reports a failing lifespan startup as RuntimeError instead of exiting the loop."""

    @contextlib.asynccontextmanager
    async def failing(app: Starlette) -> AsyncIterator[None]:
        raise ValueError("no database")
        yield

    with pytest.raises(RuntimeError, match="failed to start"):
        async with serve(Starlette(lifespan=failing)):
            pass


# -- the pytest fixtures ----------------------------------------------------------------------


def test_sync_fixture_serves_a_simulator_from_a_thread(
    opensms_simulator: RunningSimulator,
) -> None:
    """The opensms_simulator fixture works from plain sync tests, faults included."""
    opensms_simulator.simulator.add_fault(Fault.respond(503, endpoint="send"))
    with httpx.Client(base_url=opensms_simulator.base_url, headers=_auth(opensms_simulator)) as api:
        assert api.post(REQUESTS, json=send_body("tel:+33612345678")).status_code == 503
        assert api.post(REQUESTS, json=send_body("tel:+33612345678")).status_code == 201
    assert opensms_simulator.simulator.sends == 1


async def test_factory_fixture_applies_settings(
    opensms_simulator_factory: Callable[..., RunningSimulator],
) -> None:
    """The factory fixture builds simulators from settings and serves them beside the test loop."""
    running = opensms_simulator_factory(api_key="k", base_path="/sms/v3", seed=3)
    assert isinstance(running.simulator, Simulator)
    async with httpx.AsyncClient(base_url=running.base_url) as api:
        response = await api.post(
            REQUESTS, json=send_body("tel:+33612345678"), headers={"Authorization": "Bearer k"}
        )
    assert response.status_code == 201
    await running.simulator.settle(timeout=30)
    assert (
        running.simulator.state_of(running.simulator.messages[0].request_id, "tel:+33612345678")
        == "DeliveredToTerminal"
    )


def _auth(sim: RunningSimulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {sim.api_key}"}
