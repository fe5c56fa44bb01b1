"""Crash tests: the receiver as a separate OS process, killed with SIGKILL in the middle of a load.

The rule under test (DESIGN.md, "Receiver rules"): a 2xx only after the store has recorded the
update, because BICS never retries a callback. So after a SIGKILL, every callback that got a 2xx
must be in the store, the process must restart on the same file, and the reconciliation schedule
written before the crash must still drive the poller of a tracker opened afterwards.

The process and load helpers (``receiver_processes.py``) take any store URL: the Redis variants
run the same scenario on a Redis that fsyncs its AOF before answering (``appendfsync always``),
and kill redis-server itself in the middle of a load too.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from receiver_processes import TOKEN, Load, post_load, receiver_process
from redis_server import start_durable_redis_server

from opensms_async import DeliveryStatus, DeliveryTracker, OpenSMSClient, Source, is_final
from opensms_async.stores import open_store
from opensms_async.testing import delivery_callback_body, run_simulator

pytestmark = pytest.mark.integration

SENDER = "tel:+3212345678"
CALLBACKS = 3_000
PER_REQUEST = 10
KILL_AFTER = CALLBACKS // 3
REPOSTED = 500
"""Callbacks never acknowledged before the crash that are posted again after the restart."""


# --- the load -------------------------------------------------------------------------------


def pair(index: int) -> tuple[str, str]:
    """The (request id, address) a numbered callback is about."""
    return f"crash-{index // PER_REQUEST:04d}", f"tel:+3361{index:07d}"


def callback_body(index: int) -> bytes:
    """A distinct BICS callback: one recipient delivered."""
    request_id, address = pair(index)
    body = delivery_callback_body(request_id, address, "DeliveredToTerminal", security_token=TOKEN)
    return json.dumps(body).encode()


async def stored_pairs(store_url: str) -> set[tuple[str, str]]:
    """Every (request id, address) the store holds for the load's requests."""
    store = open_store(store_url)
    await store.open()
    try:
        found = set()
        for request in range(CALLBACKS // PER_REQUEST):
            for state in await store.get_request(f"crash-{request:04d}"):
                found.add((state.request_id, state.address))
        return found
    finally:
        await store.aclose()


async def scheduled(store_url: str) -> list[str]:
    """The request ids due for reconciliation (claimed with a zero lease: left claimable)."""
    store = open_store(store_url)
    await store.open()
    try:
        due = await store.claim_due(time.time(), limit=100, lease=0.0)
        return [request.request_id for request in due]
    finally:
        await store.aclose()


# --- the scenario ---------------------------------------------------------------------------


async def crash_scenario(store_url: str, workdir: Path) -> None:
    """SIGKILL a receiver mid-load, check what it acknowledged, restart it, resume polling."""
    async with (
        run_simulator(seed=3, step_delay=(0.01, 0.03)) as sim,
        OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client,
    ):
        # Tracked before the crash, by a tracker that only receives: no subscription, so its
        # callbacks go nowhere, and only a poller can ever finalise it.
        sent = await client.send_message(SENDER, ["+33612340001", "+33612340099"], "Hi")
        async with DeliveryTracker(store=store_url, reconcile_after=0.2) as tracker:
            await tracker.track(sent)

        bodies = {i: callback_body(i) for i in range(CALLBACKS)}
        async with receiver_process(store_url, workdir, name="first") as first:

            def kill_at_a_third(load: Load) -> bool:
                if len(load.acked) < KILL_AFTER:
                    return False
                if first.process.poll() is None:
                    first.kill()
                return True

            load = await post_load(first.callback_url, bodies, on_ack=kill_at_a_third)
            assert await first.wait_exit(10) == -signal.SIGKILL

        stored = await stored_pairs(store_url)
        lost = {i for i in load.acked if pair(i) not in stored}
        unacked_but_stored = {i for i in load.sent - load.acked if pair(i) in stored}
        print(
            f"\ncrash: {len(load.sent)} sent, {len(load.acked)} acknowledged, "
            f"{load.failed} failed at the kill, {len(lost)} acknowledged but lost, "
            f"{len(unacked_but_stored)} stored without their answer"
        )
        assert KILL_AFTER <= len(load.acked) <= len(load.sent) < CALLBACKS  # killed mid-load
        assert not lost, f"acknowledged, then lost in the crash: {sorted(lost)[:10]}"
        assert sent.request_id in await scheduled(store_url)

        async with receiver_process(store_url, workdir, name="second") as second:
            # Some never acknowledged (the API would not retry them; a test may), and some
            # duplicates of acknowledged ones: all accepted, the duplicates logging nothing.
            unacked = sorted(set(bodies) - load.acked)[:REPOSTED]
            duplicates = sorted(load.acked)[:100]
            again = await post_load(
                second.callback_url, {i: bodies[i] for i in unacked + duplicates}
            )
            assert again.acked == {*unacked, *duplicates}
            assert await second.terminate() == 0, second.stderr()

        async with DeliveryTracker(store=store_url, client=client, reconcile_after=0.2) as t:
            finals = [
                await t.wait_for_final(sent.request_id, address, timeout=30)
                for address in sent.recipients
            ]
            assert [state.status for state in finals] == [
                DeliveryStatus.DELIVERED_TO_TERMINAL,
                DeliveryStatus.DELIVERY_IMPOSSIBLE,
            ]
            events = await t.store.read_events(None, limit=100_000)

    polled = [r for r in sim.simulator.requests_log if r.endpoint == "poll"]
    assert polled and all(sent.request_id in r.path for r in polled)
    finals_by_poll = [e for e in events if e.request_id == sent.request_id and is_final(e.status)]
    assert {e.source for e in finals_by_poll} == {Source.POLL}
    load_events = [(e.request_id, e.address) for e in events if e.request_id.startswith("crash-")]
    # Each callback recorded once: the duplicates posted after the restart logged nothing.
    assert len(load_events) == len(set(load_events))
    assert set(load_events) == stored | {pair(i) for i in unacked}


async def test_sqlite_receiver_killed_mid_load_loses_no_acknowledged_callback(
    tmp_path: Path,
) -> None:
    """A receiver process on SQLite, SIGKILLed after a third of 3,000 concurrent callbacks were
    acknowledged, has every acknowledged one in its file, restarts on it, and a tracker opened
    after the crash resumes polling a request scheduled before it and finalises it."""
    await crash_scenario(f"sqlite:///{tmp_path / 'crash.db'}", tmp_path)


# --- Redis ----------------------------------------------------------------------------------


async def test_redis_receiver_killed_mid_load_loses_no_acknowledged_callback(
    tmp_path: Path,
) -> None:
    """The same crash on a Redis with ``appendfsync always``: nothing acknowledged is lost, a new
    receiver process takes over, and a tracker opened afterwards polls the request scheduled
    before the crash and finalises it."""
    redis = start_durable_redis_server(tmp_path / "redis")
    try:
        await crash_scenario(redis.url, tmp_path)
    finally:
        redis.kill()


async def test_redis_server_killed_mid_load_loses_no_acknowledged_callback(
    tmp_path: Path,
) -> None:
    """redis-server SIGKILLed (AOF, ``appendfsync always``) after a third of 3,000 concurrent
    callbacks were acknowledged: the receiver answers 503 (never 2xx, never 500) while it is down,
    and once it restarts on the same port every acknowledged callback and the polling schedule are
    back and the same receiver process records callbacks again, each once."""
    redis = start_durable_redis_server(tmp_path / "redis")
    try:
        store = open_store(redis.url)
        await store.open()
        try:
            await store.schedule("before-kill", SENDER, tracked_at=time.time(), poll_at=0.0)
        finally:
            await store.aclose()
        bodies = {i: callback_body(i) for i in range(CALLBACKS)}
        async with receiver_process(redis.url, tmp_path, name="receiver") as receiver:

            def kill_redis_at_a_third(load: Load) -> bool:
                if len(load.acked) < KILL_AFTER:
                    return False
                redis.kill()
                return True

            load = await post_load(receiver.callback_url, bodies, on_ack=kill_redis_at_a_third)
            unacked = sorted(set(bodies) - load.acked)
            down = await post_load(receiver.callback_url, {i: bodies[i] for i in unacked[:100]})

            redis.start()  # same folder and port: the AOF is replayed
            stored = await stored_pairs(redis.url)
            lost = {i for i in load.acked if pair(i) not in stored}
            print(
                f"\nredis killed: {len(load.sent)} sent, {len(load.acked)} acknowledged, "
                f"answers {dict(load.codes)}, {len(lost)} acknowledged but lost; "
                f"while down: answers {dict(down.codes)}"
            )
            assert KILL_AFTER <= len(load.acked) <= len(load.sent) < CALLBACKS  # killed mid-load
            assert set(load.codes) <= {204, 503} and load.failed == 0
            assert down.codes == {503: 100}
            assert not lost, f"acknowledged, then lost with redis-server: {sorted(lost)[:10]}"
            assert "before-kill" in await scheduled(redis.url)

            again = await post_load(receiver.callback_url, {i: bodies[i] for i in unacked})
            assert again.codes == {204: len(unacked)}
            assert await receiver.terminate() == 0, receiver.stderr()

        store = open_store(redis.url)
        await store.open()
        try:
            events = await store.read_events(None, limit=100_000)
        finally:
            await store.aclose()
        logged = [(e.request_id, e.address) for e in events]
        assert sorted(logged) == sorted(pair(i) for i in bodies)  # every callback, each once
    finally:
        redis.kill()
