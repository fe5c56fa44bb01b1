"""The receiver's fuzz cases: generated requests, and the oracle that says what each must get.

Each generated case knows by construction where its token is (``Case.token``), so the expected
answer comes from the rules in DESIGN.md ("Receiver rules") and PROTOCOL.md, not from the code
under test. Bodies that are not built from a callback (random bytes, random JSON) use a weaker,
code-independent oracle: a request in which no accepted token appears anywhere records nothing.
Used by ``test_fuzz.py``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from opensms_async import DeliveryStatus
from opensms_async.receiver import DEFAULT_MAX_BODY_SIZE
from opensms_async.testing import delivery_callback_body

TOKEN = "r2k5hq3-Fuzz-token"
OLD_TOKEN = "old-T0ken-rotating"
ACCEPTED = (TOKEN, OLD_TOKEN)
ACCEPTED_BYTES = tuple(t.encode() for t in ACCEPTED)
PATH = "/sms/callback"
MAX = DEFAULT_MAX_BODY_SIZE
ALLOWED = frozenset({204, 400, 401, 413, 422})
SENDER = "tel:+3212345678"
SENDER_PATH = "tel%3A%2B3212345678"
API = "https://opensms.api.bics.com/smsmessaging/v1"

FUZZ = settings(
    max_examples=2_500,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)


# --- cases and the oracle -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One request to the receiver, and what its generator knows about it."""

    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    token: str = "unknown"
    """The token in the body's root object: "right", "wrong", "absent", or "unknown" when the
    body was not built from a callback."""
    pristine: bool = False
    """A well-formed callback that nothing mutated (with an accepted token: must be 204)."""
    declared: bytes | None = None
    """A Content-Length set by the case (None: httpx's honest one, or none when chunked)."""
    chunked: bool = False


_BEARER = re.compile(rb"[Bb][Ee][Aa][Rr][Ee][Rr] [ \t]*(" + b"|".join(ACCEPTED_BYTES) + rb")[ \t]*")


def bearer_carries_token(value: bytes) -> bool:
    """RFC 6750: ``Bearer <token>``, the scheme in any case, whitespace around the token ignored."""
    return _BEARER.fullmatch(value) is not None


def authorization_values(case: Case) -> list[bytes]:
    """Every Authorization header value of the case."""
    return [value for name, value in case.headers if name.lower() == b"authorization"]


