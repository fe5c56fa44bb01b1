"""Every path into the tracker goes through one gate: a user's ``ingest`` gets what a callback
gets (normalised addresses, bounded statuses, nothing stored when refused), a poll skips only its
malformed entries, and the receiver answers a refused callback 422, never 500."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opensms_async import (
    DeliveryInfo,
    DeliveryInfoList,
    DeliveryStatus,
    DeliveryTracker,
    DeliveryUpdate,
    InvalidUpdateError,
    SendResult,
    create_receiver_app,
)
from opensms_async._server import serve
from opensms_async.stores import MemoryStore, SQLiteStore, Store

S = DeliveryStatus
WAIT = 10.0
TOKEN = "r2k5hq3-secret"
PATH = "/sms/callback"
RESOURCE = (
    "https://opensms.api.bics.com/smsmessaging/v1/outbound/tel%3A%2B32123/requests/req-1"
    "/deliveryInfos"
)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Each in-process store kind."""
    return MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "t.db")


async def test_an_update_for_plus_digits_is_found_by_either_form(store: Store) -> None:
    """An update ingested for ``"+33612345678"`` is stored under ``tel:+33612345678``: ``get``
    finds it by either form, and its event names the canonical form."""
    async with DeliveryTracker(store=store) as tracker:
        [event] = await tracker.ingest(
            [DeliveryUpdate("req-1", "+33612345678", "DeliveredToTerminal")]
        )
        for form in ("tel:+33612345678", "+33612345678"):
            state = await tracker.get("req-1", form)
            assert state is not None and state.status is S.DELIVERED_TO_TERMINAL
        assert (event.address, event.status) == ("tel:+33612345678", S.DELIVERED_TO_TERMINAL)
        final = await tracker.wait_for_final("req-1", "+33612345678", timeout=WAIT)
        assert final.address == "tel:+33612345678"


async def test_a_5000_character_status_is_refused_and_nothing_stored(store: Store) -> None:
    """An ingest of a batch holding an update with a 5,000-character status raises
    InvalidUpdateError naming the status (as the update is built), and records nothing of it."""
    async with DeliveryTracker(store=store) as tracker:
        with pytest.raises(InvalidUpdateError, match="status") as info:
            await tracker.ingest(
                [
                    DeliveryUpdate("req-1", "tel:+331", S.DELIVERED_TO_NETWORK),
                    DeliveryUpdate("req-1", "tel:+332", "X" * 5000),
                ]
            )
        assert info.value.field == "status" and "X" * 100 not in str(info.value)
        assert await tracker.get_request("req-1") == []
        assert await store.read_events(None) == []


async def test_ingest_refuses_what_is_not_an_update(store: Store) -> None:
    """Anything else than a DeliveryUpdate in a batch raises InvalidUpdateError (not a crash
    inside the store) and nothing of the batch is recorded."""
    async with DeliveryTracker(store=store) as tracker:
        good = DeliveryUpdate("req-1", "tel:+331", S.DELIVERED_TO_NETWORK)
        junk: Any = {"request_id": "req-1", "address": "tel:+332"}
        with pytest.raises(InvalidUpdateError, match="DeliveryUpdate"):
            await tracker.ingest([good, junk])
        assert await store.read_events(None) == []


class OnePoll:
    """A client stand-in whose every poll answers one good entry and one malformed one."""

    def __init__(self) -> None:
        self.polled = asyncio.Event()

    async def get_delivery_infos(
        self, sender: str, request_id: str, *, max_retries: int | None = None
    ) -> DeliveryInfoList:
        """The poll's answer."""
        self.polled.set()
        infos = [DeliveryInfo("+332", S.DELIVERED_TO_TERMINAL), DeliveryInfo("+331", "X" * 500)]
        return DeliveryInfoList(delivery_infos=infos, sms_parts=1)


async def test_a_poll_records_its_good_entries_and_skips_a_malformed_one() -> None:
    """A poll answer with a malformed entry records the others (the gate refuses that one
    entry, not the poll)."""
    client: Any = OnePoll()
    sent = SendResult("req-1", "tel:+32123", None, [], ("tel:+331", "tel:+332"), "c")
    async with DeliveryTracker(client=client, reconcile_after=0.05) as tracker:
        await tracker.track(sent)
        final = await tracker.wait_for_final("req-1", "tel:+332", timeout=WAIT)
        assert final.status is S.DELIVERED_TO_TERMINAL
        state = await tracker.get("req-1", "tel:+331")
        assert state is not None and state.status is S.MESSAGE_ACCEPTED


def callback(root: dict[str, Any] | None = None, **entry: Any) -> dict[str, Any]:
    """A BICS callback for req-1 whose one entry has ``entry``'s fields (and its root ``root``'s:
    ``resourceURL`` None drops it)."""
    info = {"address": "tel:+331", "deliveryStatus": "DeliveredToTerminal", **entry}
    body = {"securityToken": TOKEN, "resourceURL": RESOURCE, "smsParts": 1, "deliveryInfo": [info]}
    body.update(root or {})
    return {"deliveryInfoList": {k: v for k, v in body.items() if v is not None}}


@pytest.fixture
async def receiver(store: Store) -> AsyncIterator[tuple[DeliveryTracker, httpx.AsyncClient, str]]:
    """A real receiver (uvicorn on a free port) over a tracker on each store, and a client."""
    async with DeliveryTracker(store=store) as tracker:
        app = create_receiver_app(tracker, TOKEN, path=PATH)
        async with serve(app) as server, httpx.AsyncClient(timeout=WAIT) as http:
            yield tracker, http, server.url + PATH


@pytest.mark.integration
@pytest.mark.parametrize(
    "entry",
    [
        {"deliveryStatus": "X" * 5000},
        {"deliveryStatus": 7},
        {"deliveryStatus": "\ud800"},
        {"address": "nonsense"},
        {"address": 331},
        {"smsPartsDeliveredToTerminal": "three"},
        {"smsPartsDeliveredToTerminal": -1},
        {"root": {"resourceURL": None, "callbackData": "req\n2"}},
        {"root": {"smsParts": 10_001}},
    ],
)
async def test_a_callback_with_a_bad_field_is_422_and_stores_nothing(
    receiver: tuple[DeliveryTracker, httpx.AsyncClient, str], entry: dict[str, Any]
) -> None:
    """A callback whose field the gate refuses is answered 422 (not 500, not 503) and stores
    nothing; a good one after it is recorded."""
    tracker, http, url = receiver
    response = await http.post(url, content=json.dumps(callback(**entry)).encode())
    assert response.status_code == 422
    assert await tracker.store.read_events(None) == []
    assert (await http.post(url, content=json.dumps(callback()).encode())).status_code == 204
    assert len(await tracker.store.read_events(None)) == 1
