"""OpenTelemetry on the client side: spans, the request-duration metric, log fields (issue 13).

Every test that records installs fresh OpenTelemetry SDK providers (in-memory span exporter and
metric reader) as the global ones and unsets them afterwards, as OpenTelemetry's own test
utilities do: the SDK allows setting a global provider once per process, and the other test
files must run as a user without an SDK would. Over real sockets: the bundled simulator, or the
raw server of ``hostile_server.py`` where an answer must be chosen byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from hostile_server import Reply, Request, hostile_server
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics.export import HistogramDataPoint
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import SpanKind, StatusCode
from otel_helpers import Recorded, install_sdk, recording, scope_of, unset_global_providers

from opensms_async import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    OAuthClientCredentials,
    OpenSMSClient,
    RateLimitError,
    __version__,
)
from opensms_async import _telemetry as telemetry
from opensms_async.testing import Fault, RunningSimulator, run_simulator

pytestmark = pytest.mark.integration

SENDER = "tel:+3212345678"
BASE_PATH = "/sms/v3"
SCOPE = "opensms_async"


@pytest.fixture
def otel() -> Iterator[Recorded]:
    """SDK providers recording in memory for this test, unset afterwards."""
    yield from recording()


@pytest.fixture
def httpx_instrumented(otel: Recorded) -> Iterator[Recorded]:
    """``opentelemetry-instrumentation-httpx`` on (as a user turns it on), off afterwards."""
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument()
    yield otel
    instrumentor.uninstrument()


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    """A simulator whose API lives under ``/sms/v3``, as BICS v3's does."""
    async with run_simulator(
        seed=13, base_path=BASE_PATH, inbound_numbers=("tel:+32470000000",)
    ) as running:
        yield running


async def no_sleep(seconds: float) -> None:
    """The client's back-off sleep, skipped: retries at once."""


def client_for(url: str, **options: Any) -> OpenSMSClient:
    """A client of ``url`` with an API key, retrying without waiting."""
    options.setdefault("sleep", no_sleep)
    return OpenSMSClient(api_key="telemetry-key-7f3a", base_url=url, **options)


def sim_client(sim: RunningSimulator, **options: Any) -> OpenSMSClient:
    """A client of the simulator, retrying without waiting."""
    options.setdefault("sleep", no_sleep)
    return OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url, **options)


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    """The one span called ``name``."""
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def http_attribute(span: ReadableSpan, stable: str, old: str) -> Any:
    """An attribute of an httpx instrumentation span under the stable HTTP conventions' name or
    the old one (its default until ``OTEL_SEMCONV_STABILITY_OPT_IN=http``)."""
    attributes = span.attributes or {}
    return attributes.get(stable, attributes.get(old))


def template_regex(template: str) -> re.Pattern[str]:
    """A regex of the paths a ``url.template`` stands for (a ``{name}`` is one path segment)."""
    parts = re.split(r"\{[A-Za-z]+\}", template)
    return re.compile("[^/]+".join(re.escape(part) for part in parts) + r"(\?.*)?")


async def every_operation(client: OpenSMSClient) -> None:
    """Call each of the eleven API operations once, each succeeding."""
    sent = await client.send_message(SENDER, ["+33612345670"], "Hello")
    await client.get_delivery_infos(SENDER, sent.request_id)
    await client.create_subscription("https://me.example/cb", "tok-123456")
    await client.get_subscription()
    await client.delete_subscription()
    await client.create_inbound_subscription("https://me.example/in", "in-tok-1234", concat=False)
    await client.get_inbound_subscription()
    await client.delete_inbound_subscription()
    await client.get_inbound_messages("tel:+32470000000", max_batch_size=5)
    await client.report_conversion(address="tel:+33612345670")
    await client.report_conversions(["id-1"])


# --- spans ---------------------------------------------------------------------------------------