def strings_in(value: object) -> Iterator[object]:
    """Every key and scalar of a parsed JSON value (iterative: bodies may nest deeply)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            yield item


def token_anywhere(case: Case, payload: object) -> bool:
    """True when an accepted token appears anywhere in the request: a header or a JSON string."""
    if any(any(t in value for t in ACCEPTED_BYTES) for _, value in case.headers):
        return True
    return any(isinstance(item, str) and item in ACCEPTED for item in strings_in(payload))


def declared_too_large(declared: bytes) -> bool:
    """A Content-Length that is not a plain decimal or says more than the limit."""
    digits = declared.lstrip(b"0")
    return not declared.isdigit() or len(digits) > 10 or int(digits or b"0") > MAX


def expected_statuses(case: Case) -> frozenset[int]:
    """The answers the receiver rules allow for ``case``."""
    if len(case.body) > MAX:
        return frozenset({413})
    if case.declared is not None and declared_too_large(case.declared):
        # Over the limit: 413; not a number at all: 400 would do as well.
        return frozenset({413} if case.declared.isdigit() else {400, 413})
    try:
        payload = json.loads(case.body)
    except (ValueError, RecursionError):
        return frozenset({400})
    auths = authorization_values(case)
    header_ok = any(bearer_carries_token(v) for v in auths)
    if case.token == "unknown":
        return frozenset({204, 401, 422} if token_anywhere(case, payload) else {401})
    if case.token == "right" or (case.token == "absent" and header_ok):
        if case.token == "absent" and len(auths) > 1:
            return frozenset({204, 401, 422})  # several Authorization headers: either reading
        return frozenset({204} if case.pristine else {204, 422})
    return frozenset({401})


def may_record(case: Case) -> bool:
    """False when the request carries no accepted token anywhere: nothing may be stored."""
    try:
        payload = json.loads(case.body)
    except (ValueError, RecursionError):
        payload = None
    return token_anywhere(case, payload)


# --- generators -----------------------------------------------------------------------------
#
# Each generator is written once against a Chooser, and driven two ways: by hypothesis draws
# (structured: guided, and shrunk to a minimal case on failure) or by a seeded random.Random
# (fast: hypothesis draws one seed per batch of cases). A hypothesis draw costs about 60 us, so
# the volume runs use seeds; the structured runs carry the hand-written regression examples.

T = TypeVar("T")
HUGE_INTS = [10**30, -(10**30), 2**63, 2**31, -(2**31) - 1, 10_001, -1, 0]
SPECIAL_FLOATS = [float("nan"), float("inf"), float("-inf"), -0.0, 1e308, 5e-324, 1.5]
_characters = st.one_of(st.characters(), st.characters(categories=["Cs"]))  # lone surrogates too


class Chooser:
    """Where the generators take their decisions: hypothesis draws, or a seeded Random."""

    _strategies: ClassVar[dict[tuple[object, ...], st.SearchStrategy[Any]]] = {}

    def __init__(self, *, draw: st.DrawFn | None = None, rng: random.Random | None = None) -> None:
        self._draw = draw
        self._rng = rng if rng is not None else random.Random(0)

    def _drawn(self, key: tuple[object, ...], make: Callable[[], st.SearchStrategy[T]]) -> T:
        assert self._draw is not None
        strategy = self._strategies.get(key)
        if strategy is None:  # built once: building a strategy costs more than drawing from it
            strategy = self._strategies[key] = make()
        return self._draw(strategy)  # type: ignore[no-any-return]

    def number(self, low: int, high: int) -> int:
        """An integer in [low, high] (shrinks towards ``low``)."""
        if self._draw is None:
            return self._rng.randint(low, high)
        return self._drawn(("int", low, high), lambda: st.integers(low, high))

    def pick(self, options: Sequence[T]) -> T:
        """One of ``options`` (shrinks towards the first)."""
        return options[self.number(0, len(options) - 1)]

    def chance(self, one_in: int) -> bool:
        """True about once in ``one_in`` (shrinks towards False)."""
        return self.number(0, one_in - 1) == one_in - 1

    def blob(self, max_size: int) -> bytes:
        """Arbitrary bytes."""
        if self._draw is None:
            return self._rng.randbytes(self._rng.randint(0, max_size))
        return self._drawn(("bytes", max_size), lambda: st.binary(max_size=max_size))

    def text(self, max_size: int) -> str:
        """Arbitrary text, lone surrogates included (legal in JSON)."""
        if self._draw is not None:
            texts = lambda: st.text(_characters, max_size=max_size)  # noqa: E731
            return self._drawn(("text", max_size), texts)
        rng = self._rng
        alphabet = [chr(rng.randrange(0x20, 0x2FFFF)) for _ in range(6)]
        alphabet += ["\ud800", "\udfff", "\x00"]
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, max_size)))

    def real(self) -> float:
        """A float, NaN and infinities included."""
        if self._draw is None:
            return self._rng.choice([*SPECIAL_FLOATS, self._rng.uniform(-1e12, 1e12)])
        return self._drawn(("float",), st.floats)

    def big(self) -> int:
        """An integer of any size."""
        if self._draw is None:
            return self._rng.choice([*HUGE_INTS, self._rng.randrange(-(2**70), 2**70)])
        return self._drawn(("bigint",), st.integers)


def structured(build: Callable[[Chooser], T]) -> st.SearchStrategy[T]:
    """``build`` driven by hypothesis draws."""
    return st.composite(lambda draw: build(Chooser(draw=draw)))()


def seeded(build: Callable[[Chooser], T], seed: int, count: int) -> list[T]:
    """``count`` results of ``build`` driven by one seeded Random."""
    chooser = Chooser(rng=random.Random(seed))
    return [build(chooser) for _ in range(count)]


KEYS = [
    "deliveryInfoList",
    "deliveryInfoNotification",
    "deliveryInfo",
    "deliveryStatus",
    "deliveryStatusCode",
    "address",
    "resourceURL",
    "smsParts",
    "smsPartsDeliveredToTerminal",
    "callbackData",
    "link",
    "href",
]
"""Keys the parser looks at (never "securityToken": where a token sits is decided per case)."""


def random_json(ch: Chooser, depth: int = 0) -> object:
    """Any JSON value: huge numbers, NaN, surrogates, the parser's own keys, some nesting."""
    kind = ch.number(0, 8 if depth < 3 else 5)
    if kind <= 5:
        scalars: list[Callable[[], object]] = [
            lambda: None,
            lambda: ch.chance(2),
            ch.big,
            ch.real,
            lambda: ch.text(12),
            lambda: ch.pick(KEYS),
        ]
        return scalars[kind]()
    if kind == 6:
        return [random_json(ch, depth + 1) for _ in range(ch.number(0, 3))]
    keys = [ch.pick(KEYS) if ch.chance(2) else ch.text(8) for _ in range(ch.number(0, 3))]
    return {key: random_json(ch, depth + 1) for key in keys}


