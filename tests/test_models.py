"""The wire models against BICS's own OpenAPI description: its schemas and its examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

import opensms_async
from opensms_async import DeliveryInfo, DeliveryInfoList, DeliveryStatus, Subscription
from opensms_async._converter import WireFormatError, structure, unstructure, wire_name
from opensms_async._models import OutboundMessageRequest, SmsTextMessage

SPEC = json.loads((Path(__file__).parent / "data" / "bics-sms-v3-openapi.json").read_text())
SCHEMAS = SPEC["components"]["schemas"]
PATHS = SPEC["paths"]
SEND = PATHS["/outbound/{senderAddress}/requests"]["post"]
POLL = PATHS["/outbound/{senderAddress}/requests/{requestId}/deliveryInfos"]["get"]
SUBSCRIPTIONS = PATHS["/outbound/subscriptions"]


def example(node: dict[str, Any]) -> Any:
    """An example of the spec, decoded (BICS stores them as JSON strings)."""
    value = node["example"]
    return json.loads(value) if isinstance(value, str) else value


def wire_names(cls: type) -> set[str]:
    """The JSON keys a model reads and writes."""
    return {wire_name(field) for field in attrs.fields(cls)}


def properties(schema: str) -> set[str]:
    """The property names of a schema of the spec, allOf included."""
    node = SCHEMAS[schema]
    names = set(node.get("properties", {}))
    for part in node.get("allOf", []):
        if "$ref" in part:
            names |= properties(part["$ref"].rsplit("/", 1)[1])
        names |= set(part.get("properties", {}))
    return names


@pytest.mark.parametrize(
    ("schema", "model"),
    [
        ("DeliveryInfo", DeliveryInfo),
        ("DeliveryInfoList", DeliveryInfoList),
        ("OutboundRequest", OutboundMessageRequest),
        ("SmsTextMessage", SmsTextMessage),
        ("Callback", Subscription),
        ("DeliveryCallback", Subscription),
    ],
)
def test_models_cover_every_property_of_the_spec(schema: str, model: type) -> None:
    """Every property BICS documents has a field in our model, under the same wire name."""
    assert properties(schema) <= wire_names(model)


def test_every_documented_status_is_known() -> None:
    """Every DeliveryState value of the spec is a DeliveryStatus member."""
    for value in SCHEMAS["DeliveryState"]["enum"]:
        assert DeliveryStatus.parse(value) is DeliveryStatus(value)


def test_send_request_example_round_trips() -> None:
    """The spec's send request parses and serialises back to the same JSON."""
    body = example(SEND["requestBody"]["content"]["application/json"])
    model = structure(body["outboundSMSMessageRequest"], OutboundMessageRequest)
    assert model.sender_address == "tel:321234567"
    assert unstructure(model) == body["outboundSMSMessageRequest"]


@pytest.mark.parametrize("name", ["async", "sync"])
def test_send_response_examples_parse(name: str) -> None:
    """Both 201 examples (asynchronous and synchronous sends) parse, request id included."""
    content = SEND["responses"]["201"]["content"]["application/json"]
    body = json.loads(content["examples"][name]["value"])
    model = structure(body["outboundSMSMessageRequest"], OutboundMessageRequest)
    assert opensms_async._models.request_id_from_url(model.resource_url) == (
        "4c279a5f-1502-4679-8077-a63fa399369e"
    )
    assert model.asynchronous is (name == "async")


def test_delivery_infos_example_parses() -> None:
    """The deliveryInfos example keeps smsParts, part counts, codes and callbackData."""
    body = example(POLL["responses"]["200"]["content"]["application/json"])
    infos = structure(body["deliveryInfoList"], DeliveryInfoList)
    assert infos.sms_parts == 3
    assert infos.request_id == "4c279a5f-1502-4679-8077-a63fa399369e"
    first, second = infos.delivery_infos
    assert first.status is DeliveryStatus.PARTIALLY_DELIVERED
    assert (first.status_code, first.parts_delivered) == (13, 2)
    assert first.callback_data == "xxxx-xxxx-xxxx-xxxx-xxxx-xxxx"
    assert second.status is DeliveryStatus.DELIVERED_TO_NETWORK
    assert unstructure(infos) == body["deliveryInfoList"]


@pytest.mark.parametrize(
    "node",
    [
        SUBSCRIPTIONS["get"]["responses"]["200"]["content"]["application/json"],
        SUBSCRIPTIONS["post"]["requestBody"]["content"]["application/json"],
        SUBSCRIPTIONS["post"]["responses"]["201"]["content"]["application/json"],
    ],
)
def test_subscription_examples_parse(node: dict[str, Any]) -> None:
    """The subscription examples parse, finalDelivery included, and keep the token out of reprs."""
    sub = structure(example(node)["callback"], Subscription)
    assert sub.final_delivery is True
    assert sub.security_token == "string"
    assert "string" not in repr(sub).replace("url='string'", "")


def test_seed_example_with_unknown_fields_and_status() -> None:
    """Unknown fields are ignored and an unknown status is kept as its string."""
    info = structure(
        {"address": "tel:+1", "deliveryStatus": "MessageExpired", "futureField": {"a": 1}},
        DeliveryInfo,
    )
    assert info.status == "MessageExpired"
    assert not isinstance(info.status, DeliveryStatus)
    assert not info.is_final


@pytest.mark.parametrize(
    "body",
    [
        {"address": "tel:+1"},
        {"address": {"nested": True}, "deliveryStatus": "DeliveredToTerminal"},
        {"address": "tel:+1", "deliveryStatus": 7},
        {"address": "tel:+1", "deliveryStatus": "DeliveredToTerminal", "deliveryStatusCode": "x"},
    ],
)
def test_malformed_bodies_are_a_clear_error(body: dict[str, Any]) -> None:
    """Missing or mistyped fields raise WireFormatError naming the model, never a half-built one."""
    with pytest.raises(WireFormatError, match="DeliveryInfo"):
        structure(body, DeliveryInfo)


def test_public_names_are_exactly_all() -> None:
    """The package exports exactly __all__, sorted, and every public name has a docstring."""
    public = {n for n in dir(opensms_async) if n.isidentifier() and not n.startswith("_")}
    public -= {"receiver", "stores", "testing"}  # submodules, imported on purpose
    assert set(opensms_async.__all__) - {"__version__"} == public
    assert opensms_async.__all__ == sorted(opensms_async.__all__)
    for name in opensms_async.__all__:
        obj = getattr(opensms_async, name)
        if callable(obj):
            assert obj.__doc__, name


def test_design_contract_names() -> None:
    """The names DESIGN.md promises are importable from the top level."""
    for name in [
        "OpenSMSClient",
        "DeliveryStatus",
        "DeliveryTracker",
        "create_receiver_app",
        "count_segments",
        "OAuthClientCredentials",
        "OpenSMSError",
        "APIConnectionError",
        "APITimeoutError",
        "APIStatusError",
        "BadRequestError",
        "AuthenticationError",
        "PermissionDeniedError",
        "NotFoundError",
        "NotAcceptableError",
        "RateLimitError",
        "ServerError",
    ]:
        assert hasattr(opensms_async, name), name
    assert DeliveryStatus.DELIVERED_TO_TERMINAL == "DeliveredToTerminal"  # type: ignore[comparison-overlap]
