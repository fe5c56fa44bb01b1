"""Attacks on the inbound endpoint: fuzzed bodies and headers; nothing but 2xx, 4xx or 503.

Thousands of generated requests go through the receiver in-process (``httpx.ASGITransport``), and
a sample over a real socket (uvicorn, SQLite store). Whatever arrives, the endpoint answers 204,
400, 401, 413 or 422 (503 only when the store fails, which it does not here), lets no exception
out, stores nothing unless the request carried an accepted Bearer token, stores nothing when it
refuses, and has recorded every ``messageId`` of the body when it answers 204. A well-formed
body with an accepted token (``pristine``) must be 204.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from opensms_async import Inbox, create_receiver_app
from opensms_async._server import serve
from opensms_async.receiver import DEFAULT_MAX_BODY_SIZE

TOKEN = "in-Fuzz-t0ken"
OLD_TOKEN = "old-in-t0ken"
PATH = "/sms/inbound"
MAX = DEFAULT_MAX_BODY_SIZE
ALLOWED = frozenset({204, 400, 401, 413, 422})

FUZZ = settings(
    max_examples=2_000,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


@dataclasses.dataclass(frozen=True)
class Case:
    """One request, and what its generator knows of it."""

    body: bytes
    authorization: bytes | None
    accepted: bool
    """The Authorization header is ``Bearer`` with an accepted token."""
    pristine: bool = False
    """A well-formed inbound message body (with an accepted token: must be 204)."""
    oversized: bool = False
    """Posted padded with spaces to one byte over the limit (kept out of the case's repr)."""

    @property
    def content(self) -> bytes:
        """What is posted."""
        return self.body + b" " * (MAX + 1 - len(self.body)) if self.oversized else self.body


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.text(max_size=20),
)  # fmt: skip
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
TEXTS = st.text(max_size=200) | st.sampled_from(["\ud800 lone", "é€😀", "", "x" * 500])
UDH = st.one_of(st.none(), st.integers(-3, 300), st.text(max_size=3), st.booleans(), ANY_JSON)


@st.composite
def inbound_entry(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """An InboundSmsMessage, well-formed or mutated, and whether it is well-formed."""
    entry: dict[str, Any] = {
        "messageId": draw(st.uuids()).hex,
        "senderAddress": draw(st.sampled_from(["32470000001", "+32470000001", "ACME", "0470"])),
        "destinationAddress": "32470000000",
        "message": draw(TEXTS),
        "dateTime": "2021-11-24T09:13:40.639",
    }
    if draw(st.booleans()):
        entry |= {"udhMessageId": draw(UDH), "concatPart": draw(UDH), "concatTotal": draw(UDH)}
    well_formed = True
    if draw(st.integers(0, 3)) == 0:
        field = draw(st.sampled_from(sorted(entry)))
        entry[field] = draw(ANY_JSON)
        well_formed = field != "messageId" and isinstance(entry[field], str | int | float | None)
        well_formed = well_formed and not isinstance(entry[field], bool)
        if field == "messageId":
            well_formed = isinstance(entry[field], str) and 0 < len(entry[field]) <= 256
            well_formed = well_formed and "\ufffd" not in entry[field] and _utf8(entry[field])
    if draw(st.integers(0, 9)) == 0:
        del entry["messageId"]
        well_formed = False
    return entry, well_formed


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A body: an inbound message (or a few), random JSON or random bytes; and its pristineness."""
    kind = draw(st.integers(0, 5))
    if kind <= 2:
        entries = draw(st.lists(inbound_entry(), min_size=1, max_size=3))
        root = draw(st.sampled_from(["InboundSmsMessage", "inboundSMSMessage", None]))
        values = [entry for entry, _ in entries]
        payload: Any = values[0] if len(values) == 1 else values
        if root is not None:
            payload = {root: payload}
        elif len(values) > 1:
            payload = {"InboundSmsMessage": values}
        raw = json.dumps(payload, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
        return raw, all(ok for _, ok in entries)
    if kind <= 4:
        return json.dumps(draw(ANY_JSON)).encode(), False
    return draw(st.binary(max_size=300)), False


AUTHORIZATIONS = st.one_of(
    st.none(),
    st.sampled_from([f"Bearer {TOKEN}", f"bearer {OLD_TOKEN}", f"BEARER  {TOKEN} ", "Bearer x"]),
    st.sampled_from([f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A request with a fuzzed body and Authorization header."""
    body, well_formed = draw(bodies())
    header = draw(AUTHORIZATIONS)
    accepted = header is not None and _accepted(header)
    oversized = draw(st.integers(0, 30)) == 0
    raw = None if header is None else header.encode()
    return Case(body, raw, accepted, pristine=well_formed and not oversized, oversized=oversized)


def _accepted(header: str) -> bool:
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and token.strip() in (TOKEN, OLD_TOKEN)


@contextlib.asynccontextmanager
async def in_process(store: str = "memory://") -> AsyncIterator[tuple[Inbox, httpx.AsyncClient]]:
    """An open inbox and a client of the receiver app in this process."""
    async with Inbox(store) as inbox:
        app = create_receiver_app(None, inbox=inbox, inbound_security_token=[TOKEN, OLD_TOKEN])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
            yield inbox, http


async def check(inbox: Inbox, http: httpx.AsyncClient, case: Case) -> None:
    """Post ``case`` and hold the answer and the store to the rules."""
    before = await inbox.store.read_messages(None, limit=100_000)
    headers = {} if case.authorization is None else {"Authorization": case.authorization.decode()}
    answer = await http.post(PATH, content=case.content, headers=headers)
    after = await inbox.store.read_messages(None, limit=100_000)
    assert answer.status_code in ALLOWED, (answer.status_code, case)
    if answer.status_code != 204:
        assert after == before, case
        assert set(answer.json()) == {"error", "reason"}
    if not case.accepted:
        assert answer.status_code == 401, case
        return
    if len(case.content) > MAX:
        assert answer.status_code == 413
        return
    if case.pristine:
        assert answer.status_code == 204, (answer.text, case)
    if answer.status_code == 204:
        for message_id in _ids(case.body):
            assert await inbox.store.remembers(message_id), case


def _ids(body: bytes) -> list[str]:
    payload = json.loads(body)
    root = payload
    for name in ("InboundSmsMessage", "inboundSMSMessage"):
        if isinstance(payload, dict) and name in payload:
            root = payload[name]
    entries = root if isinstance(root, list) else [root]
    return [str(entry["messageId"]) for entry in entries]


@FUZZ
@given(case=cases())
async def test_fuzzed_requests_in_process(case: Case) -> None:
    """Any body and header: only 204/400/401/413/422, records exactly as the rules say."""
    async with in_process() as (inbox, http):
        await check(inbox, http, case)


@pytest.mark.integration
@settings(FUZZ, max_examples=150)
@given(case=cases())
async def test_fuzzed_requests_over_a_socket_into_sqlite(tmp_path: Path, case: Case) -> None:
    """The same rules through uvicorn into a SQLite store."""
    # h11 (httpx's HTTP/1.1) refuses to send header values with surrounding whitespace.
    assume(case.authorization is None or case.authorization == case.authorization.strip())
    async with Inbox(f"sqlite:///{tmp_path / 'fuzz.db'}") as inbox:
        app = create_receiver_app(None, inbox=inbox, inbound_security_token=[TOKEN, OLD_TOKEN])
        async with serve(app) as server, httpx.AsyncClient(base_url=server.url) as http:
            await check(inbox, http, case)