ODD_ADDRESSES = [
    "tel:+\u0663\u0663\u0666\u0661\u0662\u0663",  # Arabic-Indic digits
    "tel:+\uff13\uff13\uff16\uff11\uff12\uff13",  # fullwidth digits
    "tel:\uff0b33612345678",  # fullwidth plus
    "tel:+33 612 345 678",
    "tel:+33\u200b612345678",
    "tel:+0336123",
    "tel:+1234567890123456",
    "tel:+",
    "tel:",
    "+",
    "33612345678",
    "tel:+33612345678\x00",
    "\U0001f4f1+33612345678",
    "tel:+33612345678\ud800",
    "sip:+33612345678",
    "",
]
ODD_URLS = [
    "http://[x/requests/r1/deliveryInfos",
    f"{API}/outbound/[/requests/r2/deliveryInfos",
    f"{API}/outbound/{SENDER_PATH}/requests/\ud800/deliveryInfos",
    f"{API}/outbound/{SENDER_PATH}/requests/%ED%A0%80/deliveryInfos",
    f"{API}/outbound/{SENDER_PATH}/requests//deliveryInfos",
    f"{API}/outbound/{SENDER_PATH}/requests/",
    f"{API}/outbound/%F0%9F/requests/r3",
    f"{API}/outbound/\ud800/requests/r4",
    "//requests/r5",
    "requests/r6",
    "https://h/requests/" + "x" * 2000,
    "\x00",
]
DEEP = "@@deep@@"
"""Marker: replaced, after serialisation, by arrays nested up to thousands deep."""
DELETE = object()
LISTIFY = object()
ODD_SPECIALS: list[object] = [
    DELETE,
    LISTIFY,
    DEEP,
    "",
    *ODD_ADDRESSES,
    *ODD_URLS,
    *HUGE_INTS,
    *["\ud800", "\udfff", "x" * 65, "DeliveredToTerminal\x00", "a" * 64, True, [], {}, [[]]],
]


def odd_value(ch: Chooser) -> object:
    """A value a field should not hold (or DELETE, LISTIFY: remove it, wrap it in a list)."""
    return random_json(ch) if ch.chance(3) else ch.pick(ODD_SPECIALS)


WRONG_TOKENS = [
    TOKEN.upper(),
    TOKEN.lower(),
    TOKEN + " ",
    " " + TOKEN,
    TOKEN[:-1],
    TOKEN[1:],
    TOKEN + "\x00",
    TOKEN.replace("e", "\u0435"),  # Cyrillic e
    TOKEN.replace("k", "K"),
    "",
    "\ud800",
    TOKEN + "\ud800",
    "Bearer " + TOKEN,
    TOKEN + OLD_TOKEN,
    OLD_TOKEN[:-1],
    "t\u00f6k\u00e9n-\u00fc",
    [TOKEN],
    [],
    {"value": TOKEN},
    0,
    1,
    12345,
    1.5,
    True,
    False,
    *HUGE_INTS,
]


def body_token(ch: Chooser) -> object:
    """The token a body carries: accepted (half the time), absent, null, or wrong in some way."""
    kind = ch.number(0, 9)
    if kind < 5:
        return ch.pick(ACCEPTED)
    if kind < 7:
        return DELETE
    if kind == 7:
        return None  # null: as absent
    return ch.pick(WRONG_TOKENS) if kind == 8 else ch.text(24)


