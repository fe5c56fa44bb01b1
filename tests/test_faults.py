"""Faults on the wire: lost callbacks, throttled and failing polls, slow and dropped sends.

Real sockets throughout: the simulator (which drops callbacks and injects faults), a receiver
under uvicorn, and the client with a short timeout. Retries sleep through an injected, fast
``sleep`` so that the tests take about as long as the simulated deliveries. Reconciliation runs
on a manual clock shared by the tracker and the simulator: the polls come when the test moves
time on, and what a poll sees follows from that time, not from how loaded the machine is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from opensms_async import (
    DeliveryStatus,
    DeliveryTracker,
    OpenSMSClient,
    SendResult,
    Source,
    create_receiver_app,
)
from opensms_async.testing import (
    Fault,
    ManualClock,
    RunningSimulator,
    Simulator,
    run_simulator,
    serve,
)

pytestmark = pytest.mark.integration

TOKEN = "faults-token-9"
SENDER = "tel:+3212345678"
PATH = "/sms/callback"
LONG = "A text long enough to need three parts. " * 10  # GSM-7, 400 characters
UCS2 = "\u00dcn\u00efc\u00f6d\u00e9 \U0001f44b " * 12  # UCS-2, 2 parts
SENDS = [
    (["+33612345601", "+33612345699", "+33612345602"], "Short text"),
    (["+447700900101", "+447700900199"], LONG),
    (["+32470000001", "+32470000098"], UCS2),  # ...98: DeliveryUncertain on the way
    (["+33600000099"], LONG),
    (["+33600000004", "+33600000005", "+33600000006", "+33600000007"], "Hi"),
    (["+491700000001"], LONG),
    (["+491700000002", "+491700000099"], "x"),
    (["+34600000001", "+34600000002"], UCS2),
]
RECONCILE_AFTER = 0.2
STEP_DELAY = (0.01, 0.04)
"""At most four steps per recipient (network, uncertain, partial, partial... terminal for three
parts: DN, PD1, PD2, DT), so every recipient is final in the simulator 0.16 s after the send."""
POLLER = "opensms-reconciliation"
"""The name of the tracker's reconciliation task (the one sleeper on the manual clock)."""
STEP = 0.5
"""Manual seconds the clock moves at a time: more than a poll interval (at most 0.48 s with
``max_poll_interval=0.4`` and its jitter), so each step brings the next polls due."""


async def fast_sleep(seconds: float) -> None:
    """The client's retry sleep, shortened: backoff and Retry-After without the wait."""
    await asyncio.sleep(min(seconds, 0.01))


async def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    """Poll ``condition`` every 10 ms; TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - counters of another task, no event to wait on
            await asyncio.sleep(0.01)


async def poller_round(clock: ManualClock) -> None:
    """Wait (bounded, real time) until the poller has finished its round and sleeps again."""
    await asyncio.sleep(0)
    await wait_until(lambda: clock.sleeping(POLLER), timeout=30)


async def run_clock(clock: ManualClock, done: Callable[[], Awaitable[bool]]) -> None:
    """Move the clock on a ``STEP`` at a time, each after the poller's round, until ``done``."""
    for _ in range(200):  # 100 manual seconds: ten times what the faults cost at most
        if await done():
            return
        await poller_round(clock)
        clock.advance(STEP)
    raise AssertionError("still not done after 200 steps of the clock")


def polls(simulator: Simulator) -> int:
    """deliveryInfos requests the simulator received (faulted ones included)."""
    return sum(record.endpoint == "poll" for record in simulator.requests_log)


def faulted_polls(simulator: Simulator) -> int:
    """deliveryInfos requests that met an injected fault."""
    return sum(r.endpoint == "poll" and r.fault is not None for r in simulator.requests_log)


def expected_final(address: str) -> DeliveryStatus:
    """The simulator's outcome for a number: ...99 fails, every other one is delivered."""
    if address.endswith("99"):
        return DeliveryStatus.DELIVERY_IMPOSSIBLE
    return DeliveryStatus.DELIVERED_TO_TERMINAL


async def send_all(client: OpenSMSClient, tracker: DeliveryTracker) -> list[SendResult]:
    """Send every message of SENDS and track it."""
    sent = []
    for to, text in SENDS:
        result = await client.send_message(SENDER, to, text)
        await tracker.track(result)
        sent.append(result)
    return sent


