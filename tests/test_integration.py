"""The client, the tracker and the CLI against the bundled simulator, over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from opensms_async import (
    DeliveryStatus,
    DeliveryTracker,
    Message,
    OAuthClientCredentials,
    OpenSMSClient,
    RateLimitError,
    create_receiver_app,
)
from opensms_async._cli import main
from opensms_async.testing import Fault, RunningSimulator, run_simulator, serve

pytestmark = pytest.mark.integration

SENDER = "tel:+3212345678"
S = DeliveryStatus


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    """A simulator in this event loop with fast, seeded delivery."""
    async with run_simulator(seed=5, step_delay=(0.01, 0.03)) as running:
        yield running


def client_for(sim: RunningSimulator, **kwargs: object) -> OpenSMSClient:
    """A client pointed at the simulator."""
    return OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url, **kwargs)  # type: ignore[arg-type]


async def poll_until_final(client: OpenSMSClient, request_id: str) -> dict[str, object]:
    """Poll deliveryInfos until every recipient is final (bounded)."""
    async with asyncio.timeout(30):
        while True:
            infos = await client.get_delivery_infos(SENDER, request_id)
            if all(info.is_final for info in infos.delivery_infos):
                return {info.address: info.status for info in infos.delivery_infos}
            await asyncio.sleep(0.02)


async def test_send_and_poll_to_final(sim: RunningSimulator) -> None:
    """A send reports DeliveredToNetwork; polling ends final, the number ending 99 failing."""
    async with client_for(sim) as client:
        sent = await client.send_message(SENDER, ["+33612345670", "+33612345699"], "Hello")
        assert {i.status for i in sent.delivery_infos} == {S.DELIVERED_TO_NETWORK}
        finals = await poll_until_final(client, sent.request_id)
    assert finals == {
        "tel:+33612345670": S.DELIVERED_TO_TERMINAL,
        "tel:+33612345699": S.DELIVERY_IMPOSSIBLE,
    }


async def test_alphanumeric_sender_round_trip(sim: RunningSimulator) -> None:
    """An alphanumeric sender with a space works for send and poll (percent-encoded path)."""
    async with client_for(sim) as client:
        sent = await client.send_message("ALPHA NUM", "+33612345670", "Hi")
        infos = await client.get_delivery_infos("ALPHA NUM", sent.request_id)
    assert infos.delivery_infos[0].address == "tel:+33612345670"


async def test_multipart_reports_parts(sim: RunningSimulator) -> None:
    """A long text is reported as several parts and ends delivered."""
    async with client_for(sim) as client:
        sent = await client.send_message(SENDER, "+33612345670", "x" * 320)
        assert sent.parts == 3
        finals = await poll_until_final(client, sent.request_id)
    assert finals == {"tel:+33612345670": S.DELIVERED_TO_TERMINAL}


async def test_subscription_lifecycle(sim: RunningSimulator) -> None:
    """Create, get and delete the one subscription; get is None when there is none."""
    async with client_for(sim) as client:
        assert await client.get_subscription() is None
        await client.create_subscription("https://me.example/cb", "tok-1234")
        sub = await client.get_subscription()
        assert sub is not None and (sub.url, sub.security_token) == (
            "https://me.example/cb",
            "tok-1234",
        )
        await client.delete_subscription()
        assert await client.get_subscription() is None


async def test_lost_send_response_is_replayed_not_resent(sim: RunningSimulator) -> None:
    """A send whose answer is lost is retried under its correlator: sent once, answered the same."""
    sim.simulator.add_fault(Fault.drop_response(endpoint="send"))
    async with client_for(sim, sleep=_no_sleep) as client:
        sent = await client.send_message(SENDER, "+33612345670", "Once")
    assert (sim.simulator.sends, sim.simulator.replays) == (1, 1)
    assert sim.simulator.messages[0].request_id == sent.request_id
    assert sim.simulator.messages_per_recipient["tel:+33612345670"] == 1


async def test_retry_after_on_poll(sim: RunningSimulator) -> None:
    """A 429 with Retry-After on a poll is waited out and the poll succeeds."""
    waits: list[float] = []

    async def sleep(delay: float) -> None:
        waits.append(delay)

    async with client_for(sim, sleep=sleep) as client:
        sent = await client.send_message(SENDER, "+33612345670", "Hi")
        sim.simulator.add_fault(Fault.respond(429, retry_after=7, endpoint="poll"))
        infos = await client.get_delivery_infos(SENDER, sent.request_id)
    assert waits == [7.0]
    assert infos.delivery_infos


async def test_hourly_quota_raises_rate_limit(sim: RunningSimulator) -> None:
    """Past the simulator's hourly quota, the client raises RateLimitError."""
    sim.simulator.hourly_quota = 2
    async with client_for(sim, max_retries=0) as client:
        await client.get_subscription()
        await client.get_subscription()
        with pytest.raises(RateLimitError):
            await client.get_subscription()


