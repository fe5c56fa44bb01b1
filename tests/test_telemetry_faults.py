"""Telemetry never fails the SDK's work: a span processor whose ``on_start`` or ``on_end`` raises
(the OpenTelemetry SDK lets those exceptions through), or an instrument whose measurement raises,
costs a WARNING record and nothing else.

Over real sockets: a real uvicorn receiver posted to by an HTTP client, the bundled simulator for
sends. The SDK records in memory (``otel_helpers``); a faulty span processor is added to it, or
the SDK's counter and histogram classes are made to raise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from otel_helpers import Recorded, recording

from opensms_async import (
    DeliveryTracker,
    Inbox,
    NotFoundError,
    OpenSMSClient,
    create_receiver_app,
)
from opensms_async import _telemetry as telemetry
from opensms_async._reassembly import Part
from opensms_async._server import serve
from opensms_async.stores import MemoryStore
from opensms_async.stores.inbound import MemoryInboundStore
from opensms_async.testing import RunningSimulator, run_simulator

pytestmark = pytest.mark.integration

TOKEN = "otel-faults-token-5d1b"
INBOUND_TOKEN = "otel-faults-inbound-9e4c"
PATH = "/sms/callback"
INBOUND_PATH = "/sms/inbound"
SENDER = "tel:+3212345678"
RESOURCE = (
    "https://opensms.api.bics.com/smsmessaging/v1/outbound/tel%3A%2B3212345678/requests/"
    "{request_id}/deliveryInfos"
)
WAIT = 10.0


class HookBug(RuntimeError):
    """What the faulty hooks raise."""


@pytest.fixture
def otel() -> Iterator[Recorded]:
    """SDK providers recording in memory for this test, unset afterwards."""
    yield from recording()


class RaisingProcessor(SpanProcessor):
    """A user's faulty span processor: raises in ``on_start`` or ``on_end`` for this package's
    spans."""

    def __init__(self, where: str) -> None:
        self.where = where

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.where == "start" and span.name.startswith("opensms."):
            raise HookBug("on_start bug")

    def on_end(self, span: ReadableSpan) -> None:
        if self.where == "end" and span.name.startswith("opensms."):
            raise HookBug("on_end bug")


def raise_in(otel: Recorded, where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the hook ``where`` raise: a span processor's ``start`` or ``end``, or every
    ``measure`` of the SDK's counters and histograms."""
    if where in ("start", "end"):
        otel.tracer_provider.add_span_processor(RaisingProcessor(where))
        return
    found = telemetry.instruments()
    assert found is not None

    def broken(self: object, *args: object, **kwargs: object) -> None:
        raise HookBug("instrument bug")

    monkeypatch.setattr(type(found.receiver_callbacks), "add", broken)
    monkeypatch.setattr(type(found.client_duration), "record", broken)


HOOKS = ("start", "end", "measure")


def callback_body(request_id: str = "req-1") -> bytes:
    """A delivery callback in BICS's shape."""
    return json.dumps(
        {
            "deliveryInfoList": {
                "resourceURL": RESOURCE.format(request_id=request_id),
                "securityToken": TOKEN,
                "deliveryInfo": [
                    {"address": "tel:+33612345678", "deliveryStatus": "DeliveredToTerminal"}
                ],
            }
        }
    ).encode()


def inbound_body() -> bytes:
    """An inbound-message callback in BICS's shape."""
    message = {
        "dateTime": "2021-11-24T09:13:40.639",
        "destinationAddress": "32470000000",
        "senderAddress": "32470000001",
        "messageId": "m-1",
        "message": "Hello",
    }
    return json.dumps({"InboundSmsMessage": message}).encode()


