"""The receiver's inbound endpoint over real sockets: uvicorn, the simulator posting, the inbox."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from inbound_helpers import PATH, TOKEN, FlakyStore, bearer, body, receiving
from stream_helpers import take

from opensms_async import (
    DeliveryTracker,
    InboundMessage,
    Inbox,
    OpenSMSClient,
    create_receiver_app,
)
from opensms_async._server import serve
from opensms_async.testing import RunningSimulator, run_simulator

pytestmark = pytest.mark.integration

NUMBER = "+32470000000"
HANDSET = "+32470000001"
LONG = "".join(f"{i:03d} " for i in range(100))  # 400 GSM-7 characters: 3 parts
FAST: dict[str, Any] = {"seed": 5, "step_delay": (0.01, 0.02), "inbound_retry_time_scale": 1e-4}


async def logged(inbox: Inbox) -> list[InboundMessage]:
    """Everything the inbox's store logged so far."""
    return await inbox.store.read_messages(None)


async def test_a_message_is_recorded_before_the_204_and_yielded_once() -> None:
    """204 only once recorded; a duplicate is 204 too and yields nothing new."""
    async with Inbox() as inbox, receiving(inbox) as http:
        first = await http.post(PATH, json=body(), headers=bearer())
        assert first.status_code == 204 and first.content == b""
        assert [m.text for m in await logged(inbox)] == ["Hello"]
        again = await http.post(PATH, json=body(), headers=bearer())
        assert again.status_code == 204
        (message,) = await take(inbox.messages(), 1)
        assert [m.message_id for m in await logged(inbox)] == ["m-1"]
    assert (message.sender, message.destination, message.source) == (
        "tel:+32470000001",
        "tel:+32470000000",
        "callback",
    )


