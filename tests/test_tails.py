"""Latency tails: what the receiver's path leaves for the garbage collector to walk, and the
CLI's ``gc.freeze()`` (issue 12, item 2)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import sys

import httpx
import pytest
from redis_server import free_port
from store_helpers import SENDER, S, up

from opensms_async import DeliveryTracker
from opensms_async._cli import build_parser
from opensms_async._cli._output import Output
from opensms_async._server import serve
from opensms_async.receiver import create_receiver_app
from opensms_async.stores import MemoryStore
from opensms_async.testing import delivery_callback_body

TOKEN = "tails-token-51c0"


@pytest.mark.skipif(
    sys.version_info >= (3, 14), reason="CPython 3.14 no longer untracks dicts (gh-127010)"
)
async def test_memory_requests_of_one_recipient_each_are_invisible_to_the_collector() -> None:
    """A million sends of one recipient each must not make every full collection walk a million
    objects (its pause is a latency tail): once collected, a request's state is plain values."""
    async with MemoryStore() as store:
        gc.collect()
        before = len(gc.get_objects())
        for start in range(0, 5000, 100):
            await store.apply_events(
                [
                    up(status, f"tel:+33{i:010d}", request_id=f"req-{i}", sender=SENDER)
                    for i in range(start, start + 100)
                    for status in (S.MESSAGE_WAITING, S.DELIVERED_TO_TERMINAL)
                ]
            )
        gc.collect()  # a full collection: the one that stops tracking dicts of plain values
        tracked = len(gc.get_objects()) - before
        assert tracked < 100, f"{tracked} objects tracked for 5,000 requests of one recipient"
        state = await store.get("req-4321", "tel:+330000004321")
        assert state is not None
        assert state.status is S.DELIVERED_TO_TERMINAL
        assert [s.address for s in await store.get_request("req-17")] == ["tel:+330000000017"]


async def _post_callback(port: int, request_id: str) -> int:
    """POST one delivery callback to 127.0.0.1:port once it accepts (30 s at most); its status."""
    body = delivery_callback_body(
        request_id, "tel:+33612345678", "DeliveredToTerminal", security_token=TOKEN, sender=SENDER
    )
    async with httpx.AsyncClient(timeout=10, trust_env=False) as http, asyncio.timeout(30):
        while True:
            try:
                answer = await http.post(f"http://127.0.0.1:{port}/sms/callback", json=body)
                return answer.status_code
            except httpx.ConnectError:
                await asyncio.sleep(0.01)


@pytest.mark.integration
@pytest.mark.usefixtures("no_opensms_env")
async def test_opensms_receive_freezes_its_start_up_objects() -> None:
    """``opensms receive`` owns its process: once started, what start-up made is frozen, so a
    full collection (a pause every callback waits through) walks only what came after."""
    gc.unfreeze()
    port = free_port()
    args = build_parser().parse_args(
        ["receive", "--port", str(port), "--token", TOKEN, "--store", "memory://"]
    )
    out = Output(json=True, out=io.StringIO(), err=io.StringIO())
    receive = asyncio.create_task(args.run(args, out))
    try:
        assert await _post_callback(port, "frozen-1") == 204
        assert gc.get_freeze_count() > 10_000  # modules, classes, functions: start-up's
        assert len(gc.get_objects()) < gc.get_freeze_count()
    finally:
        receive.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receive
        gc.unfreeze()  # this test process is not a receiver's


@pytest.mark.integration
async def test_the_library_leaves_the_users_collector_alone() -> None:
    """An SDK must not change its user's GC settings: a receiver served by the library (not the
    CLI) freezes nothing and leaves the thresholds as they were."""
    gc.unfreeze()
    thresholds = gc.get_threshold()
    async with DeliveryTracker(MemoryStore()) as tracker:
        app = create_receiver_app(tracker, TOKEN, manage_tracker=False)
        async with serve(app) as running:
            assert await _post_callback(running.port, "not-frozen") == 204
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds
    assert gc.isenabled()