def warned(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The telemetry WARNING records, each with the hook's traceback."""
    found = [
        r
        for r in caplog.records
        if r.name == "opensms_async" and r.levelno == logging.WARNING and "telemetry:" in r.message
    ]
    for record in found:
        assert record.exc_info is not None and isinstance(record.exc_info[1], HookBug)
    return found


# --- the receiver ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", HOOKS)
async def test_a_valid_callback_is_answered_204_and_recorded_whatever_a_hook_raises(
    otel: Recorded, where: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A faulty span processor or instrument never turns a recorded callback into a 500/503,
    nor keeps one from being recorded: BICS is answered 204, the state is stored."""
    raise_in(otel, where, monkeypatch)
    caplog.set_level(logging.WARNING, logger="opensms_async")
    async with DeliveryTracker(MemoryStore()) as tracker:
        app = create_receiver_app(tracker, TOKEN, path=PATH, manage_tracker=False)
        async with serve(app) as server, httpx.AsyncClient(timeout=WAIT) as http:
            answer = await http.post(server.url + PATH, content=callback_body())
            second = await http.post(server.url + PATH, content=callback_body("req-2"))
        assert (answer.status_code, second.status_code) == (204, 204)
        assert [e.request_id for e in await tracker.store.read_events(None)] == ["req-1", "req-2"]
    assert warned(caplog)
    if where == "measure":  # the span still ended (and its context was detached)
        assert len([s for s in otel.spans() if s.name == "opensms.callback"]) == 2


@pytest.mark.parametrize("where", HOOKS)
async def test_an_inbound_callback_is_answered_204_and_recorded_whatever_a_hook_raises(
    otel: Recorded, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inbound endpoint likewise: a recorded message is answered 204, and is yielded."""
    raise_in(otel, where, monkeypatch)
    async with Inbox(MemoryInboundStore()) as inbox:
        app = create_receiver_app(
            None, inbox=inbox, inbound_security_token=INBOUND_TOKEN, inbound_path=INBOUND_PATH
        )
        async with serve(app) as server, httpx.AsyncClient(timeout=WAIT) as http:
            answer = await http.post(
                server.url + INBOUND_PATH,
                content=inbound_body(),
                headers={"Authorization": f"Bearer {INBOUND_TOKEN}"},
            )
        assert answer.status_code == 204
        assert [m.text for m in await inbox.store.read_messages(None)] == ["Hello"]


# --- the client and the tracker --------------------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    """The bundled simulator."""
    async with run_simulator(seed=29) as running:
        yield running


@pytest.mark.parametrize("where", HOOKS)
async def test_a_send_returns_its_result_whatever_a_hook_raises(
    otel: Recorded,
    sim: RunningSimulator,
    where: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A faulty span processor or histogram never makes a sent message look failed (a user
    would retry it, and the SMS would go twice): the result comes back, one request was sent."""
    raise_in(otel, where, monkeypatch)
    caplog.set_level(logging.WARNING, logger="opensms_async")
    async with OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client:
        sent = await client.send_message(SENDER, ["+33612345670"], "Hello")
    assert sent.request_id
    assert sim.simulator.sends == 1
    assert warned(caplog)


async def test_a_call_that_fails_keeps_its_own_error_when_a_hook_raises(
    otel: Recorded, sim: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook raising as a failed call ends does not mask the call's own error."""
    raise_in(otel, "end", monkeypatch)
    async with OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client:
        with pytest.raises(NotFoundError):
            await client.get_delivery_infos(SENDER, "no-such-request")


async def test_track_still_schedules_when_a_counter_raises(
    otel: Recorded, sim: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A faulty counter does not leave a tracked send unscheduled: its poll is still planned
    (and its states recorded)."""
    raise_in(otel, "measure", monkeypatch)
    async with OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client:
        sent = await client.send_message(SENDER, ["+33612345670"], "Hello")
        async with DeliveryTracker(MemoryStore(), client, reconcile_after=3600) as tracker:
            events = await tracker.track(sent)
            assert len(events) == 1
            due = await tracker.store.claim_due(time.time() + 7200)
            assert [request.request_id for request in due] == [sent.request_id]


@pytest.mark.parametrize("where", ["start", "end"])
async def test_reconciliation_polls_whatever_its_span_hooks_raise(
    otel: Recorded, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A faulty span processor does not stop the poller from polling a tracked request to its
    final state, nor makes a poll that worked look failed."""
    otel.tracer_provider.add_span_processor(RaisingProcessor(where))
    caplog.set_level(logging.WARNING, logger="opensms_async")
    address = "tel:+33612345670"
    async with (
        run_simulator(seed=31, step_delay=(0.01, 0.02)) as sim,
        OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client,
        DeliveryTracker(MemoryStore(), client, reconcile_after=0.05) as tracker,
    ):
        sent = await client.send_message(SENDER, [address], "Hello")
        await tracker.track(sent)
        final = await tracker.wait_for_final(sent.request_id, address, timeout=30)
        assert final.is_final
    failed = [r for r in caplog.records if "reconciliation of" in r.getMessage()]
    assert failed == []
    assert warned(caplog)


@pytest.mark.parametrize("where", HOOKS)
async def test_the_inbox_polls_whatever_a_hook_raises(
    otel: Recorded, where: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A faulty span processor or counter does not stop the inbox's poller: the polled
    messages are yielded, and no poll is reported failed."""
    raise_in(otel, where, monkeypatch)
    caplog.set_level(logging.WARNING, logger="opensms_async")
    number = "+32470000000"
    async with run_simulator(inbound_numbers=(number,), seed=37) as sim:
        sim.simulator.inject_inbound("+32470000001", number, "one")
        sim.simulator.inject_inbound("+32470000001", number, "two")
        client = OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url)
        inbox = Inbox(client=client, poll_numbers=[number], poll_interval=0.05)
        got: list[str] = []

        async def take() -> None:
            async for message in inbox.messages():
                got.append(message.text)
                if len(got) == 2:
                    return

        async with client, inbox:
            await asyncio.wait_for(take(), WAIT)
    assert sorted(got) == ["one", "two"]
    assert [r for r in caplog.records if "inbound poll of" in r.getMessage()] == []
    assert warned(caplog)


# --- the inbox's reassembly timer ------------------------------------------------------------


def first_part(message_id: str, reference: int) -> Part:
    """Part 1 of 2 of a concatenated message whose part 2 never comes."""
    return Part(message_id, "tel:+331", "tel:+322", "part 1 of 2", reference, 1, 2)


async def test_the_reassembly_timer_outlives_a_raising_counter(
    otel: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A counter that raises as the timer closes a group does not end the timer: a later
    incomplete group is closed and yielded too."""
    raise_in(otel, "measure", monkeypatch)
    got: list[str] = []
    first = asyncio.Event()

    async def take(inbox: Inbox, count: int) -> None:
        async for message in inbox.messages():
            got.append(message.text)
            first.set()
            if len(got) == count:
                return

    async with Inbox(MemoryInboundStore(), reassembly_timeout=0.2) as inbox:
        reading = asyncio.create_task(take(inbox, 2))
        await inbox.ingest_parts([first_part("a-1", 7)])
        await asyncio.wait_for(first.wait(), WAIT)
        await inbox.ingest_parts([first_part("b-1", 8)])
        await asyncio.wait_for(reading, WAIT)
    assert len(got) == 2
