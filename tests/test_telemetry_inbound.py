"""OpenTelemetry on the inbound side: the receiver's ``opensms.inbound`` spans and counts, the
inbox's ``opensms.inbound.messages``, the inbound poller's spans, and the inbound log fields.

Over real sockets: an HTTP client posting chosen bodies to a real uvicorn receiver, and the
bundled simulator's inbox for polling. The SDK records in memory (``otel_helpers``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from inbound_helpers import PATH, FlakyStore, bearer, body, receiving
from opentelemetry.trace import SpanKind, StatusCode
from otel_helpers import Recorded, attributes, named, recording, spans_ended, sums
from stream_helpers import take

from opensms_async import (
    Inbox,
    OpenSMSClient,
    RateLimitError,
    StoreUnavailableError,
)
from opensms_async._inbound import InboundSmsMessageList
from opensms_async._inbox_poller import InboundPoller
from opensms_async._reassembly import Part
from opensms_async.stores.inbound import Received
from opensms_async.testing import run_simulator

pytestmark = pytest.mark.integration

NUMBER = "+32470000000"
HANDSET = "+32470000001"
FAST: dict[str, Any] = {"seed": 11, "step_delay": (0.01, 0.02), "inbound_retry_time_scale": 1e-4}
WAIT = 30.0


@pytest.fixture
def otel() -> Iterator[Recorded]:
    """SDK providers recording in memory for this test, unset afterwards."""
    yield from recording()


# --- the receiver -----------------------------------------------------------------------------


async def test_each_inbound_callback_is_a_server_span_and_a_count_by_outcome(
    otel: Recorded,
) -> None:
    """Every inbound callback is an ``opensms.inbound`` SERVER span with its ``opensms.outcome``
    and status code, and counts once in ``opensms.receiver.inbound`` by outcome: a duplicate
    (answered 204 as it is recorded already) is told apart from a first receipt."""
    posts: dict[str, tuple[dict[str, Any], int]] = {
        "accepted": ({"json": body("m-1"), "headers": bearer()}, 204),
        "duplicate": ({"json": body("m-1"), "headers": bearer()}, 204),
        "unauthorized": ({"json": body("m-2"), "headers": bearer("wrong")}, 401),
        "malformed": ({"content": b"{not json", "headers": bearer()}, 400),
        "invalid": ({"json": {"other": 1}, "headers": bearer()}, 422),
        "too_large": ({"json": body("m-3", "x" * 900), "headers": bearer()}, 413),
    }
    async with Inbox() as inbox, receiving(inbox, max_body_size=512) as http:
        for options, status in posts.values():  # in order: the duplicate after the first
            assert (await http.post(PATH, **options)).status_code == status
    spans = named(otel, "opensms.inbound")
    assert len(spans) == len(posts)
    by_outcome = {str((span.attributes or {})["opensms.outcome"]): span for span in spans}
    assert set(by_outcome) == set(posts)
    for outcome, span in by_outcome.items():
        assert span.kind is SpanKind.SERVER
        assert span.attributes is not None
        assert span.attributes["http.response.status_code"] == posts[outcome][1]
        assert span.status.status_code is not StatusCode.ERROR  # 4xx are the sender's
    counted = sums(otel, "opensms.receiver.inbound")
    assert counted == {attributes(opensms_outcome=outcome): 1 for outcome in posts}
    assert named(otel, "opensms.callback") == []  # not counted as delivery callbacks either
    assert sums(otel, "opensms.receiver.callbacks") == {}


async def test_an_inbound_callback_the_store_cannot_record_is_an_unavailable_error_span(
    otel: Recorded,
) -> None:
    """A 503 (the store is down) is an ``unavailable`` span with an error status: the
    receiver's fault, unlike a refusal."""
    async with Inbox(FlakyStore(failures=1)) as inbox, receiving(inbox) as http:
        assert (await http.post(PATH, json=body(), headers=bearer())).status_code == 503
        assert (await http.post(PATH, json=body(), headers=bearer())).status_code == 204
    failed, recorded = named(otel, "opensms.inbound")
    assert failed.attributes is not None and recorded.attributes is not None
    assert failed.attributes["opensms.outcome"] == "unavailable"
    assert failed.attributes["error.type"] == "503"
    assert failed.status.status_code is StatusCode.ERROR
    assert recorded.attributes["opensms.outcome"] == "accepted"  # the retry is no duplicate
    counted = sums(otel, "opensms.receiver.inbound")
    assert counted == {
        attributes(opensms_outcome="unavailable"): 1,
        attributes(opensms_outcome="accepted"): 1,
    }


