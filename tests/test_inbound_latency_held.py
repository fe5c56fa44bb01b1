"""What an inbound callback waiting for its store holds: its parts, not its parsed body (as a
delivery callback, ``tests/test_latency_held.py``). BICS retries inbound callbacks for days,
so after an outage they arrive in bursts, each waiting for the store's commit at once."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Sequence

import pytest
from inbound_helpers import PATH, TOKEN, bearer, body, receiving
from stream_helpers import take

from opensms_async import Inbox
from opensms_async._reassembly import Part
from opensms_async.stores.inbound import MemoryInboundStore, Received

pytestmark = pytest.mark.integration

WAIT = 30.0
"""Seconds a step may take on a loaded 2-core machine before the test fails (never reached)."""

MARK = "held-inbound-7Qz"
"""The message id of this test's callback: what tells its parsed body apart from any other."""


class GatedStore(MemoryInboundStore):
    """A memory inbound store whose receive waits for :attr:`gate` (:attr:`entered` set)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def receive(
        self, parts: Sequence[Part], *, now: float, timeout: float, retention: float
    ) -> Received:
        """Record ``parts`` once the gate opens."""
        self.entered.set()
        await self.gate.wait()
        return await super().receive(parts, now=now, timeout=timeout, retention=retention)


def parsed_bodies() -> list[object]:
    """The live objects that are this test's callback as parsed JSON: its outer dict (the inner
    one holds strings only, so the collector does not track it)."""
    gc.collect()
    return [
        o
        for o in gc.get_objects()
        if type(o) is dict
        and type(inner := o.get("InboundSmsMessage")) is dict
        and inner.get("messageId") == MARK
    ]


async def test_an_inbound_callback_waiting_for_its_store_no_longer_holds_its_parsed_body() -> None:
    """While the store records, the receiver keeps the parts, not the JSON body; the message
    is still recorded and answered 204 once the store returns."""
    store = GatedStore()
    async with Inbox(store=store) as inbox, receiving(inbox) as http:
        content = json.dumps(body(MARK, "held")).encode()
        headers = {**bearer(TOKEN), "Content-Type": "application/json"}
        post = asyncio.create_task(http.post(PATH, content=content, headers=headers))
        await asyncio.wait_for(store.entered.wait(), WAIT)
        held = parsed_bodies()
        store.gate.set()
        response = await asyncio.wait_for(post, WAIT)
        received = await take(inbox.messages(), 1)
    assert held == []
    assert response.status_code == 204
    assert [m.text for m in received] == ["held"]