async def test_lost_callbacks_and_failing_polls_are_reconciled_in_bounded_polls() -> None:
    """With 30% of callbacks dropped and polls answered 429 (with and without Retry-After), 503,
    a timeout and a dropped connection, every recipient (failing numbers and multipart texts
    included) reaches its true final state, with one clean poll per request that lost a callback
    plus one per injected fault, and polling stops once all are final (an hour on, none
    followed)."""
    poll_faults = [
        Fault.respond(429, retry_after=0.3, endpoint="poll", times=2),
        Fault.respond(429, endpoint="poll", times=2),
        Fault.respond(503, endpoint="poll", times=2),
        Fault.slow(2.5, endpoint="poll", times=1),  # longer than the client's 2 s timeout
        Fault.drop(endpoint="poll", times=1),
    ]
    clock = ManualClock()
    async with run_simulator(
        seed=11,
        callback_drop_rate=0.3,
        callback_duplicate_rate=0.2,
        callback_jitter=0.05,
        step_delay=STEP_DELAY,
        clock=clock.time,
    ) as sim:
        simulator = sim.simulator
        for fault in poll_faults:
            simulator.add_fault(fault)
        injected = sum(fault.times or 0 for fault in poll_faults)
        async with (
            OpenSMSClient(
                api_key=sim.api_key, base_url=sim.base_url, timeout=2.0, sleep=fast_sleep
            ) as client,
            DeliveryTracker(
                client=client,
                reconcile_after=RECONCILE_AFTER,
                max_poll_interval=0.4,
                clock=clock.time,
                sleep=clock.sleep,
            ) as tracker,
        ):
            app = create_receiver_app(tracker, TOKEN, path=PATH, manage_tracker=False)
            async with serve(app) as receiver:
                simulator.route_callbacks_to(receiver.url + PATH)
                await client.create_subscription("https://example.test/sms", TOKEN)
                sent = await send_all(client, tracker)
                pairs = [(s.request_id, a) for s in sent for a in s.recipients]
                # Every recipient is final in the simulator by the first poll (manual time).
                assert max(m.final_after for m in simulator.messages) < RECONCILE_AFTER
                # Every callback posted (or dropped) before time moves: the polls then recover
                # exactly the requests whose callbacks did not all come.
                everything = len(simulator.planned_callbacks)
                await wait_until(lambda: len(simulator.callback_attempts) == everything, 30)
                unfinished = {rid for rid, a in pairs if not await is_final(tracker, rid, a)}

                async def all_final() -> bool:
                    return all([await is_final(tracker, rid, a) for rid, a in pairs])

                await run_clock(clock, all_final)
                finals = [await tracker.wait_for_final(rid, a, timeout=30) for rid, a in pairs]
                # A slow poll is logged when the simulator answers it, after the client gave up.
                await wait_until(lambda: faulted_polls(simulator) == injected, timeout=30)
                polls_when_final = polls(simulator)
                clock.advance(3600.0)  # past every poll interval and pause, short of retention
                await poller_round(clock)  # it claimed what was due an hour on: nothing
                events = await tracker.store.read_events(None, limit=10_000)

    for (rid, address), state in zip(pairs, finals, strict=True):
        assert state.status is expected_final(address), (rid, address, state)
        assert state.status == simulator.state_of(rid, address)
        message = simulator.message(rid)
        if state.status is DeliveryStatus.DELIVERED_TO_TERMINAL:
            assert state.parts_delivered == message.parts
    assert {simulator.message(s.request_id).parts for s in sent} == {1, 2, 3}
    assert simulator.callbacks_dropped > 0
    recovered = [
        e
        for e in events
        if e.source is Source.POLL and e.status in ("DeliveredToTerminal", "DeliveryImpossible")
    ]
    assert recovered, "no final state came from reconciliation"
    assert {e.request_id for e in recovered} <= unfinished
    assert all(fault.hits == fault.times for fault in poll_faults)
    # One clean poll per request some callback of which was lost (every recipient is final in
    # the simulator by the first poll), plus one poll per injected fault; requests whose
    # callbacks all arrived are never polled at all.
    assert polls(simulator) == len(unfinished) + injected <= len(SENDS) + injected
    assert polls(simulator) == polls_when_final
    print(
        f"\nfaults: {len(pairs)} recipients, {simulator.callbacks_dropped} callbacks dropped, "
        f"{len(recovered)} finals recovered by polling, {polls(simulator)} polls "
        f"({len(unfinished)} requests to recover, {injected} faulted)"
    )


async def is_final(tracker: DeliveryTracker, request_id: str, address: str) -> bool:
    """True once the tracker holds a final state for the pair."""
    state = await tracker.get(request_id, address)
    return state is not None and state.is_final


def send_faults() -> list[Fault]:
    """Faults on the send endpoint: slow (past the timeout), answered-then-dropped, 503, 429."""
    return [
        Fault.slow(2.5, endpoint="send", times=2),
        Fault.drop_response(endpoint="send", times=3),
        Fault.respond(503, endpoint="send", times=2),
        Fault.respond(429, retry_after=0.05, endpoint="send", times=1),
        Fault.drop(endpoint="send", times=1),
    ]


async def test_retried_sends_are_never_delivered_twice() -> None:
    """Ten concurrent sends meeting timeouts, answers lost after sending, 503s and 429s are each
    retried under their clientCorrelator: the simulator sends each message once, every recipient
    gets one message, and the retries of sends that did go through are replays."""
    faults = send_faults()
    calls = 10
    async with run_simulator(seed=5, step_delay=STEP_DELAY) as sim:
        simulator = sim.simulator
        for fault in faults:
            simulator.add_fault(fault)
        injected = sum(fault.times or 0 for fault in faults)
        async with OpenSMSClient(
            api_key=sim.api_key,
            base_url=sim.base_url,
            timeout=2.0,
            max_retries=injected,
            sleep=fast_sleep,
        ) as client:
            results = await asyncio.gather(
                *(
                    client.send_message(SENDER, [f"+3361000{i:04d}"], f"msg {i}")
                    for i in range(calls)
                )
            )
        # The slow sends are processed after the client gave up on them: wait for them.
        await wait_until(lambda: send_records(sim) == calls + injected, timeout=30)

    assert all(fault.hits == fault.times for fault in faults)
    assert simulator.sends == calls == len({r.request_id for r in results})
    assert len(simulator.messages_per_recipient) == calls
    assert set(simulator.messages_per_recipient.values()) == {1}
    # Each send that was processed but whose answer was lost (drop_response, slow) is replayed.
    assert simulator.replays == 2 + 3
    print(
        f"\nsends: {calls} calls, {send_records(sim)} requests, {simulator.sends} sent, "
        f"{simulator.replays} replays"
    )


def send_records(sim: RunningSimulator) -> int:
    """Send requests the simulator finished handling (faulted or not)."""
    return sum(record.endpoint == "send" for record in sim.simulator.requests_log)