async def test_oauth_against_the_token_endpoint(sim: RunningSimulator) -> None:
    """OAuth client credentials fetch one token from the simulator and reuse it."""
    creds = OAuthClientCredentials(
        sim.client_id, sim.client_secret, "sms-a2p-business-class", token_url=sim.token_url
    )
    async with OpenSMSClient(oauth=creds, base_url=sim.base_url) as client:
        await asyncio.gather(*(client.get_subscription() for _ in range(5)))
    assert sim.simulator.tokens_issued == 1


async def test_send_many_against_the_simulator(sim: RunningSimulator) -> None:
    """send_many delivers every message once and reports each."""
    messages = [Message(SENDER, f"+3361234{i:04d}", "Bulk") for i in range(40)]
    async with client_for(sim) as client:
        results = [r async for r in client.send_many(messages, concurrency=8)]
    assert len(results) == 40 and all(r.ok for r in results)
    assert sim.simulator.sends == 40


async def test_lost_callbacks_recovered_by_polling() -> None:
    """With every callback dropped, the reconciliation poller still brings all recipients final."""
    token = "tok-recover"
    async with (
        run_simulator(seed=2, step_delay=(0.01, 0.03), callback_drop_rate=1.0) as sim,
        client_for(sim) as client,
        DeliveryTracker(client=client, reconcile_after=0.1) as tracker,
        serve(create_receiver_app(tracker, token, manage_tracker=False)) as receiver,
    ):
        sim.simulator.route_callbacks_to(receiver.url + "/sms/callback")
        await client.create_subscription("https://me.example/cb", token)
        sent = await client.send_message(SENDER, ["+33612345670", "+33612345699"], "Hi")
        await tracker.track(sent)
        finals = await asyncio.gather(
            *(tracker.wait_for_final(sent.request_id, a, timeout=30) for a in sent.recipients)
        )
        events = await tracker.store.read_events(None)
    assert [f.status for f in finals] == [S.DELIVERED_TO_TERMINAL, S.DELIVERY_IMPOSSIBLE]
    assert {str(e.source) for e in events if e.is_final} == {"poll"}
    assert sim.simulator.callbacks_dropped > 0


async def test_callbacks_reach_the_tracker() -> None:
    """With callbacks flowing and no polling client, the receiver alone brings every state final."""
    token = "tok-flow"
    async with (
        run_simulator(
            seed=4, step_delay=(0.01, 0.03), callback_duplicate_rate=0.5, callback_jitter=0.05
        ) as sim,
        client_for(sim) as client,
        DeliveryTracker() as tracker,
        serve(create_receiver_app(tracker, token, manage_tracker=False)) as receiver,
    ):
        sim.simulator.route_callbacks_to(receiver.url + "/sms/callback")
        await client.create_subscription("https://me.example/cb", token)
        sent = await client.send_message(
            SENDER, ["+33612345670", "+33612345699", "+33612345698"], "x" * 200
        )
        await tracker.track(sent)
        finals = await asyncio.gather(
            *(tracker.wait_for_final(sent.request_id, a, timeout=30) for a in sent.recipients)
        )
        events = await tracker.store.read_events(None)
    assert [f.status for f in finals] == [
        S.DELIVERED_TO_TERMINAL,
        S.DELIVERY_IMPOSSIBLE,
        S.DELIVERED_TO_TERMINAL,
    ]
    assert all(str(e.source) in ("callback", "send") for e in events)
    assert len({(e.address, e.status, e.parts_delivered) for e in events}) == len(events)


def test_cli_against_the_simulator_fixture(
    opensms_simulator: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The opensms command sends, shows status and manages the subscription."""
    base = ["--api-key", opensms_simulator.api_key, "--base-url", opensms_simulator.base_url]
    assert main([*base, "send", "--from", SENDER, "--to", "+33612345670", "Hello"]) == 0
    out = capsys.readouterr().out
    request_id = out.split()[1]
    assert "tel:+33612345670" in out
    assert main([*base, "status", "--from", SENDER, request_id]) == 0
    assert "tel:+33612345670" in capsys.readouterr().out
    assert main([*base, "subscription", "get"]) == 0
    assert "no subscription" in capsys.readouterr().out
    assert main([*base, "subscription", "create", "https://me.example/cb", "--token", "t0k3n"]) == 0
    assert "t0k3n" not in capsys.readouterr().out
    assert main([*base, "subscription", "delete"]) == 0
    assert main([*base, "subscription", "delete"]) == 1
    assert "404" in capsys.readouterr().err


def test_cli_segments(capsys: pytest.CaptureFixture[str]) -> None:
    """opensms segments reports the encoding and the parts."""
    assert main(["segments", "Hello €"]) == 0
    assert capsys.readouterr().out.startswith("GSM-7: 8 units, 1 part(s)")


def test_cli_refuses_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad number is reported on stderr with exit code 2 (invalid input) and no traceback."""
    code = main(
        [
            "--api-key",
            "k",
            "--base-url",
            "http://127.0.0.1:9",
            "send",
            "--from",
            SENDER,
            "--to",
            "0612",
            "x",
        ]
    )
    assert code == 2
    assert "error:" in capsys.readouterr().err


async def _no_sleep(delay: float) -> None:
    """A sleep that does not wait."""