ADDRESS_FORMS = ["tel:+{}", "+{}", "TEL:+{}", "Tel:+{}", " tel:+{} ", "\ttel:+{}\n"]
STATUSES = [s.value for s in DeliveryStatus] + ["Unknown", "x" * 64, "someNewState"]
REQUEST_IDS = ["req-1", "4c27a6e0-5b8e-4f6b", "R", "a-b-c-d-e-f-0123456789-abcdefghijklm"]


def e164(ch: Chooser) -> str:
    """1 to 15 digits, the first not 0."""
    width = ch.number(0, 14)
    rest = str(ch.number(0, 10**width - 1)).zfill(width) if width else ""
    return f"{ch.number(1, 9)}{rest}"


def entry(ch: Chooser) -> dict[str, Any]:
    """One well-formed deliveryInfo entry."""
    return {
        "address": ch.pick(ADDRESS_FORMS).format(e164(ch)),
        "deliveryStatus": ch.pick(STATUSES),
        "deliveryStatusCode": ch.number(0, 20),
        "smsPartsDeliveredToTerminal": ch.number(0, 3),
    }


@dataclasses.dataclass
class Callback:
    """A callback body under construction: the outer object, its root and entries."""

    shape: str
    outer: Any
    root: dict[str, Any]
    entries: list[dict[str, Any]]
    wrapper: str | None


def base_callback(ch: Chooser) -> Callback:
    """A well-formed callback in one of the accepted shapes (BICS, OMA, bare, bare entry)."""
    shape = ch.pick(["bics", "oma", "bare", "entry"])
    entries = [entry(ch) for _ in range(1 if shape == "entry" else ch.number(1, 3))]
    resource = f"{API}/outbound/{SENDER_PATH}/requests/{ch.pick(REQUEST_IDS)}/deliveryInfos"
    info: Any = entries[0] if len(entries) == 1 and ch.chance(2) else entries
    if shape == "bics":
        root = {"resourceURL": resource, "smsParts": ch.number(1, 3), "deliveryInfo": info}
        return Callback(shape, {"deliveryInfoList": root}, root, entries, "deliveryInfoList")
    if shape == "oma":
        link = {"rel": "OutboundMessageRequest", "href": resource.rsplit("/", 1)[0]}
        root = {
            "callbackData": "cd",
            "deliveryInfo": info,
            "link": [link] if ch.chance(2) else link,
        }
        outer = {"deliveryInfoNotification": root}
        return Callback(shape, outer, root, entries, "deliveryInfoNotification")
    if shape == "bare":
        root = {"resourceURL": resource, "deliveryInfo": info}
        return Callback(shape, root, root, entries, None)
    entries[0]["resourceURL"] = resource
    return Callback(shape, entries[0], entries[0], entries, None)


ROOT_FIELDS = ["resourceURL", "smsParts", "deliveryInfo", "callbackData", "link", "deliveryStatus"]
ENTRY_FIELDS = [
    "address",
    "deliveryStatus",
    "deliveryStatusCode",
    "smsPartsDeliveredToTerminal",
    "resourceURL",
    "callbackData",
]
SITES = [
    *(("entry", field, index) for field in ENTRY_FIELDS for index in range(3)),
    *(("root", field, 0) for field in ROOT_FIELDS),
    *([("wrapper", "", 0)] * 4),
]
"""Where a mutation lands: a field of one entry, a field of the root, or the wrapper."""


def _set(target: Any, key: str, value: object) -> None:
    if not isinstance(target, dict):
        return
    if value is DELETE:
        target.pop(key, None)
    elif value is LISTIFY:
        if key in target:
            target[key] = [target[key]]
    else:
        target[key] = value


def mutate(cb: Callback, site: tuple[str, str, int], value: object) -> None:
    """Put ``value`` at ``site`` (or remove the field, or wrap it in a list)."""
    target, field, index = site
    if target == "root":
        _set(cb.root, field, value)
    elif target == "entry":
        _set(cb.entries[index % len(cb.entries)], field, value)
    elif cb.wrapper is not None:
        _set(cb.outer, cb.wrapper, value)
    elif value is LISTIFY:  # a bare body: wrap it, drop it or replace it
        cb.outer = [cb.outer]
    else:
        cb.outer = {} if value is DELETE else value