async def test_concurrent_duplicate_posts_yield_once(tmp_path: Path) -> None:
    """The same message posted 20 times at once, SQLite store: 20 answers 204, one message."""
    async with Inbox(f"sqlite:///{tmp_path / 'in.db'}") as inbox, receiving(inbox) as http:
        answers = await asyncio.gather(
            *(http.post(PATH, json=body(), headers=bearer()) for _ in range(20))
        )
        assert [a.status_code for a in answers] == [204] * 20
        assert [m.message_id for m in await logged(inbox)] == ["m-1"]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing security token"),
        ({"Authorization": "Bearer wrong-token"}, "wrong security token"),
        ({"Authorization": f"Basic {TOKEN}"}, "missing security token"),
        ({"Authorization": "Bearer x"}, "wrong security token"),
    ],
)
async def test_a_bad_token_is_401_and_nothing_is_stored(
    headers: dict[str, str], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Missing or wrong Bearer token: 401 with a reason, a WARNING without the token, no record."""
    async with Inbox() as inbox, receiving(inbox) as http:
        with caplog.at_level(logging.WARNING, logger="opensms_async.receiver"):
            answer = await http.post(PATH, json=body(), headers=headers)
        assert answer.status_code == 401
        assert answer.json() == {"error": "unauthorized", "reason": reason}
        assert await logged(inbox) == []
    assert any("inbound message refused (401" in line for line in caplog.messages)
    assert not any(TOKEN in line for line in caplog.messages)


async def test_a_token_in_the_body_is_not_enough() -> None:
    """BICS sends the inbound token as a header: one in the body alone is refused."""
    async with Inbox() as inbox, receiving(inbox) as http:
        answer = await http.post(PATH, json=body(securityToken=TOKEN))
        assert answer.status_code == 401


async def test_several_tokens_are_accepted_while_rotating() -> None:
    """inbound_security_token=["new", "old"]: both are accepted, any other refused."""
    async with Inbox() as inbox, receiving(inbox, ["new-token-1", TOKEN]) as http:
        assert (
            await http.post(PATH, json=body("a"), headers=bearer("new-token-1"))
        ).status_code == 204
        assert (await http.post(PATH, json=body("b"), headers=bearer(TOKEN))).status_code == 204
        assert (await http.post(PATH, json=body("c"), headers=bearer("other"))).status_code == 401
        assert [m.message_id for m in await logged(inbox)] == ["a", "b"]


@pytest.mark.parametrize(
    ("content", "status", "error"),
    [
        (b"{not json", 400, "not_json"),
        (b'{"InboundSmsMessage": {"message": "no id"}}', 422, "not_inbound"),
        (b'{"InboundSmsMessage": {"messageId": ""}}', 422, "not_inbound"),
        (b'{"InboundSmsMessage": {"messageId": {"a": 1}}}', 422, "not_inbound"),
        (b'{"deliveryInfoList": {}}', 422, "not_inbound"),
        (b"[1, 2]", 422, "not_inbound"),
        (b'{"InboundSmsMessage": [{"messageId": "a"}, 7]}', 422, "not_inbound"),
    ],
)
async def test_bodies_that_are_not_inbound_messages_are_refused(
    content: bytes, status: int, error: str
) -> None:
    """Malformed JSON 400, not an inbound message with a messageId 422: nothing stored."""
    async with Inbox() as inbox, receiving(inbox) as http:
        answer = await http.post(PATH, content=content, headers=bearer())
        assert (answer.status_code, answer.json()["error"]) == (status, error)
        assert await logged(inbox) == []


async def test_a_body_over_the_limit_is_413() -> None:
    """A body over max_body_size: 413, nothing stored."""
    async with Inbox() as inbox, receiving(inbox, max_body_size=1024) as http:
        answer = await http.post(PATH, json=body(text="x" * 2000), headers=bearer())
        assert (answer.status_code, answer.json()["error"]) == (413, "too_large")
        assert await logged(inbox) == []


async def test_a_store_down_is_503_and_the_retry_is_recorded() -> None:
    """Store failing: 503 (never 500), the health route says so; BICS's retry is recorded."""
    async with Inbox(FlakyStore(failures=1)) as inbox, receiving(inbox) as http:
        down = await http.post(PATH, json=body(), headers=bearer())
        assert (down.status_code, down.json()["error"]) == (503, "not_recorded")
        health = await http.get("/healthz")
        assert health.status_code == 503
        assert health.json()["reason"] == "the last inbound message could not be recorded"
        assert (await http.post(PATH, json=body(), headers=bearer())).status_code == 204
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert [m.message_id for m in await logged(inbox)] == ["m-1"]


async def test_a_hung_store_is_503_within_the_record_deadline() -> None:
    """A store that never answers: 503 when the deadline passes, not when the sender gives up."""
    async with Inbox(FlakyStore(hang=True)) as inbox, receiving(inbox, record_deadline=0.5) as http:
        answer = await http.post(PATH, json=body(), headers=bearer())
    assert (answer.status_code, answer.json()["reason"]) == (
        503,
        "not recorded within 0.5 s; retry later",
    )


async def test_one_app_receives_delivery_callbacks_and_inbound_messages() -> None:
    """Tracker and inbox side by side: each path with its own token."""
    callback = {
        "deliveryInfoList": {
            "securityToken": "dlr-token-1",
            "resourceURL": "https://h/outbound/tel%3A%2B32123/requests/req-1/deliveryInfos",
            "deliveryInfo": [
                {"address": "tel:+33612345678", "deliveryStatus": "DeliveredToTerminal"}
            ],
        }
    }
    async with DeliveryTracker() as tracker, Inbox() as inbox:
        app = create_receiver_app(tracker, "dlr-token-1", inbox=inbox, inbound_security_token=TOKEN)
        async with serve(app) as server, httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.post("/sms/callback", json=callback)).status_code == 204
            assert (await http.post(PATH, json=body(), headers=bearer())).status_code == 204
            assert (
                await http.post(PATH, json=body("x"), headers=bearer("dlr-token-1"))
            ).status_code == 401
            assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert await tracker.get("req-1", "tel:+33612345678") is not None
        assert [m.message_id for m in await logged(inbox)] == ["m-1"]


async def test_the_lifespan_opens_and_closes_the_inbox() -> None:
    """Served alone, the app opens an inbox that is not open and closes it on the way out."""
    inbox = Inbox()
    app = create_receiver_app(None, inbox=inbox, inbound_security_token=TOKEN)
    async with serve(app) as server, httpx.AsyncClient(base_url=server.url) as http:
        assert inbox.is_open
        assert (await http.post(PATH, json=body(), headers=bearer())).status_code == 204
    assert not inbox.is_open


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ({}, "tracker, an inbox"),
        ({"security_token": "x"}, "needs a tracker"),
        ({"inbox": "INBOX"}, "non-empty security token"),
        ({"inbox": "INBOX", "inbound_security_token": ""}, "non-empty security token"),
        ({"tracker": True, "security_token": "x", "inbound_security_token": "y"}, "needs an inbox"),
    ],
)
def test_settings_that_cannot_work_are_refused(given: dict[str, Any], match: str) -> None:
    """No tracker nor inbox, a token without its side, an empty token: ValueError."""
    kwargs = dict(given)
    tracker = DeliveryTracker() if kwargs.pop("tracker", False) else None
    if kwargs.get("inbox") == "INBOX":
        kwargs["inbox"] = Inbox()
    with pytest.raises(ValueError, match=match):
        create_receiver_app(tracker, **kwargs)


