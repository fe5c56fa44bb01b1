"""The inbound and conversion wire models against BICS's OpenAPI: its schemas and its examples."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from openapi import PATHS, SCHEMAS, description_json, example, properties, schema_errors

import opensms_async
from opensms_async import InboundSmsMessage, InboundSmsMessageList, InboundSubscription
from opensms_async._converter import WireFormatError, structure, unstructure, wire_name
from opensms_async._inbound import ConversionRequest, MessageIds, parse_refused_ids

SUBSCRIPTIONS = PATHS["/inbound/subscriptions"]
JSON = "application/json"

MODELS = [
    ("InboundSmsMessage", InboundSmsMessage),
    ("InboundSMSMessageList", InboundSmsMessageList),
    ("InboundCallback", InboundSubscription),
    ("ConversionRequest", ConversionRequest),
    ("MessageIdsDTO", MessageIds),
]

FULL_MESSAGE = {
    "dateTime": "2021-11-24T09:13:40.639",
    "udhMessageId": 17,
    "senderAddress": "32470000001",
    "destinationAddress": "32470000000",
    "resourceURL": "https://opensms.api.bics.com/sms/v3/inbound/registrations/x/messages/m-1",
    "concatTotal": 3,
    "messageId": "m-1",
    "message": "Hello",
    "concatPart": 2,
}


def wire_names(cls: type) -> set[str]:
    """The JSON keys a model reads and writes."""
    return {wire_name(field) for field in attrs.fields(cls)}


@pytest.mark.parametrize(("schema", "model"), MODELS)
def test_models_speak_exactly_the_properties_of_the_spec(schema: str, model: type) -> None:
    """Every property BICS documents has a field under its wire name; no field is made up."""
    assert wire_names(model) == properties(schema)


def test_the_callback_body_example_parses() -> None:
    """The inbound callback body shown in the subscription's description parses, field by field."""
    body = description_json(SUBSCRIPTIONS["post"]["description"], "InboundSmsMessage")
    message = structure(body["InboundSmsMessage"], InboundSmsMessage)
    assert message == InboundSmsMessage(
        message_id="e7e34bb7-91a9-443e-a7e1-5257f6cf8d42",
        sender_address="1234567899",
        destination_address="1234567890",
        message="Test Inbound Message",
        date_time="2021-11-24T09:13:40.639",
    )
    assert unstructure(message) == body["InboundSmsMessage"]


def test_a_full_message_round_trips_and_matches_the_schema() -> None:
    """A part with every documented field parses, serialises back unchanged and fits the schema."""
    message = structure(FULL_MESSAGE, InboundSmsMessage)
    assert (message.udh_message_id, message.concat_part, message.concat_total) == (17, 2, 3)
    assert unstructure(message) == FULL_MESSAGE
    assert schema_errors(unstructure(message), "InboundSmsMessage") == []


def test_a_page_round_trips_and_matches_the_schema() -> None:
    """A polled page keeps its messages, counts and resource URL, in the spec's shape."""
    body = {
        "inboundSMSMessage": [FULL_MESSAGE, {"messageId": "m-2", "message": "Hi"}],
        "numberOfMessagesInThisBatch": 2,
        "totalNumberOfPendingMessages": 5,
        "resourceURL": "https://opensms.api.bics.com/sms/v3/inbound/registrations/x/messages",
    }
    page = structure(body, InboundSmsMessageList)
    assert [m.message_id for m in page.messages] == ["m-1", "m-2"]
    assert (page.total_pending, page.messages_in_batch) == (5, 2)
    assert unstructure(page) == body
    assert schema_errors(body, "InboundSMSMessageList") == []


def test_an_empty_page_reads_as_no_messages() -> None:
    """A page without messages or counts is an empty list with total_pending None."""
    page = structure({}, InboundSmsMessageList)
    assert (page.messages, page.total_pending) == ([], None)


def test_one_message_object_reads_as_a_list_of_one() -> None:
    """inboundSMSMessage given as one object (not a list) still reads, as deliveryInfo does."""
    page = structure({"inboundSMSMessage": FULL_MESSAGE}, InboundSmsMessageList)
    assert [m.message_id for m in page.messages] == ["m-1"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2, 2),
        ("2", 2),
        (" 2 ", 2),
        (2.0, 2),
        ("x", None),
        (True, None),
        ({"a": 1}, None),
        (2.5, None),
    ],
)
def test_mistyped_udh_fields_read_as_absent(value: object, expected: int | None) -> None:
    """An integer field holding no integer reads as None, so one odd part cannot fail a page."""
    message = structure({"messageId": "m", "concatPart": value}, InboundSmsMessage)
    assert message.concat_part == expected
    page = structure({"totalNumberOfPendingMessages": value}, InboundSmsMessageList)
    assert page.total_pending == expected