def root_reachable(cb: Callback) -> bool:
    """Whether the root object (where the token belongs) is still where the shapes put it."""
    if cb.wrapper is not None:
        return isinstance(cb.outer, dict) and cb.outer.get(cb.wrapper) is cb.root
    return cb.outer is cb.root and ("deliveryInfo" in cb.root or "deliveryStatus" in cb.root)


def place_token(cb: Callback, value: object, where: str) -> str:
    """Put the token at ``where``; what the receiver rules make of it: right, wrong or absent."""
    if value is DELETE:
        return "absent"
    if where == "root":
        cb.root["securityToken"] = value
    elif where == "outer" and cb.wrapper is not None and isinstance(cb.outer, dict):
        cb.outer["securityToken"] = value
    elif where == "entry" and cb.shape != "entry":
        cb.entries[0]["securityToken"] = value
    else:
        cb.root["meta"] = {"securityToken": value}
    if where != "root" or value is None or not root_reachable(cb):
        return "absent"
    return "right" if isinstance(value, str) and value in ACCEPTED else "wrong"


@dataclasses.dataclass(frozen=True)
class Encoding:
    """How a body is serialised."""

    ensure_ascii: bool = True
    codec: str = "utf-8"
    escape_token: bool = False
    depth: int = 2
    pad: int = 0


ENCODINGS = [
    Encoding(),
    Encoding(ensure_ascii=False),
    Encoding(escape_token=True),
    Encoding(ensure_ascii=False, escape_token=True),
    *(Encoding(codec=codec) for codec in ("utf-16", "utf-32", "utf-8-sig", "utf-16-be")),
    *(Encoding(depth=depth) for depth in (50, 900, 5_000, 30_000)),
    *(Encoding(pad=pad) for pad in (100, MAX, MAX + 1_000)),
]


def serialise(value: object, enc: Encoding = ENCODINGS[0]) -> bytes:
    """JSON text of ``value`` under ``enc``: escaped token, deep-nesting markers, padding."""
    text = json.dumps(value, ensure_ascii=enc.ensure_ascii, allow_nan=True)
    if enc.escape_token:
        for token in ACCEPTED:  # "\u0072\u0032..." parses to the very same token
            escaped = '"' + "".join(f"\\u{ord(c):04x}" for c in token) + '"'
            text = text.replace(json.dumps(token), escaped)
    text = text.replace(json.dumps(DEEP), "[" * enc.depth + "]" * enc.depth)
    if enc.pad and text.endswith("}"):
        text = text[:-1] + ', "description": "' + "x" * enc.pad + '"}'
    return text.encode(enc.codec, "surrogatepass")


def callback_case(ch: Chooser, max_mutations: int = 3) -> Case:
    """A callback, maybe mutated, with the token right, wrong, absent or misplaced."""
    cb = base_callback(ch)
    mutations = ch.number(0, max_mutations)
    for _ in range(mutations):
        mutate(cb, ch.pick(SITES), odd_value(ch))
    token = body_token(ch)
    truth = place_token(cb, token, ch.pick(["root", "root", "root", "outer", "entry", "meta"]))
    enc = ch.pick(ENCODINGS) if ch.chance(4) else ENCODINGS[0]
    body = serialise(cb.outer, enc)
    return Case(body, token=truth, pristine=mutations == 0 and enc.pad == 0)


