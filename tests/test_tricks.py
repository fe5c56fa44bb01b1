"""Performance tricks that had no test of their own give the answers of the plain code they replace.

Each trick is listed in ``bench/README.md`` (Tricks) with its benchmark; these tests pin that it
stays correct, never how fast it is.
"""

from __future__ import annotations

import json
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from opensms_async._addressing import normalize_sender
from opensms_async._models import request_id_from_url
from opensms_async._receiving import parse_json
from opensms_async._transport import Wire
from opensms_async._webhook import _plain_http_path, cached_url_ids, parse_url_ids

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
_OBJECTS = st.dictionaries(st.text(), _JSON_VALUES, max_size=4)


def _outcome(parse: object, body: bytes) -> tuple[str, object]:
    """What ``parse(body)`` returns, or the type of what it raises."""
    try:
        return "value", parse(body)  # type: ignore[operator]
    except (ValueError, UnicodeDecodeError) as exc:
        return "error", type(exc)


@given(
    payload=_OBJECTS,
    ascii_only=st.booleans(),
    tail=st.sampled_from(["", "\n", " \r\n\t", " x", "{}", "\x00", "\u00a0"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]),
)
def test_parse_json_answers_as_json_loads_for_objects(
    payload: dict[str, object], ascii_only: bool, tail: str, encoding: str
) -> None:
    """A callback body parses to what json.loads makes of it, whatever its encoding or its tail."""
    body = (json.dumps(payload, ensure_ascii=ascii_only) + tail).encode(encoding, "surrogatepass")
    assert _outcome(parse_json, body) == _outcome(json.loads, body)


@given(body=st.binary(max_size=64) | st.binary(max_size=64).map(lambda raw: b"{" + raw))
def test_parse_json_answers_as_json_loads_for_any_bytes(body: bytes) -> None:
    """Arbitrary bytes, and bytes after an opening brace, get json.loads' value or error type."""
    assert _outcome(parse_json, body) == _outcome(json.loads, body)


_CALLBACK = (
    b'{"deliveryInfoList":{"securityToken":"t","deliveryInfo":[{"address":"tel:+3361",'
    b'"deliveryStatus":"DeliveredToTerminal","deliveryStatusCode":0}],"smsParts":1}}'
)


@pytest.mark.parametrize("cut", range(1, len(_CALLBACK)))
def test_parse_json_refuses_a_body_cut_short_as_json_loads_does(cut: int) -> None:
    """A callback cut anywhere (a value missing at the end: the C scanner's StopIteration) is
    json.loads' JSONDecodeError, with its message and position, never another exception."""
    body = _CALLBACK[:cut]
    with pytest.raises(json.JSONDecodeError) as ours:
        parse_json(body)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(body)
    assert (ours.value.msg, ours.value.pos) == (theirs.value.msg, theirs.value.pos)


_RESOURCE_URLS = [
    "https://api.example/sms/v1/outbound/tel%3A%2B3212345/requests/req-1",
    "https://api.example/sms/v1/outbound/tel%3A%2B3212345/requests/req-1/deliveryInfos",
    "https://api.example/sms/v1/outbound/BICS/requests/req-2",
    "https://api.example/sms/v1/outbound/%2B3212345/requests/" + "r" * 600,
    "https://api.example/sms/v1/requests/req-3",
    "https://api.example/sms/v1/outbound/tel%3A%2B3212345/requests/req-4?x=1#f",
    "http://api.example/outbound/BICS/requests/r%2F5",
    "http://api.example/outbound//requests/req-6",
    "http://api.example/outbound/tel%3A%2B0123/requests/req-7",
    "HTTP://api.example/outbound/BICS/requests/req-8",
    "http://[::1]/outbound/BICS/requests/req-9",
    "http://[x/outbound/BICS/requests/req-10",
    " http://api.example/outbound/BICS/requests/req-11\n",
    "not a url",
    "",
]


def _plain_url_ids(url: str) -> tuple[str | None, str | None]:
    """What parse_url_ids answers, the plain way: urlsplit (twice), unquote, normalize_sender."""
    try:
        parts = urlsplit(url).path.split("/")
        sender: str | None = normalize_sender(unquote(parts[parts.index("outbound") + 1]))
    except (ValueError, IndexError):
        sender = None
    return request_id_from_url(url), sender


@pytest.mark.parametrize("url", _RESOURCE_URLS)
def test_parse_url_ids_answers_as_urlsplit_and_normalize_sender(url: str) -> None:
    assert parse_url_ids(url) == _plain_url_ids(url)


_URL_PIECES = st.text(alphabet="ab/:?#[]\\% @.-_2B3A\t\n", max_size=40)


@given(
    st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "http:/", " http://", ""]),
    _URL_PIECES,
)
def test_the_path_of_a_plain_http_url_is_urlsplit_s(scheme: str, rest: str) -> None:
    """The receiver's shortcut to a resource URL's path answers as ``urlsplit`` does, or
    leaves the URL to it (None)."""
    url = scheme + rest
    path = _plain_http_path(url)
    if path is not None:
        assert path == urlsplit(url).path
    assert cached_url_ids()(url) == parse_url_ids(url) == _plain_url_ids(url)


@pytest.mark.parametrize("url", _RESOURCE_URLS)
def test_cached_url_ids_answer_as_parse_url_ids(url: str) -> None:
    """The receiver's memo of resource URLs gives the request id and sender parsing gives, again
    and again, for short URLs (memoised) and long ones (parsed each time)."""
    url_ids = cached_url_ids(maxsize=2)
    for _ in range(3):
        for other in (url, *_RESOURCE_URLS):
            assert url_ids(other) == parse_url_ids(other)


_BODY = b'{"outboundSMSMessageRequest": {}}'


# What the client sends: no body with GET and DELETE (an empty body there would get a
# Content-Length: 0 that httpx leaves out), and a body, maybe empty or absent, with POST and PUT.
@pytest.mark.parametrize(
    ("method", "content"),
    [("GET", None), ("DELETE", None), ("PUT", _BODY)]
    + [("POST", body) for body in (_BODY, b"", None)],
)
@pytest.mark.parametrize("url", ["https://api.example/sms/v1/x?y=1", "http://127.0.0.1:8080/z"])
async def test_a_direct_request_is_the_one_httpx_builds(
    method: str, content: bytes | None, url: str
) -> None:
    """The SDK's own client builds the request httpx.Request(content=...) would: same method, URL,
    headers (Host, Content-Length included) and body."""
    headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
    async with httpx.AsyncClient(headers={"User-Agent": "opensms-async"}) as http:
        wire = Wire(http, deadline=None, max_response_size=1024, direct=True)
        built = wire.build(method, url, headers=dict(headers), content=content)
        expected = httpx.Request(
            method,
            url,
            headers={**http.headers, "accept-encoding": "gzip, deflate", **headers},
            content=content,
        )
    assert (built.method, built.url, built.content) == (
        expected.method,
        expected.url,
        expected.content,
    )
    assert sorted(built.headers.multi_items()) == sorted(expected.headers.multi_items())