async def test_a_send_is_one_client_span_with_the_contract_attributes(
    otel: Recorded, sim: RunningSimulator
) -> None:
    """A send is one CLIENT span ``opensms.send_message`` of scope opensms_async with the HTTP
    conventions' attributes, the request id, and nothing else."""
    async with sim_client(sim) as client:
        sent = await client.send_message(SENDER, ["+33612345678"], "Hello")
    span = one(otel.spans(), "opensms.send_message")
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope is not None
    assert (span.instrumentation_scope.name, span.instrumentation_scope.version) == (
        SCOPE,
        __version__,
    )
    host, port = sim.url.removeprefix("http://").split(":")
    assert dict(span.attributes or {}) == {
        "http.request.method": "POST",
        "url.template": f"{BASE_PATH}/outbound/{{senderAddress}}/requests",
        "server.address": host,
        "server.port": int(port),
        "http.response.status_code": 201,
        "opensms.request_id": sent.request_id,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert span.parent is None


async def test_every_operation_has_its_span_method_and_template(
    httpx_instrumented: Recorded, sim: RunningSimulator
) -> None:
    """Each of the eleven calls is a span ``opensms.<operation>`` whose method and url.template
    are those of the HTTP request under it (as opentelemetry-instrumentation-httpx saw it)."""
    async with sim_client(sim) as client:
        await every_operation(client)
    ours = httpx_instrumented.spans()
    assert [s.name for s in ours] == [
        f"opensms.{op}" for op in telemetry.OPERATIONS if op != "fetch_token"
    ]
    http_spans = [s for s in httpx_instrumented.all_spans() if scope_of(s) != SCOPE]
    for span in ours:
        assert span.context is not None
        children = [s for s in http_spans if s.parent and s.parent.span_id == span.context.span_id]
        assert len(children) == 1, span.name
        attributes, child = span.attributes or {}, children[0]
        method = http_attribute(child, "http.request.method", "http.method")
        assert attributes["http.request.method"] == method
        path = httpx.URL(str(http_attribute(child, "url.full", "http.url"))).raw_path.decode()
        assert template_regex(str(attributes["url.template"])).fullmatch(path), (span.name, path)
        assert 200 <= int(attributes["http.response.status_code"]) < 300  # type: ignore[arg-type]


async def test_http_spans_nest_under_ours_on_the_default_client(
    httpx_instrumented: Recorded, sim: RunningSimulator
) -> None:
    """With opentelemetry-instrumentation-httpx on, the default client's HTTP spans (one per
    attempt, retries included) are children of its ``opensms.send_message`` span."""
    sim.simulator.add_fault(Fault.respond(503, endpoint="send"))
    async with sim_client(sim) as client:
        await client.send_message(SENDER, ["+33612345678"], "Hello")
    ours = one(httpx_instrumented.spans(), "opensms.send_message")
    assert ours.context is not None
    http_spans = [s for s in httpx_instrumented.all_spans() if scope_of(s) != SCOPE]
    assert [s.kind for s in http_spans] == [SpanKind.CLIENT, SpanKind.CLIENT]
    for span in http_spans:
        assert span.parent is not None and span.context is not None
        assert span.parent.span_id == ours.context.span_id
        assert span.context.trace_id == ours.context.trace_id
    statuses = [
        http_attribute(s, "http.response.status_code", "http.status_code") for s in http_spans
    ]
    assert statuses == [503, 201]


async def test_http_spans_nest_under_ours_on_a_client_passed_in(
    httpx_instrumented: Recorded, sim: RunningSimulator
) -> None:
    """An ``http_client=`` of the user's, instrumented the same way, nests the same way."""
    async with httpx.AsyncClient() as http, sim_client(sim, http_client=http) as client:
        await client.get_subscription()
    ours = one(httpx_instrumented.spans(), "opensms.get_subscription")
    http_spans = [s for s in httpx_instrumented.all_spans() if scope_of(s) != SCOPE]
    assert len(http_spans) == 1
    assert http_spans[0].parent is not None and ours.context is not None
    assert http_spans[0].parent.span_id == ours.context.span_id


async def test_retries_are_counted_in_resend_count(otel: Recorded, sim: RunningSimulator) -> None:
    """Two 503s then a 201: one span (not three) with resend_count 2 and status 201."""
    sim.simulator.add_fault(Fault.respond(503, endpoint="send", times=2))
    async with sim_client(sim) as client:
        await client.send_message(SENDER, ["+33612345678"], "Hello")
    span = one(otel.spans(), "opensms.send_message")
    attributes = span.attributes or {}
    assert attributes["http.request.resend_count"] == 2
    assert attributes["http.response.status_code"] == 201
    assert "error.type" not in attributes
    assert span.status.status_code is StatusCode.UNSET


async def test_a_status_error_sets_error_type_and_span_status(
    otel: Recorded, sim: RunningSimulator
) -> None:
    """A 429 past the retries: error.type "429" (the status, as the HTTP conventions say),
    the status code, the retries, span status ERROR; the duration measured with error.type."""
    sim.simulator.add_fault(Fault.respond(429, endpoint="send", times=None))
    async with sim_client(sim, max_retries=1) as client:
        with pytest.raises(RateLimitError):
            await client.send_message(SENDER, ["+33612345678"], "Hello")
    span = one(otel.spans(), "opensms.send_message")
    attributes = span.attributes or {}
    assert attributes["error.type"] == "429"
    assert attributes["http.response.status_code"] == 429
    assert attributes["http.request.resend_count"] == 1
    assert "opensms.request_id" not in attributes
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "429"
    [point] = otel.points()
    assert dict(point.attributes) == {
        "opensms.operation": "send_message",
        "http.response.status_code": 429,
        "error.type": "429",
    }


async def test_a_connection_error_sets_its_type_and_no_status(
    otel: Recorded, sim: RunningSimulator
) -> None:
    """A dropped connection (no answer at all): error.type is the error's class, and neither
    the span nor the metric has a status code."""
    sim.simulator.add_fault(Fault.drop(endpoint="send", times=None))
    async with sim_client(sim, max_retries=0) as client:
        with pytest.raises(APIConnectionError):
            await client.send_message(SENDER, ["+33612345678"], "Hello")
    span = one(otel.spans(), "opensms.send_message")
    attributes = span.attributes or {}
    assert attributes["error.type"] == "APIConnectionError"
    assert "http.response.status_code" not in attributes
    assert span.status.status_code is StatusCode.ERROR
    [point] = otel.points()
    assert dict(point.attributes) == {
        "opensms.operation": "send_message",
        "error.type": "APIConnectionError",
    }


async def test_a_timeout_after_an_error_status_keeps_no_stale_status(otel: Recorded) -> None:
    """A 503, then an answer that never comes: APITimeoutError, and the 503 of the first
    attempt is not reported as the call's status."""
    answers = iter([Reply(503)])

    async def handler(request: Request) -> Reply:
        reply = next(answers, None)
        if reply is None:
            await asyncio.sleep(60)  # cut when the server closes
            return Reply(500)
        return reply

    async with (
        hostile_server(handler) as server,
        client_for(server.url, deadline=0.3, max_retries=1) as client,
    ):
        with pytest.raises(APITimeoutError):
            await client.get_subscription()
    attributes = one(otel.spans(), "opensms.get_subscription").attributes or {}
    assert attributes["error.type"] == "APITimeoutError"
    assert attributes["http.request.resend_count"] == 1
    assert "http.response.status_code" not in attributes


async def test_an_absent_subscription_is_no_error(otel: Recorded, sim: RunningSimulator) -> None:
    """get_subscription answering None (the API's 404) is a successful call, not an error."""
    async with sim_client(sim) as client:
        assert await client.get_subscription() is None
    span = one(otel.spans(), "opensms.get_subscription")
    assert (span.attributes or {})["http.response.status_code"] == 404
    assert "error.type" not in (span.attributes or {})
    assert span.status.status_code is StatusCode.UNSET


async def test_a_sampled_out_call_keeps_its_http_spans_out_too(sim: RunningSimulator) -> None:
    """A sampler that drops the call's span drops the HTTP spans under it (they inherit the
    decision from the call's context): the call's span is current even when not recording."""
    recorded = install_sdk(sampler=ParentBased(ALWAYS_OFF))
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument()
    try:
        async with sim_client(sim) as client:
            await client.send_message(SENDER, ["+33612345678"], "Hello")
    finally:
        instrumentor.uninstrument()
        unset_global_providers()
    assert recorded.all_spans() == []


async def test_a_client_made_before_the_sdk_is_configured_is_traced(
    sim: RunningSimulator,
) -> None:
    """A client made while no SDK is configured (at import time, say) records once one is."""
    unset_global_providers()
    client = sim_client(sim)
    recorded = install_sdk(reset=False)
    try:
        async with client:
            await client.send_message(SENDER, ["+33612345678"], "Hello")
    finally:
        unset_global_providers()
    assert [s.name for s in recorded.spans()] == ["opensms.send_message"]
    assert len(recorded.points()) == 1


async def test_the_oauth_token_fetch_is_a_span_under_the_call(otel: Recorded) -> None:
    """With OAuth, the token fetch is a CLIENT span ``opensms.fetch_token`` under the call
    that needed it, measured as operation ``fetch_token``; the secret appears nowhere."""
    secret = "oauth-secret-telemetry-91b2"
    async with run_simulator(seed=3, client_secret=secret) as sim:
        credentials = OAuthClientCredentials(
            client_id=sim.client_id, client_secret=secret, scope="x", token_url=sim.token_url
        )
        async with OpenSMSClient(oauth=credentials, base_url=sim.base_url) as client:
            await client.send_message(SENDER, ["+33612345678"], "Hello")
    spans = otel.spans()
    send, token = one(spans, "opensms.send_message"), one(spans, "opensms.fetch_token")
    assert token.kind is SpanKind.CLIENT
    assert token.parent is not None and send.context is not None
    assert token.parent.span_id == send.context.span_id
    attributes = token.attributes or {}
    assert attributes["url.template"] == "/oauth/token"
    assert attributes["http.request.method"] == "POST"
    assert attributes["http.response.status_code"] == 200
    operations = {p.attributes["opensms.operation"] for p in otel.points()}
    assert operations == {"send_message", "fetch_token"}
    assert secret not in repr([dict(s.attributes or {}) for s in spans])


async def test_a_refused_token_is_typed_on_both_spans(otel: Recorded) -> None:
    """A token refused (401): the fetch span says "401"; the call's span, which the API never
    answered, names the error's class and has no status code."""
    async with run_simulator(seed=3) as sim:
        credentials = OAuthClientCredentials(
            client_id=sim.client_id,
            client_secret="wrong-secret",
            scope="x",
            token_url=sim.token_url,
        )
        async with OpenSMSClient(oauth=credentials, base_url=sim.base_url) as client:
            with pytest.raises(Exception, match="401"):
                await client.get_subscription()
    spans = otel.spans()
    token = one(spans, "opensms.fetch_token").attributes or {}
    call = one(spans, "opensms.get_subscription").attributes or {}
    assert (token["error.type"], token["http.response.status_code"]) == ("401", 401)
    assert call["error.type"] == "AuthenticationError"
    assert "http.response.status_code" not in call


# --- what is never recorded -------------------------------------------------------------------


async def test_metric_attributes_stay_bounded_over_many_sends(
    otel: Recorded, sim: RunningSimulator
) -> None:
    """Forty sends to forty numbers and their polls: the metric has two attribute sets, none
    of them holding a number or a request id; every span has the same fixed attribute keys."""
    numbers = [f"+336123456{n:02d}" for n in range(40)]
    async with sim_client(sim) as client:
        sent = [await client.send_message(SENDER, [n], f"Hello {n}") for n in numbers]
        for result in sent:
            await client.get_delivery_infos(SENDER, result.request_id)
    sets = {tuple(sorted(p.attributes.items())) for p in otel.points()}
    assert sets == {
        (("http.response.status_code", 201), ("opensms.operation", "send_message")),
        (("http.response.status_code", 200), ("opensms.operation", "get_delivery_infos")),
    }
    keys = {frozenset((s.attributes or {}).keys()) for s in otel.spans()}
    assert keys == {
        frozenset(
            {
                "http.request.method",
                "url.template",
                "server.address",
                "server.port",
                "http.response.status_code",
                "opensms.request_id",
            }
        )
    }
    request_ids = {r.request_id for r in sent}
    for span in otel.spans():
        attributes = dict(span.attributes or {})
        assert attributes.pop("opensms.request_id") in request_ids
        assert not any(n.lstrip("+") in str(attributes) for n in numbers)


async def test_no_address_sender_or_text_in_spans_even_when_the_error_quotes_them(
    otel: Recorded,
) -> None:
    """A 400 whose body quotes the recipient: the span says "400" and nothing of the number,
    the sender, the sender name, the text or the API key (no message, no exception event)."""
    body = json.dumps(
        {
            "requestError": {
                "serviceException": {
                    "messageId": "SVC0002",
                    "text": "Invalid input value for message part %1",
                    "variables": ["tel:+33612345678"],
                }
            }
        }
    ).encode()
    reply = Reply(400, (("Content-Type", "application/json"),), body)
    async with hostile_server(lambda request: reply) as server, client_for(server.url) as client:
        with pytest.raises(BadRequestError, match="33612345678"):
            await client.send_message(
                "tel:+3299887766", ["+33612345678"], "secret words", sender_name="Acme Bank"
            )
    span = one(otel.spans(), "opensms.send_message")
    shown = repr((dict(span.attributes or {}), span.status.description, span.events, span.name))
    for private in ("33612345678", "3299887766", "Acme Bank", "secret words", "telemetry-key"):
        assert private not in shown
    assert span.events == ()


# --- metrics --------------------------------------------------------------------------------------


async def test_the_duration_histogram_has_its_name_unit_and_buckets(
    otel: Recorded, sim: RunningSimulator
) -> None:
    """``opensms.client.request.duration`` is a histogram in seconds with the SMS buckets
    (10 ms to 2 min), one measurement per call whatever its retries."""
    sim.simulator.add_fault(Fault.respond(503, endpoint="send"))
    async with sim_client(sim) as client:
        await client.send_message(SENDER, ["+33612345678"], "Hello")
    data = otel.reader.get_metrics_data()
    assert data is not None
    [metric] = [
        m
        for r in data.resource_metrics
        for s in r.scope_metrics
        if s.scope.name == SCOPE
        for m in s.metrics
    ]
    assert (metric.name, metric.unit) == ("opensms.client.request.duration", "s")
    [point] = metric.data.data_points
    assert isinstance(point, HistogramDataPoint)
    assert point.count == 1
    assert tuple(point.explicit_bounds) == telemetry.CLIENT_DURATION_BUCKETS
    assert 0 < point.sum < 30


def test_the_instruments_of_the_contract(otel: Recorded) -> None:
    """Every instrument DESIGN.md names exists with its unit, and the delivery histogram has
    buckets from seconds to days; made once per meter provider."""
    found = telemetry.instruments()
    assert found is not None
    assert telemetry.instruments() is found
    expected = {
        "client_duration": ("opensms.client.request.duration", "s"),
        "receiver_callbacks": ("opensms.receiver.callbacks", "{callback}"),
        "delivery_events": ("opensms.delivery.events", "{event}"),
        "delivery_duration": ("opensms.delivery.duration", "s"),
        "reconcile_polls": ("opensms.reconcile.polls", "{poll}"),
        "inbound_messages": ("opensms.inbound.messages", "{message}"),
    }
    for field, (name, unit) in expected.items():
        instrument = getattr(found, field)
        assert (instrument.name, instrument.unit) == (name, unit)
    found.delivery_duration.record(90.0, {"opensms.status": "DeliveredToTerminal"})
    [point] = otel.points("opensms.delivery.duration")
    assert tuple(point.explicit_bounds) == telemetry.DELIVERY_DURATION_BUCKETS
    assert point.explicit_bounds[0] <= 1.0 and point.explicit_bounds[-1] >= 86400.0


def test_many_clients_without_an_sdk_do_not_grow_opentelemetry_state() -> None:
    """With the API and no SDK, OpenTelemetry's proxy keeps every meter made on it: a hundred
    clients add at most one meter, not a hundred."""
    unset_global_providers()
    proxy = metrics_internal._PROXY_METER_PROVIDER
    before = len(proxy._meters)
    for n in range(100):
        OpenSMSClient(api_key="k", base_url=f"http://127.0.0.1:{1000 + n}")
    assert len(proxy._meters) - before <= 1


# --- span context for the tracker (part 2) -------------------------------------------------------


def test_the_traceparent_of_the_active_span_round_trips_to_a_link(otel: Recorded) -> None:
    """Inside a span, current_traceparent() is its W3C traceparent, and link_from_traceparent()
    links back to that very span; outside, or from garbage, there is nothing."""
    assert telemetry.current_traceparent() is None
    tracer = otel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("send") as span:
        traceparent = telemetry.current_traceparent()
    context = span.get_span_context()
    flags = int(context.trace_flags)
    assert traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"
    link = telemetry.link_from_traceparent(traceparent)
    assert link is not None
    assert (link.context.trace_id, link.context.span_id) == (context.trace_id, context.span_id)
    for garbage in (None, "", "00-zz-yy-01", "00-" + "0" * 32 + "-" + "0" * 16 + "-01", 42):
        assert telemetry.link_from_traceparent(garbage) is None  # type: ignore[arg-type]


# --- log records ----------------------------------------------------------------------------------

FIELDS = {
    "opensms.operation",
    "opensms.request_id",
    "http.response.status_code",
    "opensms.status",
    "opensms.outcome",
    "opensms.attempt",
    "error.type",
    "opensms.trace_id",
    "opensms.span_id",
}


async def test_log_records_carry_stable_fields_and_the_trace_id(
    otel: Recorded, sim: RunningSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Every record of a retried send has the same keys: operation, attempt, status, outcome
    (retry, then ok), the request id once known, and the trace and span ids of the call."""
    sim.simulator.add_fault(Fault.respond(503, endpoint="send"))
    with caplog.at_level(logging.DEBUG, logger="opensms_async"):
        async with sim_client(sim) as client:
            sent = await client.send_message(SENDER, ["+33612345678"], "Hello")
    records = [r for r in caplog.records if r.name == "opensms_async"]
    assert all(set(vars(r)) >= FIELDS for r in records)
    span = one(otel.spans(), "opensms.send_message")
    assert span.context is not None
    assert {vars(r)["opensms.trace_id"] for r in records} == {f"{span.context.trace_id:032x}"}
    assert {vars(r)["opensms.span_id"] for r in records} == {f"{span.context.span_id:016x}"}
    seen = [
        (
            vars(r)["opensms.attempt"],
            vars(r)["http.response.status_code"],
            vars(r)["opensms.outcome"],
        )
        for r in records
    ]
    assert seen == [(1, 503, None), (1, 503, "retry"), (2, 201, None), (2, 201, "ok")]
    last = vars(records[-1])
    assert (last["opensms.operation"], last["opensms.request_id"]) == (
        "send_message",
        sent.request_id,
    )
    assert sent.request_id in records[-1].getMessage()


async def test_log_fields_without_opentelemetry_spans(
    sim: RunningSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Without an SDK the records have the same keys, the trace and span ids None."""
    unset_global_providers()
    with caplog.at_level(logging.DEBUG, logger="opensms_async"):
        async with sim_client(sim, max_retries=0) as client:
            sim.simulator.add_fault(Fault.respond(400, endpoint="send"))
            with pytest.raises(BadRequestError):
                await client.send_message(SENDER, ["+33612345678"], "Hello")
    records = [r for r in caplog.records if r.name == "opensms_async"]
    assert records and all(set(vars(r)) >= FIELDS for r in records)
    assert {vars(r)["opensms.trace_id"] for r in records} == {None}
    last = vars(records[-1])
    assert (last["opensms.outcome"], last["error.type"]) == ("error", "400")


async def test_no_secret_in_any_log_record_and_no_number_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OAuth and API-key calls, retried and failing, at DEBUG: no secret in any record (message
    or field), and nothing at INFO or above shows a phone number."""
    secret, key = "oauth-secret-logs-55e1", "api-key-logs-8c0d"
    with caplog.at_level(logging.DEBUG):
        async with run_simulator(seed=4, client_secret=secret, api_key=key) as sim:
            sim.simulator.add_fault(Fault.respond(503, endpoint="send"))
            sim.simulator.add_fault(Fault.drop(endpoint="send"))
            credentials = OAuthClientCredentials(
                client_id=sim.client_id, client_secret=secret, scope="x", token_url=sim.token_url
            )
            async with (
                OpenSMSClient(oauth=credentials, base_url=sim.base_url, sleep=no_sleep) as oauth,
                sim_client(sim) as keyed,
            ):
                await oauth.send_message(SENDER, ["+33612345678"], "Hello")
                sim.simulator.add_fault(Fault.respond(401, endpoint="send"))
                with pytest.raises(Exception, match="401"):
                    await keyed.send_message(SENDER, ["+33612345679"], "Hello")
    ours = [r for r in caplog.records if r.name.startswith("opensms_async")]
    assert len(ours) >= 6
    for record in ours:
        text = record.getMessage() + repr(vars(record))
        assert secret not in text and key not in text
        if record.levelno >= logging.INFO:
            assert "3361234567" not in text


def test_mask_address_keeps_only_the_ends() -> None:
    """What a record at INFO or above may show of a number: two digits at each end."""
    assert telemetry.mask_address("tel:+33612345678") == "tel:+33*******78"
    assert telemetry.mask_address("+32470123456") == "+32*******56"
    assert telemetry.mask_address("tel:+1234") == "tel:+****"


# --- without the extra ----------------------------------------------------------------------------

_WITHOUT_OTEL = textwrap.dedent(
    """
    import asyncio, importlib.abc, json, sys

    asked = []

    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "opentelemetry":
                asked.append(name)
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, Blocked())

    import opensms_async
    from opensms_async import DeliveryTracker, OpenSMSClient, _telemetry, create_receiver_app
    from opensms_async._server import serve
    from opensms_async.testing import run_simulator

    async def main():
        # Half the callbacks lost: the receiver records some, the poller recovers the others.
        async with run_simulator(seed=1, callback_drop_rate=0.5) as sim:
            async with (
                OpenSMSClient(api_key=sim.api_key, base_url=sim.base_url) as client,
                DeliveryTracker("memory://", client=client, reconcile_after=0.3) as tracker,
            ):
                app = create_receiver_app(tracker, "tok", manage_tracker=False)
                async with serve(app) as receiver:
                    sim.simulator.route_callbacks_to(receiver.url + "/sms/callback")
                    await client.create_subscription("https://example.test/cb", "tok")
                    to = ["+33612345678", "+33612345679", "+33612345670"]
                    sent = await client.send_message("tel:+3212345678", to, "Hi")
                    await tracker.track(sent)
                    for address in sent.recipients:
                        await tracker.wait_for_final(sent.request_id, address, timeout=30)
                    await sim.simulator.settle(10)
                    events = await tracker.store.read_events(None)
                    return sent.request_id, sorted({str(e.source) for e in events})

    request_id, sources = asyncio.run(main())
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] == "opentelemetry")
    print(json.dumps({"request_id": request_id, "sources": sources, "asked": asked,
                      "loaded": loaded, "api": _telemetry.OTEL_API,
                      "calls": _telemetry.client_calls("http://x").__name__}))
    """
)


def test_without_opentelemetry_nothing_of_it_is_imported() -> None:
    """With ``opentelemetry`` not importable (the extra absent), the package imports, and a
    client, a tracker polling and a receiver receiving work against the simulator, with no
    opentelemetry module loaded (the import was tried, and refused)."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _WITHOUT_OTEL], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["request_id"]
    # The receiver recorded callbacks and the poller recovered lost ones; the send's own echo
    # is an event only when it comes before the callbacks (BICS may post first).
    assert {"callback", "poll"} <= set(result["sources"]) <= {"callback", "poll", "send"}
    assert result["asked"], "the import was never tried: the test would prove nothing"
    assert result["loaded"] == []
    assert (result["api"], result["calls"]) == (False, "Call")