AUTH_VALUES = [
    b"Bearer " + ACCEPTED_BYTES[0],
    b"bearer " + ACCEPTED_BYTES[1],
    b"BEARER   " + ACCEPTED_BYTES[0] + b"  ",
    b"Bearer " + TOKEN.upper().encode(),
    b"Bearer " + ACCEPTED_BYTES[0][:-1],
    b"Bearer " + ACCEPTED_BYTES[0] + b"x",
    b"Bearer" + ACCEPTED_BYTES[0],
    b"Bearer\t" + ACCEPTED_BYTES[0],
    b"Basic " + base64.b64encode(ACCEPTED_BYTES[0] + b":"),
    b"Token " + ACCEPTED_BYTES[0],
    ACCEPTED_BYTES[0],
    b"Bearer " + ACCEPTED_BYTES[0] + b"\x00",
    b"Bearer \xe9\xff",
    b"Bearer " + "t\u00f6k\u00e9n".encode(),
    b"Bearer " + TOKEN.encode("latin-1") + b"\xe9",
    b"Bearer " + ACCEPTED_BYTES[0] + ACCEPTED_BYTES[1],
    b"Bearer ",
    b"",
]
CONTENT_TYPES = [
    b"application/json",
    b"application/json; charset=utf-8",
    b"application/json; charset=latin-1",
    b"text/plain",
    b"multipart/form-data; boundary=x",
    b"application/x-www-form-urlencoded",
    b"application/xml",
    b"",
    b"\xff\xfe",
]
EXTRA_NAMES = [b"x-forwarded-for", b"x-request-id", b"accept", b"content-encoding", b"cookie"]
_FIELD_VALUE = re.compile(rb"([\x21-\x7e\x80-\xff]([\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?")


def http_safe(value: bytes) -> bool:
    """A header value HTTP/1.1 can carry (h11 refuses the others before sending)."""
    return _FIELD_VALUE.fullmatch(value) is not None


def auth_value(ch: Chooser) -> bytes:
    """An Authorization value: accepted, a near miss, another scheme, latin-1 or random bytes."""
    kind = ch.number(0, 5)
    if kind < 4:
        return ch.pick(AUTH_VALUES)
    return ch.blob(40) if kind == 4 else b"Bearer " + ch.blob(40)


def header_set(ch: Chooser, *, real_socket: bool = False) -> tuple[tuple[bytes, bytes], ...]:
    """Zero to two Authorization headers, maybe a content type, maybe a few other headers."""
    headers = [(b"authorization", auth_value(ch)) for _ in range(ch.number(0, 2))]
    if ch.chance(2):
        headers.append((b"content-type", ch.pick(CONTENT_TYPES) if ch.chance(2) else ch.blob(30)))
    headers += [(ch.pick(EXTRA_NAMES), ch.blob(30)) for _ in range(ch.number(0, 2))]
    if real_socket:
        headers = [(name, value) for name, value in headers if http_safe(value)]
    return tuple(headers)


def simple_auth(ch: Chooser) -> tuple[tuple[bytes, bytes], ...]:
    """No Authorization header, an accepted one, or a near miss."""
    return ((b"authorization", ch.pick(AUTH_VALUES[:6])),) if ch.chance(2) else ()


def content_length(ch: Chooser, size: int) -> tuple[bytes | None, bool]:
    """Honest, chunked, or lying: (the Content-Length to send, whether to stream the body)."""
    kind = ch.number(0, 3)
    if kind < 2:
        return None, kind == 1
    lies = [
        str(max(0, size - 1)).encode(),
        b"0",
        str(size + 1).encode(),
        str(MAX).encode(),
        str(MAX + 1).encode(),
        str(10**30).encode(),
        b"1" * 5000,
        b"0" * 4999 + b"9",
        b"-1",
        b"abc",
        b"1e3",
        b" 5",
        b"",
        "\uff15".encode(),  # a fullwidth 5
        b"0x10",
    ]
    return ch.pick(lies), False


def hostile_case(ch: Chooser) -> Case:
    """A callback (maybe mutated) under hostile headers and a Content-Length that may lie."""
    case = callback_case(ch, max_mutations=1)
    declared, chunked = content_length(ch, len(case.body))
    headers = header_set(ch)
    return dataclasses.replace(case, headers=headers, declared=declared, chunked=chunked)


SPECIAL_BODIES = [
    b"",
    b"null",
    b"NaN",
    b"-Infinity",
    b"[]",
    b"{}",
    b'"',
    b"\xef\xbb\xbf{}",
    b"1" * 5000,
    b"1e999999",
    b"[" * 50_000 + b"]" * 50_000,
    b"{" * 40_000,
    b'{"deliveryInfoList": ' * 3_000 + b"1" + b"}" * 3_000,
    b"\x00" * 100,
    b'{"deliveryInfoList": {"securityToken": "\\ud800"}}',
]