@pytest.mark.parametrize(
    "body",
    [
        {"inboundSMSMessage": "nope"},
        {"inboundSMSMessage": [1]},
        {"inboundSMSMessage": [{"message": {"nested": True}}]},
    ],
)
def test_a_page_of_the_wrong_shape_is_a_clear_error(body: dict[str, Any]) -> None:
    """Messages that are not objects, or text that is an object, raise WireFormatError."""
    with pytest.raises(WireFormatError, match="InboundSmsMessage"):
        structure(body, InboundSmsMessageList)


@pytest.mark.parametrize(
    "node",
    [
        SUBSCRIPTIONS["get"]["responses"]["200"]["content"][JSON],
        SUBSCRIPTIONS["post"]["requestBody"]["content"][JSON],
        SUBSCRIPTIONS["post"]["responses"]["201"]["content"][JSON],
    ],
)
def test_subscription_examples_round_trip(node: dict[str, Any]) -> None:
    """The inbound subscription examples parse, concat included, and keep the token out of reprs."""
    body = example(node)
    sub = structure(body["callback"], InboundSubscription)
    assert isinstance(sub.concat, bool)
    assert sub.security_token == "string"
    assert "securityToken" not in repr(sub)
    assert "string" not in repr(sub).replace("url='string'", "")
    assert unstructure(sub) == body["callback"]
    assert schema_errors(unstructure(sub), "InboundCallback") == []


def test_subscription_without_concat_leaves_it_off_the_wire() -> None:
    """concat=None (BICS's legacy behaviour) is not sent at all."""
    sub = InboundSubscription(url="https://me.example/in", security_token="tok-1234")
    assert unstructure(sub) == {"url": "https://me.example/in", "securityToken": "tok-1234"}


def test_conversion_example_round_trips() -> None:
    """The /conversions request example parses and serialises back to the same JSON."""
    body = example(PATHS["/conversions"]["post"]["requestBody"]["content"][JSON])
    request = structure(body["conversionRequest"], ConversionRequest)
    assert request == ConversionRequest(address="32410300011")
    assert unstructure(request) == body["conversionRequest"]
    assert schema_errors(unstructure(request), "ConversionRequest") == []


def test_message_ids_use_the_snake_case_wire_name() -> None:
    """MessageIdsDTO's ids travel as message_id (not camelCase), with type only when given."""
    ids = example(SCHEMAS["MessageIdsDTO"]["properties"]["message_id"])
    body = unstructure(MessageIds(message_ids=ids))
    assert body == {"message_id": ids}
    assert schema_errors(body, "MessageIdsDTO") == []
    typed = unstructure(MessageIds(message_ids=["a"], type="SMS"))
    assert typed == {"message_id": ["a"], "type": "SMS"}
    assert structure(typed, MessageIds) == MessageIds(message_ids=["a"], type="SMS")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", []),
        (b"  \r\n", []),
        (b"null", []),
        (b"[]", []),
        (b'["a", "b"]', ["a", "b"]),
        (b"[12, 3.5]", ["12", "3.5"]),
        (b'{"message_id": ["a"]}', ["a"]),
        (b'{"message_id": ["a"], "other": 1}', ["a"]),
        (b'{"message_id": null}', []),
    ],
)
def test_refused_ids_are_read_in_every_documented_shape(
    content: bytes, expected: list[str]
) -> None:
    """Empty, a JSON array of ids, or {"message_id": [...]}: the refused ids come out as strings."""
    assert parse_refused_ids(content) == expected


@pytest.mark.parametrize(
    "content",
    [b"<html>", b'"a"', b"{}", b'{"ids": ["a"]}', b"[{}]", b"[null]", b"[true]", b"[" * 100_000],
)
def test_refused_ids_in_any_other_shape_are_a_clear_error(content: bytes) -> None:
    """Any other body raises WireFormatError (the client raises APIResponseValidationError)."""
    with pytest.raises(WireFormatError):
        parse_refused_ids(content)


def test_inbound_names_are_exported() -> None:
    """The inbound wire types are importable from the top level, as DESIGN.md names them."""
    for name in ["InboundSubscription", "InboundSmsMessage", "InboundSmsMessageList"]:
        assert name in opensms_async.__all__
