"""The simulator against BICS's OpenAPI: what a Schemathesis run found, and a fuzz for 5xx.

Each request goes through the ASGI app in-process (``httpx.ASGITransport``, app exceptions
raised into the test), so a crash shows its traceback rather than a bare 500.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote, urlencode

import attrs
import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from openapi import PATHS

from opensms_async.testing import Simulator

KEY = "sim-api-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SEND_PATH = "/outbound/tel%3A%2B3212345/requests"
SEND = {
    "outboundSMSMessageRequest": {
        "address": ["tel:+33612345678"],
        "senderAddress": "tel:+3212345",
        "outboundSMSTextMessage": {"message": "Hi"},
    }
}
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
SAMPLE_PARAMS = {
    "senderAddress": "tel%3A%2B3212345",
    "requestId": "r-1",
    "inboundNumber": "tel%3A%2B32470000000",
}


async def call(simulator: Simulator, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request through the simulator's ASGI app, in-process."""
    transport = httpx.ASGITransport(app=simulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        return await client.request(method, path, **kwargs)


def with_flag(name: str, value: object) -> dict[str, Any]:
    """The valid send body with one more field."""
    return {"outboundSMSMessageRequest": {**SEND["outboundSMSMessageRequest"], name: value}}


# -- null is not a boolean -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["asynchronous", "finalDelivery"])
async def test_null_send_flags_are_refused_not_echoed(name: str) -> None:
    """ "asynchronous": null or "finalDelivery": null is a 400 naming the field; nothing is sent.

    BICS's OpenAPI 3.0 types both as boolean and never says nullable, so null is not a value.
    """
    simulator = Simulator(seed=1)
    response = await call(simulator, "POST", SEND_PATH, json=with_flag(name, None), headers=AUTH)
    assert response.status_code == 400
    assert response.json()["requestError"]["serviceException"]["variables"] == [name]
    assert simulator.sends == 0


@pytest.mark.parametrize("value", [True, False])
async def test_boolean_send_flags_are_still_accepted(value: bool) -> None:
    """A real true or false is taken and echoed as sent."""
    response = await call(
        Simulator(seed=1), "POST", SEND_PATH, json=with_flag("finalDelivery", value), headers=AUTH
    )
    assert response.status_code == 201
    assert response.json()["outboundSMSMessageRequest"]["finalDelivery"] is value


async def test_null_final_delivery_in_a_subscription_is_refused() -> None:
    """A delivery subscription with "finalDelivery": null is a 400 and is not stored."""
    simulator = Simulator(seed=1)
    callback = {"url": "https://me.example/cb", "securityToken": "t", "finalDelivery": None}
    response = await call(
        simulator, "POST", "/outbound/subscriptions", json={"callback": callback}, headers=AUTH
    )
    assert response.status_code == 400
    assert simulator.subscription is None


# -- 405 lists every method of the path ------------------------------------------------------


def _documented() -> list[tuple[str, frozenset[str]]]:
    found = []
    for template, operations in PATHS.items():
        path = template
        for name, value in SAMPLE_PARAMS.items():
            path = path.replace(f"{{{name}}}", value)
        methods = frozenset(m.upper() for m in operations if m.upper() in ALL_METHODS)
        found.append((path, methods))
    return [*found, ("/oauth/token", frozenset({"POST"}))]


@pytest.mark.parametrize(("path", "methods"), _documented())
async def test_a_wrong_method_is_405_listing_every_method_of_the_path(
    path: str, methods: frozenset[str]
) -> None:
    """For every path of the spec, each undocumented method is 405 with Allow = the documented."""
    simulator = Simulator(seed=1)
    for method in sorted(set(ALL_METHODS) - methods):
        response = await call(simulator, method, path, headers=AUTH)
        assert response.status_code == 405, (method, path)
        assert set(response.headers["allow"].split(", ")) == methods, (method, path)
    assert simulator.sends == 0


async def test_subscriptions_allow_get_post_delete() -> None:
    """The case the Schemathesis run found: Allow on /outbound/subscriptions names all three."""
    response = await call(Simulator(seed=1), "PUT", "/outbound/subscriptions", headers=AUTH)
    assert (response.status_code, response.headers["allow"]) == (405, "GET, POST, DELETE")


# -- the token endpoint ----------------------------------------------------------------------


@pytest.mark.parametrize(("ttl", "expected"), [(3600.0, 3600), (90.7, 90), (60, 60)])
async def test_token_expires_in_is_whole_seconds(ttl: float, expected: int) -> None:
    """expires_in is a JSON integer (RFC 6749, Keycloak), rounded down from token_ttl."""
    simulator = Simulator(seed=1, token_ttl=ttl)
    form = {
        "grant_type": "client_credentials",
        "client_id": simulator.client_id,
        "client_secret": simulator.client_secret,
    }
    response = await call(simulator, "POST", "/oauth/token", data=form)
    assert response.status_code == 200
    expires_in = response.json()["expires_in"]
    assert type(expires_in) is int  # json.loads reads 3600.0 as a float
    assert expires_in == expected


# -- no 5xx from any request -----------------------------------------------------------------

_SEGMENT = st.text(max_size=12).map(lambda s: quote(s, safe=""))
_TEMPLATES = [
    "/outbound/{}/requests",
    "/outbound/{}/requests/{}/deliveryInfos",
    "/outbound/subscriptions",
    "/inbound/subscriptions",
    "/inbound/registrations/{}/messages",
    "/conversions",
    "/conversionsinfos",
    "/oauth/token",
]
_VALID: dict[str, Any] = {
    "/outbound/{}/requests": SEND,
    "/outbound/subscriptions": {"callback": {"url": "https://me.example", "securityToken": "t"}},
    "/inbound/subscriptions": {
        "callback": {"url": "https://me.example", "securityToken": "t", "concat": False}
    },
    "/conversions": {"conversionRequest": {"address": "32410300011"}},
    "/conversionsinfos": {"message_id": ["a"], "type": "SMS"},
}
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@attrs.frozen
class Case:
    """One generated request."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


@st.composite
def _paths(draw: st.DrawFn) -> tuple[str, str]:
    if draw(st.integers(0, 9)) == 0:
        return "", "/" + "/".join(draw(st.lists(_SEGMENT, max_size=5)))
    template = draw(st.sampled_from(_TEMPLATES))
    path = template.format(*(draw(_SEGMENT) for _ in range(template.count("{}"))))
    return template, path


def _mutate(value: Any, draw: st.DrawFn) -> Any:
    """``value`` with one node somewhere replaced by arbitrary JSON."""
    if isinstance(value, dict) and value and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value)))
        return {**value, key: _mutate(value[key], draw)}
    if isinstance(value, list) and value and draw(st.booleans()):
        index = draw(st.integers(0, len(value) - 1))
        return [*value[:index], _mutate(value[index], draw), *value[index + 1 :]]
    return draw(_JSON)


@st.composite
def _bodies(draw: st.DrawFn, template: str) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1 or template not in _VALID:
        return json.dumps(draw(_JSON)).encode()
    if template == "/oauth/token":
        return urlencode(draw(st.dictionaries(st.text(max_size=8), st.text(max_size=8)))).encode()
    return json.dumps(_mutate(_VALID[template], draw)).encode()


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A request to any endpoint (or none): any method, path segments, query, body, auth."""
    template, path = draw(_paths())
    params = st.sampled_from(["maxBatchSize", "x"]) | st.text(max_size=6)
    query = urlencode(draw(st.lists(st.tuples(params, st.text(max_size=6)), max_size=3)))
    auth = draw(
        st.sampled_from([b"Bearer " + KEY.encode(), b"", b"Bearer x", b"Basic \xff\xfe", b"bearer"])
    )
    kind = draw(st.sampled_from([b"application/json", b"application/x-www-form-urlencoded"]))
    headers = ((b"authorization", auth), (b"content-type", kind))
    body = draw(_bodies(template))
    return Case(draw(st.sampled_from(ALL_METHODS)), path, query, headers, body)


async def _send(simulator: Simulator, case: Case) -> httpx.Response:
    url = httpx.URL("http://sim" + case.path, query=case.query.encode())
    headers = [h for h in case.headers if h[1]]
    return await call(simulator, case.method, str(url), headers=headers, content=case.body)


def test_no_request_makes_the_simulator_fail() -> None:
    """Whatever the method, path, query, headers and body, the simulator answers below 500."""
    simulator = Simulator(seed=3, inbound_numbers=("+32470000000",))
    simulator.inject_inbound("+32470000001", "+32470000000", "x" * 400)

    @settings(
        max_examples=1_500,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=cases())
    @example(
        Case(
            "POST",
            SEND_PATH,
            "",
            ((b"authorization", AUTH["Authorization"].encode()),),
            b"[" * 100_000,
        )
    )
    @example(
        Case(
            "POST",
            SEND_PATH,
            "",
            ((b"authorization", AUTH["Authorization"].encode()),),
            json.dumps(with_flag("notifyURL", "http://[x")).encode(),
        )
    )
    @example(
        Case(
            "POST",
            "/outbound/subscriptions",
            "",
            ((b"authorization", AUTH["Authorization"].encode()),),
            b'{"callback": {"url": "http://[x", "securityToken": "t"}}',
        )
    )
    @example(Case("POST", "/oauth/token", "", ((b"authorization", b"Basic \xff\xfe"),), b""))
    def check(case: Case) -> None:
        response = asyncio.run(_send(simulator, case))
        assert response.status_code < 500, (case, response.text[:200])

    check()