def byte_mutation(ch: Chooser) -> bytes:
    """The bytes of a callback with a few bytes flipped, inserted, deleted or cut off."""
    raw = bytearray(callback_case(ch, max_mutations=0).body)
    for _ in range(ch.number(1, 4)):
        op = ch.pick(["flip", "insert", "delete", "truncate"])
        at = ch.number(0, max(0, len(raw) - 1))
        if op == "flip" and raw:
            raw[at] = ch.number(0, 255)
        elif op == "insert":
            raw[at:at] = ch.pick([b"\x00", b"\\", b'"', b"{", b"]", b"\xff", b",", b"\\ud800"])
        elif op == "delete":
            del raw[at : at + ch.number(1, 8)]
        else:
            del raw[at:]
    return bytes(raw)


def raw_case(ch: Chooser) -> Case:
    """Random bytes, a byte-mutated callback or a pathological body, under arbitrary headers."""
    kind = ch.number(0, 2)
    if kind == 0:
        body = ch.blob(2_000)
    else:
        body = byte_mutation(ch) if kind == 1 else ch.pick(SPECIAL_BODIES)
    return Case(body, headers=header_set(ch))


def json_case(ch: Chooser) -> Case:
    """Arbitrary JSON, bare, or as fields of a callback next to an accepted token."""
    value = random_json(ch)
    headers = simple_auth(ch) if ch.chance(2) else header_set(ch)
    wrap = ch.pick(["none", "root", "info", "entry"])
    if wrap == "none":
        return Case(serialise(value), headers=headers)
    token = ch.pick(ACCEPTED)
    resource = f"{API}/outbound/{SENDER_PATH}/requests/r/deliveryInfos"
    if wrap == "root" and isinstance(value, dict):
        root = {**value, "securityToken": token}
    elif wrap == "entry":
        item = {"address": value, "deliveryStatus": value}
        root = {"securityToken": token, "resourceURL": resource, "deliveryInfo": [item]}
    else:
        root = {"securityToken": token, "resourceURL": value, "deliveryInfo": value}
    wrapper = ch.pick(["deliveryInfoList", "deliveryInfoNotification"])
    return Case(serialise({wrapper: root}), headers=headers, token="right")


def built(body: object, *, headers: Sequence[tuple[bytes, bytes]] = (), **kw: Any) -> Case:
    """A hand-written case (regressions), token right in the body unless said otherwise."""
    kw.setdefault("token", "right")
    return Case(json.dumps(body).encode(), tuple(headers), **kw)


def bics(**root: object) -> dict[str, Any]:
    """A BICS callback with an accepted token, fields of its root overridden by ``root``."""
    body = delivery_callback_body(
        "req-1", "tel:+33612345678", "DeliveredToTerminal", security_token=TOKEN, sender=SENDER
    )
    body["deliveryInfoList"] |= root
    return body


REGRESSIONS = [
    # urlsplit raises ValueError on a malformed IPv6 host: it escaped the receiver (a 500).
    built(bics(resourceURL="http://[x/requests/r1/deliveryInfos")),
    built(bics(resourceURL=None, link={"href": "https://[/outbound/x/requests/r9"})),
    built(bics(resourceURL="http://[x", callbackData="req-2")),
    # A Content-Length of thousands of digits: int() raised ValueError (Python's 4300-digit cap).
    built(bics(), declared=b"1" * 5000),
    built(bics(), declared=b"0" * 4999 + b"9"),
    built(
        bics(securityToken=None), headers=[(b"authorization", b"Bearer \xe9\xff")], token="absent"
    ),
]
SQLITE_REGRESSIONS = [
    # Lone surrogates (legal in JSON) cannot be written to SQLite: a 503 instead of a 422.
    built(bics(deliveryInfo=[{"address": "tel:+331", "deliveryStatus": "\ud800"}])),
    built(bics(resourceURL=f"{API}/outbound/{SENDER_PATH}/requests/\ud800/deliveryInfos")),
    built(bics(resourceURL=None, callbackData="\udfff")),
]