def test_the_two_paths_must_differ() -> None:
    """The callback and inbound paths cannot be one."""
    with pytest.raises(ValueError, match="must differ"):
        create_receiver_app(
            DeliveryTracker(), "t", "/in", inbox=Inbox(), inbound_path="/in",
            inbound_security_token="u",
        )  # fmt: skip


# -- the simulator posting ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def simulated(
    inbox: Inbox, concat: bool | None, **config: Any
) -> AsyncIterator[RunningSimulator]:
    """A simulator whose inbound subscription posts to an inbound receiver of ``inbox``."""
    app = create_receiver_app(None, inbox=inbox, inbound_security_token=TOKEN)
    settings = {**FAST, **config}
    async with run_simulator(inbound_numbers=(NUMBER,), **settings) as sim, serve(app) as server:
        sim.simulator.route_inbound_to(server.url + PATH)
        async with OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client:
            await client.create_inbound_subscription("https://me.example/in", TOKEN, concat)
        yield sim


@pytest.mark.parametrize("concat", [True, False])
async def test_the_simulator_posts_one_whole_message(concat: bool) -> None:
    """concat true (joined by BICS) or false (shuffled parts, some twice): one message, once."""
    async with Inbox() as inbox, simulated(inbox, concat, inbound_duplicate_rate=0.5) as sim:
        sent = sim.simulator.inject_inbound(HANDSET, NUMBER, LONG)
        short = sim.simulator.inject_inbound(HANDSET, NUMBER, "Yes")
        await sim.simulator.settle(timeout=30)
        messages = await take(inbox.messages(), 2)
        assert await logged(inbox) == messages  # nothing else was logged
    assert sorted((m.text, m.complete) for m in messages) == [(LONG, True), ("Yes", True)]
    whole = next(m for m in messages if m.text == LONG)
    assert whole.message_id == sent.message_id
    assert whole.parts == (1 if concat else 3)
    assert short.message_id in {m.message_id for m in messages}


async def test_legacy_parts_without_udh_fields_are_separate_messages() -> None:
    """concat absent: each part is posted without UDH fields and yielded as its own message."""
    async with Inbox() as inbox, simulated(inbox, None) as sim:
        sent = sim.simulator.inject_inbound(HANDSET, NUMBER, LONG)
        await sim.simulator.settle(timeout=30)
        messages = await take(inbox.messages(), 3)
    assert sorted(m.message_id for m in messages) == sorted(sent.message_ids)
    assert (
        "".join(
            m.text for m in sorted(messages, key=lambda m: sent.message_ids.index(m.message_id))
        )
        == LONG
    )
    assert all(m.complete and m.parts == 1 for m in messages)


async def test_posts_answered_503_are_retried_and_recorded_once() -> None:
    """The store fails the first posts: 503, BICS (the simulator) retries, one message comes out."""
    async with Inbox(FlakyStore(failures=2)) as inbox, simulated(inbox, False) as sim:
        sent = sim.simulator.inject_inbound(HANDSET, NUMBER, LONG)
        await sim.simulator.settle(timeout=30)
        (message,) = await take(inbox.messages(), 1)
        assert [m.text for m in await logged(inbox)] == [LONG]
    assert (message.text, message.message_id) == (LONG, sent.message_id)
    outcomes = [(a.status_code, a.outcome) for a in sim.simulator.inbound_attempts]
    assert outcomes.count((503, "retrying")) == 2
    assert outcomes.count((204, "acknowledged")) == 3


async def test_sqlite_restarted_between_parts_loses_nothing(tmp_path: Path) -> None:
    """Two parts received, the process restarted, the last part: the whole message, once."""
    url = f"sqlite:///{tmp_path / 'in.db'}"
    parts = [
        body(f"p{n}", text, udhMessageId=42, concatPart=n, concatTotal=3)
        for n, text in ((2, "lo "), (1, "Hel"), (3, "you"))
    ]
    async with Inbox(url) as inbox, receiving(inbox) as http:
        for part in parts[:2]:
            assert (await http.post(PATH, json=part, headers=bearer())).status_code == 204
    async with Inbox(url) as inbox, receiving(inbox) as http:
        for part in (parts[0], parts[2], parts[1]):  # a retry of one, the last, a retry again
            assert (await http.post(PATH, json=part, headers=bearer())).status_code == 204
        (message,) = await take(inbox.messages(), 1)
    assert (message.text, message.parts, message.message_id) == ("Hello you", 3, "p1")
