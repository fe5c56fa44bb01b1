"""OpenTelemetry on the delivery side (issue 13, part 2): the receiver's callback spans and counts,
the poller's spans linked to the send, the delivery metrics and gauges, log fields.

Over real sockets: the bundled simulator posting callbacks to a real uvicorn receiver, or an
HTTP client posting chosen bodies to it. The SDK records in memory (``otel_helpers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import attrs
import httpx
import pytest
from opentelemetry.sdk.metrics.export import HistogramDataPoint, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from otel_helpers import Recorded, recording

from opensms_async import (
    DeliveryEvent,
    DeliveryStatus,
    DeliveryTracker,
    DeliveryUpdate,
    OpenSMSClient,
    SendResult,
    Source,
    StoreUnavailableError,
    create_receiver_app,
)
from opensms_async import _telemetry as telemetry
from opensms_async._server import RunningServer, serve
from opensms_async._telemetry_delivery import DeliveryTelemetry
from opensms_async.stores import MemoryStore
from opensms_async.testing import RunningSimulator, run_simulator

pytestmark = pytest.mark.integration

TOKEN = "otel-receiver-token-3f9a"
PATH = "/sms/callback"
SENDER = "tel:+3212345678"
RESOURCE = (
    "https://opensms.api.bics.com/smsmessaging/v1/outbound/tel%3A%2B3212345678/requests/"
    "{request_id}/deliveryInfos"
)
FINAL_WAIT = 30.0


@pytest.fixture
def otel() -> Iterator[Recorded]:
    """SDK providers recording in memory for this test, unset afterwards."""
    yield from recording()


@attrs.frozen
class Story:
    """A simulator posting callbacks to a receiver that records into a polling tracker."""

    sim: RunningSimulator
    client: OpenSMSClient
    tracker: DeliveryTracker
    receiver: RunningServer

    async def send(self, to: Sequence[str]) -> SendResult:
        """Send and track."""
        sent = await self.client.send_message(SENDER, list(to), "Hello")
        await self.tracker.track(sent)
        return sent

    async def finals(self, sent: SendResult) -> None:
        """Wait until every recipient of ``sent`` is final, and the simulator has posted all."""
        for address in sent.recipients:
            await self.tracker.wait_for_final(sent.request_id, address, timeout=FINAL_WAIT)
        await self.sim.simulator.settle(10)


@contextlib.asynccontextmanager
async def story(
    *, drop_rate: float = 0.0, reconcile_after: float = 60.0, store: Any = "memory://"
) -> AsyncIterator[Story]:
    """The whole path over real sockets, as ``opensms demo`` runs it. The simulator's first
    callback comes 0.3 s or more after the send: after ``track()`` even on a loaded machine
    (a callback that beats ``track()`` is neither linked nor timed)."""
    simulated = run_simulator(seed=13, callback_drop_rate=drop_rate, step_delay=(0.3, 0.5))
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(simulated)
        client = await stack.enter_async_context(
            OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url)
        )
        tracker = await stack.enter_async_context(
            DeliveryTracker(store, client=client, reconcile_after=reconcile_after)
        )
        app = create_receiver_app(tracker, TOKEN, path=PATH, manage_tracker=False)
        receiver = await stack.enter_async_context(serve(app))
        sim.simulator.route_callbacks_to(receiver.url + PATH)
        await client.create_subscription("https://example.test/sms/callback", TOKEN)
        yield Story(sim, client, tracker, receiver)


def named(recorded: Recorded, name: str) -> list[ReadableSpan]:
    """The finished spans of this package called ``name``."""
    return [span for span in recorded.spans() if span.name == name]


def one(recorded: Recorded, name: str) -> ReadableSpan:
    """The one finished span called ``name``."""
    [span] = named(recorded, name)
    return span


async def spans_ended(recorded: Recorded, name: str, count: int) -> list[ReadableSpan]:
    """The spans called ``name`` once at least ``count`` have ended (bounded wait)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):  # not 500 sleeps of 10 ms (5 s): a hang guard, generous
            while True:
                found = named(recorded, name)
                if len(found) >= count:
                    return found
                await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} {name} spans ended: {len(named(recorded, name))}")