async def test_a_refused_inbound_callback_logs_its_structured_fields(
    otel: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    """The WARNING of a refused inbound callback carries ``opensms.operation`` ``inbound``, its
    status and outcome, and the ids of its span."""
    caplog.set_level(logging.WARNING, logger="opensms_async")
    async with Inbox() as inbox, receiving(inbox) as http:
        assert (await http.post(PATH, json=body(), headers=bearer("no"))).status_code == 401
    [record] = [r for r in caplog.records if "refused" in r.getMessage()]
    fields = record.__dict__
    assert fields["opensms.operation"] == "inbound"
    assert fields["opensms.outcome"] == "unauthorized"
    assert fields["http.response.status_code"] == 401
    [span] = named(otel, "opensms.inbound")
    assert span.context is not None
    assert fields["opensms.trace_id"] == f"{span.context.trace_id:032x}"


# --- the inbox --------------------------------------------------------------------------------


async def test_inbound_messages_are_counted_by_source_and_completeness(otel: Recorded) -> None:
    """``opensms.inbound.messages`` counts each message the inbox yields, by ``opensms.source``
    and ``opensms.complete``: a callback's whole message, a long one whose window ended with a
    part missing (complete false), a polled one; a duplicate and a part still waiting count
    nothing, and no attribute holds a number or a message id."""
    parts = [body(f"p{n}", "abc", udhMessageId=7, concatPart=n, concatTotal=3) for n in (1, 2)]
    async with run_simulator(inbound_numbers=(NUMBER,), **FAST) as sim:
        sim.simulator.inject_inbound(HANDSET, NUMBER, "polled")
        client = OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url)
        inbox = Inbox(
            client=client,
            poll_numbers=[NUMBER],
            poll_interval=0.05,
            max_poll_interval=0.2,
            reassembly_timeout=0.3,
        )
        async with client, inbox, receiving(inbox) as http:
            for options in (body("whole"), body("whole"), *parts):
                answer = await http.post(PATH, json=options, headers=bearer())
                assert answer.status_code == 204
            # the polled one, the whole one, the cut one
            messages = await take(inbox.messages(), 3, WAIT)
    assert sorted((m.source, m.complete) for m in messages) == [
        ("callback", False),
        ("callback", True),
        ("poll", True),
    ]
    counted = sums(otel, "opensms.inbound.messages")
    assert counted == {
        attributes(opensms_source="callback", opensms_complete=True): 1,
        attributes(opensms_source="callback", opensms_complete=False): 1,
        attributes(opensms_source="poll", opensms_complete=True): 1,
    }
    for name in ("opensms.inbound.messages", "opensms.receiver.inbound"):
        for key in sums(otel, name):
            for _, value in key:
                assert not re.search(r"\d{4}", str(value)), (name, key)
                assert str(value) not in {"whole", "p1", "p2"}


# --- the inbound poller -----------------------------------------------------------------------


async def test_an_inbound_poll_is_a_span_with_the_fetch_under_it(otel: Recorded) -> None:
    """Each page the inbox polls is an ``opensms.inbound.poll`` span, ``received`` with the
    page's size when it brought something new, ``empty`` otherwise; the client's
    ``opensms.get_inbound_messages`` span is its child."""
    async with run_simulator(inbound_numbers=(NUMBER,), **FAST) as sim:
        sim.simulator.inject_inbound(HANDSET, NUMBER, "one")
        sim.simulator.inject_inbound(HANDSET, NUMBER, "two")
        client = OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url)
        inbox = Inbox(client=client, poll_numbers=[NUMBER], poll_interval=0.05)
        async with client, inbox:
            await take(inbox.messages(), 2, WAIT)
            polls = await spans_ended(otel, "opensms.inbound.poll", 2)  # one more: empty
    outcomes = [(span.attributes or {}).get("opensms.outcome") for span in polls]
    assert outcomes[0] == "received" and "empty" in outcomes[1:]
    first = polls[0]
    assert first.attributes is not None and first.context is not None
    assert first.attributes["opensms.messages"] == 2
    assert first.kind is SpanKind.INTERNAL
    fetches = named(otel, "opensms.get_inbound_messages")
    children = [span for span in fetches if span.parent is not None]
    assert any(span.parent.span_id == first.context.span_id for span in children)  # type: ignore[union-attr]
    for span in polls:  # a span carries no number
        assert span.attributes is not None
        assert not any("32470" in str(value) for value in span.attributes.values())


class _Pages:
    """A fetch that answers 429 once, then fails with an error quoting a number."""

    def __init__(self) -> None:
        self.calls = 0

    async def fetch(self, number: str, batch_size: int) -> InboundSmsMessageList:
        self.calls += 1
        if self.calls == 1:
            request = httpx.Request("GET", "https://api.example/inbound")
            response = httpx.Response(429, request=request)
            raise RateLimitError("429", response=response, body="", retry_after=0.0)
        raise StoreUnavailableError(f"no route to {NUMBER}")  # an OpenSMSError

    async def record(self, parts: Sequence[Part]) -> Received:
        raise AssertionError("nothing is fetched")


async def test_a_failed_inbound_poll_is_an_error_span_and_a_masked_log(
    otel: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    """A 429 is a ``rate_limited`` poll span, another failure an ``error`` one with its type;
    the WARNING of the failure masks the inbox's number (and one quoted in the error) and
    carries ``opensms.operation`` ``inbox.poll``."""
    caplog.set_level(logging.WARNING, logger="opensms_async")
    pages = _Pages()
    poller = InboundPoller(
        pages.fetch,
        pages.record,
        ["tel:" + NUMBER],
        interval=1.0,
        max_interval=1.0,
        batch_size=10,
        clock=lambda: 0.0,
        sleep=asyncio.sleep,
    )
    await poller.poll("tel:" + NUMBER)
    await poller.poll("tel:" + NUMBER)
    limited, failed = named(otel, "opensms.inbound.poll")
    assert limited.attributes is not None and failed.attributes is not None
    assert limited.attributes["opensms.outcome"] == "rate_limited"
    assert failed.attributes["opensms.outcome"] == "error"
    assert failed.attributes["error.type"] == "StoreUnavailableError"
    assert failed.status.status_code is StatusCode.ERROR
    [record] = [r for r in caplog.records if "inbound poll of" in r.getMessage()]
    assert "32470000000" not in record.getMessage()
    assert "tel:+32*******00" in record.getMessage()
    assert record.__dict__["opensms.operation"] == "inbox.poll"
    assert record.__dict__["error.type"] == "StoreUnavailableError"
