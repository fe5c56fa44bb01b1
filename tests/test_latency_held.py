"""What a callback waiting for its store holds (issue 12, latency): its parsed body is gone.

At a few thousand callbacks/s the callbacks waiting for a store's commit (SQLite's group commit,
a Redis round trip) are many at once, and what each holds survives the collector's young
passes, to be promoted and traversed again by full collections (a latency tail). A callback
whose updates are parsed needs nothing more of its JSON body while the store records them.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Sequence

import httpx
import pytest

from opensms_async import DeliveryEvent, DeliveryTracker, DeliveryUpdate, create_receiver_app
from opensms_async.stores import MemoryStore
from opensms_async.testing import delivery_callback_body, serve

pytestmark = pytest.mark.integration

TOKEN = "held-token"
PATH = "/sms/callback"
WAIT = 30.0
"""Seconds a step may take on a loaded 2-core machine before the test fails (never reached)."""


class GatedStore(MemoryStore):
    """A memory store whose writes wait for :attr:`gate` (set :attr:`entered` on the way)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def apply_events(self, updates: Sequence[DeliveryUpdate]) -> list[DeliveryEvent]:
        """Record ``updates`` once the gate opens."""
        self.entered.set()
        await self.gate.wait()
        return await super().apply_events(updates)


def parsed_bodies() -> list[object]:
    """The live objects that are this test's callback parsed (its ``deliveryInfoList`` dict,
    with this test's token: other tests' leftovers are not this test's business)."""
    gc.collect()
    return [
        o
        for o in gc.get_objects()
        if type(o) is dict and o.get("securityToken") == TOKEN and "deliveryInfo" in o
    ]


def raw_callback() -> bytes:
    """One callback's bytes (the dict it was built from is gone once this returns)."""
    body = delivery_callback_body("held-1", "tel:+33611111111", "DeliveredToTerminal")
    body["deliveryInfoList"]["securityToken"] = TOKEN
    return json.dumps(body).encode()


async def test_a_callback_waiting_for_its_store_no_longer_holds_its_parsed_body() -> None:
    """While the store records a callback, the receiver keeps its updates, not its JSON body
    (less for the collector to traverse per waiting callback); it is still answered 204 once
    recorded."""
    store = GatedStore()
    tracker = DeliveryTracker(store)
    app = create_receiver_app(tracker, TOKEN, PATH, manage_tracker=False)
    content = raw_callback()
    async with tracker, serve(app) as server, httpx.AsyncClient(trust_env=False) as http:
        post = asyncio.create_task(http.post(server.url + PATH, content=content, timeout=WAIT))
        await asyncio.wait_for(store.entered.wait(), WAIT)
        held = parsed_bodies()
        store.gate.set()
        response = await asyncio.wait_for(post, WAIT)
        recorded = await tracker.store.get("held-1", "tel:+33611111111")
    assert held == []
    assert response.status_code == 204
    assert recorded is not None and recorded.status == "DeliveredToTerminal"