def links_to(span: ReadableSpan, target: ReadableSpan) -> bool:
    """True when ``span`` has a link to ``target``."""
    assert target.context is not None
    return any(
        (link.context.trace_id, link.context.span_id)
        == (target.context.trace_id, target.context.span_id)
        for link in span.links
    )


def sums(recorded: Recorded, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
    """The data points of metric ``name`` by their attributes (a sum's value, a histogram's
    point, a gauge's value)."""
    found = {}
    for point in recorded.points(name):
        key = frozenset(dict(point.attributes or {}).items())
        found[key] = point if isinstance(point, HistogramDataPoint) else point.value
    return found


def attributes(**pairs: str) -> frozenset[tuple[str, Any]]:
    """A metric point's attributes: ``attributes(opensms_outcome="accepted")``."""
    return frozenset((key.replace("_", ".", 1), value) for key, value in pairs.items())


# --- callbacks ------------------------------------------------------------------------------------


async def test_a_callback_is_a_server_span_linked_to_its_send(otel: Recorded) -> None:
    """Each callback is an ``opensms.callback`` SERVER span with its outcome, status code and
    request id; those that come after ``track()`` (the simulator's first callback may beat it,
    as BICS's may) link to the ``opensms.send_message`` span that sent the SMS."""
    async with story() as running:
        sent = await running.send(["+33612345678", "+33612345679"])
        tracked_at = time.time_ns()
        await running.finals(sent)
        callbacks = await spans_ended(otel, "opensms.callback", 4)
    send = one(otel, "opensms.send_message")
    assert send.context is not None
    flags = int(send.context.trace_flags)
    assert sent.traceparent == (
        f"00-{send.context.trace_id:032x}-{send.context.span_id:016x}-{flags:02x}"
    )
    assert sum(links_to(span, send) for span in callbacks) >= 2  # the finals, 0.3 s later
    for span in callbacks:
        assert span.kind is SpanKind.SERVER
        assert span.attributes is not None
        assert span.attributes["opensms.outcome"] == "accepted"
        assert span.attributes["http.response.status_code"] == 204
        assert span.attributes["opensms.request_id"] == sent.request_id
        assert span.start_time is not None
        assert links_to(span, send) or span.start_time < tracked_at
        assert span.parent is None  # a trace of its own (BICS sends no traceparent)


async def test_a_lost_callback_is_recovered_by_a_poll_span_linked_to_its_send(
    otel: Recorded,
) -> None:
    """With every callback lost, the poller's ``opensms.reconcile`` span links to the send, its
    ``get_delivery_infos`` call nests under it, and the metrics say the final came by polling:
    ``opensms.reconcile.polls``, ``opensms.delivery.events`` from ``poll``, a delivery duration,
    a poll-recovered share of 1 and nothing pending."""
    async with story(drop_rate=1.0, reconcile_after=0.8) as running:
        sent = await running.send(["+33612345678"])
        await running.finals(sent)
        reconciles = await spans_ended(otel, "opensms.reconcile", 1)
    assert named(otel, "opensms.callback") == []
    send = one(otel, "opensms.send_message")
    for span in reconciles:
        assert span.kind is SpanKind.INTERNAL
        assert span.attributes is not None
        assert span.attributes["opensms.request_id"] == sent.request_id
        attempt = span.attributes["opensms.attempt"]
        assert isinstance(attempt, int) and attempt >= 1
        assert links_to(span, send)
    contexts = {span.context.span_id for span in reconciles if span.context is not None}
    polls = named(otel, "opensms.get_delivery_infos")
    assert polls and all(p.parent is not None and p.parent.span_id in contexts for p in polls)
    [polled] = sums(otel, "opensms.reconcile.polls").values()
    assert polled == len(polls)
    events = sums(otel, "opensms.delivery.events")
    final = attributes(opensms_status="DeliveredToTerminal", opensms_source="poll")
    assert events[final] == 1
    sent_states = {k: v for k, v in events.items() if ("opensms.source", "send") in k}
    assert sum(sent_states.values()) == 1  # the send's answer: a first sighting
    [duration] = sums(otel, "opensms.delivery.duration").values()
    assert duration.count == 1 and 0 < duration.sum < FINAL_WAIT
    assert sums(otel, "opensms.delivery.duration").keys() == {
        attributes(opensms_status="DeliveredToTerminal")
    }
    assert sums(otel, "opensms.delivery.poll_recovered") == {frozenset(): 1.0}
    assert sums(otel, "opensms.delivery.pending") == {frozenset(): 0}


async def test_finals_by_callback_and_by_poll_give_the_poll_recovered_share(
    otel: Recorded,
) -> None:
    """Some callbacks lost: the share is the finals whose events came from polls ÷ all finals,
    the delivery duration is measured once per recipient, and nothing stays pending."""
    async with story(drop_rate=0.5, reconcile_after=0.8) as running:
        sent = await running.send([f"+336123456{n:02d}" for n in range(10)])
        await running.finals(sent)
    events = sums(otel, "opensms.delivery.events")
    finals = {
        source: sum(v for k, v in events.items() if ("opensms.source", source) in k and _final(k))
        for source in ("callback", "poll")
    }
    assert finals["callback"] + finals["poll"] == 10
    [share] = sums(otel, "opensms.delivery.poll_recovered").values()
    assert share == pytest.approx(finals["poll"] / 10)
    durations = sums(otel, "opensms.delivery.duration")
    assert sum(point.count for point in durations.values()) == 10
    assert sums(otel, "opensms.delivery.pending") == {frozenset(): 0}


def _final(key: frozenset[tuple[str, Any]]) -> bool:
    status = dict(key)["opensms.status"]
    return status in {"DeliveredToTerminal", "DeliveryImpossible"}


class _FailingStore(MemoryStore):
    """A memory store that can record nothing: the receiver answers 503."""

    async def apply_events(self, updates: Sequence[DeliveryUpdate]) -> list[Any]:
        raise StoreUnavailableError("the store is down")


@contextlib.asynccontextmanager
async def receiver(store: Any = None, **options: Any) -> AsyncIterator[tuple[str, DeliveryTracker]]:
    """A receiver (its URL) over a tracker without client."""
    async with DeliveryTracker(store if store is not None else MemoryStore()) as tracker:
        app = create_receiver_app(tracker, TOKEN, path=PATH, manage_tracker=False, **options)
        async with serve(app) as server:
            yield server.url + PATH, tracker


def callback_body(
    request_id: str = "req-1", status: str = "DeliveredToTerminal", token: str = TOKEN
) -> bytes:
    """A callback body in BICS's shape."""
    return json.dumps(
        {
            "deliveryInfoList": {
                "resourceURL": RESOURCE.format(request_id=request_id),
                "securityToken": token,
                "deliveryInfo": [{"address": "tel:+33612345678", "deliveryStatus": status}],
            }
        }
    ).encode()


async def test_every_callback_outcome_is_counted_with_its_bounded_value(otel: Recorded) -> None:
    """``opensms.receiver.callbacks`` counts each answer under one of DESIGN.md's outcomes,
    with no other attribute; each callback's span says the same, a 503 as an error."""
    async with (
        receiver(max_body_size=1024) as (url, _),
        receiver(_FailingStore()) as (down, _),
        httpx.AsyncClient() as http,
    ):
        bodies = {
            "accepted": (url, callback_body()),
            "unauthorized": (url, callback_body(token="wrong-token")),
            "malformed": (url, b"{not json"),
            "invalid": (url, json.dumps({"deliveryInfoList": {"securityToken": TOKEN}}).encode()),
            "too_large": (url, b"{" + b" " * 2000 + b"}"),
            "unavailable": (down, callback_body()),
        }
        answers = {}
        for outcome, (target, body) in bodies.items():
            answers[outcome] = (await http.post(target, content=body)).status_code
    assert answers == {
        "accepted": 204,
        "unauthorized": 401,
        "malformed": 400,
        "invalid": 422,
        "too_large": 413,
        "unavailable": 503,
    }
    counted = sums(otel, "opensms.receiver.callbacks")
    assert counted == {attributes(opensms_outcome=outcome): 1 for outcome in bodies}
    spans = {
        str(span.attributes["opensms.outcome"]): span  # type: ignore[index]
        for span in named(otel, "opensms.callback")
    }
    assert set(spans) == set(bodies)
    for outcome, span in spans.items():
        assert span.attributes is not None
        assert span.attributes["http.response.status_code"] == answers[outcome]
        failed = outcome == "unavailable"
        assert span.status.status_code is (StatusCode.ERROR if failed else StatusCode.UNSET)
        assert ("error.type" in span.attributes) is failed


async def test_callback_log_records_carry_fields_trace_ids_and_no_number(
    otel: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused callback's WARNING has the stable fields (operation ``callback``, its status
    and outcome) and the ids of the callback's span, and masks the number its body quoted."""
    bad = json.dumps(
        {
            "deliveryInfoList": {
                "resourceURL": RESOURCE.format(request_id="req-9"),
                "securityToken": TOKEN,
                "deliveryInfo": [{"address": "+3361234567890123", "deliveryStatus": "x"}],
            }
        }
    ).encode()
    with caplog.at_level(logging.INFO, logger="opensms_async"):
        async with receiver() as (url, _), httpx.AsyncClient() as http:
            assert (await http.post(url, content=bad)).status_code == 422
    [record] = [r for r in caplog.records if r.name == "opensms_async.receiver"]
    fields = vars(record)
    assert (fields["opensms.operation"], fields["opensms.outcome"]) == ("callback", "invalid")
    assert fields["http.response.status_code"] == 422
    span = one(otel, "opensms.callback")
    assert span.context is not None
    assert fields["opensms.trace_id"] == f"{span.context.trace_id:032x}"
    assert "61234567890" not in record.getMessage()
    assert "+33" in record.getMessage()  # masked, not removed: the ends still tell which


def test_numbers_are_shown_when_the_user_opts_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """``OPENSMS_LOG_NUMBERS=1`` lets records at INFO and above show numbers whole."""
    text = "invalid recipient '+3361234567890123'"
    assert "61234567890" not in telemetry.mask_numbers(text)
    monkeypatch.setenv("OPENSMS_LOG_NUMBERS", "1")
    assert telemetry.mask_numbers(text) == text


# --- cardinality ----------------------------------------------------------------------------------


async def test_metric_attributes_stay_bounded_and_carry_no_id_or_number(otel: Recorded) -> None:
    """Over many sends, callbacks (made-up statuses included) and polls, every metric's
    attributes come from a fixed set of keys and values, and no request id or phone number
    appears anywhere in the exported metrics."""
    async with story(drop_rate=0.5, reconcile_after=0.8) as running:
        sents = [await running.send([f"+3361234{n:04d}"]) for n in range(12)]
        for sent in sents:
            await running.finals(sent)
        async with httpx.AsyncClient() as http:
            for n in range(20):
                body = callback_body(f"made-up-{n}", status=f"NoSuchStatus{n}")
                answer = await http.post(running.receiver.url + PATH, content=body)
                assert answer.status_code == 204
    data = otel.reader.get_metrics_data()
    assert isinstance(data, MetricsData)
    exported = data.to_json()
    for sent in sents:
        assert sent.request_id not in exported
    assert not re.search(r"\+?3361234\d{4}", exported)
    allowed = {
        "opensms.status",
        "opensms.source",
        "opensms.outcome",
        "opensms.operation",
        "http.response.status_code",
        "error.type",
    }
    statuses = {status.value for status in DeliveryStatus} | {"other"}
    for name, metric in otel.metrics().items():
        for point in metric.data.data_points:
            found = dict(point.attributes or {})
            assert set(found) <= allowed, (name, found)
            if "opensms.status" in found:
                assert found["opensms.status"] in statuses
    events = sums(otel, "opensms.delivery.events")
    assert events[attributes(opensms_status="other", opensms_source="callback")] == 20


def test_tracked_requests_are_kept_within_the_limit(otel: Recorded) -> None:
    """The span contexts and tracking times kept for linking are bounded: past the limit the
    oldest requests go, and what they counted as pending with them."""
    kept = DeliveryTelemetry(retention=3600.0, limit=10)
    for n in range(25):
        _track(kept, _sent(f"req-{n}", 2), now=1000.0 + n)
    assert len(kept._tracked) == 10
    assert kept.pending == 20
    assert set(kept._tracked) == {f"req-{n}" for n in range(15, 25)}


def test_tracked_requests_older_than_the_retention_are_forgotten(otel: Recorded) -> None:
    """A request never final (its receipts lost for good) stops counting as pending once the
    receipts' retention has passed."""
    kept = DeliveryTelemetry(retention=100.0)
    _track(kept, _sent("old", 3), now=0.0)
    _track(kept, _sent("new", 1), now=101.0)
    assert set(kept._tracked) == {"new"}
    assert kept.pending == 1


def test_nothing_is_kept_while_no_sdk_records() -> None:
    """Without an SDK configured, tracking keeps nothing (no memory per tracked request)."""
    kept = DeliveryTelemetry(retention=3600.0)
    for n in range(100):
        _track(kept, _sent(f"req-{n}", 1), now=float(n))
    assert kept._tracked == {} and kept.pending == 0


def _track(kept: DeliveryTelemetry, sent: SendResult, now: float) -> None:
    """What ``tracker.track(sent)`` tells the telemetry: the send, then its first sightings."""
    kept.track(sent, now)
    updates = [
        DeliveryUpdate(sent.request_id, address, DeliveryStatus.MESSAGE_ACCEPTED, Source.SEND)
        for address in sent.recipients
    ]
    events = [
        DeliveryEvent(str(n), u.request_id, u.address, u.status, None, Source.SEND, at=now)
        for n, u in enumerate(updates)
    ]
    kept.ingested(updates, events)


def _sent(request_id: str, recipients: int) -> SendResult:
    return SendResult(
        request_id=request_id,
        sender=SENDER,
        resource_url=None,
        delivery_infos=[],
        recipients=tuple(f"tel:+3361234{n:04d}" for n in range(recipients)),
        client_correlator="c",
    )


# --- names of the contract ------------------------------------------------------------------------


async def test_the_names_of_the_contract_after_a_full_story(otel: Recorded) -> None:
    """A send, its callbacks, a lost one recovered by polling: every span and metric name of
    DESIGN.md's delivery side is exported under scope ``opensms_async``, with its unit."""
    async with story(drop_rate=0.5, reconcile_after=0.8) as running:
        sent = await running.send([f"+336123456{n:02d}" for n in range(6)])
        await running.finals(sent)
        await spans_ended(otel, "opensms.callback", 1)
    assert {"opensms.send_message", "opensms.callback", "opensms.reconcile"} <= {
        span.name for span in otel.spans()
    }
    units = {name: metric.unit for name, metric in otel.metrics().items()}
    assert units == {
        "opensms.client.request.duration": "s",
        "opensms.receiver.callbacks": "{callback}",
        "opensms.delivery.events": "{event}",
        "opensms.delivery.duration": "s",
        "opensms.reconcile.polls": "{poll}",
        "opensms.delivery.pending": "{recipient}",
        "opensms.delivery.poll_recovered": "1",
    }
    [point, *_] = otel.points("opensms.delivery.duration")
    assert tuple(point.explicit_bounds) == telemetry.DELIVERY_DURATION_BUCKETS
